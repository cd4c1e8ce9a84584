/* attention.cu - blocked ("flash") attention and its backward, FP32, the
 * same algorithm as cpu_attention.c.
 *
 * Forward: one block per (batch, head, tile of FWD_BQ queries), four warps
 * of four query rows each. Key/value tiles of FWD_BK keys pass through shared
 * memory; for each row a warp computes the tile's scores (lane j: key j),
 * updates the running max and sum (online softmax) and rescales its output
 * accumulator (lane owns output columns lane, lane + 32, ...: dv <= 256). The
 * log-sum-exp of each row is left for the backward.
 *
 * Backward (FlashAttention-2), as on the CPU in two passes so that every
 * gradient row has one owner: no atomics, the same result every run.
 *   rows:  D_i = dO_i . O_i (one warp per row);
 *   pass A, one block per key tile: over the query tiles that see it,
 *          P = exp(S - lse), dS = P (dO V^T - D), dV += P^T dO, dK += dS^T (scale Q);
 *   pass B, one block per query tile: over its key tiles, dQ += dS K; dQ *= scale.
 * Both passes use BQ x BK = 16 x 16 tiles and 256 threads: one thread per
 * tile entry for P and dS, one per output element for the accumulations.
 *
 * Tensors are [B, L, H w] with the heads interleaved in the channels; a head
 * is a column offset and a row stride. Shared memory grows with the head
 * dims (about 100 KiB for d = dv = 256); attention_smem_check dies with a
 * message when the device cannot hold a shape's tiles. */
#include "cuda_common.h"

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

/* Row i of head h of batch b in a [B, len, H w] tensor (ld = H w). */
__device__ __forceinline__ int64_t row_at(int64_t ld, int len, int b, int h, int w, int i) {
    return ((int64_t)b * len + i) * ld + (int64_t)h * w;
}

/* Keys a query tile sees: all, or up to its last query when causal. */
__device__ __forceinline__ int key_end(const attn_geom &g, int i0, int nq) {
    return g.causal && i0 + nq < g.lk ? i0 + nq : g.lk;
}

/* dst[i][t] (row stride ld_dst) = rows r0 + i of head h (width w) for i < n, 0 for n <= i < rows. */
__device__ void load_rows(float *dst, int ld_dst, const float *src, int64_t ld, int len, int b, int h, int w, int r0, int n,
                          int rows, float mul) {
    for (int idx = threadIdx.x; idx < rows * w; idx += blockDim.x) {
        int i = idx / w, t = idx % w;
        dst[i * ld_dst + t] = i < n ? src[row_at(ld, len, b, h, w, r0 + i) + t] * mul : 0.0f;
    }
}

/* ---- forward ---- */

enum { FWD_BQ = 16, FWD_BK = 32, FWD_WARPS = 4, ROWS_PER_WARP = FWD_BQ / FWD_WARPS, DV_PER_LANE = 8, MAX_DV = 32 * DV_PER_LANE };

__global__ void __launch_bounds__(FWD_WARPS * 32)
k_attention_fwd(float *O, float *LSE, const float *Q, const float *K, const float *V, attn_geom g) {
    extern __shared__ float smem[];
    const int d = g.d, dv = g.dv, kld = d + 1; /* K rows padded: lanes reading one column hit distinct banks */
    float *qs = smem, *ks = qs + FWD_BQ * d, *vs = ks + FWD_BK * kld;
    int qblocks = (g.lq + FWD_BQ - 1) / FWD_BQ;
    int qb = blockIdx.x % qblocks, h = blockIdx.x / qblocks % g.heads, b = blockIdx.x / qblocks / g.heads;
    int i0 = qb * FWD_BQ, nq = min(FWD_BQ, g.lq - i0);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    load_rows(qs, d, Q, g.ldqk, g.lq, b, h, d, i0, nq, FWD_BQ, g.scale); /* queries times scale, as the CPU */
    float m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][DV_PER_LANE];
#pragma unroll
    for (int rr = 0; rr < ROWS_PER_WARP; rr++) {
        m[rr] = -INFINITY, l[rr] = 0;
#pragma unroll
        for (int c = 0; c < DV_PER_LANE; c++) acc[rr][c] = 0;
    }
    int kend = key_end(g, i0, nq);
    for (int j0 = 0; j0 < kend; j0 += FWD_BK) {
        int nk = min(FWD_BK, kend - j0);
        __syncthreads(); /* the previous tile is consumed */
        load_rows(ks, kld, K, g.ldqk, g.lk, b, h, d, j0, nk, FWD_BK, 1.0f);
        load_rows(vs, dv, V, g.ldv, g.lk, b, h, dv, j0, nk, FWD_BK, 1.0f);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < ROWS_PER_WARP; rr++) {
            int i = warp * ROWS_PER_WARP + rr; /* the same for the whole warp: shuffles stay converged */
            if (i >= nq) continue;
            float s = -INFINITY; /* lane j's score; masked and missing keys stay -inf */
            if (lane < nk && !(g.causal && j0 + lane > i0 + i)) {
                const float *qr = qs + i * d, *kr = ks + lane * kld;
                float dot = 0;
                for (int t = 0; t < d; t++) dot += qr[t] * kr[t];
                s = dot;
            }
            float mx = fmaxf(m[rr], warp_max(s));
            float ref = mx == -INFINITY ? 0.0f : mx; /* a row with nothing visible yet: every exp is 0 */
            float alpha = expf(m[rr] - ref), p = expf(s - ref);
            l[rr] = l[rr] * alpha + warp_sum(p);
            m[rr] = mx;
#pragma unroll
            for (int c = 0; c < DV_PER_LANE; c++) acc[rr][c] *= alpha;
            for (int j = 0; j < nk; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j);
                const float *vr = vs + j * dv;
#pragma unroll
                for (int c = 0; c < DV_PER_LANE; c++)
                    if (lane + 32 * c < dv) acc[rr][c] += pj * vr[lane + 32 * c];
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < ROWS_PER_WARP; rr++) {
        int i = warp * ROWS_PER_WARP + rr;
        if (i >= nq) continue;
        float inv = 1.0f / l[rr];
        float *dst = O + row_at(g.ldv, g.lq, b, h, dv, i0 + i);
#pragma unroll
        for (int c = 0; c < DV_PER_LANE; c++)
            if (lane + 32 * c < dv) dst[lane + 32 * c] = acc[rr][c] * inv;
        if (LSE && lane == 0) LSE[((int64_t)b * g.heads + h) * g.lq + i0 + i] = m[rr] + logf(l[rr]);
    }
}

/* Opts a kernel into more than the default 48 KiB of dynamic shared memory, or dies naming the shape. */
static void attention_smem_check(const void *kernel, size_t bytes, const char *what, const attn_geom &g) {
    int dev, optin;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (bytes > (size_t)optin)
        die("cuda attention %s: head dims %d/%d need %zu bytes of shared memory, the device has %d", what, g.d, g.dv, bytes,
            optin);
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

void cuda_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    if (g.dv > MAX_DV) die("cuda attention: value head dim %d (at most %d)", g.dv, MAX_DV);
    size_t smem = sizeof(float) * ((size_t)FWD_BQ * g.d + (size_t)FWD_BK * (g.d + 1) + (size_t)FWD_BK * g.dv);
    attention_smem_check((const void *)k_attention_fwd, smem, "forward", g);
    int64_t blocks = (int64_t)g.batch * g.heads * ((g.lq + FWD_BQ - 1) / FWD_BQ);
    k_attention_fwd<<<grid_dim(blocks), FWD_WARPS * 32, smem>>>(F(out), F(lse), CF(q), CF(k), CF(v), g);
    LAUNCH_CHECK();
}

/* ---- backward ---- */

enum { BQ = 16, BK = 16, BWD_THREADS = BQ * BK };

/* D[b, h, i] = dO_i . O_i, one warp per row. */
__global__ void k_row_dots(float *D, const float *O, const float *DO, attn_geom g) {
    int64_t rows = (int64_t)g.batch * g.heads * g.lq;
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= rows) return; /* whole warps leave together */
    int b = (int)(r / ((int64_t)g.heads * g.lq)), h = (int)(r / g.lq % g.heads), i = (int)(r % g.lq);
    const float *o = O + row_at(g.ldv, g.lq, b, h, g.dv, i), *go = DO + row_at(g.ldv, g.lq, b, h, g.dv, i);
    float acc = 0;
    for (int t = lane; t < g.dv; t += 32) acc += o[t] * go[t];
    acc = warp_sum(acc);
    if (lane == 0) D[r] = acc;
}

/* The tiles of a query block [i0, i0 + nq) and a key block [j0, j0 + nk), in shared memory. */
typedef struct bwd_tiles {
    float *qs;  /* [BQ][d] queries times scale */
    float *dos; /* [BQ][dv] output gradients */
    float *ks;  /* [BK][d + 1] keys */
    float *vs;  /* [BK][dv + 1] values */
    float *ps;  /* [BQ][BK] probabilities */
    float *dss; /* [BQ][BK] score gradients */
    float *lse, *dsum; /* [BQ] per query row */
} bwd_tiles;

/* Thread (i, j) of the BQ x BK tile: P = exp(S - lse_i) and dS = P (dP - D_i),
 * 0 where masked or outside. */
__device__ void probability_tile(const bwd_tiles &t, const attn_geom &g, int i0, int nq, int j0, int nk) {
    int i = threadIdx.x / BK, j = threadIdx.x % BK;
    float p = 0, ds = 0;
    if (i < nq && j < nk && !(g.causal && j0 + j > i0 + i)) {
        const float *qr = t.qs + i * g.d, *kr = t.ks + j * (g.d + 1), *dor = t.dos + i * g.dv, *vr = t.vs + j * (g.dv + 1);
        float s = 0, dp = 0;
        for (int c = 0; c < g.d; c++) s += qr[c] * kr[c];
        for (int c = 0; c < g.dv; c++) dp += dor[c] * vr[c];
        p = expf(s - t.lse[i]);
        ds = p * (dp - t.dsum[i]);
    }
    t.ps[i * BK + j] = p, t.dss[i * BK + j] = ds;
}

/* Query-side tiles: scaled queries, output gradients, lse and D of rows i0.. */
__device__ void load_query_side(const bwd_tiles &t, const float *Q, const float *DO, const float *LSE, const float *DSUM,
                                const attn_geom &g, int b, int h, int i0, int nq) {
    load_rows(t.qs, g.d, Q, g.ldqk, g.lq, b, h, g.d, i0, nq, BQ, g.scale);
    load_rows(t.dos, g.dv, DO, g.ldv, g.lq, b, h, g.dv, i0, nq, BQ, 1.0f);
    int64_t base = ((int64_t)b * g.heads + h) * g.lq + i0;
    for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
        t.lse[i] = i < nq ? LSE[base + i] : 0.0f;
        t.dsum[i] = i < nq ? DSUM[base + i] : 0.0f;
    }
}

__device__ void load_key_side(const bwd_tiles &t, const float *K, const float *V, const attn_geom &g, int b, int h, int j0,
                              int nk) {
    load_rows(t.ks, g.d + 1, K, g.ldqk, g.lk, b, h, g.d, j0, nk, BK, 1.0f);
    load_rows(t.vs, g.dv + 1, V, g.ldv, g.lk, b, h, g.dv, j0, nk, BK, 1.0f);
}

/* Carves the shared tiles; extra holds the pass's own accumulators after them. */
__device__ bwd_tiles carve(float *smem, const attn_geom &g, float **extra) {
    bwd_tiles t;
    t.qs = smem, smem += BQ * g.d;
    t.dos = smem, smem += BQ * g.dv;
    t.ks = smem, smem += BK * (g.d + 1);
    t.vs = smem, smem += BK * (g.dv + 1);
    t.ps = smem, smem += BQ * BK;
    t.dss = smem, smem += BQ * BK;
    t.lse = smem, smem += BQ;
    t.dsum = smem, smem += BQ;
    *extra = smem;
    return t;
}

static size_t tiles_floats(const attn_geom &g) {
    return (size_t)BQ * g.d + (size_t)BQ * g.dv + (size_t)BK * (g.d + 1) + (size_t)BK * (g.dv + 1) + 2 * BQ * BK + 2 * BQ;
}

/* Pass A: dK and dV of one key tile, over every query tile that sees it. */
__global__ void __launch_bounds__(BWD_THREADS)
k_attention_bwd_kv(float *DK, float *DV, const float *Q, const float *K, const float *V, const float *DO, const float *LSE,
                   const float *DSUM, attn_geom g) {
    extern __shared__ float smem[];
    float *extra;
    bwd_tiles t = carve(smem, g, &extra);
    float *dks = extra, *dvs = extra + BK * g.d; /* [BK][d], [BK][dv] */
    int kblocks = (g.lk + BK - 1) / BK;
    int kb = blockIdx.x % kblocks, h = blockIdx.x / kblocks % g.heads, b = blockIdx.x / kblocks / g.heads;
    int j0 = kb * BK, nk = min(BK, g.lk - j0);
    load_key_side(t, K, V, g, b, h, j0, nk);
    for (int idx = threadIdx.x; idx < BK * g.d; idx += blockDim.x) dks[idx] = 0;
    for (int idx = threadIdx.x; idx < BK * g.dv; idx += blockDim.x) dvs[idx] = 0;
    /* Causal: query tiles wholly before key j0 see none of this tile. */
    for (int i0 = g.causal ? j0 / BQ * BQ : 0; i0 < g.lq; i0 += BQ) {
        int nq = min(BQ, g.lq - i0);
        __syncthreads(); /* the previous query tile is consumed */
        load_query_side(t, Q, DO, LSE, DSUM, g, b, h, i0, nq);
        __syncthreads();
        probability_tile(t, g, i0, nq, j0, nk);
        __syncthreads();
        /* One owner per (key, column); query rows in ascending order, as the CPU. */
        for (int idx = threadIdx.x; idx < BK * g.dv; idx += blockDim.x) {
            int j = idx / g.dv, c = idx % g.dv;
            float a = dvs[idx];
            for (int i = 0; i < nq; i++) a += t.ps[i * BK + j] * t.dos[i * g.dv + c];
            dvs[idx] = a;
        }
        for (int idx = threadIdx.x; idx < BK * g.d; idx += blockDim.x) {
            int j = idx / g.d, c = idx % g.d;
            float a = dks[idx];
            for (int i = 0; i < nq; i++) a += t.dss[i * BK + j] * t.qs[i * g.d + c]; /* qs is scale q: dK = scale dS^T Q */
            dks[idx] = a;
        }
    }
    __syncthreads();
    if (DK)
        for (int idx = threadIdx.x; idx < nk * g.d; idx += blockDim.x)
            DK[row_at(g.ldqk, g.lk, b, h, g.d, j0 + idx / g.d) + idx % g.d] = dks[idx];
    if (DV)
        for (int idx = threadIdx.x; idx < nk * g.dv; idx += blockDim.x)
            DV[row_at(g.ldv, g.lk, b, h, g.dv, j0 + idx / g.dv) + idx % g.dv] = dvs[idx];
}

/* Pass B: dQ of one query tile, over the key tiles it sees. */
__global__ void __launch_bounds__(BWD_THREADS)
k_attention_bwd_q(float *DQ, const float *Q, const float *K, const float *V, const float *DO, const float *LSE,
                  const float *DSUM, attn_geom g) {
    extern __shared__ float smem[];
    float *extra;
    bwd_tiles t = carve(smem, g, &extra);
    float *dqs = extra; /* [BQ][d] */
    int qblocks = (g.lq + BQ - 1) / BQ;
    int qb = blockIdx.x % qblocks, h = blockIdx.x / qblocks % g.heads, b = blockIdx.x / qblocks / g.heads;
    int i0 = qb * BQ, nq = min(BQ, g.lq - i0);
    load_query_side(t, Q, DO, LSE, DSUM, g, b, h, i0, nq);
    for (int idx = threadIdx.x; idx < BQ * g.d; idx += blockDim.x) dqs[idx] = 0;
    int kend = key_end(g, i0, nq);
    for (int j0 = 0; j0 < kend; j0 += BK) {
        int nk = min(BK, kend - j0);
        __syncthreads(); /* the previous key tile is consumed */
        load_key_side(t, K, V, g, b, h, j0, nk);
        __syncthreads();
        probability_tile(t, g, i0, nq, j0, nk);
        __syncthreads();
        for (int idx = threadIdx.x; idx < BQ * g.d; idx += blockDim.x) {
            int i = idx / g.d, c = idx % g.d;
            float a = dqs[idx];
            for (int j = 0; j < nk; j++) a += t.dss[i * BK + j] * t.ks[j * (g.d + 1) + c];
            dqs[idx] = a;
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < nq * g.d; idx += blockDim.x)
        DQ[row_at(g.ldqk, g.lq, b, h, g.d, i0 + idx / g.d) + idx % g.d] = dqs[idx] * g.scale;
}

void cuda_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                             const tensor *out, const tensor *lse, const tensor *dout, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    int64_t rows = (int64_t)g.batch * g.heads * g.lq, bh = (int64_t)g.batch * g.heads;
    float *dsum = (float *)cuda_scratch(SCRATCH_ATTN, sizeof(float) * (size_t)rows);
    k_row_dots<<<grid_dim((rows * 32 + THREADS - 1) / THREADS), THREADS>>>(dsum, CF(out), CF(dout), g);
    LAUNCH_CHECK();
    if (dk || dv) {
        size_t smem = sizeof(float) * (tiles_floats(g) + (size_t)BK * g.d + (size_t)BK * g.dv);
        attention_smem_check((const void *)k_attention_bwd_kv, smem, "backward (dk, dv)", g);
        k_attention_bwd_kv<<<grid_dim(bh * ((g.lk + BK - 1) / BK)), BWD_THREADS, smem>>>(
            F(dk), F(dv), CF(q), CF(k), CF(v), CF(dout), CF(lse), dsum, g);
        LAUNCH_CHECK();
    }
    if (dq) {
        size_t smem = sizeof(float) * (tiles_floats(g) + (size_t)BQ * g.d);
        attention_smem_check((const void *)k_attention_bwd_q, smem, "backward (dq)", g);
        k_attention_bwd_q<<<grid_dim(bh * ((g.lq + BQ - 1) / BQ)), BWD_THREADS, smem>>>(F(dq), CF(q), CF(k), CF(v), CF(dout),
                                                                                      CF(lse), dsum, g);
        LAUNCH_CHECK();
    }
}
