/* fuzz_frame.c - libFuzzer harness for the frame reader and writer.
 *
 * Input: one control byte, then a byte stream. The control byte picks the
 * record limit (64 bytes .. 64 KiB) and the chunk size in which the stream is
 * fed to the streaming reader. For every input:
 *   1. frame_parse walks the stream record by record; every parsed value is
 *      read in full (strings, binaries, tensors through frame_tensor_view and
 *      frame_tensor_copy);
 *   2. every record is written again with the frame_out writer, once passed
 *      through raw (fo_pass) and once rebuilt value by value (fo_str, fo_int,
 *      fo_tensor...), and read back: both must reproduce the same entries;
 *   3. the streaming frame_reader reads the same stream from a socket that
 *      delivers it in chunks, so that its buffering and compaction run, and
 *      must see the same records and the same outcome as step 1.
 * tests/unit/test_fuzz_regress.c includes this file and replays the inputs in
 * tests/fuzz/regress/fuzz_frame/ through the same function, with FUZZ_CHECK
 * turned into a test failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "tensor.h"
#include "util.h"

#include "fuzz_check.h"

static const size_t chunk_sizes[16] = {1, 2, 3, 5, 7, 13, 31, 64, 100, 255, 512, 1000, 1500, 2048, 3000, 4096};

/* A NUL-terminated copy of an entry's key; NULL if the key holds a NUL. */
static char *key_cstr(const frame_entry *e) {
    if (memchr(e->key, 0, e->key_len)) return NULL;
    char *k = xmalloc(e->key_len + 1);
    memcpy(k, e->key, e->key_len);
    k[e->key_len] = 0;
    return k;
}

static void touch_tensor(const frame_value *v) {
    const frame_tensor *t = &v->v.tensor;
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= TENSOR_MAXDIM);
    int64_t n = shape_numel(t->ndim, t->shape);
    FUZZ_CHECK(n >= 0 && (size_t)n * dtype_size(t->dtype) == t->nbytes);
    fuzz_touch(t->data, t->nbytes);

    tensor view;
    if (frame_tensor_view(v, t->dtype, &view) == 0) {
        FUZZ_CHECK(view.data == (void *)t->data && tensor_nbytes(&view) == t->nbytes);
    }
    char err[LCM_ERRLEN];
    /* Same dtype: the copy holds exactly the stored bytes. */
    tensor *same = tensor_new(NULL, t->dtype, t->ndim, t->shape);
    FUZZ_CHECK(frame_tensor_copy(v, same, err) == 0);
    FUZZ_CHECK(memcmp(same->data, t->data, t->nbytes) == 0);
    tensor_free(same);
    /* Converted to f32, flattened: the element count is what must match. */
    int64_t flat = n;
    tensor *f = tensor_new(NULL, DT_F32, 1, &flat);
    FUZZ_CHECK(frame_tensor_copy(v, f, err) == 0);
    fuzz_touch(f->data, tensor_nbytes(f));
    tensor_free(f);
    /* A wrong element count is refused. */
    int64_t wrong = n + 1;
    tensor *w = tensor_new(NULL, DT_F32, 1, &wrong);
    FUZZ_CHECK(frame_tensor_copy(v, w, err) == -1 && err[0]);
    tensor_free(w);
}

/* Reads every value of a parsed record. */
static void touch_frame(const frame *f, const uint8_t *rec, size_t size) {
    for (int i = 0; i < f->n; i++) {
        const frame_entry *e = &f->entries[i];
        const frame_value *v = &e->value;
        fuzz_touch(e->key, e->key_len);
        FUZZ_CHECK(v->raw >= rec && v->raw_len >= 1 && v->raw + v->raw_len <= rec + size);
        fuzz_touch(v->raw, v->raw_len);
        switch (v->kind) {
        case FV_STR: case FV_BIN: case FV_EXT: fuzz_touch(v->v.bytes.ptr, v->v.bytes.len); break;
        case FV_TENSOR: touch_tensor(v); break;
        default: break;
        }
        char *k = key_cstr(e);
        if (k) { /* keys are unique, so lookup finds this very entry */
            FUZZ_CHECK(frame_get(f, k) == v);
            size_t len = 0;
            const char *b = frame_get_bytes(f, k, &len);
            FUZZ_CHECK((b != NULL) == (v->kind == FV_STR || v->kind == FV_BIN));
            free(k);
        }
    }
}

/* Adds e to o as its kind's own builder call would (typed), or raw. */
static void rebuild_entry(frame_out *o, const frame_entry *e, char **keys, int i, int typed) {
    const frame_value *v = &e->value;
    keys[i] = key_cstr(e);
    if (!typed || !keys[i]) {
        fo_raw(o, e->key, e->key_len, v->raw, v->raw_len);
        return;
    }
    const char *k = keys[i];
    switch (v->kind) {
    case FV_STR: fo_str(o, k, v->v.bytes.ptr, v->v.bytes.len); break;
    case FV_BIN: fo_bin(o, k, v->v.bytes.ptr, v->v.bytes.len); break;
    case FV_INT: fo_int(o, k, v->v.i); break;
    case FV_FLOAT: fo_float(o, k, v->v.f); break;
    case FV_TENSOR: {
        const frame_tensor *t = &v->v.tensor;
        fo_tensor(o, k, t->dtype, t->ndim, t->shape, t->data);
        break;
    }
    default: fo_raw(o, e->key, e->key_len, v->raw, v->raw_len); break;
    }
}

static void check_same_value(const frame_value *a, const frame_value *b, int typed) {
    if (!typed) { /* passed through: the very same bytes */
        FUZZ_CHECK(a->raw_len == b->raw_len && !memcmp(a->raw, b->raw, a->raw_len));
    }
    FUZZ_CHECK(a->kind == b->kind);
    switch (a->kind) {
    case FV_STR: case FV_BIN: case FV_EXT:
        FUZZ_CHECK(a->v.bytes.len == b->v.bytes.len && !memcmp(a->v.bytes.ptr, b->v.bytes.ptr, a->v.bytes.len));
        break;
    case FV_INT: FUZZ_CHECK(a->v.i == b->v.i); break;
    case FV_UINT: FUZZ_CHECK(a->v.u == b->v.u); break;
    case FV_BOOL: FUZZ_CHECK(a->v.boolean == b->v.boolean); break;
    case FV_FLOAT: FUZZ_CHECK(!memcmp(&a->v.f, &b->v.f, sizeof(double))); break;
    case FV_ARRAY: case FV_MAP: FUZZ_CHECK(a->v.count == b->v.count); break;
    case FV_TENSOR: {
        const frame_tensor *x = &a->v.tensor, *y = &b->v.tensor;
        FUZZ_CHECK(x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes);
        FUZZ_CHECK(!memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim));
        FUZZ_CHECK(!memcmp(x->data, y->data, x->nbytes));
        break;
    }
    default: break;
    }
}

/* Writes f again with the frame_out writer and reads it back. */
static void round_trip(const frame *f, int typed) {
    int fd = memfd_create("fuzz-frame", 0);
    FUZZ_CHECK(fd >= 0);
    frame_writer *w = frame_writer_fdopen(fd, "memfd");
    frame_out *o = frame_out_new();
    char **keys = xcalloc((size_t)f->n + 1, sizeof *keys);
    for (int i = 0; i < f->n; i++) rebuild_entry(o, &f->entries[i], keys, i, typed);
    char err[LCM_ERRLEN];
    FUZZ_CHECK(frame_write(w, o) == 0);
    FUZZ_CHECK(frame_writer_close(w, err) == 0);
    frame_out_free(o);
    for (int i = 0; i < f->n; i++) free(keys[i]);
    free(keys);

    FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
    frame_reader *r = frame_reader_fdopen(fd, "memfd");
    frame g;
    frame_init(&g);
    int rc = frame_read(r, &g);
    if (rc != 1) fprintf(stderr, "round trip: %s\n", frame_reader_error(r));
    FUZZ_CHECK(rc == 1);
    FUZZ_CHECK(g.n == f->n);
    for (int i = 0; i < f->n; i++) {
        const frame_entry *a = &f->entries[i], *b = &g.entries[i];
        FUZZ_CHECK(a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len));
        check_same_value(&a->value, &b->value, typed);
    }
    FUZZ_CHECK(frame_read(r, &g) == 0);
    frame_free(&g);
    frame_reader_close(r);
    close(fd);
}

/* ---- the streaming reader, fed in chunks through a socket ---- */

typedef struct feeder {
    int fd;
    const uint8_t *data;
    size_t len, chunk;
} feeder;

/* One datagram per chunk: each read() of the reader returns at most one. */
static void *feed(void *arg) {
    feeder *fe = arg;
    for (size_t off = 0; off < fe->len;) {
        size_t n = fe->len - off < fe->chunk ? fe->len - off : fe->chunk;
        if (send(fe->fd, fe->data + off, n, MSG_NOSIGNAL) != (ssize_t)n) break; /* reader gone */
        off += n;
    }
    shutdown(fe->fd, SHUT_WR);
    return NULL;
}

typedef struct outcome {
    size_t records;
    int status;       /* 0 clean end, -1 error or truncated */
    size_t *sizes;    /* each record's size */
} outcome;

static void stream_check(const uint8_t *data, size_t len, size_t max, size_t chunk, const outcome *want) {
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    feeder fe = {sv[1], data, len, chunk};
    pthread_t th;
    FUZZ_CHECK(pthread_create(&th, NULL, feed, &fe) == 0);
    frame_reader *r = frame_reader_fdopen(sv[0], "fuzz");
    frame_reader_set_max_record(r, max);
    frame f;
    frame_init(&f);
    size_t records = 0, offset = 0;
    int rc;
    while ((rc = frame_read(r, &f)) == 1) {
        FUZZ_CHECK(records < want->records);
        FUZZ_CHECK(f.record == records && f.offset == offset && f.size == want->sizes[records]);
        offset += f.size;
        records++;
    }
    FUZZ_CHECK(records == want->records);
    FUZZ_CHECK(rc == want->status);
    if (rc < 0) {
        char head[64];
        snprintf(head, sizeof head, "fuzz: record %zu at byte ", records);
        FUZZ_CHECK(!strncmp(frame_reader_error(r), head, strlen(head)));
    }
    close(sv[0]); /* unblocks the feeder if the reader stopped early */
    pthread_join(th, NULL);
    close(sv[1]);
    frame_free(&f);
    frame_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t in_len) {
    if (in_len < 1) return 0;
    size_t max = (size_t)64 << (in[0] & 0x0f) % 11;
    /* At most ~256 pieces, so that a long input costs few system calls. */
    size_t chunk = chunk_sizes[in[0] >> 4];
    if (chunk < in_len / 256) chunk = in_len / 256;
    const uint8_t *data = in + 1;
    size_t len = in_len - 1;

    outcome got = {0, 0, xcalloc(len + 1, sizeof(size_t))};
    frame f;
    frame_init(&f);
    for (size_t off = 0; off < len;) {
        size_t need = 0, at = 0;
        char err[LCM_ERRLEN] = "";
        long long n = frame_parse(&f, data + off, len - off, max, &need, err, &at);
        if (n < 0) {
            FUZZ_CHECK(err[0] && at <= len - off);
            got.status = -1;
            break;
        }
        if (n == 0) { /* truncated: needs more than there is, never more than the limit */
            FUZZ_CHECK(need > len - off && need <= max);
            got.status = -1;
            break;
        }
        FUZZ_CHECK((size_t)n <= len - off && (size_t)n <= max && f.size == (size_t)n);
        touch_frame(&f, data + off, (size_t)n);
        round_trip(&f, 0);
        round_trip(&f, 1);
        got.sizes[got.records++] = (size_t)n;
        off += (size_t)n;
    }
    frame_free(&f);
    stream_check(data, len, max, chunk, &got);
    free(got.sizes);
    return 0;
}
