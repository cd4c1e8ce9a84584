/* cuda_common.h - what every file of the CUDA backend shares (internal):
 * error checks, launch helpers, library handles, grow-only scratch buffers,
 * block reductions and the cuda_* op declarations the table in
 * backend_cuda.cu points at.
 *
 * Conventions: every kernel runs on the legacy default stream, so ops are
 * ordered with each other and with cudaMemcpy; ops.c has checked every
 * argument before an op runs. Element types are template parameters where a
 * kernel is elementwise, so that f16/bf16 variants are one instantiation
 * away; arithmetic is always in float (reductions in double). */
#ifndef LCM_CUDA_COMMON_H
#define LCM_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#ifdef LCM_CUDNN /* the Makefile defines it where scripts/find-cudnn finds cuDNN */
#include <cudnn.h>
#endif
#include <stdint.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "util.h"
}

#define CUDA_CHECK(call)                                                                                            \
    do {                                                                                                            \
        cudaError_t e_ = (call);                                                                                    \
        if (e_ != cudaSuccess) die("cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__);      \
    } while (0)

#define CUBLAS_CHECK(call)                                                                                          \
    do {                                                                                                            \
        cublasStatus_t s_ = (call);                                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS) die("cublas: %s: status %d (%s:%d)", #call, (int)s_, __FILE__, __LINE__);  \
    } while (0)

#ifdef LCM_CUDNN
#define CUDNN_CHECK(call)                                                                                           \
    do {                                                                                                            \
        cudnnStatus_t s_ = (call);                                                                                  \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                                             \
            die("cudnn: %s: %s (%s:%d)", #call, cudnnGetErrorString(s_), __FILE__, __LINE__);                       \
    } while (0)
#endif

/* After a kernel launch: a bad configuration shows here, a fault at the next sync. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* A grid-stride loop over [0, n). */
#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

enum { THREADS = 256 }; /* the block size of the elementwise and per-row kernels */

/* Blocks for a grid-stride loop over n elements (capped: the loop covers the rest). */
static inline int blocks_for(int64_t n) {
    int64_t b = (n + THREADS - 1) / THREADS;
    return (int)(b > 65535 * 8 ? 65535 * 8 : (b ? b : 1));
}

static inline unsigned grid_dim(int64_t n) {
    if (n < 1 || n > 0x7fffffff) die("cuda: grid of %lld blocks", (long long)n);
    return (unsigned)n;
}

static inline float *F(tensor *t) { return t ? (float *)t->data : NULL; }
static inline const float *CF(const tensor *t) { return t ? (const float *)t->data : NULL; }

/* Library handles, created on first use, bound to the default stream. */
cublasHandle_t cuda_cublas(void);
#ifdef LCM_CUDNN
cudnnHandle_t cuda_cudnn(void);
#endif

/* Grow-only device scratch, one buffer per slot so that an op can hold
 * several at once. Growing frees the old buffer (cudaFree waits for the
 * device, so no queued kernel still uses it). Steady-state calls allocate
 * nothing. One op at a time uses a slot; an op must not call another op that
 * uses the same slot while it holds it. */
enum scratch_slot {
    SCRATCH_REDUCE,   /* partial sums of reductions */
    SCRATCH_CONV_WS,  /* cuDNN workspace */
    SCRATCH_CONV_X,   /* zero-padded copy of x (asymmetric padding) */
    SCRATCH_CONV_DX,  /* gradient of the padded copy */
    SCRATCH_ATTN,     /* attention row terms */
    SCRATCH_SLOTS
};
void *cuda_scratch(enum scratch_slot slot, size_t bytes);

/* ---- element types: load as float, store from float ---- */
template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

/* ---- block reductions (any blockDim.x that is a multiple of 32, up to 1024) ---- */
template <typename V> __device__ __forceinline__ V warp_sum(V v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The sum over the block, returned to every thread; every thread of the block
 * must call it. It starts with a barrier, so that consecutive calls may reuse
 * the shared array (and shared memory written before it is visible after). */
template <typename V> __device__ V block_sum(V v) {
    __shared__ V part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    V total = 0;
    for (int w = 0; w < nwarps; w++) total += part[w]; /* same order in every thread: one result */
    return total;
}

__device__ __forceinline__ float block_max(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < nwarps; w++) m = fmaxf(m, part[w]);
    return m;
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- shared reductions (reduce.cu) ---- */
/* out[c] += the sum over b < outer and i < inner of src[(b C + c) inner + i],
 * accumulated in double: bias gradients of linear (inner 1) and conv layers,
 * and the backward of add_broadcast. */
void cuda_channel_sums(float *out, const float *src, int64_t outer, int64_t channels, int64_t inner);

/* y[n, c, i] = x[n, c, i] + v[c] (or v[n, c] when per_image), over [N, C, inner];
 * y may be x; x NULL stands for zeros (y = the broadcast v). Bias adds of linear (N = rows, inner 1) and conv layers. */
void cuda_broadcast_add(float *y, const float *x, const float *v, int64_t n, int64_t c, int64_t inner, int per_image);

/* ---- the ops (one file per concern) ---- */
void cuda_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b);
void cuda_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy);
/* conv.cu; without cuDNN the table leaves conv2d NULL (reported as skipped). */
#ifdef LCM_CUDNN
#define CUDA_CONV2D cuda_conv2d
#define CUDA_CONV2D_BACKWARD cuda_conv2d_backward
#else
#define CUDA_CONV2D NULL
#define CUDA_CONV2D_BACKWARD NULL
#endif
void cuda_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p);
void cuda_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                          conv2d_params p);
void cuda_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                     int groups, float eps, int silu);
void cuda_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                              const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                              int silu);
void cuda_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                     float eps);
void cuda_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                              const tensor *rstd, const tensor *gamma, const tensor *dy);
void cuda_activation(tensor *y, const tensor *x, activation act);
void cuda_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act);
void cuda_geglu(tensor *y, const tensor *x);
void cuda_geglu_backward(tensor *dx, const tensor *x, const tensor *dy);
void cuda_softmax(tensor *y, const tensor *x);
void cuda_softmax_backward(tensor *dx, const tensor *y, const tensor *dy);
void cuda_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p);
void cuda_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                             const tensor *out, const tensor *lse, const tensor *dout, attention_params p);
void cuda_upsample_nearest(tensor *y, const tensor *x);
void cuda_upsample_nearest_backward(tensor *dx, const tensor *dy);
void cuda_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p);
void cuda_add_broadcast(tensor *y, const tensor *x, const tensor *v);
void cuda_add_broadcast_backward(tensor *dv, const tensor *dy);
double cuda_loss(const tensor *x, const tensor *y, loss_kind kind, float c);
void cuda_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss);
void cuda_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels);
void cuda_scale_shift(tensor *y, const tensor *x, const tensor *ss);
void cuda_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy);
void cuda_adamw(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p);
double cuda_sumsq(const tensor *x);

#endif
