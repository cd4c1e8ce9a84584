/* frame_write.c - building records and writing them with msgpack-c. */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

typedef enum { OUT_STR, OUT_BIN, OUT_INT, OUT_FLOAT, OUT_TENSOR, OUT_RAW } out_kind;

typedef struct out_entry {
    const char *key;
    size_t key_len;
    out_kind kind;
    const void *p;
    size_t len;
    int64_t i;
    double f;
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
} out_entry;

struct frame_out {
    out_entry *e;
    int n, cap;
};

frame_out *frame_out_new(void) { return xcalloc(1, sizeof(frame_out)); }
void frame_out_reset(frame_out *o) { o->n = 0; }

void frame_out_free(frame_out *o) {
    if (!o) return;
    free(o->e);
    free(o);
}

static int find(const frame_out *o, const char *key, size_t len) {
    for (int i = 0; i < o->n; i++)
        if (o->e[i].key_len == len && !memcmp(o->e[i].key, key, len)) return i;
    return -1;
}

/* The entry for key: the existing one (replaced in place, keeping its
 * position) or a new one at the end. */
static out_entry *slot(frame_out *o, const char *key, size_t len) {
    int i = find(o, key, len);
    if (i < 0) {
        if (o->n == o->cap) o->e = xrealloc(o->e, sizeof(out_entry) * (size_t)(o->cap = o->cap ? 2 * o->cap : 16));
        i = o->n++;
    }
    out_entry *e = &o->e[i];
    memset(e, 0, sizeof *e);
    e->key = key;
    e->key_len = len;
    return e;
}

void fo_remove(frame_out *o, const char *key) {
    int i = find(o, key, strlen(key));
    if (i < 0) return;
    memmove(&o->e[i], &o->e[i + 1], sizeof(out_entry) * (size_t)(o->n - i - 1));
    o->n--;
}

void fo_str(frame_out *o, const char *key, const char *s, size_t len) {
    out_entry *e = slot(o, key, strlen(key));
    e->kind = OUT_STR, e->p = s, e->len = len;
}

void fo_bin(frame_out *o, const char *key, const void *p, size_t len) {
    out_entry *e = slot(o, key, strlen(key));
    e->kind = OUT_BIN, e->p = p, e->len = len;
}

void fo_int(frame_out *o, const char *key, int64_t v) {
    out_entry *e = slot(o, key, strlen(key));
    e->kind = OUT_INT, e->i = v;
}

void fo_float(frame_out *o, const char *key, double v) {
    out_entry *e = slot(o, key, strlen(key));
    e->kind = OUT_FLOAT, e->f = v;
}

void fo_tensor(frame_out *o, const char *key, dtype_id t, int ndim, const int64_t *shape, const void *data) {
    out_entry *e = slot(o, key, strlen(key));
    e->kind = OUT_TENSOR, e->dtype = t, e->ndim = ndim, e->p = data;
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    e->len = (size_t)shape_numel(ndim, shape) * dtype_size(t);
}

void fo_tensor_t(frame_out *o, const char *key, const tensor *t) { fo_tensor(o, key, t->dtype, t->ndim, t->shape, t->data); }

void fo_raw(frame_out *o, const char *key, size_t key_len, const uint8_t *raw, size_t raw_len) {
    out_entry *e = slot(o, key, key_len);
    e->kind = OUT_RAW, e->p = raw, e->len = raw_len;
}

void fo_pass(frame_out *o, const frame *in, const char *const *drop) {
    for (int i = 0; i < in->n; i++) {
        const frame_entry *fe = &in->entries[i];
        int dropped = 0;
        for (const char *const *d = drop; d && *d && !dropped; d++)
            dropped = strlen(*d) == fe->key_len && !memcmp(*d, fe->key, fe->key_len);
        if (!dropped) fo_raw(o, fe->key, fe->key_len, fe->value.raw, fe->value.raw_len);
    }
}

/* Bodies this large are written from the caller's memory, after what is
 * buffered, instead of being copied into the buffer first: a 512 x 512 f32
 * image is 3 MB, a photo's JPEG a few hundred KB. */
#define DIRECT_AT (64 << 10)

static int write_all(frame_writer *w, const void *p, size_t len);

/* Appends len bytes at p to the record: into the buffer, or, for a writer
 * and a large body, straight to its file after the buffer. */
static int put_body(msgpack_sbuffer *sb, frame_writer *w, const void *p, size_t len) {
    if (!w || len < DIRECT_AT) return msgpack_sbuffer_write(sb, p, len);
    return frame_writer_flush(w) ? -1 : write_all(w, p, len);
}

/* One entry into sb, large bodies through w when w is not NULL. */
static int pack_entry(msgpack_packer *pk, msgpack_sbuffer *sb, const out_entry *e, frame_writer *w) {
    msgpack_pack_str_with_body(pk, e->key, e->key_len);
    switch (e->kind) {
    case OUT_STR: msgpack_pack_str_with_body(pk, e->p, e->len); break;
    case OUT_BIN: msgpack_pack_bin(pk, e->len); return put_body(sb, w, e->p, e->len);
    case OUT_INT: msgpack_pack_int64(pk, e->i); break;
    case OUT_FLOAT: msgpack_pack_double(pk, e->f); break;
    case OUT_RAW: return put_body(sb, w, e->p, e->len);
    case OUT_TENSOR: {
        const char *dt = dtype_name(e->dtype);
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "dtype", 5);
        msgpack_pack_str_with_body(pk, dt, strlen(dt));
        msgpack_pack_str_with_body(pk, "shape", 5);
        msgpack_pack_array(pk, (size_t)e->ndim);
        for (int d = 0; d < e->ndim; d++) msgpack_pack_int64(pk, e->shape[d]);
        msgpack_pack_str_with_body(pk, "data", 4);
        msgpack_pack_bin(pk, e->len);
        return put_body(sb, w, e->p, e->len);
    }
    }
    return 0;
}

void frame_from_out(frame *dst, frame_out *o) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)o->n);
    for (int i = 0; i < o->n; i++) pack_entry(&pk, &sb, &o->e[i], NULL);
    frame tmp;
    frame_init(&tmp);
    char err[LCM_ERRLEN];
    size_t need, at;
    if (frame_parse(&tmp, (const uint8_t *)sb.data, sb.size, sb.size + 1, &need, err, &at) <= 0) die("frame_from_out: %s", err);
    frame_copy(dst, &tmp);
    frame_free(&tmp);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- writer ---- */

#define FLUSH_AT (1 << 20)

struct frame_writer {
    int fd, owns_fd, broken_pipe;
    char *name;
    atomic_file af;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[LCM_ERRLEN];
};

frame_writer *frame_writer_fdopen(int fd, const char *name) {
    frame_writer *w = xcalloc(1, sizeof *w);
    w->fd = fd;
    w->name = xstrdup(name);
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    return w;
}

frame_writer *frame_writer_open(const char *path, char *err) {
    if (!strcmp(path, "-")) return frame_writer_fdopen(STDOUT_FILENO, "<stdout>");
    atomic_file af;
    if (atomic_open(&af, path, err)) return NULL;
    frame_writer *w = frame_writer_fdopen(fileno(af.f), path);
    w->af = af;
    w->owns_fd = 1;
    return w;
}

const char *frame_writer_error(const frame_writer *w) { return w->err; }
int frame_writer_broken_pipe(const frame_writer *w) { return w->broken_pipe; }

static int write_all(frame_writer *w, const void *p, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(w->fd, (const char *)p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            w->broken_pipe = errno == EPIPE;
            return seterr(w->err, "%s: write error: %s", w->name, strerror(errno));
        }
        off += (size_t)n;
    }
    return 0;
}

int frame_writer_flush(frame_writer *w) {
    if (write_all(w, w->sb.data, w->sb.size)) return -1;
    msgpack_sbuffer_clear(&w->sb);
    return 0;
}

int frame_write(frame_writer *w, frame_out *o) {
    msgpack_pack_map(&w->pk, (size_t)o->n);
    for (int i = 0; i < o->n; i++)
        if (pack_entry(&w->pk, &w->sb, &o->e[i], w)) return -1;
    return w->sb.size >= FLUSH_AT ? frame_writer_flush(w) : 0;
}

int frame_writer_close(frame_writer *w, char *err) {
    if (!w) return 0;
    int rc = frame_writer_flush(w);
    if (w->owns_fd) {
        if (rc) atomic_abort(&w->af);
        else rc = atomic_commit(&w->af, w->err);
    }
    if (rc) seterr(err, "%s", w->err);
    msgpack_sbuffer_destroy(&w->sb);
    free(w->name);
    free(w);
    return rc;
}

void frame_emit(frame_writer *w, frame_out *o) {
    if (!frame_write(w, o)) return;
    if (w->broken_pipe) exit(EXIT_OK); /* the reader went away: not an error */
    die("%s", w->err);
}

void frame_writer_finish(frame_writer *w) {
    int broken = 0;
    char err[LCM_ERRLEN];
    if (frame_writer_flush(w)) broken = w->broken_pipe;
    if (frame_writer_close(w, err) && !broken) die("%s", err);
}
