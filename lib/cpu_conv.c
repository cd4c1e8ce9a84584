/* cpu_conv.c - 2-D convolution as im2col + GEMM.
 *
 * Per image, the input patches of a band of output rows are unfolded into a
 * [C R S, rows Q] matrix in the workspace (bands keep it under WORKSPACE_FLOATS
 * however large the image), and one GEMM with the [K, C R S] weight gives the
 * band of the output. The backward reuses the unfolding: dW += dY col^T, and
 * dcol = W^T dY folded back (col2im) into dX. A 1x1 stride-1 unpadded conv
 * needs no unfolding at all: the image is its own column matrix. The unfold
 * and fold loops are OpenMP-parallel. The forward's GEMMs run one per task
 * on one thread (cpu_gemm_nn: our AVX-512 kernel where the CPU has it), the
 * backward's through OpenBLAS. */
#include <cblas.h>
#include <omp.h>
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

static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

static int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }

/* The output columns [*lo, *hi) whose input column q*stride - pad_left + s lies inside the image. */
static void valid_columns(const conv_geom *g, int s, int *lo, int *hi) {
    *lo = ceil_div_nonneg(g->pad_left - s, g->stride);
    int last = g->w - 1 + g->pad_left - s; /* q*stride <= last */
    *hi = last < 0 ? 0 : last / g->stride + 1;
    if (*hi > g->q) *hi = g->q;
    if (*lo > *hi) *lo = *hi;
}

/* Row `row` = (c R + r) S + s of the column matrix of output rows [p0, p1). */
static void unfold_row(const float *x, float *dst, const conv_geom *g, int64_t row, int p0, int p1) {
    int c = (int)(row / (g->r * g->s)), r = (int)(row / g->s % g->r), s = (int)(row % g->s);
    int lo, hi;
    valid_columns(g, s, &lo, &hi);
    const float *plane = x + (int64_t)c * g->h * g->w;
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

/* col[(c R + r) S + s][(p - p0) Q + q] = x[c][p stride - pad_top + r][q stride - pad_left + s], 0 outside. */
static void im2col(const float *x, float *col, const conv_geom *g, int p0, int p1) {
    int64_t rows = (int64_t)g->c * g->r * g->s, ncols = (int64_t)(p1 - p0) * g->q;
#pragma omp parallel for if (rows * ncols > 32768)
    for (int64_t row = 0; row < rows; row++) unfold_row(x, col + row * ncols, g, row, p0, p1);
}

/* im2col for one task, on the calling thread. */
static void im2col_rows(const float *x, float *col, const conv_geom *g, int p0, int p1) {
    int64_t rows = (int64_t)g->c * g->r * g->s, ncols = (int64_t)(p1 - p0) * g->q;
    for (int64_t row = 0; row < rows; row++) unfold_row(x, col + row * ncols, g, row, p0, p1);
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

/* The forward runs as independent tasks, each one GEMM on one thread (OpenBLAS
 * runs single-threaded inside an OpenMP region): a task is a band of output
 * rows of one image (its columns, unfolded into the thread's own buffer) times
 * a block of output channels. One parallel region per conv, dynamically
 * scheduled, so that a thread the OS has preempted delays only its own tasks;
 * letting OpenBLAS thread each band's GEMM instead cost a barrier per GEMM
 * and ran 2x slower on a loaded 2-core machine. */
enum { TASK_FLOATS = 1 << 20, MIN_COLS = 256 }; /* a task's unfolded columns: 4 MiB, 256 at least */

typedef struct conv_plan {
    int band;      /* output rows per task */
    int bands;     /* per image */
    int kblock;    /* output channels per task */
    int kblocks;
    size_t col_floats; /* per thread */
} conv_plan;

static conv_plan plan(const conv_geom *g) {
    conv_plan pl;
    int64_t per_row = (int64_t)g->c * g->r * g->s * g->q;
    int64_t rows = TASK_FLOATS / (per_row ? per_row : 1), min_rows = (MIN_COLS + g->q - 1) / g->q;
    /* Thin GEMMs run far below peak: keep MIN_COLS columns even past TASK_FLOATS. */
    if (rows < min_rows) rows = min_rows;
    pl.band = rows < 1 ? 1 : rows > g->p ? g->p : (int)rows;
    pl.bands = (g->p + pl.band - 1) / pl.band;
    /* Enough tasks to balance: split the channels where the columns are few, in multiples of 16. */
    int want = 4 * cpu_threads(), pieces = g->n * pl.bands, split = (want + pieces - 1) / pieces;
    int kb = (g->k + split - 1) / split;
    kb = (kb + 15) / 16 * 16;
    pl.kblock = kb < 64 ? (g->k < 64 ? g->k : 64) : kb;
    if (pl.kblock > g->k) pl.kblock = g->k;
    pl.kblocks = (g->k + pl.kblock - 1) / pl.kblock;
    pl.col_floats = is_pointwise(g) ? 0 : round_up16((size_t)g->c * g->r * g->s * pl.band * g->q);
    return pl;
}

/* One task: y[n][k0:k0+kn][p0:p1] = W[k0:k0+kn] col + b. */
static void forward_task(float *Y, const float *X, const float *W, const float *B, const conv_geom *g, const conv_plan *pl,
                         int64_t task, float *col) {
    int kb = (int)(task % pl->kblocks), piece = (int)(task / pl->kblocks);
    int n = piece / pl->bands, p0 = piece % pl->bands * pl->band, p1 = p0 + pl->band < g->p ? p0 + pl->band : g->p;
    int k0 = kb * pl->kblock, kn = g->k - k0 < pl->kblock ? g->k - k0 : pl->kblock;
    int crs = g->c * g->r * g->s, pq = g->p * g->q, ncols = (p1 - p0) * g->q;
    const float *xn = X + (int64_t)n * g->c * g->h * g->w;
    float *yb = Y + ((int64_t)n * g->k + k0) * pq + (int64_t)p0 * g->q;
    if (B)
        for (int k = 0; k < kn; k++)
            for (int i = 0; i < ncols; i++) yb[(int64_t)k * pq + i] = B[k0 + k];
    const float *cols = xn + (int64_t)p0 * g->q; /* pointwise: the image is its own column matrix */
    int ldcol = pq;
    if (col) {
        im2col_rows(xn, col, g, p0, p1);
        cols = col, ldcol = ncols;
    }
    cpu_gemm_nn(kn, ncols, crs, W + (int64_t)k0 * crs, crs, cols, ldcol, B ? 1.0f : 0.0f, yb, pq);
}

static void forward_tasks(float *Y, const float *X, const float *W, const float *B, const conv_geom *g, float *scratch) {
    conv_plan pl = plan(g);
    int64_t tasks = (int64_t)g->n * pl.bands * pl.kblocks;
#pragma omp parallel
    {
        float *col = pl.col_floats ? scratch + pl.col_floats * (size_t)omp_get_thread_num() : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) forward_task(Y, X, W, B, g, &pl, t, col);
    }
}

static size_t forward_scratch(const conv_geom *g) { return plan(g).col_floats * (size_t)cpu_threads(); }

void cpu_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params prm) {
    conv_geom g = geometry(x, w, prm);
    forward_tasks(y->data, x->data, w->data, b ? b->data : NULL, &g, cpu_workspace(forward_scratch(&g) + 16));
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

/* dX of a stride-1 conv is the forward conv of dY with the filters flipped
 * and their in/out channels swapped, padded by R - 1 - pad: so it runs as the
 * forward's parallel GEMM tasks, with no col2im (whose bands would overlap).
 * Returns 0 where that does not apply (strided, or padding beyond R - 1). */
static int transposed_forward(float *DX, const float *DY, const float *W, const conv_geom *g, conv2d_params prm) {
    if (g->stride != 1 || prm.pad_top > g->r - 1 || prm.pad_bottom > g->r - 1 || prm.pad_left > g->s - 1 ||
        prm.pad_right > g->s - 1)
        return 0;
    conv_geom t = {g->n, g->k, g->p, g->q, g->c, g->r, g->s, g->h, g->w, 1, g->r - 1 - prm.pad_top, g->s - 1 - prm.pad_left};
    size_t wfloats = round_up16((size_t)g->k * g->c * g->r * g->s);
    float *flipped = cpu_workspace(wfloats + forward_scratch(&t) + 16);
    int rs = g->r * g->s;
#pragma omp parallel for if (wfloats > 65536)
    for (int c = 0; c < g->c; c++)
        for (int k = 0; k < g->k; k++)
            for (int i = 0; i < rs; i++) flipped[((int64_t)c * g->k + k) * rs + i] = W[((int64_t)k * g->c + c) * rs + rs - 1 - i];
    forward_tasks(DX, DY, flipped, NULL, &t, flipped + wfloats);
    return 1;
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
    if (DX && transposed_forward(DX, DY, W, &g, prm)) DX = NULL;
    if (!DX && !DW) return;
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
