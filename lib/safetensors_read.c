/* safetensors_read.c - the mmap-based reader (see safetensors.h).
 *
 * The header is checked in the order a fault would be found by hand: size
 * field, JSON syntax, each entry's fields, then the layout of the data area
 * as a whole. The layout rules are those of the reference implementation:
 * tensors, ordered by offset, cover the data area exactly, with neither
 * overlaps nor gaps nor trailing bytes. */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct st_file {
    char *path;
    uint8_t *map;
    uint64_t size;
    uint64_t data_start; /* 8 + header size */
    int n;
    st_tensor *t;
    int nmeta;
    char **mkey, **mval;
};

const char *st_path(const st_file *f) { return f->path; }
uint64_t st_file_size(const st_file *f) { return f->size; }
int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return (i >= 0 && i < f->n) ? &f->t[i] : NULL; }
int st_meta_count(const st_file *f) { return f->nmeta; }

void st_meta_at(const st_file *f, int i, const char **key, const char **value) {
    *key = f->mkey[i];
    *value = f->mval[i];
}

const char *st_meta_get(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->mkey[i], key)) return f->mval[i];
    return NULL;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, by_name);
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) free(f->mkey[i]), free(f->mval[i]);
    free(f->t);
    free(f->mkey);
    free(f->mval);
    free(f->path);
    free(f);
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int get_count(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d >= 9007199254740992.0) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_shape(const st_file *f, const char *name, const cJSON *shape, st_tensor *t, uint64_t *numel, char *err) {
    if (!cJSON_IsArray(shape)) return seterr(err, "%s: tensor \"%s\": shape is not a list", f->path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > TENSOR_MAXDIM)
        return seterr(err, "%s: tensor \"%s\": shape has %d dimensions (at most %d)", f->path, name, nd, TENSOR_MAXDIM);
    t->ndim = nd;
    uint64_t count = 1;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t dim;
        if (get_count(d, &dim))
            return seterr(err, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", f->path, name, i);
        if (__builtin_mul_overflow(count, dim, &count))
            return seterr(err, "%s: tensor \"%s\": shape's element count overflows", f->path, name);
        t->shape[i] = (int64_t)dim;
    }
    *numel = count;
    return 0;
}

static int parse_offsets(const st_file *f, const char *name, const cJSON *off, uint64_t *begin, uint64_t *end, char *err) {
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || get_count(off->child, begin) ||
        get_count(off->child->next, end))
        return seterr(err, "%s: tensor \"%s\": data_offsets is not a list of two non-negative integers", f->path, name);
    return 0;
}

/* One "name": {dtype, shape, data_offsets} entry into t (name not yet set). */
static int parse_entry(const st_file *f, const cJSON *e, st_tensor *t, char *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return seterr(err, "%s: tensor \"%s\": entry is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt || !shape || !off)
        return seterr(err, "%s: tensor \"%s\": missing \"%s\"", f->path, name, !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt)) return seterr(err, "%s: tensor \"%s\": dtype is not a string", f->path, name);
    t->dtype = dtype_parse(dt->valuestring, strlen(dt->valuestring));
    if (t->dtype == DT_INVALID || strcmp(dtype_st_name(t->dtype), dt->valuestring))
        return seterr(err, "%s: tensor \"%s\": unsupported dtype \"%s\"", f->path, name, dt->valuestring);
    uint64_t numel = 0, begin = 0, end = 0, nbytes = 0;
    if (parse_shape(f, name, shape, t, &numel, err) || parse_offsets(f, name, off, &begin, &end, err)) return -1;
    uint64_t data_len = f->size - f->data_start;
    if (begin > end || end > data_len)
        return seterr(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] lie outside the data area (bytes %llu to %llu)",
                      f->path, name, (unsigned long long)begin, (unsigned long long)end,
                      (unsigned long long)f->data_start, (unsigned long long)f->size);
    if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(t->dtype), &nbytes) || end - begin != nbytes)
        return seterr(err, "%s: tensor \"%s\" at byte %llu: %llu data bytes, but dtype and shape need %llu x %zu",
                      f->path, name, (unsigned long long)(f->data_start + begin), (unsigned long long)(end - begin),
                      (unsigned long long)numel, dtype_size(t->dtype));
    t->offset = f->data_start + begin;
    t->nbytes = (size_t)nbytes;
    t->data = f->map + t->offset;
    return 0;
}

static int parse_metadata(st_file *f, const cJSON *m, char *err) {
    if (cJSON_IsNull(m)) return 0;
    if (!cJSON_IsObject(m)) return seterr(err, "%s: \"__metadata__\" is not an object", f->path);
    if (f->mkey) return seterr(err, "%s: \"__metadata__\" appears twice in the header", f->path);
    int n = cJSON_GetArraySize(m);
    f->mkey = xcalloc((size_t)n, sizeof(char *));
    f->mval = xcalloc((size_t)n, sizeof(char *));
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e)) return seterr(err, "%s: \"__metadata__\": value of \"%s\" is not a string", f->path, e->string);
        f->mkey[f->nmeta] = xstrdup(e->string);
        f->mval[f->nmeta++] = xstrdup(e->valuestring);
    }
    /* Sorted by key, so listings are stable whatever the writer's order. */
    for (int i = 1; i < f->nmeta; i++)
        for (int j = i; j > 0 && strcmp(f->mkey[j - 1], f->mkey[j]) > 0; j--) {
            char *k = f->mkey[j], *v = f->mval[j];
            f->mkey[j] = f->mkey[j - 1], f->mval[j] = f->mval[j - 1];
            f->mkey[j - 1] = k, f->mval[j - 1] = v;
        }
    return 0;
}

static int by_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes; /* empty tensors first */
}

/* Ordered by offset, the tensors must tile the data area exactly. */
static int check_layout(const st_file *f, char *err) {
    const st_tensor **order = xmalloc(sizeof *order * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) order[i] = &f->t[i];
    qsort(order, (size_t)f->n, sizeof *order, by_offset);
    uint64_t at = f->data_start;
    int rc = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        const st_tensor *t = order[i];
        if (t->offset < at)
            rc = seterr(err, "%s: tensor \"%s\" at byte %llu overlaps tensor \"%s\" (which ends at byte %llu)", f->path,
                        t->name, (unsigned long long)t->offset, order[i - 1]->name, (unsigned long long)at);
        else if (t->offset > at)
            rc = seterr(err, "%s: %llu unused bytes at byte %llu, before tensor \"%s\"", f->path,
                        (unsigned long long)(t->offset - at), (unsigned long long)at, t->name);
        at = t->offset + t->nbytes;
    }
    if (!rc && at != f->size)
        rc = seterr(err, "%s: %llu bytes after the last tensor, at byte %llu", f->path,
                    (unsigned long long)(f->size - at), (unsigned long long)at);
    free(order);
    return rc;
}

static int check_names(const st_file *f, char *err) {
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name))
            return seterr(err, "%s: tensor \"%s\" appears twice in the header", f->path, f->t[i].name);
    return 0;
}

static int parse_tensors(st_file *f, const cJSON *root, char *err) {
    f->t = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *f->t);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (parse_metadata(f, e, err)) return -1;
            continue;
        }
        st_tensor *t = &f->t[f->n];
        if (parse_entry(f, e, t, err)) return -1;
        t->name = xstrdup(e->string);
        f->n++;
    }
    qsort(f->t, (size_t)f->n, sizeof *f->t, by_name);
    return check_names(f, err) || check_layout(f, err) ? -1 : 0;
}

/* Header bytes: no NUL (cJSON would stop there), starts with '{'. */
static int check_header_bytes(const st_file *f, const char *h, uint64_t n, char *err) {
    if (h[0] != '{') return seterr(err, "%s: byte 8: header does not start with '{'", f->path);
    const char *nul = memchr(h, 0, n);
    if (nul) return seterr(err, "%s: byte %llu: NUL byte in the header", f->path, (unsigned long long)(8 + (nul - h)));
    return 0;
}

static int parse_header(st_file *f, char *err) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->map[i];
    if (n > ST_MAX_HEADER)
        return seterr(err, "%s: byte 0: header size %llu exceeds the limit of %llu bytes", f->path,
                      (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n > f->size - 8)
        return seterr(err, "%s: byte 0: header size %llu runs past the end of the file (%llu bytes; truncated?)", f->path,
                      (unsigned long long)n, (unsigned long long)f->size);
    if (n < 2) return seterr(err, "%s: byte 0: header size %llu is too small", f->path, (unsigned long long)n);
    f->data_start = 8 + n;
    const char *h = (const char *)f->map + 8;
    if (check_header_bytes(f, h, n, err)) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, n, &end, 0);
    if (!root) {
        size_t at = end && end >= h ? (size_t)(end - h) : 0;
        return seterr(err, "%s: byte %llu: header is not valid JSON", f->path, (unsigned long long)(8 + at));
    }
    for (; end < h + n; end++)
        if (!strchr(" \t\r\n", *end)) {
            cJSON_Delete(root);
            return seterr(err, "%s: byte %llu: junk after the header's JSON", f->path, (unsigned long long)(8 + (end - h)));
        }
    int rc = cJSON_IsObject(root) ? parse_tensors(f, root, err) : seterr(err, "%s: header is not a JSON object", f->path);
    cJSON_Delete(root);
    return rc;
}

static int map_file(st_file *f, char *err) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seterr(err, "%s: %s", f->path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb)) rc = seterr(err, "%s: %s", f->path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) rc = seterr(err, "%s: not a regular file", f->path);
    else if (sb.st_size < 8)
        rc = seterr(err, "%s: %lld bytes, too short for a safetensors file (truncated?)", f->path, (long long)sb.st_size);
    if (!rc) {
        f->size = (uint64_t)sb.st_size;
        /* Private and writable: views may be scribbled on without touching the file. */
        void *p = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) rc = seterr(err, "%s: mmap: %s", f->path, strerror(errno));
        else f->map = p;
    }
    close(fd);
    return rc;
}

st_file *st_open(const char *path, char *err) {
    st_file *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    if (map_file(f, err) || parse_header(f, err)) {
        st_close(f);
        return NULL;
    }
    return f;
}

int st_tensor_view(const st_tensor *t, tensor *out) {
    if ((uintptr_t)t->data % dtype_size(t->dtype)) return -1;
    *out = tensor_view(NULL, t->dtype, t->ndim, t->shape, (void *)t->data);
    return 0;
}

int st_tensor_copy(const st_tensor *t, tensor *dst, char *err) {
    int64_t n = shape_numel(t->ndim, t->shape);
    if (n != tensor_numel(dst)) {
        char a[128], b[128];
        return seterr(err, "tensor \"%s\" has shape %s where %s is needed", t->name, shape_str(a, t->ndim, t->shape),
                      shape_str(b, dst->ndim, dst->shape));
    }
    tensor src;
    void *aligned = NULL;
    if (st_tensor_view(t, &src)) {
        aligned = xaligned_alloc(t->nbytes);
        memcpy(aligned, t->data, t->nbytes);
        src = tensor_view(NULL, t->dtype, t->ndim, t->shape, aligned);
    }
    tensor_copy(dst, &src);
    free(aligned);
    return 0;
}

void st_load_f64(const void *data, dtype_id dt, size_t i0, size_t n, double *out) {
    enum { CHUNK = 4096 };
    _Alignas(64) uint8_t buf[CHUNK * 8];
    size_t sz = dtype_size(dt);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        memcpy(buf, (const uint8_t *)data + (i0 + done) * sz, k * sz);
        dtype_convert(out + done, DT_F64, buf, dt, k);
        done += k;
    }
}
