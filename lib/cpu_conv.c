/* cpu_conv.c - 2-D convolution as im2col + OpenBLAS GEMM.
 *
 * Per image, the input patches of a band of output rows are unfolded into a
 * [C R S, rows Q] matrix in the workspace (bands keep it under WORKSPACE_FLOATS
 * however large the image), and one GEMM with the [K, C R S] weight gives the
 * band of the output. The backward reuses the unfolding: dW += dY col^T, and
 * dcol = W^T dY folded back (col2im) into dX. A 1x1 stride-1 unpadded conv
 * needs no unfolding at all: the image is its own column matrix. The unfold
 * and fold loops are OpenMP-parallel; the GEMMs use OpenBLAS's threads. */
#include <cblas.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

enum { WORKSPACE_FLOATS = 8 << 20 }; /* 32 MiB of columns at most */

typedef struct conv_geom {
    int n, c, h, w;  /* input */
    int k, r, s;     /* filters */
    int p, q;        /* output rows, columns */
    int stride, pad_top, pad_left;
} conv_geom;

static conv_geom geometry(const tensor *x, const tensor *w, conv2d_params prm) {
    conv_geom g = {(int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)w->shape[0],
                   (int)w->shape[2], (int)w->shape[3], 0, 0, prm.stride, prm.pad_top, prm.pad_left};
    g.p = (g.h + prm.pad_top + prm.pad_bottom - g.r) / g.stride + 1;
    g.q = (g.w + prm.pad_left + prm.pad_right - g.s) / g.stride + 1;
    return g;
}

static int is_pointwise(const conv_geom *g) {
    return g->r == 1 && g->s == 1 && g->stride == 1 && g->pad_top == 0 && g->pad_left == 0 && g->p == g->h && g->q == g->w;
}

/* Output rows per band: as many as fit the workspace, at least one. */
static int band_rows(const conv_geom *g) {
    int64_t per_row = (int64_t)g->c * g->r * g->s * g->q;
    int64_t rows = WORKSPACE_FLOATS / (per_row ? per_row : 1);
    return rows < 1 ? 1 : rows > g->p ? g->p : (int)rows;
}

static int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }

/* The output columns [*lo, *hi) whose input column q*stride - pad_left + s lies inside the image. */
static void valid_columns(const conv_geom *g, int s, int *lo, int *hi) {
    *lo = ceil_div_nonneg(g->pad_left - s, g->stride);
    int last = g->w - 1 + g->pad_left - s; /* q*stride <= last */
    *hi = last < 0 ? 0 : last / g->stride + 1;
    if (*hi > g->q) *hi = g->q;
    if (*lo > *hi) *lo = *hi;
}

/* col[(c R + r) S + s][(p - p0) Q + q] = x[c][p stride - pad_top + r][q stride - pad_left + s], 0 outside. */
static void im2col(const float *x, float *col, const conv_geom *g, int p0, int p1) {
    int64_t rows = (int64_t)g->c * g->r * g->s, ncols = (int64_t)(p1 - p0) * g->q;
#pragma omp parallel for if (rows * ncols > 32768)
    for (int64_t row = 0; row < rows; row++) {
        int c = (int)(row / (g->r * g->s)), r = (int)(row / g->s % g->r), s = (int)(row % g->s);
        int lo, hi;
        valid_columns(g, s, &lo, &hi);
        const float *plane = x + (int64_t)c * g->h * g->w;
        float *dst = col + row * ncols;
        for (int p = p0; p < p1; p++, dst += g->q) {
            int ih = p * g->stride - g->pad_top + r;
            if (ih < 0 || ih >= g->h) {
                memset(dst, 0, sizeof(float) * (size_t)g->q);
                continue;
            }
            /* Indexed from the row's start: q >= lo keeps the input column non-negative. */
            const float *src = plane + (int64_t)ih * g->w;
            int off = s - g->pad_left;
            for (int q = 0; q < lo; q++) dst[q] = 0;
            if (g->stride == 1) memcpy(dst + lo, src + lo + off, sizeof(float) * (size_t)(hi - lo));
            else
                for (int q = lo; q < hi; q++) dst[q] = src[q * g->stride + off];
            for (int q = hi; q < g->q; q++) dst[q] = 0;
        }
    }
}

/* The adjoint of im2col: dx[c][...] += col[...]. Threads own input channels, so no two write one element. */
static void col2im(const float *col, float *dx, const conv_geom *g, int p0, int p1) {
    int64_t ncols = (int64_t)(p1 - p0) * g->q;
#pragma omp parallel for if ((int64_t)g->c * g->r * g->s * ncols > 32768)
    for (int c = 0; c < g->c; c++) {
        float *plane = dx + (int64_t)c * g->h * g->w;
        for (int r = 0; r < g->r; r++)
            for (int s = 0; s < g->s; s++) {
                int lo, hi;
                valid_columns(g, s, &lo, &hi);
                const float *src = col + (((int64_t)c * g->r + r) * g->s + s) * ncols;
                for (int p = p0; p < p1; p++, src += g->q) {
                    int ih = p * g->stride - g->pad_top + r;
                    if (ih < 0 || ih >= g->h) continue;
                    float *dst = plane + (int64_t)ih * g->w;
                    int off = s - g->pad_left;
                    if (g->stride == 1)
                        for (int q = lo; q < hi; q++) dst[q + off] += src[q];
                    else
                        for (int q = lo; q < hi; q++) dst[q * g->stride + off] += src[q];
                }
            }
    }
}

void cpu_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params prm) {
    conv_geom g = geometry(x, w, prm);
    int crs = g.c * g.r * g.s, pq = g.p * g.q;
    const float *X = x->data, *W = w->data;
    float *Y = y->data;
    if (b) {
        const float *B = b->data;
#pragma omp parallel for if ((int64_t)g.n * g.k * pq > 65536)
        for (int64_t plane = 0; plane < (int64_t)g.n * g.k; plane++) {
            float *dst = Y + plane * pq, v = B[plane % g.k];
            for (int i = 0; i < pq; i++) dst[i] = v;
        }
    }
    float beta = b ? 1.0f : 0.0f;
    int band = band_rows(&g);
    float *col = is_pointwise(&g) ? NULL : cpu_workspace((size_t)crs * band * g.q);
    for (int n = 0; n < g.n; n++) {
        const float *xn = X + (int64_t)n * g.c * g.h * g.w;
        float *yn = Y + (int64_t)n * g.k * pq;
        if (!col) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.k, pq, g.c, 1.0f, W, g.c, xn, pq, beta, yn, pq);
            continue;
        }
        for (int p0 = 0; p0 < g.p; p0 += band) {
            int p1 = p0 + band < g.p ? p0 + band : g.p, ncols = (p1 - p0) * g.q;
            im2col(xn, col, &g, p0, p1);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.k, ncols, crs, 1.0f, W, crs, col, ncols, beta,
                        yn + (int64_t)p0 * g.q, pq);
        }
    }
}

/* db[k] += the sum of dy over batch and positions. */
static void bias_grad(float *db, const float *dy, const conv_geom *g) {
    int64_t pq = (int64_t)g->p * g->q;
#pragma omp parallel for if ((int64_t)g->n * g->k * pq > 65536)
    for (int k = 0; k < g->k; k++) {
        double acc = 0;
        for (int n = 0; n < g->n; n++) {
            const float *src = dy + ((int64_t)n * g->k + k) * pq;
            float part = 0;
#pragma omp simd reduction(+ : part)
            for (int64_t i = 0; i < pq; i++) part += src[i];
            acc += part;
        }
        db[k] += (float)acc;
    }
}

/* The pointwise case: dW += dY X^T, dX = W^T dY, per image. */
static void pointwise_backward(float *dx, float *dw, const float *x, const float *w, const float *dy, const conv_geom *g) {
    int pq = g->p * g->q;
    for (int n = 0; n < g->n; n++) {
        const float *xn = x + (int64_t)n * g->c * pq, *dyn = dy + (int64_t)n * g->k * pq;
        if (dw) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->k, g->c, pq, 1.0f, dyn, pq, xn, pq, 1.0f, dw, g->c);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->c, pq, g->k, 1.0f, w, g->c, dyn, pq, 0.0f,
                        dx + (int64_t)n * g->c * pq, pq);
    }
}

void cpu_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                         conv2d_params prm) {
    conv_geom g = geometry(x, w, prm);
    const float *X = x->data, *W = w->data, *DY = dy->data;
    float *DX = dx ? dx->data : NULL, *DW = dw ? dw->data : NULL;
    if (db) bias_grad(db->data, DY, &g);
    if (is_pointwise(&g)) {
        pointwise_backward(DX, DW, X, W, DY, &g);
        return;
    }
    if (!dx && !dw) return;
    int crs = g.c * g.r * g.s, pq = g.p * g.q, band = band_rows(&g);
    int64_t image = (int64_t)g.c * g.h * g.w;
    float *col = cpu_workspace((size_t)crs * band * g.q);
    if (DX) memset(DX, 0, sizeof(float) * (size_t)(g.n * image));
    for (int n = 0; n < g.n; n++) {
        const float *dyn = DY + (int64_t)n * g.k * pq;
        for (int p0 = 0; p0 < g.p; p0 += band) {
            int p1 = p0 + band < g.p ? p0 + band : g.p, ncols = (p1 - p0) * g.q;
            const float *dyb = dyn + (int64_t)p0 * g.q;
            if (DW) {
                im2col(X + n * image, col, &g, p0, p1);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.k, crs, ncols, 1.0f, dyb, pq, col, ncols, 1.0f, DW, crs);
            }
            if (DX) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, crs, ncols, g.k, 1.0f, W, crs, dyb, pq, 0.0f, col, ncols);
                col2im(col, DX + n * image, &g, p0, p1);
            }
        }
    }
}
