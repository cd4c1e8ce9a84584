/* cpu_nn.h - the CPU backend's neural-network ops (internal).
 *
 * backend_cpu.c points its op table at these; ops.c has checked every
 * argument before they run. Loops are OpenMP-parallel over independent rows,
 * planes or tiles, and GEMM-shaped work goes to OpenBLAS. */
#ifndef LCM_CPU_NN_H
#define LCM_CPU_NN_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

/* A scratch buffer of the calling thread that grows and is never shrunk, so
 * that ops allocate only until they have seen their largest shapes. One op
 * at a time per calling thread: an op must not call another that uses it. */
float *cpu_workspace(size_t nfloats);

/* exp(x) in plain float arithmetic that vectorises inside `omp simd` loops
 * (no library call): Cody-Waite reduction by ln 2, SLEEF's degree-7
 * polynomial, scaling by 2^n through the exponent bits; within 2 ulp.
 * Underflows to exactly 0 below -87.3 (so exp(-inf) = 0), saturates at 88.7. */
static inline float cpu_expf(float x) {
    float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    xc = xc == xc ? xc : 0.0f; /* NaN: computed on 0 (no undefined int conversion), returned as NaN below */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float s = xc - n * 0.693145751953125f;
    s = s - n * 1.428606765330187045e-06f;
    float u = 0.000198527617612853646278381f;
    u = u * s + 0.00139304355252534151077271f;
    u = u * s + 0.00833336077630519866943359f;
    u = u * s + 0.0416664853692054748535156f;
    u = u * s + 0.166666671633720397949219f;
    u = u * s + 0.5f;
    u = 1.0f + (s * s * u + s);
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return x != x ? x : x < -87.3f ? 0.0f : u * scale.f;
}

/* Vectorised loops (lib/cpu_vexp.c; AVX2+FMA where the CPU has it). */
float cpu_max(const float *x, int64_t n);
/* x[i] = exp(x[i] - shift); returns the sum of the new x. */
float cpu_exp_shift_sum(float *x, int64_t n, float shift);
/* The softmax backward of a strip row: p[i] = exp(p[i] - shift[i step]) (scores
 * in, probabilities out) and dp[i] = p[i] (dp[i] - dsum[i step]); step 0
 * broadcasts one shift and dsum, step 1 takes one per element. */
void cpu_softmax_grad(float *p, float *dp, int64_t n, const float *shift, const float *dsum, int64_t step);

/* C[m, n] = beta C + A[m, k] B[k, n], row-major, on the calling thread only
 * (lib/cpu_gemm.c: an AVX-512 kernel where the CPU has it, else OpenBLAS). */
void cpu_gemm_nn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
int cpu_gemm_has_avx512(void);

/* Threads that OpenMP loops of this call may use. */
int cpu_threads(void);

void cpu_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b);
void cpu_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy);
void cpu_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p);
void cpu_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                         conv2d_params p);
void cpu_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                    int groups, float eps, int silu);
void cpu_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                             const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                             int silu);
void cpu_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                    float eps);
void cpu_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                             const tensor *rstd, const tensor *gamma, const tensor *dy);
void cpu_activation(tensor *y, const tensor *x, activation act);
void cpu_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act);
void cpu_geglu(tensor *y, const tensor *x);
void cpu_geglu_backward(tensor *dx, const tensor *x, const tensor *dy);
void cpu_softmax(tensor *y, const tensor *x);
void cpu_softmax_backward(tensor *dx, const tensor *y, const tensor *dy);
void cpu_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p);
void cpu_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                            const tensor *out, const tensor *lse, const tensor *dout, attention_params p);
void cpu_upsample_nearest(tensor *y, const tensor *x);
void cpu_upsample_nearest_backward(tensor *dx, const tensor *dy);
void cpu_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p);
void cpu_add_broadcast(tensor *y, const tensor *x, const tensor *v);
void cpu_add_broadcast_backward(tensor *dv, const tensor *dy);
double cpu_loss(const tensor *x, const tensor *y, loss_kind kind, float c);
void cpu_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss);
void cpu_embedding(tensor *y, const tensor *table, const tensor *ids);
void cpu_transpose(tensor *y, const tensor *x);
void cpu_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels);
void cpu_scale_shift(tensor *y, const tensor *x, const tensor *ss);
void cpu_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy);

void cpu_adamw(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p);
double cpu_sumsq(const tensor *x);

#endif
