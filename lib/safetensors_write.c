/* safetensors_write.c - the atomic writer (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

st_entry st_entry_of(const char *name, dtype_id dtype, int ndim, const int64_t *shape, const void *data) {
    st_entry e = {.name = name, .dtype = dtype, .ndim = ndim, .data = data, .data_dtype = dtype};
    if (ndim > 0 && ndim <= TENSOR_MAXDIM) memcpy(e.shape, shape, sizeof *shape * (size_t)ndim);
    return e;
}

static int by_entry_name(const void *a, const void *b, void *entries) {
    const st_entry *e = entries;
    return strcmp(e[*(const int *)a].name, e[*(const int *)b].name);
}

static int meta_by_key(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static int check_entry(const char *path, const st_entry *e, char *err) {
    if (!e->name || !strcmp(e->name, "__metadata__"))
        return seterr(err, "%s: invalid tensor name \"%s\"", path, e->name ? e->name : "(null)");
    if (dtype_size(e->dtype) == 0 || dtype_size(e->data_dtype) == 0)
        return seterr(err, "%s: tensor \"%s\": invalid dtype", path, e->name);
    if (e->ndim < 0 || e->ndim > TENSOR_MAXDIM)
        return seterr(err, "%s: tensor \"%s\": %d dimensions", path, e->name, e->ndim);
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] < 0) return seterr(err, "%s: tensor \"%s\": negative shape", path, e->name);
    return 0;
}

static void put_entry(strbuf *h, const st_entry *e, uint64_t begin, uint64_t end) {
    if (h->n > 1) sb_putc(h, ','); /* after "{" comes the first entry */
    sb_json_str(h, e->name, strlen(e->name));
    sb_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_st_name(e->dtype));
    for (int d = 0; d < e->ndim; d++) sb_printf(h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    sb_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)begin, (unsigned long long)end);
}

/* The header JSON, padded with spaces so that the data starts 8-aligned. */
static void build_header(strbuf *h, const st_entry *entries, const int *order, int n, const st_meta *meta, int nmeta) {
    sb_putc(h, '{');
    if (nmeta > 0) {
        st_meta *sorted = xmalloc(sizeof *sorted * (size_t)nmeta);
        memcpy(sorted, meta, sizeof *sorted * (size_t)nmeta);
        qsort(sorted, (size_t)nmeta, sizeof *sorted, meta_by_key);
        sb_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_putc(h, ',');
            sb_json_str(h, sorted[i].key, strlen(sorted[i].key));
            sb_putc(h, ':');
            sb_json_str(h, sorted[i].value, strlen(sorted[i].value));
        }
        sb_putc(h, '}');
        free(sorted);
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = &entries[order[i]];
        uint64_t bytes = (uint64_t)shape_numel(e->ndim, e->shape) * dtype_size(e->dtype);
        put_entry(h, e, at, at + bytes);
        at += bytes;
    }
    sb_putc(h, '}');
    while (h->n % 8) sb_putc(h, ' ');
}

/* Writes one tensor's data, converting in chunks when its dtypes differ. */
static int write_data(FILE *out, const st_entry *e) {
    size_t n = (size_t)shape_numel(e->ndim, e->shape);
    if (e->data_dtype == e->dtype) return n && fwrite(e->data, dtype_size(e->dtype), n, out) != n ? -1 : 0;
    enum { CHUNK = 8192 };
    size_t ss = dtype_size(e->data_dtype), ds = dtype_size(e->dtype);
    uint8_t *src = xaligned_alloc(CHUNK * 8), *dst = xaligned_alloc(CHUNK * 8);
    int rc = 0;
    for (size_t done = 0; done < n && !rc;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        memcpy(src, (const uint8_t *)e->data + done * ss, k * ss); /* source may be unaligned */
        dtype_convert(dst, e->dtype, src, e->data_dtype, k);
        if (fwrite(dst, ds, k, out) != k) rc = -1;
        done += k;
    }
    free(src);
    free(dst);
    return rc;
}

int st_write(const char *path, const st_entry *entries, int n, const st_meta *meta, int nmeta, char *err) {
    for (int i = 0; i < n; i++)
        if (check_entry(path, &entries[i], err)) return -1;
    int *order = xmalloc(sizeof *order * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_entry_name, (void *)entries);
    for (int i = 1; i < n; i++)
        if (!strcmp(entries[order[i]].name, entries[order[i - 1]].name)) {
            seterr(err, "%s: tensor \"%s\" given twice", path, entries[order[i]].name);
            free(order);
            return -1;
        }
    strbuf h = {0};
    build_header(&h, entries, order, n, meta, nmeta);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (!rc) {
        uint8_t size[8];
        for (int i = 0; i < 8; i++) size[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
        int bad = fwrite(size, 1, 8, af.f) != 8 || fwrite(h.p, 1, h.n, af.f) != h.n;
        for (int i = 0; i < n && !bad; i++) bad = write_data(af.f, &entries[order[i]]);
        if (bad) {
            rc = seterr(err, "%s: write error: %s", path, strerror(errno));
            atomic_abort(&af);
        } else {
            rc = atomic_commit(&af, err);
        }
    }
    sb_free(&h);
    free(order);
    return rc;
}
