/* cpu_attention.c - blocked ("flash") attention and its backward.
 *
 * Each task is one (batch, head, block of BQ queries). It walks the keys in
 * blocks of BK, holding only a [BQ, BK] score tile: an online softmax keeps a
 * running max and sum per query row and rescales the output accumulator when
 * the max grows. The forward leaves the log-sum-exp of each row; the backward
 * (FlashAttention-2) recomputes each probability tile from q, k and that
 * log-sum-exp. It runs in two passes so that every gradient row has one
 * owner and no locks or atomics are needed: a pass over key blocks gives dK
 * and dV, a pass over query blocks gives dQ.
 *
 * Tensors are [B, L, H d] with the heads interleaved in the channels, as the
 * projections produce them; a head is a column offset and a row stride. The
 * tile products are plain loops over contiguous rows (the key block is
 * transposed once per tile) that the compiler vectorises (omp simd, and an
 * inline exp); they run inside the OpenMP tasks, where calling the threaded
 * OpenBLAS would oversubscribe (tried: [128, Lk] GEMM tiles between OpenMP
 * softmax loops ran the forward 1.8x slower on 2 cores, the threads of the
 * two runtimes spinning against each other). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

enum { BQ = 32, BK = 64 };

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

/* Row i of head h of batch b in a [B, L, H w] tensor. */
static inline const float *row_of(const float *t, int64_t ld, int len, int b, int h, int w, int i) {
    return t + ((int64_t)b * len + i) * ld + (int64_t)h * w;
}

/* Per-thread scratch, in floats, each part rounded up to 16 floats (64 bytes). */
typedef struct tile_scratch {
    float *qs;  /* [BQ, d] queries times scale */
    float *kt;  /* [d, BK] key block, transposed */
    float *vt;  /* [dv, BK] value block, transposed */
    float *s;   /* [BQ, BK] scores, then probabilities */
    float *ds;  /* [BQ, BK] gradient of probabilities, then of scores */
    float *acc; /* output / gradient accumulators */
    float *m, *l;
} tile_scratch;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t scratch_floats(const attn_geom *g) {
    size_t dmax = (size_t)(g->d > g->dv ? g->d : g->dv);
    return round16((size_t)BQ * g->d) + round16((size_t)g->d * BK) + round16((size_t)g->dv * BK) + 2 * round16(BQ * BK) +
           round16((size_t)BK * (g->d + g->dv) > BQ * dmax ? (size_t)BK * (g->d + g->dv) : BQ * dmax) + 2 * round16(BQ);
}

static tile_scratch carve(float *base, const attn_geom *g) {
    tile_scratch t;
    size_t dmax = (size_t)(g->d > g->dv ? g->d : g->dv);
    t.qs = base, base += round16((size_t)BQ * g->d);
    t.kt = base, base += round16((size_t)g->d * BK);
    t.vt = base, base += round16((size_t)g->dv * BK);
    t.s = base, base += round16(BQ * BK);
    t.ds = base, base += round16(BQ * BK);
    t.acc = base, base += round16((size_t)BK * (g->d + g->dv) > BQ * dmax ? (size_t)BK * (g->d + g->dv) : BQ * dmax);
    t.m = base, base += round16(BQ);
    t.l = base;
    return t;
}

static void load_scaled_queries(float *qs, const float *Q, const attn_geom *g, int b, int h, int i0, int nq) {
    for (int i = 0; i < nq; i++) {
        const float *src = row_of(Q, g->ldqk, g->lq, b, h, g->d, i0 + i);
        for (int t = 0; t < g->d; t++) qs[i * g->d + t] = src[t] * g->scale;
    }
}

/* dst[t][j] = rows j0 + j of head h, width w, for j < nk. */
static void load_transposed(float *dst, const float *src, int64_t ld, int w, const attn_geom *g, int b, int h, int j0, int nk) {
    for (int j = 0; j < nk; j++) {
        const float *row = row_of(src, ld, g->lk, b, h, w, j0 + j);
        for (int t = 0; t < w; t++) dst[t * BK + j] = row[t];
    }
}

/* out[i][j] = sum_t a_i[t] bt[t][j], a_i = a + i*lda, over an [n, nk] tile. */
static void tile_product(float *out, const float *a, int64_t lda, int n, const float *bt, int nk, int w) {
    for (int i = 0; i < n; i++) {
        float *o = out + i * BK;
        const float *ai = a + i * lda;
        for (int j = 0; j < nk; j++) o[j] = 0;
        for (int t = 0; t < w; t++) {
            float av = ai[t];
            const float *bj = bt + t * BK;
#pragma omp simd
            for (int j = 0; j < nk; j++) o[j] += av * bj[j];
        }
    }
}

/* Causal: query i0 + i sees key j0 + j only when j0 + j <= i0 + i. */
static void mask_future(float *s, int i0, int nq, int j0, int nk) {
    if (j0 + nk - 1 <= i0) return;
    for (int i = 0; i < nq; i++) {
        int first_hidden = i0 + i - j0 + 1;
        for (int j = first_hidden > 0 ? first_hidden : 0; j < nk; j++) s[i * BK + j] = -INFINITY;
    }
}

/* Keys a query block sees: all, or up to its last query when causal. */
static int key_end(const attn_geom *g, int i0, int nq) { return g->causal && i0 + nq < g->lk ? i0 + nq : g->lk; }

static void forward_tile(float *O, float *LSE, const float *Q, const float *K, const float *V, const attn_geom *g, int b,
                         int h, int i0, tile_scratch *ts) {
    int nq = g->lq - i0 < BQ ? g->lq - i0 : BQ, d = g->d, dv = g->dv;
    load_scaled_queries(ts->qs, Q, g, b, h, i0, nq);
    for (int i = 0; i < nq; i++) ts->m[i] = -INFINITY, ts->l[i] = 0;
    memset(ts->acc, 0, sizeof(float) * (size_t)nq * dv);
    int kend = key_end(g, i0, nq);
    for (int j0 = 0; j0 < kend; j0 += BK) {
        int nk = kend - j0 < BK ? kend - j0 : BK;
        load_transposed(ts->kt, K, g->ldqk, d, g, b, h, j0, nk);
        tile_product(ts->s, ts->qs, d, nq, ts->kt, nk, d);
        if (g->causal) mask_future(ts->s, i0, nq, j0, nk);
        for (int i = 0; i < nq; i++) {
            float *s = ts->s + i * BK, *o = ts->acc + i * dv, mx = ts->m[i], sum = 0;
            for (int j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
            float alpha = expf(ts->m[i] - mx); /* 0 on the first block, where m is -inf */
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < nk; j++) s[j] = cpu_expf(s[j] - mx), sum += s[j];
            ts->l[i] = ts->l[i] * alpha + sum, ts->m[i] = mx;
            for (int t = 0; t < dv; t++) o[t] *= alpha;
            for (int j = 0; j < nk; j++) {
                float p = s[j];
                const float *vr = row_of(V, g->ldv, g->lk, b, h, dv, j0 + j);
#pragma omp simd
                for (int t = 0; t < dv; t++) o[t] += p * vr[t];
            }
        }
    }
    for (int i = 0; i < nq; i++) {
        float *dst = (float *)row_of(O, g->ldv, g->lq, b, h, dv, i0 + i), inv = 1.0f / ts->l[i];
        for (int t = 0; t < dv; t++) dst[t] = ts->acc[i * dv + t] * inv;
        if (LSE) LSE[((int64_t)b * g->heads + h) * g->lq + i0 + i] = ts->m[i] + logf(ts->l[i]);
    }
}

void cpu_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    size_t per_thread = scratch_floats(&g);
    float *scratch = cpu_workspace(per_thread * (size_t)cpu_threads());
    int qblocks = (g.lq + BQ - 1) / BQ;
    int64_t tasks = (int64_t)g.batch * g.heads * qblocks;
#pragma omp parallel
    {
        tile_scratch ts = carve(scratch + per_thread * (size_t)omp_get_thread_num(), &g);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; task++) {
            int b = (int)(task / ((int64_t)g.heads * qblocks)), h = (int)(task / qblocks % g.heads), qb = (int)(task % qblocks);
            forward_tile(out->data, lse ? lse->data : NULL, q->data, k->data, v->data, &g, b, h, qb * BQ, &ts);
        }
    }
}

/* Shared by both backward passes: for queries [i0, i0+nq) and keys
 * [j0, j0+nk), ts->s = P (recomputed from the log-sum-exp) and
 * ts->ds = dS = P (dP - D), with dP = dO V^T. kt and vt must hold the block. */
typedef struct backward_inputs {
    const float *q, *dout, *lse, *dsum; /* dsum: D_i = dO_i . O_i per row */
} backward_inputs;

static void probability_tiles(const backward_inputs *in, const attn_geom *g, int b, int h, int i0, int nq, int j0, int nk,
                              tile_scratch *ts) {
    const float *lse = in->lse + ((int64_t)b * g->heads + h) * g->lq + i0;
    const float *dsum = in->dsum + ((int64_t)b * g->heads + h) * g->lq + i0;
    tile_product(ts->s, ts->qs, g->d, nq, ts->kt, nk, g->d);
    if (g->causal) mask_future(ts->s, i0, nq, j0, nk);
    const float *dout0 = row_of(in->dout, g->ldv, g->lq, b, h, g->dv, i0);
    tile_product(ts->ds, dout0, g->ldv, nq, ts->vt, nk, g->dv);
    for (int i = 0; i < nq; i++) {
        float *s = ts->s + i * BK, *ds = ts->ds + i * BK, l = lse[i], dd = dsum[i];
#pragma omp simd
        for (int j = 0; j < nk; j++) {
            s[j] = cpu_expf(s[j] - l);
            ds[j] = s[j] * (ds[j] - dd);
        }
    }
}

/* Pass A: dK and dV of one key block, summed over every query block that sees it. */
static void key_block_grads(float *DK, float *DV, const float *K, const float *V, const backward_inputs *in,
                            const attn_geom *g, int b, int h, int j0, tile_scratch *ts) {
    int nk = g->lk - j0 < BK ? g->lk - j0 : BK, d = g->d, dv = g->dv;
    float *dk = ts->acc, *dvacc = ts->acc + (size_t)BK * d;
    memset(ts->acc, 0, sizeof(float) * (size_t)BK * (d + dv));
    load_transposed(ts->kt, K, g->ldqk, d, g, b, h, j0, nk);
    load_transposed(ts->vt, V, g->ldv, dv, g, b, h, j0, nk);
    int first = g->causal ? j0 / BQ * BQ : 0;
    for (int i0 = first; i0 < g->lq; i0 += BQ) {
        int nq = g->lq - i0 < BQ ? g->lq - i0 : BQ;
        load_scaled_queries(ts->qs, in->q, g, b, h, i0, nq);
        probability_tiles(in, g, b, h, i0, nq, j0, nk, ts);
        for (int i = 0; i < nq; i++) {
            const float *dor = row_of(in->dout, g->ldv, g->lq, b, h, dv, i0 + i), *qsr = ts->qs + i * d;
            const float *p = ts->s + i * BK, *ds = ts->ds + i * BK;
            for (int j = 0; j < nk; j++) {
                float pj = p[j], dsj = ds[j];
                float *dvr = dvacc + j * dv, *dkr = dk + j * d;
#pragma omp simd
                for (int t = 0; t < dv; t++) dvr[t] += pj * dor[t];
#pragma omp simd
                for (int t = 0; t < d; t++) dkr[t] += dsj * qsr[t]; /* qs holds scale q: dK = scale dS^T Q */
            }
        }
    }
    for (int j = 0; j < nk; j++) {
        if (DK) memcpy((float *)row_of(DK, g->ldqk, g->lk, b, h, d, j0 + j), dk + j * d, sizeof(float) * (size_t)d);
        if (DV) memcpy((float *)row_of(DV, g->ldv, g->lk, b, h, dv, j0 + j), dvacc + j * dv, sizeof(float) * (size_t)dv);
    }
}

/* Pass B: dQ of one query block, summed over the key blocks it sees. */
static void query_block_grads(float *DQ, const float *K, const float *V, const backward_inputs *in, const attn_geom *g,
                              int b, int h, int i0, tile_scratch *ts) {
    int nq = g->lq - i0 < BQ ? g->lq - i0 : BQ, d = g->d, dv = g->dv;
    float *dq = ts->acc;
    memset(dq, 0, sizeof(float) * (size_t)nq * d);
    load_scaled_queries(ts->qs, in->q, g, b, h, i0, nq);
    int kend = key_end(g, i0, nq);
    for (int j0 = 0; j0 < kend; j0 += BK) {
        int nk = kend - j0 < BK ? kend - j0 : BK;
        load_transposed(ts->kt, K, g->ldqk, d, g, b, h, j0, nk);
        load_transposed(ts->vt, V, g->ldv, dv, g, b, h, j0, nk);
        probability_tiles(in, g, b, h, i0, nq, j0, nk, ts);
        for (int i = 0; i < nq; i++) {
            const float *ds = ts->ds + i * BK;
            float *dqr = dq + i * d;
            for (int j = 0; j < nk; j++) {
                const float *kr = row_of(K, g->ldqk, g->lk, b, h, d, j0 + j);
                float dsj = ds[j];
#pragma omp simd
                for (int t = 0; t < d; t++) dqr[t] += dsj * kr[t];
            }
        }
    }
    for (int i = 0; i < nq; i++) {
        float *dst = (float *)row_of(DQ, g->ldqk, g->lq, b, h, d, i0 + i);
        for (int t = 0; t < d; t++) dst[t] = dq[i * d + t] * g->scale;
    }
}

/* D[b, h, i] = dO_i . O_i, the row term of the softmax backward. */
static void row_dots(float *dsum, const float *O, const float *DO, const attn_geom *g) {
    int64_t rows = (int64_t)g->batch * g->heads * g->lq;
#pragma omp parallel for if (rows * g->dv > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int b = (int)(r / ((int64_t)g->heads * g->lq)), h = (int)(r / g->lq % g->heads), i = (int)(r % g->lq);
        const float *o = row_of(O, g->ldv, g->lq, b, h, g->dv, i), *go = row_of(DO, g->ldv, g->lq, b, h, g->dv, i);
        float acc = 0;
        for (int t = 0; t < g->dv; t++) acc += o[t] * go[t];
        dsum[r] = acc;
    }
}

void cpu_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                            const tensor *out, const tensor *lse, const tensor *dout, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    size_t per_thread = scratch_floats(&g), rows = round16((size_t)g.batch * g.heads * g.lq);
    float *scratch = cpu_workspace(rows + per_thread * (size_t)cpu_threads());
    float *dsum = scratch;
    row_dots(dsum, out->data, dout->data, &g);
    backward_inputs in = {q->data, dout->data, lse->data, dsum};
    int qblocks = (g.lq + BQ - 1) / BQ, kblocks = (g.lk + BK - 1) / BK;
    int64_t bh = (int64_t)g.batch * g.heads;
#pragma omp parallel
    {
        tile_scratch ts = carve(scratch + rows + per_thread * (size_t)omp_get_thread_num(), &g);
        if (dk || dv) {
#pragma omp for schedule(static)
            for (int64_t task = 0; task < bh * kblocks; task++)
                key_block_grads(dk ? dk->data : NULL, dv ? dv->data : NULL, k->data, v->data, &in, &g, (int)(task / kblocks / g.heads),
                                (int)(task / kblocks % g.heads), (int)(task % kblocks) * BK, &ts);
        }
        if (dq) {
#pragma omp for schedule(static)
            for (int64_t task = 0; task < bh * qblocks; task++)
                query_block_grads(dq->data, k->data, v->data, &in, &g, (int)(task / qblocks / g.heads),
                                  (int)(task / qblocks % g.heads), (int)(task % qblocks) * BQ, &ts);
        }
    }
}
