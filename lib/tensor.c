/* tensor.c - see tensor.h. */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }
size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

int tensor_same_shape(const tensor *a, const tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

tensor tensor_view(const backend *be, dtype_id t, int ndim, const int64_t *shape, void *data) {
    tensor v = {.dtype = t, .ndim = ndim, .data = data, .backend = be ? be : backend_cpu(), .owns_data = 0};
    if (ndim < 0 || ndim > TENSOR_MAXDIM) die("tensor_view: %d dimensions (at most %d)", ndim, TENSOR_MAXDIM);
    memcpy(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return v;
}

tensor *tensor_new(const backend *be, dtype_id t, int ndim, const int64_t *shape) {
    tensor *x = xmalloc(sizeof *x);
    *x = tensor_view(be, t, ndim, shape, NULL);
    x->data = x->backend->alloc(tensor_nbytes(x));
    x->owns_data = 1;
    return x;
}

tensor *tensor_new4(const backend *be, dtype_id t, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return tensor_new(be, t, 4, shape);
}

void tensor_free(tensor *t) {
    if (!t) return;
    if (t->owns_data) t->backend->free(t->data);
    free(t);
}

void tensor_from_host(tensor *t, const void *src) { t->backend->upload(t->data, src, tensor_nbytes(t)); }
void tensor_to_host(const tensor *t, void *dst) { t->backend->download(dst, t->data, tensor_nbytes(t)); }

void tensor_copy(tensor *dst, const tensor *src) {
    int64_t n = tensor_numel(src);
    if (tensor_numel(dst) != n) die("tensor_copy: %lld elements into %lld", (long long)n, (long long)tensor_numel(dst));
    if (dst->backend == src->backend) {
        op_convert(dst, src);
        return;
    }
    /* Across backends: move the bytes through the host in src's dtype, then
     * convert on the destination backend. */
    size_t bytes = tensor_nbytes(src);
    void *host = xaligned_alloc(bytes);
    tensor_to_host(src, host);
    if (dst->dtype == src->dtype) {
        tensor_from_host(dst, host);
    } else {
        tensor *staged = tensor_new(dst->backend, src->dtype, src->ndim, src->shape);
        tensor_from_host(staged, host);
        op_convert(dst, staged);
        tensor_free(staged);
    }
    free(host);
}

tensor *tensor_clone(const tensor *src, const backend *be, dtype_id t) {
    tensor *x = tensor_new(be ? be : src->backend, t, src->ndim, src->shape);
    tensor_copy(x, src);
    return x;
}
