/* cpu_norm.c - group norm (optionally fused with SiLU) and layer norm.
 *
 * Statistics are two-pass (mean, then the mean squared deviation: the biased
 * variance PyTorch uses), summed in float over short vectorised runs and in
 * double across runs. The backward uses the stored mean and rstd; with SiLU
 * fused it recomputes the pre-activation from x instead of storing it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

enum { RUN = 1024 }; /* elements summed in float before the double total */

static double sum_of(const float *x, int64_t n) {
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += RUN) {
        int64_t m = n - i0 < RUN ? n - i0 : RUN;
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (int64_t i = 0; i < m; i++) part += x[i0 + i];
        total += part;
    }
    return total;
}

static double squared_deviation(const float *x, int64_t n, float mean) {
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += RUN) {
        int64_t m = n - i0 < RUN ? n - i0 : RUN;
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (int64_t i = 0; i < m; i++) part += (x[i0 + i] - mean) * (x[i0 + i] - mean);
        total += part;
    }
    return total;
}

/* y = x a + b over n elements, then SiLU if asked. */
static void scale_shift(float *y, const float *x, int64_t n, float a, float b, int silu) {
    if (silu) {
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] * a + b;
            y[i] = v / (1.0f + expf(-v));
        }
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * a + b;
    }
}

void cpu_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                    int groups, float eps, int silu) {
    int64_t n = x->shape[0], c = x->shape[1], hw = tensor_numel(x) / (n * c), cpg = c / groups;
    int64_t group_size = cpg * hw;
    const float *X = x->data, *G = gamma ? gamma->data : NULL, *B = beta ? beta->data : NULL;
    float *Y = y->data, *M = mean->data, *R = rstd->data;
#pragma omp parallel for if (tensor_numel(x) > 65536)
    for (int64_t ng = 0; ng < n * groups; ng++) {
        const float *xs = X + ng * group_size;
        float m = (float)(sum_of(xs, group_size) / (double)group_size);
        float var = (float)(squared_deviation(xs, group_size, m) / (double)group_size);
        float rs = 1.0f / sqrtf(var + eps);
        M[ng] = m, R[ng] = rs;
        for (int64_t j = 0; j < cpg; j++) {
            int64_t ch = ng % groups * cpg + j;
            float a = rs * (G ? G[ch] : 1.0f), b = (B ? B[ch] : 0.0f) - m * a;
            scale_shift(Y + (ng * cpg + j) * hw, xs + j * hw, hw, a, b, silu);
        }
    }
}

/* The gradient reaching the normalised value of one channel, g = dy (times
 * silu'(pre) when fused), into out; returns sum g and sum g xhat in sums. */
static void channel_grad(float *out, const float *x, const float *dy, int64_t hw, float m, float rs, float gm, float bt,
                         int silu, double sums[2]) {
    double sg = 0, sgx = 0;
    for (int64_t i0 = 0; i0 < hw; i0 += RUN) {
        int64_t len = hw - i0 < RUN ? hw - i0 : RUN;
        float pg = 0, pgx = 0;
        for (int64_t i = i0; i < i0 + len; i++) {
            float xhat = (x[i] - m) * rs, g = dy[i];
            if (silu) {
                float pre = xhat * gm + bt, s = 1.0f / (1.0f + expf(-pre));
                g *= s * (1.0f + pre * (1.0f - s));
            }
            if (out) out[i] = g;
            pg += g, pgx += g * xhat;
        }
        sg += pg, sgx += pgx;
    }
    sums[0] = sg, sums[1] = sgx;
}

void cpu_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                             const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                             int silu) {
    int64_t n = x->shape[0], c = x->shape[1], hw = tensor_numel(x) / (n * c), cpg = c / groups;
    const float *X = x->data, *DY = dy->data, *M = mean->data, *R = rstd->data;
    const float *G = gamma ? gamma->data : NULL, *B = beta ? beta->data : NULL;
    float *DX = dx ? dx->data : NULL;
    /* Per (image, channel): sum g and sum g xhat, reduced over images after the loop. */
    double *sums = (double *)cpu_workspace((size_t)(n * c * 2) * 2);
#pragma omp parallel for if (tensor_numel(x) > 65536)
    for (int64_t ng = 0; ng < n * groups; ng++) {
        float m = M[ng], rs = R[ng];
        double a = 0, b = 0; /* sums over the group of dxhat and dxhat xhat */
        for (int64_t j = 0; j < cpg; j++) {
            int64_t ch = ng % groups * cpg + j, off = (ng * cpg + j) * hw;
            float gm = G ? G[ch] : 1.0f;
            double *s = sums + (ng * cpg + j) * 2;
            channel_grad(DX ? DX + off : NULL, X + off, DY + off, hw, m, rs, gm, B ? B[ch] : 0.0f, silu, s);
            a += gm * s[0], b += gm * s[1];
        }
        if (!DX) continue;
        float mean_a = (float)(a / (double)(cpg * hw)), mean_b = (float)(b / (double)(cpg * hw));
        for (int64_t j = 0; j < cpg; j++) {
            int64_t ch = ng % groups * cpg + j, off = (ng * cpg + j) * hw;
            float gm = G ? G[ch] : 1.0f;
            float *d = DX + off;
            const float *xs = X + off;
            for (int64_t i = 0; i < hw; i++) d[i] = rs * (d[i] * gm - mean_a - (xs[i] - m) * rs * mean_b);
        }
    }
    for (int64_t ch = 0; ch < c; ch++) {
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < n; i++) sg += sums[(i * c + ch) * 2], sgx += sums[(i * c + ch) * 2 + 1];
        if (dgamma) ((float *)dgamma->data)[ch] += (float)sgx;
        if (dbeta) ((float *)dbeta->data)[ch] += (float)sg;
    }
}

void cpu_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                    float eps) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    const float *X = x->data, *G = gamma ? gamma->data : NULL, *B = beta ? beta->data : NULL;
    float *Y = y->data, *M = mean->data, *R = rstd->data;
#pragma omp parallel for if (rows * d > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = X + r * d;
        float *ys = Y + r * d;
        float m = (float)(sum_of(xs, d) / (double)d);
        float rs = 1.0f / sqrtf((float)(squared_deviation(xs, d, m) / (double)d) + eps);
        M[r] = m, R[r] = rs;
        for (int64_t j = 0; j < d; j++) ys[j] = (xs[j] - m) * rs * (G ? G[j] : 1.0f) + (B ? B[j] : 0.0f);
    }
}

/* dgamma[j] += sum_r dy xhat, dbeta[j] += sum_r dy, threads owning blocks of columns. */
static void layer_norm_param_grads(float *dgamma, float *dbeta, const float *x, const float *dy, const float *mean,
                                   const float *rstd, int64_t rows, int64_t d) {
    enum { BLOCK = 128 };
#pragma omp parallel for if (rows * d > 65536)
    for (int64_t j0 = 0; j0 < d; j0 += BLOCK) {
        int64_t n = d - j0 < BLOCK ? d - j0 : BLOCK;
        double ag[BLOCK] = {0}, ab[BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *xs = x + r * d + j0, *g = dy + r * d + j0;
            float m = mean[r], rs = rstd[r];
            for (int64_t j = 0; j < n; j++) ag[j] += g[j] * ((xs[j] - m) * rs), ab[j] += g[j];
        }
        for (int64_t j = 0; j < n; j++) {
            if (dgamma) dgamma[j0 + j] += (float)ag[j];
            if (dbeta) dbeta[j0 + j] += (float)ab[j];
        }
    }
}

void cpu_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                             const tensor *rstd, const tensor *gamma, const tensor *dy) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    const float *X = x->data, *DY = dy->data, *M = mean->data, *R = rstd->data, *G = gamma ? gamma->data : NULL;
    if (dgamma || dbeta)
        layer_norm_param_grads(dgamma ? dgamma->data : NULL, dbeta ? dbeta->data : NULL, X, DY, M, R, rows, d);
    if (!dx) return;
    float *DX = dx->data;
#pragma omp parallel for if (rows * d > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *xs = X + r * d, *g = DY + r * d;
        float *out = DX + r * d, m = M[r], rs = R[r];
        double a = 0, b = 0; /* sums of dxhat and dxhat xhat */
        for (int64_t j = 0; j < d; j++) {
            float dxhat = g[j] * (G ? G[j] : 1.0f);
            a += dxhat, b += dxhat * ((xs[j] - m) * rs);
        }
        float mean_a = (float)(a / (double)d), mean_b = (float)(b / (double)d);
        for (int64_t j = 0; j < d; j++) {
            float xhat = (xs[j] - m) * rs;
            out[j] = rs * (g[j] * (G ? G[j] : 1.0f) - mean_a - xhat * mean_b);
        }
    }
}
