/* act.cu - activations (SiLU, GELU exact and tanh, QuickGELU), GEGLU and
 * softmax over the last dim, FP32; the formulas are cpu_act.c's. */
#include "cuda_common.h"

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define SQRT_2_OVER_PI 0.79788456080286536f
#define GELU_TANH_C 0.044715f
#define QUICK_GELU_K 1.702f

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * INV_SQRT2)); }
__device__ __forceinline__ float gelu_grad(float x) {
    return 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
}

template <activation ACT> __device__ __forceinline__ float act_forward(float v) {
    switch (ACT) {
    case ACT_SILU: return v * sigmoidf_(v);
    case ACT_GELU: return gelu(v);
    case ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v)));
    case ACT_QUICK_GELU: return v * sigmoidf_(QUICK_GELU_K * v);
    }
    return 0;
}

/* d act(v) / dv. */
template <activation ACT> __device__ __forceinline__ float act_grad(float v) {
    switch (ACT) {
    case ACT_SILU: {
        float s = sigmoidf_(v);
        return s * (1.0f + v * (1.0f - s));
    }
    case ACT_GELU: return gelu_grad(v);
    case ACT_GELU_TANH: {
        float t = tanhf(SQRT_2_OVER_PI * (v + GELU_TANH_C * v * v * v));
        float dinner = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * v * v);
        return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner;
    }
    case ACT_QUICK_GELU: {
        float s = sigmoidf_(QUICK_GELU_K * v);
        return s + QUICK_GELU_K * v * s * (1.0f - s);
    }
    }
    return 0;
}

template <activation ACT, typename T> __global__ void k_activation(T *y, const T *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = from_f<T>(act_forward<ACT>(to_f(x[i])));
}

template <activation ACT, typename T> __global__ void k_activation_backward(T *dx, const T *x, const T *dy, int64_t n) {
    GRID_STRIDE(i, n) dx[i] = from_f<T>(to_f(dy[i]) * act_grad<ACT>(to_f(x[i])));
}

template <activation ACT> static void launch_activation(float *y, const float *x, int64_t n) {
    k_activation<ACT, float><<<blocks_for(n), THREADS>>>(y, x, n);
}
template <activation ACT> static void launch_activation_backward(float *dx, const float *x, const float *dy, int64_t n) {
    k_activation_backward<ACT, float><<<blocks_for(n), THREADS>>>(dx, x, dy, n);
}

void cuda_activation(tensor *y, const tensor *x, activation act) {
    int64_t n = tensor_numel(x);
    switch (act) {
    case ACT_SILU: launch_activation<ACT_SILU>(F(y), CF(x), n); break;
    case ACT_GELU: launch_activation<ACT_GELU>(F(y), CF(x), n); break;
    case ACT_GELU_TANH: launch_activation<ACT_GELU_TANH>(F(y), CF(x), n); break;
    case ACT_QUICK_GELU: launch_activation<ACT_QUICK_GELU>(F(y), CF(x), n); break;
    }
    LAUNCH_CHECK();
}

void cuda_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act) {
    int64_t n = tensor_numel(x);
    switch (act) {
    case ACT_SILU: launch_activation_backward<ACT_SILU>(F(dx), CF(x), CF(dy), n); break;
    case ACT_GELU: launch_activation_backward<ACT_GELU>(F(dx), CF(x), CF(dy), n); break;
    case ACT_GELU_TANH: launch_activation_backward<ACT_GELU_TANH>(F(dx), CF(x), CF(dy), n); break;
    case ACT_QUICK_GELU: launch_activation_backward<ACT_QUICK_GELU>(F(dx), CF(x), CF(dy), n); break;
    }
    LAUNCH_CHECK();
}

/* ---- GEGLU: x [rows, 2D] = (value, gate); y [rows, D] = value gelu(gate) ---- */

template <typename T> __global__ void k_geglu(T *y, const T *x, int64_t rows, int64_t d) {
    GRID_STRIDE(i, rows * d) {
        int64_t r = i / d, j = i % d;
        const T *value = x + r * 2 * d;
        y[i] = from_f<T>(to_f(value[j]) * gelu(to_f(value[d + j])));
    }
}

template <typename T> __global__ void k_geglu_backward(T *dx, const T *x, const T *dy, int64_t rows, int64_t d) {
    GRID_STRIDE(i, rows * d) {
        int64_t r = i / d, j = i % d;
        const T *value = x + r * 2 * d;
        T *dvalue = dx + r * 2 * d;
        float g = to_f(dy[i]), v = to_f(value[j]), gate = to_f(value[d + j]);
        dvalue[j] = from_f<T>(g * gelu(gate));
        dvalue[d + j] = from_f<T>(g * v * gelu_grad(gate));
    }
}

void cuda_geglu(tensor *y, const tensor *x) {
    int64_t d = y->shape[y->ndim - 1], rows = tensor_numel(y) / d;
    k_geglu<float><<<blocks_for(rows * d), THREADS>>>(F(y), CF(x), rows, d);
    LAUNCH_CHECK();
}

void cuda_geglu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    int64_t d = dy->shape[dy->ndim - 1], rows = tensor_numel(dy) / d;
    k_geglu_backward<float><<<blocks_for(rows * d), THREADS>>>(F(dx), CF(x), CF(dy), rows, d);
    LAUNCH_CHECK();
}

/* ---- softmax over the last dim: one block per row ---- */

template <typename T> __global__ void k_softmax(T *y, const T *x, int64_t d) {
    const T *xs = x + blockIdx.x * d;
    T *ys = y + blockIdx.x * d;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) m = fmaxf(m, to_f(xs[j]));
    m = block_max(m);
    float sum = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) sum += expf(to_f(xs[j]) - m);
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ys[j] = from_f<T>(expf(to_f(xs[j]) - m) * inv);
}

/* dx = y (dy - sum_j dy_j y_j). */
template <typename T> __global__ void k_softmax_backward(T *dx, const T *y, const T *dy, int64_t d) {
    const T *ys = y + blockIdx.x * d, *g = dy + blockIdx.x * d;
    T *out = dx + blockIdx.x * d;
    float dot = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dot += to_f(g[j]) * to_f(ys[j]);
    dot = block_sum(dot);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) out[j] = from_f<T>(to_f(ys[j]) * (to_f(g[j]) - dot));
}

void cuda_softmax(tensor *y, const tensor *x) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    k_softmax<float><<<grid_dim(rows), THREADS>>>(F(y), CF(x), d);
    LAUNCH_CHECK();
}

void cuda_softmax_backward(tensor *dx, const tensor *y, const tensor *dy) {
    int64_t d = y->shape[y->ndim - 1], rows = tensor_numel(y) / d;
    k_softmax_backward<float><<<grid_dim(rows), THREADS>>>(F(dx), CF(y), CF(dy), d);
    LAUNCH_CHECK();
}
