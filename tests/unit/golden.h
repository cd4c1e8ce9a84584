/* golden.h - reading the reference harness's golden tensors, and the weight
 * update check the training goldens share (include after test.h). */
#ifndef LCM_TEST_GOLDEN_H
#define LCM_TEST_GOLDEN_H

#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "params.h"
#include "safetensors.h"
#include "util.h"

/* A golden tensor converted to host f32 (count: its elements, may be NULL). */
static inline float *golden_f32(st_file *g, const char *name, int64_t *count) {
    const st_tensor *t = st_find(g, name);
    CHECKF(t, "golden tensor %s missing", name);
    int64_t n = shape_numel(t->ndim, t->shape);
    float *out = xmalloc((size_t)n * 4);
    tensor dst = tensor_view(NULL, DT_F32, 1, &n, out);
    char err[LCM_ERRLEN];
    CHECKF(st_tensor_copy(t, &dst, err) == 0, "%s", err);
    if (count) *count = n;
    return out;
}

/* A golden tensor as a new host tensor of dtype dt, its shape kept (copied:
 * safetensors data may be unaligned). */
static inline tensor *golden_tensor_as(st_file *g, const char *name, dtype_id dt) {
    const st_tensor *t = st_find(g, name);
    CHECKF(t, "golden tensor %.200s missing", name); /* bounded: names may come from path buffers */
    tensor *x = tensor_new(NULL, dt, t->ndim, t->shape);
    char err[LCM_ERRLEN];
    CHECKF(st_tensor_copy(t, x, err) == 0, "%s", err);
    return x;
}

static inline tensor *golden_tensor(st_file *g, const char *name) { return golden_tensor_as(g, name, DT_F32); }

/* Tensor `name` of n elements from the safetensors file at path, as host f32. */
static inline float *golden_file_f32(const char *path, const char *name, int64_t n) {
    char err[LCM_ERRLEN];
    st_file *g = st_open(path, err);
    CHECKF(g, "%s", err);
    int64_t count;
    float *out = golden_f32(g, name, &count);
    st_close(g);
    CHECKF(count == n, "%s: %s has %lld elements, %lld expected", path, name, (long long)count, (long long)n);
    return out;
}

static inline double *golden_f64(st_file *g, const char *name) {
    const st_tensor *t = st_find(g, name);
    CHECKF(t, "golden tensor %s missing", name);
    int64_t n = shape_numel(t->ndim, t->shape);
    double *out = xmalloc((size_t)n * 8);
    tensor dst = tensor_view(NULL, DT_F64, 1, &n, out);
    char err[LCM_ERRLEN];
    CHECKF(st_tensor_copy(t, &dst, err) == 0, "%s", err);
    return out;
}

static inline int golden_by_name(const void *a, const void *b) {
    return strcmp((*(param *const *)a)->name, (*(param *const *)b)->name);
}

/* ||w - w_ref|| / ||w_ref - w_init|| over a parameter store, w_ref = w_init +
 * delta with the delta flattened in sorted-name order, as the goldens store
 * it (n_delta elements). init is indexed like the store's buffer. The values
 * are read back to the host first: on CUDA they live on the device. */
static inline double update_error(const params *now, const float *init, const float *delta, size_t n_delta) {
    param **sorted = xmalloc(sizeof(param *) * (size_t)now->n);
    memcpy(sorted, now->p, sizeof(param *) * (size_t)now->n);
    qsort(sorted, (size_t)now->n, sizeof *sorted, golden_by_name);
    float *values = params_values_to_host(now);
    double num = 0, den = 0;
    size_t k = 0;
    for (int i = 0; i < now->n && k < n_delta; i++) {
        const param *p = sorted[i];
        const float *w = values + p->offset, *w0 = init + p->offset;
        for (int64_t j = 0; j < tensor_numel(&p->value) && k < n_delta; j++, k++) {
            double ref = (double)w0[j] + delta[k];
            num += (w[j] - ref) * (w[j] - ref);
            den += (double)delta[k] * delta[k];
        }
    }
    free(values);
    free(sorted);
    CHECKF(k == n_delta, "%zu parameter elements compared, the golden has %zu", k, n_delta);
    return sqrt(num) / sqrt(den);
}

#endif
