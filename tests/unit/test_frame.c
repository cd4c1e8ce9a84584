/* Frame reader and writer: round trips, pass-through, and hostile input. */
#include <msgpack.h>
#include <unistd.h>

#include "frame.h"
#include "test.h"
#include "util.h"

/* Writes bytes to a temporary file and opens a reader on it. */
static frame_reader *reader_on(const void *bytes, size_t n) {
    char path[] = "/tmp/lcm-test-frame-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, bytes, n) == (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    unlink(path);
    frame_reader *r = frame_reader_fdopen(fd, "test.mpk");
    return r;
}

/* Packs records with our writer into memory (through a temporary file). */
static uint8_t *write_records(int n, size_t *len) {
    char path[] = "/tmp/lcm-test-frame-XXXXXX";
    int fd = mkstemp(path);
    frame_writer *w = frame_writer_fdopen(fd, path);
    frame_out *o = frame_out_new();
    float img[2 * 3] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%06d", i);
        frame_out_reset(o);
        fo_str(o, "__key__", key, strlen(key));
        fo_bin(o, "jpg", "\xff\xd8\xff", 3);
        int64_t shape[2] = {2, 3};
        img[0] = (float)i;
        fo_tensor(o, "image", DT_F32, 2, shape, img);
        fo_int(o, "n", -i);
        fo_float(o, "x", 0.5 * i);
        CHECK(frame_write(w, o) == 0);
    }
    char err[LCM_ERRLEN];
    CHECK(frame_writer_close(w, err) == 0);
    frame_out_free(o);
    char *data;
    CHECK(read_file(path, &data, len, err) == 0);
    unlink(path);
    close(fd);
    return (uint8_t *)data;
}

TEST(round_trip) {
    size_t len;
    uint8_t *bytes = write_records(100, &len);
    frame_reader *r = reader_on(bytes, len);
    frame f;
    frame_init(&f);
    for (int i = 0; i < 100; i++) {
        CHECK(frame_read(r, &f) == 1);
        CHECK(f.record == (uint64_t)i);
        size_t kl;
        const char *k = frame_get_bytes(&f, "__key__", &kl);
        char want[16];
        snprintf(want, sizeof want, "%06d", i);
        CHECK(k && kl == 6 && !memcmp(k, want, 6));
        const frame_value *t = frame_get(&f, "image");
        CHECK(t && t->kind == FV_TENSOR && t->v.tensor.dtype == DT_F32 && t->v.tensor.ndim == 2);
        CHECK(t->v.tensor.shape[0] == 2 && t->v.tensor.shape[1] == 3);
        float vals[6];
        tensor dst = tensor_view(NULL, DT_F32, 2, (int64_t[]){2, 3}, vals);
        char err[LCM_ERRLEN];
        CHECK(frame_tensor_copy(t, &dst, err) == 0);
        CHECK(vals[0] == (float)i && vals[5] == 6.0f);
        CHECK(frame_get(&f, "n")->v.i == -i);
        CHECK(frame_get(&f, "x")->v.f == 0.5 * i);
    }
    CHECK(frame_read(r, &f) == 0);
    frame_free(&f);
    frame_reader_close(r);
    free(bytes);
}

/* Records packed by msgpack-c directly (another writer than ours), with
 * every integer width and a nested generic value. */
TEST(reads_msgpack_c) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "a", 1), msgpack_pack_uint64(&pk, 18446744073709551615ull);
    msgpack_pack_str_with_body(&pk, "b", 1), msgpack_pack_int16(&pk, -300);
    msgpack_pack_str_with_body(&pk, "c", 1), msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_str_with_body(&pk, "d", 1), msgpack_pack_array(&pk, 2), msgpack_pack_nil(&pk), msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "e", 1), msgpack_pack_map(&pk, 1), msgpack_pack_str_with_body(&pk, "k", 1), msgpack_pack_int8(&pk, 1);
    frame_reader *r = reader_on(sb.data, sb.size);
    frame f;
    frame_init(&f);
    CHECK(frame_read(r, &f) == 1);
    CHECK(frame_get(&f, "a")->kind == FV_UINT && frame_get(&f, "a")->v.u == 18446744073709551615ull);
    CHECK(frame_get(&f, "b")->v.i == -300);
    CHECK(frame_get(&f, "c")->v.f == 1.5);
    CHECK(frame_get(&f, "d")->kind == FV_ARRAY && frame_get(&f, "d")->v.count == 2);
    CHECK(frame_get(&f, "e")->kind == FV_MAP);
    CHECK(frame_read(r, &f) == 0);
    frame_free(&f);
    frame_reader_close(r);
    msgpack_sbuffer_destroy(&sb);
}

/* Pass-through keeps unconsumed values byte for byte. */
TEST(pass_through) {
    size_t len;
    uint8_t *bytes = write_records(3, &len);
    frame_reader *r = reader_on(bytes, len);
    char path[] = "/tmp/lcm-test-frame-XXXXXX";
    int fd = mkstemp(path);
    frame_writer *w = frame_writer_fdopen(fd, path);
    frame_out *o = frame_out_new();
    frame f;
    frame_init(&f);
    while (frame_read(r, &f) == 1) {
        frame_out_reset(o);
        fo_pass(o, &f, (const char *const[]){"jpg", NULL});
        fo_str(o, "txt", "hello", 5);
        CHECK(frame_write(w, o) == 0);
    }
    char err[LCM_ERRLEN];
    CHECK(frame_writer_close(w, err) == 0);
    frame_reader *r2 = frame_reader_open(path, err);
    CHECK(r2);
    int n = 0;
    while (frame_read(r2, &f) == 1) {
        CHECK(frame_get(&f, "jpg") == NULL);
        CHECK(frame_get(&f, "image")->kind == FV_TENSOR);
        size_t tl;
        CHECK(frame_get_bytes(&f, "txt", &tl) && tl == 5);
        n++;
    }
    CHECK(n == 3);
    frame_free(&f);
    frame_reader_close(r);
    frame_reader_close(r2);
    frame_out_free(o);
    unlink(path);
    close(fd);
    free(bytes);
}

/* Every truncation of a valid stream is an error naming a record and an
 * offset, except the cuts at record boundaries, which are clean ends. */
TEST(truncation_everywhere) {
    size_t len;
    uint8_t *bytes = write_records(3, &len);
    frame f;
    frame_init(&f);
    size_t rec = len / 3;
    for (size_t cut = 0; cut < len; cut++) {
        frame_reader *r = reader_on(bytes, cut);
        int rc, n = 0;
        while ((rc = frame_read(r, &f)) == 1) n++;
        if (cut % rec == 0) {
            CHECKF(rc == 0 && n == (int)(cut / rec), "cut %zu", cut);
        } else {
            CHECKF(rc == -1, "cut %zu", cut);
            CHECKF(strstr(frame_reader_error(r), "truncated") && strstr(frame_reader_error(r), "record"), "%s", frame_reader_error(r));
        }
        frame_reader_close(r);
    }
    frame_free(&f);
    free(bytes);
}

static const char *parse_error(const uint8_t *bytes, size_t n, char *err) {
    frame_reader *r = reader_on(bytes, n);
    frame f;
    frame_init(&f);
    int rc;
    while ((rc = frame_read(r, &f)) == 1) {}
    snprintf(err, LCM_ERRLEN, "%s", rc < 0 ? frame_reader_error(r) : "");
    frame_free(&f);
    frame_reader_close(r);
    return err;
}

TEST(hostile_input) {
    char err[LCM_ERRLEN];
    /* a map announcing 2^32-1 entries: refused or truncated, never allocated */
    const uint8_t big_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a'};
    CHECK(strstr(parse_error(big_map, sizeof big_map, err), "record 0"));
    /* an array value announcing 2^32-1 elements: over the record limit */
    const uint8_t big_arr[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    CHECK(strstr(parse_error(big_arr, sizeof big_arr, err), "limit"));
    /* 65535 elements promised, 1 present: truncated */
    const uint8_t short_arr[] = {0x81, 0xa1, 'a', 0xdc, 0xff, 0xff, 0xc0};
    CHECK(strstr(parse_error(short_arr, sizeof short_arr, err), "truncated"));
    /* the reserved type byte */
    const uint8_t c1[] = {0x81, 0xa1, 'a', 0xc1};
    CHECK(strstr(parse_error(c1, sizeof c1, err), "byte 3"));
    /* a record that is not a map */
    const uint8_t arr[] = {0x91, 0x01};
    CHECK(strstr(parse_error(arr, sizeof arr, err), "not a msgpack map"));
    /* a non-string key */
    const uint8_t intkey[] = {0x81, 0x01, 0x02};
    CHECK(strstr(parse_error(intkey, sizeof intkey, err), "key is not a string"));
    /* deep nesting */
    uint8_t deep[300];
    deep[0] = 0x81, deep[1] = 0xa1, deep[2] = 'a';
    for (int i = 3; i < 299; i++) deep[i] = 0x91;
    deep[299] = 0xc0;
    CHECK(strstr(parse_error(deep, sizeof deep, err), "nesting"));
    /* a tensor whose data does not match its shape, in the second record */
    const uint8_t good[] = {0x80};
    uint8_t bad[64] = {0x80, 0x81, 0xa1, 't', 0x83, 0xa5, 'd', 't', 'y', 'p', 'e', 0xa3, 'f', '3', '2',
                       0xa5, 's', 'h', 'a', 'p', 'e', 0x91, 0x02, 0xa4, 'd', 'a', 't', 'a', 0xc4, 0x04, 0, 0, 0, 0};
    (void)good;
    parse_error(bad, 34, err);
    CHECKF(strstr(err, "record 1 at byte") && strstr(err, "key 't'") && strstr(err, "need 8") && strstr(err, "byte 4:"), "%s", err);
    /* an unknown dtype */
    bad[12] = 'x';
    parse_error(bad, 34, err);
    CHECKF(strstr(err, "unknown dtype"), "%s", err);
}

TEST(record_limit) {
    size_t len;
    uint8_t *bytes = write_records(2, &len);
    frame_reader *r = reader_on(bytes, len);
    frame_reader_set_max_record(r, 20);
    frame f;
    frame_init(&f);
    CHECK(frame_read(r, &f) == -1);
    CHECKF(strstr(frame_reader_error(r), "limit"), "%s", frame_reader_error(r));
    frame_free(&f);
    frame_reader_close(r);
    free(bytes);
}

/* Concatenated streams are streams: `cat a.mpk b.mpk`. */
TEST(concatenation) {
    size_t len;
    uint8_t *bytes = write_records(5, &len);
    uint8_t *two = xmalloc(2 * len);
    memcpy(two, bytes, len), memcpy(two + len, bytes, len);
    frame_reader *r = reader_on(two, 2 * len);
    frame f;
    frame_init(&f);
    int n = 0;
    while (frame_read(r, &f) == 1) {
        CHECK(f.offset == (uint64_t)n * (len / 5));
        n++;
    }
    CHECK(n == 10);
    frame_free(&f);
    frame_reader_close(r);
    free(bytes);
    free(two);
}

int main(void) {
    RUN(round_trip);
    RUN(reads_msgpack_c);
    RUN(pass_through);
    RUN(truncation_everywhere);
    RUN(hostile_input);
    RUN(record_limit);
    RUN(concatenation);
    TEST_EXIT();
}
