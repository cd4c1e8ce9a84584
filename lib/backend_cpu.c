/* backend_cpu.c - the CPU backend: OpenMP loops and OpenBLAS GEMMs.
 *
 * This is the reference implementation of every op; keep it plain. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_nn.h"
#include "util.h"

static int cpu_probe(char *err) { return 0; }
static void *cpu_alloc(size_t bytes) { return xaligned_alloc(bytes); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_synchronize(void) {}

static void cpu_fill(tensor *t, float value) {
    float *p = t->data;
    int64_t n = tensor_numel(t);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) p[i] = value;
}

static void cpu_convert(tensor *dst, const tensor *src) {
    dtype_convert(dst->data, dst->dtype, src->data, src->dtype, (size_t)tensor_numel(src));
}

static void cpu_axpby(tensor *out, float a, const tensor *x, float b, const tensor *y) {
    float *o = out->data;
    const float *xs = x->data, *ys = y ? y->data : NULL;
    int64_t n = tensor_numel(out);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = ys ? a * xs[i] + b * ys[i] : a * xs[i];
}

static void cpu_mul(tensor *out, const tensor *x, const tensor *y) {
    float *o = out->data;
    const float *xs = x->data, *ys = y->data;
    int64_t n = tensor_numel(out);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = xs[i] * ys[i];
}

static void cpu_silu(tensor *out, const tensor *x) {
    float *o = out->data;
    const float *xs = x->data;
    int64_t n = tensor_numel(out);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) o[i] = xs[i] / (1.0f + expf(-xs[i]));
}

static void cpu_silu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    float *d = dx->data;
    const float *xs = x->data, *g = dy->data;
    int64_t n = tensor_numel(dx);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-xs[i]));
        d[i] = g[i] * s * (1.0f + xs[i] * (1.0f - s));
    }
}

static void cpu_gemm(tensor *c, const tensor *a, int trans_a, const tensor *b, int trans_b, float alpha, float beta) {
    int m = (int)c->shape[0], n = (int)c->shape[1];
    int k = (int)(trans_a ? a->shape[0] : a->shape[1]);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                a->data, (int)a->shape[1], b->data, (int)b->shape[1], beta, c->data, n);
}

static double cpu_sum(const tensor *x) {
    const float *xs = x->data;
    int64_t n = tensor_numel(x);
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (int64_t i = 0; i < n; i++) s += xs[i];
    return s;
}

static const backend cpu = {
    .name = "cpu",
    .probe = cpu_probe,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_synchronize,
    .ops = {
        .fill = cpu_fill,
        .convert = cpu_convert,
        .axpby = cpu_axpby,
        .mul = cpu_mul,
        .silu = cpu_silu,
        .silu_backward = cpu_silu_backward,
        .gemm = cpu_gemm,
        .sum = cpu_sum,
        .linear = cpu_linear,
        .linear_backward = cpu_linear_backward,
        .conv2d = cpu_conv2d,
        .conv2d_backward = cpu_conv2d_backward,
        .group_norm = cpu_group_norm,
        .group_norm_backward = cpu_group_norm_backward,
        .layer_norm = cpu_layer_norm,
        .layer_norm_backward = cpu_layer_norm_backward,
        .activation = cpu_activation,
        .activation_backward = cpu_activation_backward,
        .geglu = cpu_geglu,
        .geglu_backward = cpu_geglu_backward,
        .softmax = cpu_softmax,
        .softmax_backward = cpu_softmax_backward,
        .attention = cpu_attention,
        .attention_backward = cpu_attention_backward,
        .upsample_nearest = cpu_upsample_nearest,
        .upsample_nearest_backward = cpu_upsample_nearest_backward,
        .timestep_embedding = cpu_timestep_embedding,
        .add_broadcast = cpu_add_broadcast,
        .add_broadcast_backward = cpu_add_broadcast_backward,
        .loss = cpu_loss,
        .loss_backward = cpu_loss_backward,
        .embedding = cpu_embedding,
        .transpose = cpu_transpose,
        .copy_channels = cpu_copy_channels,
        .scale_shift = cpu_scale_shift,
        .scale_shift_backward = cpu_scale_shift_backward,
    },
};

const backend *backend_cpu(void) { return &cpu; }
