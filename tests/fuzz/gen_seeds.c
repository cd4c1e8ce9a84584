/* gen_seeds.c - writes the seed corpora for the fuzz harnesses.
 *
 *   gen_seeds frame DIR         valid streams from the frame writer, plus edge cases
 *   gen_seeds safetensors DIR   small valid and broken safetensors files
 *   gen_seeds image DIR         tests/e2e/helpers/mkimages.py --small's images
 *
 * Frame seeds start with fuzz_frame's control byte (record limit and chunk
 * size), then the stream; image seeds with fuzz_image's three control bytes
 * (resolution, filter, crop/flip/fast-decode flags), then the file. */
#include <dirent.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

static void save(const char *dir, const char *name, uint8_t control, const void *p, size_t n, int with_control) {
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) die("%s: cannot create", path);
    if (with_control) fputc(control, f);
    if (n && fwrite(p, 1, n, f) != n) die("%s: write error", path);
    if (fclose(f)) die("%s: write error", path);
    free(path);
}

/* Runs the frame writer into a memfd and returns what it wrote. */
static uint8_t *written(frame_out **recs, int n, size_t *len) {
    int fd = memfd_create("seed", 0);
    frame_writer *w = frame_writer_fdopen(fd, "seed");
    for (int i = 0; i < n; i++) frame_emit(w, recs[i]);
    char err[LCM_ERRLEN];
    if (frame_writer_close(w, err)) die("%s", err);
    *len = (size_t)lseek(fd, 0, SEEK_END);
    uint8_t *buf = xmalloc(*len + 1);
    if (pread(fd, buf, *len, 0) != (ssize_t)*len) die("memfd read");
    close(fd);
    return buf;
}

static void frame_seeds(const char *dir) {
    static float img[2 * 3 * 4];
    static uint16_t half[4] = {0x3c00, 0xbc00, 0x7c00, 0x7e00}; /* 1, -1, inf, nan */
    static int32_t size2[2] = {480, 640};
    static int64_t step[1] = {17};
    static double d = 0.25;
    for (int i = 0; i < 24; i++) img[i] = (float)i / 12 - 1;
    int64_t s_img[3] = {2, 3, 4}, s_half[1] = {4}, s_two[1] = {2}, s_one[1] = {1};
    static char keys[3][8];
    frame_out *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = frame_out_new();
        snprintf(keys[i], sizeof keys[i], "%06d", i);
        fo_str(r[i], "__key__", keys[i], 6);
        fo_str(r[i], "txt", "a photo of a cat", 16);
        fo_bin(r[i], "jpg", "\xff\xd8\xff\xe0", 4);
        fo_tensor(r[i], "image", DT_F32, 3, s_img, img);
        fo_tensor(r[i], "latent", DT_F16, 1, s_half, half);
        fo_tensor(r[i], "original_size", DT_I32, 1, s_two, size2);
        fo_tensor(r[i], "timestep_index", DT_I64, 1, s_one, step);
        fo_tensor(r[i], "w", DT_F64, 0, s_one, &d);
        fo_int(r[i], "n", -i * 1000);
        fo_float(r[i], "x", 0.5 * i);
    }
    size_t len;
    uint8_t *s = written(r, 3, &len);
    save(dir, "three-records", 0x0a, s, len, 1);  /* 64 KiB limit, whole stream at once */
    save(dir, "three-records-chunked", 0x4a, s, len, 1);
    save(dir, "three-records-small-limit", 0x13, s, len, 1);
    save(dir, "truncated", 0x0a, s, len - 3, 1);
    free(s);
    s = written(r, 1, &len);
    save(dir, "one-record", 0x2a, s, len, 1);
    free(s);
    for (int i = 0; i < 3; i++) frame_out_free(r[i]);
    save(dir, "empty", 0x0a, "", 0, 1);

    /* Hand-packed edge cases: every msgpack type, nesting, bad tensors. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct { const char *name; int what; } cases[] = {
        {"all-types", 0}, {"nested", 1}, {"tensor-bad-size", 2}, {"tensor-no-shape", 3},
        {"not-a-map", 4}, {"key-not-string", 5}, {"huge-counts", 6}, {"scalar-shapes", 7},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (cases[c].what) {
        case 0:
            msgpack_pack_map(&pk, 9);
            msgpack_pack_str_with_body(&pk, "nil", 3); msgpack_pack_nil(&pk);
            msgpack_pack_str_with_body(&pk, "t", 1); msgpack_pack_true(&pk);
            msgpack_pack_str_with_body(&pk, "u64", 3); msgpack_pack_uint64(&pk, UINT64_MAX);
            msgpack_pack_str_with_body(&pk, "i64", 3); msgpack_pack_int64(&pk, INT64_MIN);
            msgpack_pack_str_with_body(&pk, "f32", 3); msgpack_pack_float(&pk, 1.5f);
            msgpack_pack_str_with_body(&pk, "f64", 3); msgpack_pack_double(&pk, -2.75);
            msgpack_pack_str_with_body(&pk, "ext", 3); msgpack_pack_ext_with_body(&pk, "abcd", 4, 7);
            msgpack_pack_str_with_body(&pk, "bin", 3); msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
            msgpack_pack_str_with_body(&pk, "s", 1); msgpack_pack_str_with_body(&pk, "\xc3\xa9t\xc3\xa9", 6);
            break;
        case 1:
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "json", 4);
            msgpack_pack_map(&pk, 1);
            msgpack_pack_str_with_body(&pk, "a", 1);
            msgpack_pack_array(&pk, 3);
            msgpack_pack_int(&pk, 1);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_map(&pk, 0);
            msgpack_pack_nil(&pk);
            msgpack_pack_str_with_body(&pk, "list", 4);
            msgpack_pack_array(&pk, 2);
            msgpack_pack_str_with_body(&pk, "x", 1);
            msgpack_pack_double(&pk, 3.0);
            break;
        case 2: case 3: case 7: {
            int scalar = cases[c].what == 7;
            msgpack_pack_map(&pk, scalar ? 2 : 1);
            for (int k = 0; k < (scalar ? 2 : 1); k++) {
                msgpack_pack_str_with_body(&pk, k ? "b" : "a", 1);
                msgpack_pack_map(&pk, cases[c].what == 3 ? 2 : 3);
                msgpack_pack_str_with_body(&pk, "dtype", 5);
                msgpack_pack_str_with_body(&pk, "f32", 3);
                if (cases[c].what != 3) {
                    msgpack_pack_str_with_body(&pk, "shape", 5);
                    msgpack_pack_array(&pk, scalar ? (size_t)k : 2);
                    if (scalar && k) msgpack_pack_int(&pk, 1);
                    if (!scalar) { msgpack_pack_int(&pk, 2); msgpack_pack_int(&pk, 2); }
                }
                msgpack_pack_str_with_body(&pk, "data", 4);
                msgpack_pack_bin_with_body(&pk, "\0\0\200?", 4);
            }
            break;
        }
        case 4: msgpack_pack_array(&pk, 1); msgpack_pack_int(&pk, 1); break;
        case 5: msgpack_pack_map(&pk, 1); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 2); break;
        case 6: /* counts far beyond the bytes present */
            msgpack_sbuffer_write(&sb, "\x81\xa1k\xdd\xff\xff\xff\xff\x81\xa1m\xdf\x7f\xff\xff\xff\xc6\xff\xff\xff\xf0", 21);
            break;
        }
        save(dir, cases[c].name, 0x2a, sb.data, sb.size, 1);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* A safetensors file: 8-byte little-endian header length, JSON, data. */
static void st_seed(const char *dir, const char *name, const char *json, const void *data, size_t n) {
    size_t hl = strlen(json);
    uint8_t *buf = xmalloc(8 + hl + n + 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    save(dir, name, 0, buf, 8 + hl + n, 0);
    free(buf);
}

static void safetensors_seeds(const char *dir) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    st_seed(dir, "two-tensors",
            "{\"__metadata__\":{\"format\":\"pt\"},\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[16,24]}}  ",
            v, 24);
    st_seed(dir, "scalar", "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", v, 8);
    st_seed(dir, "empty-tensor", "{\"e\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", v, 0);
    st_seed(dir, "no-tensors", "{}", v, 0);
    st_seed(dir, "bad-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,16]}}", v, 8);
    st_seed(dir, "overlap",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            v, 12);
    st_seed(dir, "escapes", "{\"a\\u00e9\\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", v, 1);
    save(dir, "short", 0, "\x10\0\0\0", 4, 0);
}

/* Runs mkimages.py --small into a temporary directory; returns its path. */
static char *make_images(void) {
    const char *top = getenv("LCM_TOP");
    char *script = path_join(top ? top : ".", "tests/e2e/helpers/mkimages.py");
    char *tmp = xstrdup("/tmp/lcm-seeds-XXXXXX");
    if (!mkdtemp(tmp)) die("%s: cannot create", tmp);
    pid_t pid = fork();
    if (pid < 0) die("cannot fork");
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", script, "--small", tmp, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
        die("%s --small failed", script);
    free(script);
    return tmp;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int not_hidden(const struct dirent *d) { return d->d_name[0] != '.'; }

/* Each image twice: once upscaled (resolution 64), once downscaled
 * (resolution 17), with filters and flags varying from file to file. */
static void image_seeds(const char *dir) {
    char *tmp = make_images(), err[LCM_ERRLEN];
    struct dirent **names;
    int n = scandir(tmp, &names, not_hidden, by_name);
    if (n < 0) die("%s: cannot list", tmp);
    for (int i = 0; i < n; i++) {
        char *path = path_join(tmp, names[i]->d_name), *data, name[300];
        size_t len;
        if (read_file(path, &data, &len, err)) die("%s", err);
        uint8_t *buf = xmalloc(len + 3);
        memcpy(buf + 3, data, len);
        buf[0] = 63, buf[1] = (uint8_t)(i % 6), buf[2] = (uint8_t)(i % 8 | i << 3);
        save(dir, names[i]->d_name, 0, buf, len + 3, 0);
        buf[0] = 16, buf[1] = (uint8_t)((i + 3) % 6), buf[2] = (uint8_t)((i + 5) % 8);
        snprintf(name, sizeof name, "%s-down", names[i]->d_name);
        save(dir, name, 0, buf, len + 3, 0);
        free(buf), free(data), free(path), free(names[i]);
    }
    free(names);
    if (rm_rf(tmp)) die("%s: cannot remove", tmp);
    free(tmp);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    if (argc != 3) die_usage("usage: gen_seeds frame|safetensors|image DIR");
    char err[LCM_ERRLEN];
    if (mkdir_p(argv[2], err)) die("%s", err);
    if (!strcmp(argv[1], "frame")) frame_seeds(argv[2]);
    else if (!strcmp(argv[1], "safetensors")) safetensors_seeds(argv[2]);
    else if (!strcmp(argv[1], "image")) image_seeds(argv[2]);
    else die_usage("unknown target '%s'", argv[1]);
    return 0;
}
