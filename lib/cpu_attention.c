/* cpu_attention.c - blocked attention and its backward, as strips of GEMMs.
 *
 * Each task is one (batch, head, block of BQ queries) and holds only the
 * [BQ, Lk] strip of scores of its queries (never the whole score matrix):
 * S = scale Q K^T by one GEMM, an exact softmax along the strip's rows, and
 * O = P V by a second GEMM. The forward leaves the log-sum-exp of each row;
 * the backward recomputes the probabilities from q, k and it
 * (FlashAttention-2 style) and runs in two passes so that every gradient row
 * has one owner and no locks or atomics are needed: a pass over key blocks
 * gives dK and dV (from transposed strips [BK, Lq]), a pass over query
 * blocks gives dQ.
 *
 * Tensors are [B, L, H d] with the heads interleaved in the channels, as the
 * projections produce them; a head is a column offset and a row stride,
 * which the GEMMs take as their leading dimension. The GEMMs run inside the
 * OpenMP tasks, where OpenBLAS (the OpenMP build, sharing our thread pool)
 * runs single-threaded. The exp of the strips is vectorised (cpu_vexp.c). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

enum { BQ = 64, BK = 64 };

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

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Per-thread scratch: two strips of BQ (or BK) rows by the longer sequence. */
static size_t strip_floats(const attn_geom *g) {
    int rows = BQ > BK ? BQ : BK, len = g->lq > g->lk ? g->lq : g->lk;
    return round16((size_t)rows * len);
}

/* Keys a query block sees: all, or up to its last query when causal. */
static int key_end(const attn_geom *g, int i0, int nq) { return g->causal && i0 + nq < g->lk ? i0 + nq : g->lk; }

/* s[i][j] = -inf where key j is in the future of query i0 + i (causal). */
static void mask_future_rows(float *s, int64_t lds, int i0, int nq, int ncols) {
    for (int i = 0; i < nq; i++)
        for (int j = i0 + i + 1; j < ncols; j++) s[i * lds + j] = -INFINITY;
}

/* Softmax of each row of an [n, len] strip in place; lse gets max + log(sum). */
static void softmax_rows(float *s, int n, int len, float *lse) {
    for (int i = 0; i < n; i++) {
        float *row = s + (int64_t)i * len, mx = cpu_max(row, len), sum = cpu_exp_shift_sum(row, len, mx), inv = 1.0f / sum;
        for (int j = 0; j < len; j++) row[j] *= inv;
        if (lse) lse[i] = mx + logf(sum);
    }
}

static void forward_strip(float *O, float *LSE, const float *Q, const float *K, const float *V, const attn_geom *g, int b,
                          int h, int i0, float *s) {
    int nq = g->lq - i0 < BQ ? g->lq - i0 : BQ, kend = key_end(g, i0, nq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kend, g->d, g->scale, row_of(Q, g->ldqk, g->lq, b, h, g->d, i0),
                (int)g->ldqk, row_of(K, g->ldqk, g->lk, b, h, g->d, 0), (int)g->ldqk, 0.0f, s, kend);
    if (g->causal) mask_future_rows(s, kend, i0, nq, kend);
    softmax_rows(s, nq, kend, LSE ? LSE + ((int64_t)b * g->heads + h) * g->lq + i0 : NULL);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, g->dv, kend, 1.0f, s, kend,
                row_of(V, g->ldv, g->lk, b, h, g->dv, 0), (int)g->ldv, 0.0f, (float *)row_of(O, g->ldv, g->lq, b, h, g->dv, i0),
                (int)g->ldv);
}

void cpu_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    attn_geom g = geometry(q, k, v, p);
    size_t per_thread = strip_floats(&g);
    float *scratch = cpu_workspace(per_thread * (size_t)cpu_threads());
    int qblocks = (g.lq + BQ - 1) / BQ;
    int64_t tasks = (int64_t)g.batch * g.heads * qblocks;
#pragma omp parallel
    {
        float *s = scratch + per_thread * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++) {
            int b = (int)(task / ((int64_t)g.heads * qblocks)), h = (int)(task / qblocks % g.heads), qb = (int)(task % qblocks);
            forward_strip(out->data, lse ? lse->data : NULL, q->data, k->data, v->data, &g, b, h, qb * BQ, s);
        }
    }
}

/* ---- backward ---- */
typedef struct backward_inputs {
    const float *q, *k, *v, *dout, *lse, *dsum; /* dsum: D_i = dO_i . O_i per row */
} backward_inputs;

/* P = exp(S - lse_i) and dS = P (dP - D_i) over a [n, len] query-major strip (pass B). */
static void grad_rows(float *s, float *dp, int n, int len, const float *lse, const float *dsum) {
    for (int i = 0; i < n; i++) cpu_softmax_grad(s + (int64_t)i * len, dp + (int64_t)i * len, len, lse + i, dsum + i, 0);
}

/* The same over a key-major strip [n keys, len queries] (pass A): P^T stays in st. */
static void grad_cols(float *st, float *dpt, int n, int len, const float *lse, const float *dsum) {
    for (int j = 0; j < n; j++) cpu_softmax_grad(st + (int64_t)j * len, dpt + (int64_t)j * len, len, lse, dsum, 1);
}

/* Pass A: dK and dV of keys [j0, j0 + nk) from the transposed strips
 * S^T = scale K Q^T and dP^T = V dO^T over every query. */
static void key_block_grads(float *DK, float *DV, const backward_inputs *in, const attn_geom *g, int b, int h, int j0,
                            float *st, float *dpt) {
    int nk = g->lk - j0 < BK ? g->lk - j0 : BK, lq = g->lq, ldq = (int)g->ldqk, ldv = (int)g->ldv;
    const float *Qbh = row_of(in->q, g->ldqk, lq, b, h, g->d, 0), *DObh = row_of(in->dout, g->ldv, lq, b, h, g->dv, 0);
    int64_t row0 = ((int64_t)b * g->heads + h) * lq;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, lq, g->d, g->scale, row_of(in->k, g->ldqk, g->lk, b, h, g->d, j0),
                ldq, Qbh, ldq, 0.0f, st, lq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, lq, g->dv, 1.0f, row_of(in->v, g->ldv, g->lk, b, h, g->dv, j0),
                ldv, DObh, ldv, 0.0f, dpt, lq);
    if (g->causal) /* key j0 + j is seen by queries i >= j0 + j only */
        for (int j = 0; j < nk; j++)
            for (int i = 0; i < j0 + j && i < lq; i++) st[(int64_t)j * lq + i] = -INFINITY;
    grad_cols(st, dpt, nk, lq, in->lse + row0, in->dsum + row0);
    if (DV)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nk, g->dv, lq, 1.0f, st, lq, DObh, ldv, 0.0f,
                    (float *)row_of(DV, g->ldv, g->lk, b, h, g->dv, j0), ldv);
    if (DK)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nk, g->d, lq, g->scale, dpt, lq, Qbh, ldq, 0.0f,
                    (float *)row_of(DK, g->ldqk, g->lk, b, h, g->d, j0), ldq);
}

/* Pass B: dQ of queries [i0, i0 + nq) = scale dS K over the keys they see. */
static void query_block_grads(float *DQ, const backward_inputs *in, const attn_geom *g, int b, int h, int i0, float *s,
                              float *dp) {
    int nq = g->lq - i0 < BQ ? g->lq - i0 : BQ, kend = key_end(g, i0, nq), ldq = (int)g->ldqk, ldv = (int)g->ldv;
    const float *Kbh = row_of(in->k, g->ldqk, g->lk, b, h, g->d, 0);
    int64_t row0 = ((int64_t)b * g->heads + h) * g->lq + i0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kend, g->d, g->scale, row_of(in->q, g->ldqk, g->lq, b, h, g->d, i0),
                ldq, Kbh, ldq, 0.0f, s, kend);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kend, g->dv, 1.0f, row_of(in->dout, g->ldv, g->lq, b, h, g->dv, i0),
                ldv, row_of(in->v, g->ldv, g->lk, b, h, g->dv, 0), ldv, 0.0f, dp, kend);
    if (g->causal) mask_future_rows(s, kend, i0, nq, kend);
    grad_rows(s, dp, nq, kend, in->lse + row0, in->dsum + row0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, g->d, kend, g->scale, dp, kend, Kbh, ldq, 0.0f,
                (float *)row_of(DQ, g->ldqk, g->lq, b, h, g->d, i0), ldq);
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
    size_t strip = strip_floats(&g), rows = round16((size_t)g.batch * g.heads * g.lq);
    float *scratch = cpu_workspace(rows + 2 * strip * (size_t)cpu_threads());
    float *dsum = scratch;
    row_dots(dsum, out->data, dout->data, &g);
    backward_inputs in = {q->data, k->data, v->data, dout->data, lse->data, dsum};
    int qblocks = (g.lq + BQ - 1) / BQ, kblocks = (g.lk + BK - 1) / BK;
    int64_t bh = (int64_t)g.batch * g.heads;
#pragma omp parallel
    {
        float *s = scratch + rows + 2 * strip * (size_t)omp_get_thread_num(), *ds = s + strip;
        if (dk || dv) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t task = 0; task < bh * kblocks; task++)
                key_block_grads(dk ? dk->data : NULL, dv ? dv->data : NULL, &in, &g, (int)(task / kblocks / g.heads),
                                (int)(task / kblocks % g.heads), (int)(task % kblocks) * BK, s, ds);
        }
        if (dq) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t task = 0; task < bh * qblocks; task++)
                query_block_grads(dq->data, &in, &g, (int)(task / qblocks / g.heads), (int)(task / qblocks % g.heads),
                                  (int)(task % qblocks) * BQ, s, ds);
        }
    }
}
