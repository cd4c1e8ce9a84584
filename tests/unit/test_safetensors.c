/* safetensors reader and writer: round trips for every dtype, the exact
 * layout the Python library writes, and every validation rule with a crafted
 * bad file (the error names the file and the tensor or byte; never a crash). */
#include <stdint.h>
#include <unistd.h>

#include "safetensors.h"
#include "test.h"
#include "util.h"

static char dir[] = "/tmp/lcm-test-st-XXXXXX";

static char *tmp_path(const char *name) { return path_join(dir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* A file with the given header text, size field and data length. */
static char *craft(const char *name, const char *header, uint64_t size_field, size_t data_len) {
    char *path = tmp_path(name);
    size_t hl = strlen(header);
    uint8_t *buf = xcalloc(1, 8 + hl + data_len);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(size_field >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
    return path;
}

/* Opens a crafted file that must fail with a message holding its path and
 * each of the given substrings. */
static void expect_bad(const char *header, size_t data_len, const char *want1, const char *want2) {
    static int n;
    char name[32];
    snprintf(name, sizeof name, "bad%d.safetensors", n++);
    char *path = craft(name, header, strlen(header), data_len);
    char err[LCM_ERRLEN] = "";
    st_file *f = st_open(path, err);
    CHECKF(!f, "accepted: %s", header);
    CHECKF(strstr(err, path), "no path in: %s", err);
    CHECKF(!strchr(err, '\n'), "not one line: %s", err);
    CHECKF(strstr(err, want1), "'%s' not in: %s", want1, err);
    CHECKF(!want2 || strstr(err, want2), "'%s' not in: %s", want2, err);
    free(path);
}

TEST(round_trip_every_dtype) {
    uint8_t data[DT_COUNT][24 * 8];
    st_entry e[DT_COUNT];
    char names[DT_COUNT][16];
    for (int t = 0; t < DT_COUNT; t++) {
        for (size_t i = 0; i < sizeof data[t]; i++) data[t][i] = (uint8_t)(i * 7 + t * 13 + 1);
        if (t == DT_BOOL)
            for (size_t i = 0; i < 24; i++) data[t][i] = i % 3 == 0;
        /* Names in reverse dtype order, so the sorted layout differs from the given one. */
        snprintf(names[t], sizeof names[t], "t%02d.%s", DT_COUNT - t, dtype_name(t));
        int64_t shape[3] = {2, 3, 4};
        e[t] = st_entry_of(names[t], (dtype_id)t, 3, shape, data[t]);
    }
    st_meta meta[2] = {{"format", "pt"}, {"author", "a \"quoted\" \xc3\xa9"}};
    char err[LCM_ERRLEN];
    char *path = tmp_path("all.safetensors");
    CHECKF(st_write(path, e, DT_COUNT, meta, 2, err) == 0, "%s", err);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    CHECK(st_count(f) == DT_COUNT);
    for (int i = 1; i < DT_COUNT; i++) CHECK(strcmp(st_at(f, i - 1)->name, st_at(f, i)->name) < 0);
    uint64_t prev_end = 0;
    for (int i = 0; i < DT_COUNT; i++) {
        const st_tensor *t = st_at(f, i);
        CHECK(t->offset >= prev_end); /* data in name order */
        prev_end = t->offset + t->nbytes;
    }
    for (int t = 0; t < DT_COUNT; t++) {
        const st_tensor *x = st_find(f, names[t]);
        CHECKF(x, "%s not found", names[t]);
        CHECK(x->dtype == (dtype_id)t && x->ndim == 3 && x->shape[0] == 2 && x->shape[1] == 3 && x->shape[2] == 4);
        CHECK(x->nbytes == 24 * dtype_size(t));
        CHECK(!memcmp(x->data, data[t], x->nbytes));
    }
    CHECK(!st_find(f, "nope"));
    CHECK(st_meta_count(f) == 2);
    CHECK(!strcmp(st_meta_get(f, "format"), "pt"));
    CHECK(!strcmp(st_meta_get(f, "author"), "a \"quoted\" \xc3\xa9"));
    st_close(f);
    free(path);
}

TEST(layout_matches_python_library) {
    float a[2] = {1, 2};
    int64_t b[1] = {-5};
    int64_t s2[1] = {2}, s1[1] = {1};
    st_entry e[2] = {st_entry_of("b", DT_I64, 1, s1, b), st_entry_of("a", DT_F32, 1, s2, a)};
    st_meta meta = {"format", "pt"};
    char err[LCM_ERRLEN], *bytes;
    size_t len;
    char *path = tmp_path("layout.safetensors");
    CHECK(st_write(path, e, 2, &meta, 1, err) == 0);
    CHECK(read_file(path, &bytes, &len, err) == 0);
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
    uint64_t hs = 0;
    for (int i = 7; i >= 0; i--) hs = (hs << 8) | (uint8_t)bytes[i];
    CHECK(hs % 8 == 0 && hs >= strlen(want) && hs < strlen(want) + 8);
    CHECK(!memcmp(bytes + 8, want, strlen(want)));
    for (size_t i = strlen(want); i < hs; i++) CHECK(bytes[8 + i] == ' ');
    CHECK(len == 8 + hs + 16);
    CHECK(!memcmp(bytes + 8 + hs, a, 8) && !memcmp(bytes + 8 + hs + 8, b, 8));
    free(bytes);
    free(path);
}

TEST(scalars_empty_and_no_tensors) {
    float one = 3.5f;
    int64_t zero[2] = {0, 5};
    st_entry e[2] = {st_entry_of("scalar", DT_F32, 0, NULL, &one), st_entry_of("empty", DT_F16, 2, zero, NULL)};
    char err[LCM_ERRLEN];
    char *path = tmp_path("scalar.safetensors");
    CHECKF(st_write(path, e, 2, NULL, 0, err) == 0, "%s", err);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    CHECK(st_find(f, "scalar")->ndim == 0 && *(const float *)st_find(f, "scalar")->data == 3.5f);
    CHECK(st_find(f, "empty")->nbytes == 0 && st_find(f, "empty")->shape[1] == 5);
    st_close(f);
    CHECK(st_write(path, NULL, 0, NULL, 0, err) == 0);
    CHECK((f = st_open(path, err)) && st_count(f) == 0);
    st_close(f);
    free(path);
}

TEST(write_converts_and_copy_converts) {
    float src[5] = {1.0f, -2.5f, 1e-3f, 65504.0f, 3.14159f};
    int64_t shape[1] = {5};
    st_entry e[2] = {st_entry_of("h", DT_F16, 1, shape, src), st_entry_of("b", DT_BF16, 1, shape, src)};
    e[0].data_dtype = e[1].data_dtype = DT_F32;
    char err[LCM_ERRLEN];
    char *path = tmp_path("conv.safetensors");
    CHECK(st_write(path, e, 2, NULL, 0, err) == 0);
    st_file *f = st_open(path, err);
    CHECK(f);
    const st_tensor *h = st_find(f, "h"), *b = st_find(f, "b");
    CHECK(h->dtype == DT_F16 && b->dtype == DT_BF16);
    for (int i = 0; i < 5; i++) {
        CHECK(((const uint16_t *)h->data)[i] == f32_to_f16(src[i]));
        CHECK(((const uint16_t *)b->data)[i] == f32_to_bf16(src[i]));
    }
    float back[5];
    tensor dst = tensor_view(NULL, DT_F32, 1, shape, back);
    CHECK(st_tensor_copy(h, &dst, err) == 0);
    for (int i = 0; i < 5; i++) CHECK(back[i] == f16_to_f32(f32_to_f16(src[i])));
    tensor view;
    CHECK(st_tensor_view(b, &view) == 0 && view.dtype == DT_BF16 && view.data == b->data);
    int64_t wrong[1] = {4};
    tensor small = tensor_view(NULL, DT_F32, 1, wrong, back);
    CHECK(st_tensor_copy(h, &small, err) == -1 && strstr(err, "\"h\""));
    st_close(f);
    free(path);
}

TEST(unaligned_data_is_copied) {
    /* A header whose size is not a multiple of 4: the f32 data is misaligned in the map. */
    char header[128];
    snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    size_t hl = strlen(header);
    if (hl % 4 == 0) strcat(header, " "), hl++;
    char *path = craft("unaligned.safetensors", header, hl, 0);
    FILE *fp = fopen(path, "ab");
    float v[2] = {1.25f, -7.0f};
    CHECK(fwrite(v, 4, 2, fp) == 2);
    fclose(fp);
    char err[LCM_ERRLEN];
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    const st_tensor *x = st_find(f, "x");
    tensor view;
    CHECK(st_tensor_view(x, &view) == -1);
    double d[2];
    st_load_f64(x->data, x->dtype, 0, 2, d);
    CHECK(d[0] == 1.25 && d[1] == -7.0);
    float out[2];
    int64_t shape[1] = {2};
    tensor dst = tensor_view(NULL, DT_F32, 1, shape, out);
    CHECK(st_tensor_copy(x, &dst, err) == 0 && out[0] == 1.25f && out[1] == -7.0f);
    st_close(f);
    free(path);
}

TEST(bad_size_field) {
    char err[LCM_ERRLEN];
    char *p = tmp_path("short.safetensors");
    write_bytes(p, "\x10\0\0", 3);
    CHECK(!st_open(p, err) && strstr(err, p) && strstr(err, "too short"));
    free(p);
    p = craft("huge.safetensors", "{}", ST_MAX_HEADER + 1, 0);
    CHECK(!st_open(p, err) && strstr(err, "byte 0") && strstr(err, "exceeds"));
    free(p);
    p = craft("past.safetensors", "{}", 1000, 0);
    CHECK(!st_open(p, err) && strstr(err, "byte 0") && strstr(err, "past the end"));
    free(p);
    p = tmp_path("missing.safetensors");
    CHECK(!st_open(p, err) && strstr(err, p));
    free(p);
}

TEST(bad_json) {
    expect_bad("{\"a\": {\"dtype\": \"F32\",, }}", 0, "not valid JSON", "byte ");
    expect_bad("[{\"a\":1}]", 0, "does not start with '{'", NULL);
    expect_bad("{}  x", 0, "junk", "byte 12");
    expect_bad("{\"a\":1}", 0, "\"a\"", "not an object");
    expect_bad("{\"__metadata__\":[1]}", 0, "__metadata__", "not an object");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "\"k\"");
}

TEST(nul_in_header) {
    char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
    size_t hl = strlen(hdr);
    hdr[3] = 0;
    char *path = tmp_path("nul.safetensors");
    uint8_t buf[256] = {0};
    buf[0] = (uint8_t)hl;
    memcpy(buf + 8, hdr, hl);
    write_bytes(path, buf, 8 + hl + 4);
    char err[LCM_ERRLEN];
    CHECK(!st_open(path, err) && strstr(err, "NUL") && strstr(err, "byte 11"));
    free(path);
}

TEST(bad_entries) {
    expect_bad("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"w\"", "missing \"dtype\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "\"w\"", "missing \"shape\"");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "\"w\"", "missing \"data_offsets\"");
    expect_bad("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "\"w\"", "unsupported dtype");
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"w\"", "unsupported dtype");
    expect_bad("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"w\"", "dtype");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "\"w\"", "shape");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "\"w\"", "shape[0]");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4, "\"w\"", "shape[1]");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "\"w\"", "shape[0]");
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "\"w\"", "9 dimensions");
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}", 1, "\"w\"", "overflows");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "\"w\"", "data_offsets");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "\"w\"", "data_offsets");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "\"w\"", "outside");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 4, "\"w\"", "outside");
}

TEST(bad_sizes_and_layout) {
    /* The header is 55 bytes here: data starts at byte 63. */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}} ", 4, "\"w\" at byte 63", "need 2 x 4");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "\"b\"", "overlaps tensor \"a\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, "4 unused bytes", "before tensor \"b\"");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "2 bytes after the last tensor", NULL);
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "\"a\"", "twice");
}

/* Every truncation and many byte flips of a valid file: errors, never crashes. */
TEST(truncations_and_flips_never_crash) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    int32_t iv[3] = {7, 8, 9};
    int64_t s3[1] = {3};
    st_entry e[2] = {st_entry_of("x", DT_F32, 2, shape, v), st_entry_of("y", DT_I32, 1, s3, iv)};
    char err[LCM_ERRLEN], *bytes;
    size_t len;
    char *path = tmp_path("good.safetensors"), *cut = tmp_path("cut.safetensors");
    CHECK(st_write(path, e, 2, NULL, 0, err) == 0);
    CHECK(read_file(path, &bytes, &len, err) == 0);
    for (size_t n = 0; n < len; n++) {
        write_bytes(cut, bytes, n);
        err[0] = 0;
        st_file *f = st_open(cut, err);
        CHECKF(!f, "truncated to %zu bytes and accepted", n);
        CHECK(strstr(err, cut));
    }
    srand(1);
    int accepted = 0;
    for (int k = 0; k < 2000; k++) {
        char *mut = xmalloc(len);
        memcpy(mut, bytes, len);
        size_t at = (size_t)rand() % len;
        mut[at] = (char)(rand() & 0xff);
        write_bytes(cut, mut, len);
        st_file *f = st_open(cut, err);
        if (f) { /* then it must be internally consistent */
            accepted++;
            for (int i = 0; i < st_count(f); i++) CHECK(st_at(f, i)->offset + st_at(f, i)->nbytes <= len);
            st_close(f);
        }
        free(mut);
    }
    CHECK(accepted > 0); /* flips in the data area are harmless */
    free(bytes);
    free(path);
    free(cut);
}

TEST(writer_refuses_bad_input) {
    float v = 1;
    st_entry e[2] = {st_entry_of("a", DT_F32, 0, NULL, &v), st_entry_of("a", DT_F32, 0, NULL, &v)};
    char err[LCM_ERRLEN];
    char *path = tmp_path("dup.safetensors");
    CHECK(st_write(path, e, 2, NULL, 0, err) == -1 && strstr(err, "twice") && !path_exists(path));
    e[1].name = "__metadata__";
    CHECK(st_write(path, e, 2, NULL, 0, err) == -1 && strstr(err, "__metadata__"));
    e[1].name = "b";
    e[1].ndim = 9;
    CHECK(st_write(path, e, 2, NULL, 0, err) == -1 && strstr(err, "\"b\""));
    CHECK(st_write("/nonexistent-dir/x.safetensors", e, 1, NULL, 0, err) == -1 && strstr(err, "/nonexistent-dir/"));
    free(path);
}

int main(void) {
    if (!mkdtemp(dir)) return 2;
    RUN(round_trip_every_dtype);
    RUN(layout_matches_python_library);
    RUN(scalars_empty_and_no_tensors);
    RUN(write_converts_and_copy_converts);
    RUN(unaligned_data_is_copied);
    RUN(bad_size_field);
    RUN(bad_json);
    RUN(nul_in_header);
    RUN(bad_entries);
    RUN(bad_sizes_and_layout);
    RUN(truncations_and_flips_never_crash);
    RUN(writer_refuses_bad_input);
    rm_rf(dir);
    TEST_EXIT();
}
