/* frame_read.c - strict, bounded msgpack record parser and streaming reader.
 *
 * Our own parser rather than msgpack-c's unpacker: a record's nested arrays
 * and maps are only walked, never materialised, so a hostile 5-byte header
 * announcing 2^32 elements costs nothing, and every fault is located to the
 * byte. Counts are checked against the bytes that remain before anything is
 * trusted; a record larger than max_record is refused. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "util.h"

#define MAX_DEPTH 64

enum { P_OK = 0, P_MORE = 1, P_ERR = -1 };

typedef struct cursor {
    const uint8_t *buf;
    size_t len, pos;
    size_t max;  /* max_record */
    size_t need; /* with P_MORE: bytes the record needs at least */
    size_t err_at;
    char *err;
} cursor;

static int fail(cursor *c, size_t at, const char *fmt, const char *arg) {
    c->err_at = at;
    seterr(c->err, fmt, arg);
    return P_ERR;
}

/* Makes sure n more bytes are present from pos. */
static int want(cursor *c, size_t n) {
    if (n > c->max || c->pos > c->max - n) return fail(c, c->pos, "record larger than the limit (%s)", "see --max-record");
    if (c->pos + n > c->len) {
        c->need = c->pos + n;
        return P_MORE;
    }
    return P_OK;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Reads a big-endian integer of n bytes at pos and advances. */
static int take_uint(cursor *c, int n, uint64_t *v) {
    int rc = want(c, (size_t)n);
    if (rc) return rc;
    *v = be(c->buf + c->pos, n);
    c->pos += (size_t)n;
    return P_OK;
}

/* Header of a str/bin/ext/array/map: returns its kind and length/count;
 * scalars are decoded into out directly. */
static int parse_header(cursor *c, frame_value *out, uint64_t *len) {
    int rc = want(c, 1);
    if (rc) return rc;
    size_t at = c->pos;
    uint8_t b = c->buf[c->pos++];
    uint64_t u;
    *len = 0;
    if (b <= 0x7f) { out->kind = FV_INT; out->v.i = b; return P_OK; }
    if (b >= 0xe0) { out->kind = FV_INT; out->v.i = (int8_t)b; return P_OK; }
    if (b >= 0x80 && b <= 0x8f) { out->kind = FV_MAP; *len = b & 0x0f; return P_OK; }
    if (b >= 0x90 && b <= 0x9f) { out->kind = FV_ARRAY; *len = b & 0x0f; return P_OK; }
    if (b >= 0xa0 && b <= 0xbf) { out->kind = FV_STR; *len = b & 0x1f; return P_OK; }
    switch (b) {
    case 0xc0: out->kind = FV_NIL; return P_OK;
    case 0xc2: case 0xc3: out->kind = FV_BOOL; out->v.boolean = b & 1; return P_OK;
    case 0xc4: case 0xc5: case 0xc6: out->kind = FV_BIN; return take_uint(c, 1 << (b - 0xc4), len);
    case 0xc7: case 0xc8: case 0xc9:
        out->kind = FV_EXT;
        if ((rc = take_uint(c, 1 << (b - 0xc7), len))) return rc;
        *len += 1; /* the type byte */
        return P_OK;
    case 0xca:
        if ((rc = take_uint(c, 4, &u))) return rc;
        { uint32_t w = (uint32_t)u; float f; memcpy(&f, &w, 4); out->kind = FV_FLOAT; out->v.f = f; }
        return P_OK;
    case 0xcb:
        if ((rc = take_uint(c, 8, &u))) return rc;
        out->kind = FV_FLOAT;
        memcpy(&out->v.f, &u, 8);
        return P_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if ((rc = take_uint(c, 1 << (b - 0xcc), &u))) return rc;
        if (u > INT64_MAX) { out->kind = FV_UINT; out->v.u = u; }
        else { out->kind = FV_INT; out->v.i = (int64_t)u; }
        return P_OK;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << (b - 0xd0);
        if ((rc = take_uint(c, n, &u))) return rc;
        /* sign-extend from n bytes */
        int shift = 64 - 8 * n;
        out->kind = FV_INT;
        out->v.i = (int64_t)(u << shift) >> shift;
        return P_OK;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        out->kind = FV_EXT;
        *len = 1 + ((uint64_t)1 << (b - 0xd4));
        return P_OK;
    case 0xd9: case 0xda: case 0xdb: out->kind = FV_STR; return take_uint(c, 1 << (b - 0xd9), len);
    case 0xdc: case 0xdd: out->kind = FV_ARRAY; return take_uint(c, 2 << (b - 0xdc), len);
    case 0xde: case 0xdf: out->kind = FV_MAP; return take_uint(c, 2 << (b - 0xde), len);
    default: return fail(c, at, "invalid msgpack type byte (0x%s)", "c1");
    }
}

static int parse_any(cursor *c, frame_value *out, int depth);

/* Skips n values (array elements, or 2n for a map), which must each take at
 * least one byte: a count larger than the bytes left asks for more input
 * first, so that the loop below is bounded by the record's size. */
static int skip_values(cursor *c, uint64_t n, int depth) {
    if (n > c->max) return fail(c, c->pos, "element count larger than the record limit%s", "");
    int rc = want(c, (size_t)n);
    if (rc) return rc;
    frame_value tmp;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = parse_any(c, &tmp, depth + 1))) return rc;
    return P_OK;
}

static int parse_any(cursor *c, frame_value *out, int depth) {
    if (depth > MAX_DEPTH) return fail(c, c->pos, "nesting deeper than %s levels", "64");
    size_t start = c->pos;
    uint64_t len;
    int rc = parse_header(c, out, &len);
    if (rc) return rc;
    switch (out->kind) {
    case FV_STR: case FV_BIN: case FV_EXT:
        if ((rc = want(c, (size_t)len))) return rc;
        out->v.bytes.ptr = (const char *)c->buf + c->pos;
        out->v.bytes.len = (size_t)len;
        c->pos += (size_t)len;
        break;
    case FV_ARRAY:
        out->v.count = (uint32_t)len;
        if ((rc = skip_values(c, len, depth))) return rc;
        break;
    case FV_MAP:
        out->v.count = (uint32_t)len;
        if ((rc = skip_values(c, 2 * len, depth))) return rc;
        break;
    default: break;
    }
    out->raw = c->buf + start;
    out->raw_len = c->pos - start;
    return P_OK;
}

static int str_is(const frame_value *v, const char *s) {
    return v->kind == FV_STR && v->v.bytes.len == strlen(s) && !memcmp(v->v.bytes.ptr, s, v->v.bytes.len);
}

/* A map holding "dtype", "shape" and "data" is a tensor: check it fully. The
 * map has already been walked by parse_any, so its bytes are all present. */
static int try_tensor(cursor *c, frame_value *v, char *why) {
    cursor m = *c;
    m.pos = (size_t)(v->raw - c->buf);
    frame_value hdr, key, val;
    uint64_t n;
    parse_header(&m, &hdr, &n);
    int have_dtype = 0, have_shape = 0, have_data = 0;
    frame_tensor t = {0};
    for (uint64_t i = 0; i < n; i++) {
        parse_any(&m, &key, 2);
        size_t val_at = m.pos;
        if (str_is(&key, "shape")) {
            uint64_t nd;
            parse_header(&m, &val, &nd);
            if (val.kind != FV_ARRAY) { seterr(why, "shape is not an array"); goto bad; }
            if (nd > TENSOR_MAXDIM) { seterr(why, "shape has %llu dimensions (at most %d)", (unsigned long long)nd, TENSOR_MAXDIM); goto bad; }
            t.ndim = (int)nd;
            for (uint64_t d = 0; d < nd; d++) {
                frame_value dim;
                parse_any(&m, &dim, 3);
                if (dim.kind != FV_INT || dim.v.i < 0 || dim.v.i > ((int64_t)1 << 40)) { seterr(why, "shape[%llu] is not a valid size", (unsigned long long)d); goto bad; }
                t.shape[d] = dim.v.i;
            }
            have_shape = 1;
            continue;
        }
        parse_any(&m, &val, 2);
        if (str_is(&key, "dtype")) {
            if (val.kind != FV_STR || (t.dtype = dtype_parse(val.v.bytes.ptr, val.v.bytes.len)) == DT_INVALID) { seterr(why, "unknown dtype"); goto bad; }
            have_dtype = 1;
        } else if (str_is(&key, "data")) {
            if (val.kind != FV_BIN) { seterr(why, "data is not binary"); goto bad; }
            t.data = (const uint8_t *)val.v.bytes.ptr;
            t.nbytes = val.v.bytes.len;
            have_data = 1;
        }
        continue;
    bad:
        c->err_at = val_at;
        return P_ERR;
    }
    if (!have_dtype && !have_data) return P_OK; /* an ordinary map */
    if (!(have_dtype && have_shape && have_data)) {
        c->err_at = (size_t)(v->raw - c->buf);
        seterr(why, "tensor map without %s", !have_dtype ? "dtype" : !have_shape ? "shape" : "data");
        return P_ERR;
    }
    /* Element count times item size must equal the data length. A zero
     * dimension makes the count 0 whatever the others are, but code that
     * multiplies the shape out in int64 (shape_numel) must not overflow on
     * the way, so the product of the non-zero dimensions is bounded too. */
    uint64_t count = 1, nonzero = 1;
    for (int d = 0; d < t.ndim; d++) {
        uint64_t dim = (uint64_t)t.shape[d];
        if (!dim) { count = 0; continue; }
        if (nonzero > (uint64_t)INT64_MAX / 16 / dim) {
            c->err_at = (size_t)(v->raw - c->buf);
            seterr(why, "tensor shape has too many elements");
            return P_ERR;
        }
        nonzero *= dim;
        count *= dim;
    }
    if (count * dtype_size(t.dtype) != t.nbytes) {
        c->err_at = (size_t)(v->raw - c->buf);
        seterr(why, "tensor data is %zu bytes, shape and dtype need %llu", t.nbytes, (unsigned long long)(count * dtype_size(t.dtype)));
        return P_ERR;
    }
    v->kind = FV_TENSOR;
    v->v.tensor = t;
    return P_OK;
}

void frame_init(frame *f) { memset(f, 0, sizeof *f); }
void frame_free(frame *f) {
    free(f->entries);
    free(f->owned);
    memset(f, 0, sizeof *f);
}

void frame_copy(frame *dst, const frame *src) {
    uint8_t *bytes = memcpy(xmalloc(src->size), src->bytes, src->size);
    char err[LCM_ERRLEN];
    size_t need, at;
    free(dst->owned);
    dst->owned = NULL;
    /* src parsed once already, so this cannot fail */
    if (frame_parse(dst, bytes, src->size, src->size, &need, err, &at) <= 0) die("frame_copy: %s", err);
    dst->owned = bytes;
    dst->record = src->record;
    dst->offset = src->offset;
}

/* Duplicate keys are refused: readers would disagree on which value counts
 * (frame_get takes the first, a Python dict keeps the last) and passing the
 * record through would silently drop one. Small records are scanned; larger
 * ones use a hash table of entry indices (slots hold index + 1). */
#define DUP_SCAN_MAX 16

static uint64_t key_hash(const char *k, size_t n) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)k[i]) * 1099511628211u;
    return h;
}

static int same_key(const frame_entry *e, const char *k, size_t n) { return e->key_len == n && !memcmp(e->key, k, n); }

/* Adds entry i (already in f->entries) to the index; 0 if its key is new. */
static int key_seen(const frame *f, int i, uint32_t *table, size_t mask) {
    const frame_entry *e = &f->entries[i];
    if (!table) {
        for (int j = 0; j < i; j++)
            if (same_key(&f->entries[j], e->key, e->key_len)) return 1;
        return 0;
    }
    for (size_t s = key_hash(e->key, e->key_len) & mask;; s = (s + 1) & mask) {
        if (!table[s]) { table[s] = (uint32_t)i + 1; return 0; }
        if (same_key(&f->entries[table[s] - 1], e->key, e->key_len)) return 1;
    }
}

long long frame_parse(frame *f, const uint8_t *buf, size_t len, size_t max_record, size_t *need, char *err, size_t *err_at) {
    cursor c = {.buf = buf, .len = len, .max = max_record, .err = err};
    frame_value top;
    uint64_t n;
    f->n = 0;
    int rc = parse_header(&c, &top, &n);
    if (rc == P_OK && top.kind != FV_MAP) rc = fail(&c, 0, "record is not a msgpack map%s", "");
    if (rc == P_OK && n > c.max) rc = fail(&c, 0, "map count larger than the record limit%s", "");
    /* The entry table costs ~128 bytes per key against 2 bytes of input: a
     * bound on keys keeps a hostile record from turning into a huge table. */
    if (rc == P_OK && n > FRAME_MAX_KEYS) rc = fail(&c, 0, "record has more keys than the limit (%s)", "65536");
    if (rc == P_OK) rc = want(&c, (size_t)n * 2);
    if (rc == P_OK && n > (uint64_t)f->cap) {
        f->cap = (int)n;
        f->entries = xrealloc(f->entries, sizeof(frame_entry) * (size_t)n);
    }
    uint32_t *table = NULL;
    size_t mask = 0;
    if (rc == P_OK && n > DUP_SCAN_MAX) {
        while (mask < 2 * n) mask = mask * 2 + 1;
        table = xcalloc(mask + 1, sizeof *table);
    }
    for (uint64_t i = 0; rc == P_OK && i < n; i++) {
        frame_value key;
        size_t key_at = c.pos;
        if ((rc = parse_any(&c, &key, 1))) break;
        if (key.kind != FV_STR) { rc = fail(&c, key_at, "record key is not a string%s", ""); break; }
        frame_entry *e = &f->entries[f->n];
        e->key = key.v.bytes.ptr;
        e->key_len = key.v.bytes.len;
        if (key_seen(f, f->n, table, mask)) {
            c.err_at = key_at;
            snprintf(err, LCM_ERRLEN, "duplicate key '%.*s'", (int)(e->key_len > 64 ? 64 : e->key_len), e->key);
            rc = P_ERR;
            break;
        }
        if ((rc = parse_any(&c, &e->value, 1))) break;
        if (e->value.kind == FV_MAP) {
            char why[LCM_ERRLEN];
            if ((rc = try_tensor(&c, &e->value, why)) != P_OK) {
                snprintf(err, LCM_ERRLEN, "key '%.*s': %.400s", (int)(e->key_len > 64 ? 64 : e->key_len), e->key, why);
                break;
            }
        }
        f->n++;
    }
    free(table);
    if (rc == P_MORE) { *need = c.need; return 0; }
    if (rc == P_ERR) { *err_at = c.err_at; return -1; }
    f->size = c.pos;
    f->bytes = buf;
    return (long long)c.pos;
}

const frame_value *frame_get(const frame *f, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < f->n; i++)
        if (f->entries[i].key_len == n && !memcmp(f->entries[i].key, key, n)) return &f->entries[i].value;
    return NULL;
}

const char *frame_get_bytes(const frame *f, const char *key, size_t *len) {
    const frame_value *v = frame_get(f, key);
    if (!v || (v->kind != FV_STR && v->kind != FV_BIN)) return NULL;
    *len = v->v.bytes.len;
    return v->v.bytes.ptr;
}

/* ---- streaming reader ---- */

struct frame_reader {
    int fd, owns_fd;
    char *name;
    uint8_t *buf;
    size_t cap, start, end; /* unconsumed bytes are buf[start..end) */
    size_t max_record;
    uint64_t base;          /* stream offset of buf[0] */
    uint64_t records;
    int eof;
    char err[LCM_ERRLEN];
};

frame_reader *frame_reader_fdopen(int fd, const char *name) {
    frame_reader *r = xcalloc(1, sizeof *r);
    r->fd = fd;
    r->name = xstrdup(name);
    r->max_record = FRAME_DEFAULT_MAX_RECORD;
    r->cap = 1 << 16;
    r->buf = xaligned_alloc(r->cap);
    return r;
}

frame_reader *frame_reader_open(const char *path, char *err) {
    if (!strcmp(path, "-")) return frame_reader_fdopen(STDIN_FILENO, "<stdin>");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    frame_reader *r = frame_reader_fdopen(fd, path);
    r->owns_fd = 1;
    return r;
}

void frame_reader_set_max_record(frame_reader *r, size_t max) { r->max_record = max; }
const char *frame_reader_error(const frame_reader *r) { return r->err; }
const char *frame_reader_name(const frame_reader *r) { return r->name; }

void frame_reader_close(frame_reader *r) {
    if (!r) return;
    if (r->owns_fd) close(r->fd);
    free(r->name);
    free(r->buf);
    free(r);
}

/* Reads until at least `need` unconsumed bytes are buffered or the input ends,
 * then goes on reading while more is ready at once (poll without waiting) and
 * the buffer has room. frame_read parses a record from its start each time it
 * is incomplete; without this, a record arriving in many small pieces would be
 * re-parsed once per piece, quadratic in its size. Now it is re-parsed once
 * per wait on the producer or per doubling of the buffer. */
static int fill(frame_reader *r, size_t need) {
    if (r->start > 0) { /* the previous record's views are dead now: compact */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (need > r->cap) {
        size_t cap = r->cap;
        while (cap < need) cap *= 2;
        uint8_t *nb = xaligned_alloc(cap);
        memcpy(nb, r->buf, r->end);
        free(r->buf);
        r->buf = nb;
        r->cap = cap;
    }
    while (!r->eof && r->end < r->cap) {
        if (r->end >= need) {
            struct pollfd p = {.fd = r->fd, .events = POLLIN};
            if (poll(&p, 1, 0) != 1) break;
        }
        ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return seterr(r->err, "%s: read error at byte %llu: %s", r->name, (unsigned long long)(r->base + r->end), strerror(errno));
        if (got == 0) r->eof = 1;
        r->end += (size_t)got;
    }
    return 0;
}

int frame_read(frame_reader *r, frame *f) {
    if (r->err[0]) return -1;
    size_t need = 1;
    for (;;) {
        if (r->end - r->start < need && fill(r, need)) return -1;
        size_t avail = r->end - r->start;
        if (avail == 0 && r->eof) return 0;
        char msg[LCM_ERRLEN];
        size_t at = 0;
        long long n = frame_parse(f, r->buf + r->start, avail, r->max_record, &need, msg, &at);
        uint64_t offset = r->base + r->start;
        if (n > 0) {
            f->record = r->records++;
            f->offset = offset;
            r->start += (size_t)n;
            return 1;
        }
        if (n < 0) {
            seterr(r->err, "%s: record %llu at byte %llu: %s", r->name, (unsigned long long)r->records,
                   (unsigned long long)(offset + at), msg);
            return -1;
        }
        if (r->eof) {
            seterr(r->err, "%s: record %llu at byte %llu: truncated (stream ends at byte %llu, the record needs %zu bytes)",
                   r->name, (unsigned long long)r->records, (unsigned long long)offset,
                   (unsigned long long)(offset + avail), need);
            return -1;
        }
        /* Only as many bytes as the record is known to need: asking for more
         * could wait on a producer that is waiting on us. */
        if (need <= avail) need = avail + 1;
    }
}
