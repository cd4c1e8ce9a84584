/* cpu_act.c - activations (SiLU, GELU exact and tanh, QuickGELU), GEGLU and
 * softmax over the last dim. One loop per activation, so that the switch is
 * outside the element loop. */
#include <math.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

#define PAR_IF(n) if ((n) > 65536)

static const float INV_SQRT2 = 0.70710678118654752f;
static const float INV_SQRT_2PI = 0.39894228040143268f;
static const float SQRT_2_OVER_PI = 0.79788456080286536f;
static const float GELU_TANH_C = 0.044715f;
static const float QUICK_GELU_K = 1.702f;

static inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * INV_SQRT2)); }
static inline float gelu_grad(float x) { return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x); }

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void cpu_activation(tensor *y, const tensor *x, activation act) {
    const float *X = x->data;
    float *Y = y->data;
    int64_t n = tensor_numel(x);
    switch (act) {
    case ACT_SILU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) Y[i] = X[i] * sigmoid(X[i]);
        break;
    case ACT_GELU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) Y[i] = gelu(X[i]);
        break;
    case ACT_GELU_TANH:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) {
            float v = X[i];
            Y[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v)));
        }
        break;
    case ACT_QUICK_GELU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) Y[i] = X[i] * sigmoid(QUICK_GELU_K * X[i]);
        break;
    }
}

void cpu_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act) {
    const float *X = x->data, *G = dy->data;
    float *D = dx->data;
    int64_t n = tensor_numel(x);
    switch (act) {
    case ACT_SILU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoid(X[i]);
            D[i] = G[i] * s * (1.0f + X[i] * (1.0f - s));
        }
        break;
    case ACT_GELU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) D[i] = G[i] * gelu_grad(X[i]);
        break;
    case ACT_GELU_TANH:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) {
            float v = X[i], t = tanhf(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v));
            float dinner = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * v * v);
            D[i] = G[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner);
        }
        break;
    case ACT_QUICK_GELU:
#pragma omp parallel for PAR_IF(n)
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoid(QUICK_GELU_K * X[i]);
            D[i] = G[i] * (s + QUICK_GELU_K * X[i] * s * (1.0f - s));
        }
        break;
    }
}

void cpu_geglu(tensor *y, const tensor *x) {
    int64_t d = y->shape[y->ndim - 1], rows = tensor_numel(y) / d;
    const float *X = x->data;
    float *Y = y->data;
#pragma omp parallel for PAR_IF(rows * d)
    for (int64_t r = 0; r < rows; r++) {
        const float *value = X + r * 2 * d, *gate = value + d;
        float *out = Y + r * d;
        for (int64_t j = 0; j < d; j++) out[j] = value[j] * gelu(gate[j]);
    }
}

void cpu_geglu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    int64_t d = dy->shape[dy->ndim - 1], rows = tensor_numel(dy) / d;
    const float *X = x->data, *G = dy->data;
    float *D = dx->data;
#pragma omp parallel for PAR_IF(rows * d)
    for (int64_t r = 0; r < rows; r++) {
        const float *value = X + r * 2 * d, *gate = value + d, *g = G + r * d;
        float *dvalue = D + r * 2 * d, *dgate = dvalue + d;
        for (int64_t j = 0; j < d; j++) {
            dvalue[j] = g[j] * gelu(gate[j]);
            dgate[j] = g[j] * value[j] * gelu_grad(gate[j]);
        }
    }
}

void cpu_softmax(tensor *y, const tensor *x) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    const float *X = x->data;
    float *Y = y->data;
#pragma omp parallel for PAR_IF(rows * d)
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = X + r * d;
        float *ys = Y + r * d, m = cpu_max(xs, d);
        if (ys != xs) memcpy(ys, xs, sizeof(float) * (size_t)d);
        float inv = 1.0f / cpu_exp_shift_sum(ys, d, m);
        for (int64_t j = 0; j < d; j++) ys[j] *= inv;
    }
}

void cpu_softmax_backward(tensor *dx, const tensor *y, const tensor *dy) {
    int64_t d = y->shape[y->ndim - 1], rows = tensor_numel(y) / d;
    const float *Y = y->data, *G = dy->data;
    float *D = dx->data;
#pragma omp parallel for PAR_IF(rows * d)
    for (int64_t r = 0; r < rows; r++) {
        const float *ys = Y + r * d, *g = G + r * d;
        float *out = D + r * d, dot = 0;
        for (int64_t j = 0; j < d; j++) dot += g[j] * ys[j];
        for (int64_t j = 0; j < d; j++) out[j] = ys[j] * (g[j] - dot);
    }
}
