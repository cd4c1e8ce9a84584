/* attention.cu - attention and its backward as strips of cuBLAS SGEMMs, FP32,
 * the algorithm of cpu_attention.c.
 *
 * A strip is one batch element's block of query rows [i0, i0 + nq) for every
 * head at once: S = scale Q K^T over the keys the strip sees, an exact
 * softmax along each row, then O = P V. The GEMMs are strided-batched over
 * the heads, so the scores of a strip are [H, nq, kend] in scratch; nq is
 * chosen so that a strip holds at most STRIP_FLOATS scores, which bounds the
 * scratch whatever the resolution (the whole [B, H, Lq, Lk] score matrix
 * never exists). The forward leaves the log-sum-exp of each row.
 *
 * The backward (FlashAttention-2) recomputes P = exp(S - lse) strip by strip
 * from q, k and lse; with D_i = dO_i . O_i and dP = dO V^T it forms
 * dS = P (dP - D) in place and then
 *   dV += P^T dO,  dK += scale dS^T Q  (summed over the strips: zeroed first, beta 1),
 *   dQ  = scale dS K                   (the strip's own rows: beta 0).
 * One pass over the strips gives all three. Every GEMM writes its outputs
 * alone (no atomics), so a run is the same each time.
 *
 * Tensors are [B, L, H w] with the heads interleaved in the channels: head h
 * of batch b is the column offset h w with row stride H w. That is the
 * GEMMs' leading dimension, and w the stride between the heads' matrices.
 * Causal (query i sees keys j <= i): a strip needs keys [0, kend) only,
 * kend = min(Lk, i0 + nq), and the row kernels zero the rest of each row.
 * The row kernels (softmax, gradient of the softmax, D) are one warp per row. */
#include "cuda_common.h"

/* The scores of one strip fill at most this many floats (64 MiB; the backward holds two strips). */
enum { STRIP_FLOATS = 1 << 24 };

typedef struct attn_geom {
    int batch, heads, lq, lk, d, dv;
    int64_t ldqk, ldv; /* row strides of q/k and of v/out */
    float scale;
    int causal;
} attn_geom;

static attn_geom geometry(const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    attn_geom g = {(int)q->shape[0], p.heads, (int)q->shape[1], (int)k->shape[1], (int)(q->shape[2] / p.heads),
                   (int)(v->shape[2] / p.heads), q->shape[2], v->shape[2], p.scale, p.causal};
    return g;
}

/* One strip: queries [i0, i0 + nq) of batch element b, keys [0, kend), all heads. Its
 * score rows are r = h nq + i (i < nq) with kend floats each. */
typedef struct strip {
    int b, i0, nq, kend;
    int heads, lq, causal;
} strip;

static strip strip_at(const attn_geom &g, int b, int i0, int rows) {
    int nq = g.lq - i0 < rows ? g.lq - i0 : rows;
    int kend = g.causal && i0 + nq < g.lk ? i0 + nq : g.lk; /* causal: no query of the strip sees past i0 + nq - 1 */
    strip s = {b, i0, nq, kend, g.heads, g.lq, g.causal};
    return s;
}

/* Query rows per strip: as many as keep a strip within STRIP_FLOATS, at least 1, at most Lq. */
static int strip_rows(const attn_geom &g) {
    int64_t rows = STRIP_FLOATS / ((int64_t)g.heads * g.lk);
    return (int)(rows < 1 ? 1 : rows > g.lq ? g.lq : rows);
}

/* Floats of one strip buffer, rounded up to 64 floats so that a second one after it stays aligned. */
static size_t strip_floats(const attn_geom &g, int rows) {
    size_t n = (size_t)g.heads * rows * g.lk;
    return (n + 63) & ~(size_t)63;
}

/* Row-major C_h = alpha op(A_h) op(B_h) + beta C_h for h < batch, the h-th matrices sa, sb, sc floats apart.
 * cuBLAS is column-major: a row-major [m, n] matrix is the column-major [n, m] one, its transpose. So the
 * row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: operands swapped, flags
 * kept (as linear.cu). */
static void gemm_heads(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int64_t lda,
                       int64_t sa, const float *b, int64_t ldb, int64_t sb, float beta, float *c, int64_t ldc, int64_t sc,
                       int batch) {
    CUBLAS_CHECK(cublasSgemmStridedBatched(cuda_cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, (int)ldb,
                                           (long long)sb, a, (int)lda, (long long)sa, &beta, c, (int)ldc,
                                           (long long)sc, batch));
}

/* First row of batch element b, query/key i, head 0, of a [B, len, H w] tensor with row stride ld. */
static inline const float *rows_from(const float *t, int64_t ld, int len, int b, int i) {
    return t + ((int64_t)b * len + i) * ld;
}

/* S[h] = scale Q_h K_h^T: [nq, kend] per head, kend floats a row, heads nq kend floats apart. */
static void strip_scores(float *S, const float *Q, const float *K, const attn_geom &g, const strip &s) {
    gemm_heads(0, 1, s.nq, s.kend, g.d, g.scale, rows_from(Q, g.ldqk, g.lq, s.b, s.i0), g.ldqk, g.d,
               rows_from(K, g.ldqk, g.lk, s.b, 0), g.ldqk, g.d, 0.0f, S, s.kend, (int64_t)s.nq * s.kend, g.heads);
}

/* ---- row kernels: one warp per score row of a strip ---- */

/* The strip's row of this warp (r < heads nq), or -1 for a warp past the end. */
__device__ __forceinline__ int64_t warp_row(const strip &s) {
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    return r < (int64_t)s.heads * s.nq ? r : -1;
}

/* Keys row r sees: all kend, or up to its own query when causal. */
__device__ __forceinline__ int visible_keys(const strip &s, int64_t r) {
    int i = s.i0 + (int)(r % s.nq);
    return s.causal && i + 1 < s.kend ? i + 1 : s.kend;
}

/* Index of row r's query in the [B, H, Lq] row terms (lse, D). */
__device__ __forceinline__ int64_t stat_index(const strip &s, int64_t r) {
    int h = (int)(r / s.nq), i = s.i0 + (int)(r % s.nq);
    return ((int64_t)s.b * s.heads + h) * s.lq + i;
}

/* Softmax of each score row in place; hidden keys get 0; LSE (may be NULL) gets max + log(sum). */
__global__ void k_strip_softmax(float *S, float *LSE, strip s) {
    int64_t r = warp_row(s);
    if (r < 0) return; /* whole warps leave together */
    int lane = threadIdx.x & 31, n = visible_keys(s, r);
    float *row = S + r * s.kend;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, row[j]);
    mx = warp_max(mx);
    float sum = 0;
    for (int j = lane; j < n; j += 32) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int j = lane; j < n; j += 32) row[j] *= inv;
    for (int j = n + lane; j < s.kend; j += 32) row[j] = 0.0f;
    if (LSE && lane == 0) LSE[stat_index(s, r)] = mx + logf(sum);
}

/* S -> P = exp(S - lse) and dP -> dS = P (dP - D) in place; hidden keys get 0 in both. */
__global__ void k_strip_softmax_grad(float *S, float *DP, const float *LSE, const float *DSUM, strip s) {
    int64_t r = warp_row(s);
    if (r < 0) return;
    int lane = threadIdx.x & 31, n = visible_keys(s, r);
    int64_t at = stat_index(s, r);
    float shift = LSE[at], dsum = DSUM[at];
    float *p = S + r * s.kend, *dp = DP + r * s.kend;
    for (int j = lane; j < n; j += 32) {
        float e = expf(p[j] - shift);
        p[j] = e;
        dp[j] = e * (dp[j] - dsum);
    }
    for (int j = n + lane; j < s.kend; j += 32) p[j] = 0.0f, dp[j] = 0.0f;
}

/* D[b, h, i] = dO_i . O_i, the row term of the softmax backward; one warp per row. */
__global__ void k_row_dots(float *D, const float *O, const float *DO, attn_geom g) {
    int64_t rows = (int64_t)g.batch * g.heads * g.lq;
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= rows) return; /* whole warps leave together */
    int b = (int)(r / ((int64_t)g.heads * g.lq)), h = (int)(r / g.lq % g.heads), i = (int)(r % g.lq);
    int64_t at = ((int64_t)b * g.lq + i) * g.ldv + (int64_t)h * g.dv;
    const float *o = O + at, *go = DO + at;
    float acc = 0;
    for (int t = lane; t < g.dv; t += 32) acc += o[t] * go[t];
    acc = warp_sum(acc);
    if (lane == 0) D[r] = acc;
}

/* Blocks of THREADS threads for one warp per row. */
static unsigned warp_blocks(int64_t rows) { return grid_dim((rows * 32 + THREADS - 1) / THREADS); }

/* ---- forward ---- */

void cuda_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    int rows = strip_rows(g);
    float *S = (float *)cuda_scratch(SCRATCH_ATTN, sizeof(float) * strip_floats(g, rows));
    const float *Q = CF(q), *K = CF(k), *V = CF(v);
    for (int b = 0; b < g.batch; b++)
        for (int i0 = 0; i0 < g.lq; i0 += rows) {
            strip s = strip_at(g, b, i0, rows);
            strip_scores(S, Q, K, g, s);
            k_strip_softmax<<<warp_blocks((int64_t)g.heads * s.nq), THREADS>>>(S, F(lse), s);
            LAUNCH_CHECK();
            /* O_h[i0 ..] = P_h V_h: [nq, kend] x [kend, dv] */
            gemm_heads(0, 0, s.nq, g.dv, s.kend, 1.0f, S, s.kend, (int64_t)s.nq * s.kend, rows_from(V, g.ldv, g.lk, b, 0),
                       g.ldv, g.dv, 0.0f, (float *)rows_from(F(out), g.ldv, g.lq, b, i0), g.ldv, g.dv, g.heads);
        }
}

/* ---- backward ---- */

void cuda_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                             const tensor *out, const tensor *lse, const tensor *dout, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    int rows = strip_rows(g);
    int64_t nrows = (int64_t)g.batch * g.heads * g.lq;
    size_t stats = ((size_t)nrows + 63) & ~(size_t)63, sf = strip_floats(g, rows);
    float *dsum = (float *)cuda_scratch(SCRATCH_ATTN, sizeof(float) * (stats + 2 * sf));
    float *S = dsum + stats, *DP = S + sf;
    const float *Q = CF(q), *K = CF(k), *V = CF(v), *DO = CF(dout);
    k_row_dots<<<warp_blocks(nrows), THREADS>>>(dsum, CF(out), DO, g);
    LAUNCH_CHECK();
    /* dK and dV are sums over the strips: zeroed here, each strip adds (beta 1). */
    if (dk) CUDA_CHECK(cudaMemsetAsync(dk->data, 0, tensor_nbytes(dk), 0));
    if (dv) CUDA_CHECK(cudaMemsetAsync(dv->data, 0, tensor_nbytes(dv), 0));
    for (int b = 0; b < g.batch; b++)
        for (int i0 = 0; i0 < g.lq; i0 += rows) {
            strip s = strip_at(g, b, i0, rows);
            int64_t ss = (int64_t)s.nq * s.kend; /* floats between the heads' strips */
            const float *Qs = rows_from(Q, g.ldqk, g.lq, b, i0), *DOs = rows_from(DO, g.ldv, g.lq, b, i0);
            const float *Kb = rows_from(K, g.ldqk, g.lk, b, 0), *Vb = rows_from(V, g.ldv, g.lk, b, 0);
            strip_scores(S, Q, K, g, s);
            /* dP_h = dO_h V_h^T: [nq, dv] x [dv, kend] */
            gemm_heads(0, 1, s.nq, s.kend, g.dv, 1.0f, DOs, g.ldv, g.dv, Vb, g.ldv, g.dv, 0.0f, DP, s.kend, ss, g.heads);
            k_strip_softmax_grad<<<warp_blocks((int64_t)g.heads * s.nq), THREADS>>>(S, DP, CF(lse), dsum, s);
            LAUNCH_CHECK();
            /* dV_h[0 .. kend) += P_h^T dO_h: [kend, nq] x [nq, dv] */
            if (dv)
                gemm_heads(1, 0, s.kend, g.dv, s.nq, 1.0f, S, s.kend, ss, DOs, g.ldv, g.dv, 1.0f,
                           (float *)rows_from(F(dv), g.ldv, g.lk, b, 0), g.ldv, g.dv, g.heads);
            /* dK_h[0 .. kend) += scale dS_h^T Q_h: [kend, nq] x [nq, d] */
            if (dk)
                gemm_heads(1, 0, s.kend, g.d, s.nq, g.scale, DP, s.kend, ss, Qs, g.ldqk, g.d, 1.0f,
                           (float *)rows_from(F(dk), g.ldqk, g.lk, b, 0), g.ldqk, g.d, g.heads);
            /* dQ_h[i0 ..] = scale dS_h K_h: [nq, kend] x [kend, d] */
            if (dq)
                gemm_heads(0, 0, s.nq, g.d, s.kend, g.scale, DP, s.kend, ss, Kb, g.ldqk, g.d, 0.0f,
                           (float *)rows_from(F(dq), g.ldqk, g.lq, b, i0), g.ldqk, g.d, g.heads);
        }
}
