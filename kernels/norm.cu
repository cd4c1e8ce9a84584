/* norm.cu - group norm (optionally fused with SiLU) and layer norm, FP32.
 *
 * One block per normalised set (an (image, group) or a row), as the CPU
 * reference's one task per set: two passes for the statistics (mean, then the
 * mean squared deviation: the biased variance), summed in double. The
 * affine step and the backward formulas follow cpu_norm.c operation for
 * operation; the __fmul_rn/__fadd_rn intrinsics keep nvcc from fusing them
 * into FMAs, whose different rounding would be amplified where x - mean
 * cancels. Parameter gradients are sums over images/rows with one owner per
 * element (no atomics): per-(image, channel) partials in scratch for group
 * norm, per-chunk column partials for layer norm. */
#include "cuda_common.h"

/* x a + b, unfused, as the CPU computes it. */
__device__ __forceinline__ float mul_add_rn(float x, float a, float b) { return __fadd_rn(__fmul_rn(x, a), b); }

/* d silu(v) / dv, as cpu_norm.c writes it. */
__device__ __forceinline__ float silu_grad(float v) {
    float s = 1.0f / (1.0f + expf(-v));
    return __fmul_rn(s, __fadd_rn(1.0f, __fmul_rn(v, __fadd_rn(1.0f, -s))));
}

/* Mean and rstd of n elements of one set; every thread of the block gets them. */
template <typename T> __device__ void set_stats(const T *xs, int64_t n, float eps, float *mean, float *rstd) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += to_f(xs[i]);
    s = block_sum(s);
    float m = (float)(s / (double)n);
    double v = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float d = __fadd_rn(to_f(xs[i]), -m);
        v += __fmul_rn(d, d);
    }
    v = block_sum(v);
    *mean = m;
    *rstd = 1.0f / sqrtf((float)(v / (double)n) + eps);
}

/* ---- group norm ---- */

template <typename T>
__global__ void k_group_norm(T *y, float *mean, float *rstd, const T *x, const float *gamma, const float *beta,
                             int64_t cpg, int64_t hw, int groups, float eps, int silu) {
    int64_t ng = blockIdx.x, size = cpg * hw;
    const T *xs = x + ng * size;
    T *ys = y + ng * size;
    float m, rs;
    set_stats(xs, size, eps, &m, &rs);
    if (threadIdx.x == 0) mean[ng] = m, rstd[ng] = rs;
    int64_t ch0 = ng % groups * cpg;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
        int64_t ch = ch0 + i / hw;
        float a = __fmul_rn(rs, gamma ? gamma[ch] : 1.0f), b = __fadd_rn(beta ? beta[ch] : 0.0f, -__fmul_rn(m, a));
        float v = mul_add_rn(to_f(xs[i]), a, b);
        ys[i] = from_f<T>(silu ? v / (1.0f + expf(-v)) : v);
    }
}

void cuda_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                     int groups, float eps, int silu) {
    int64_t n = x->shape[0], c = x->shape[1], hw = tensor_numel(x) / (n * c);
    k_group_norm<float><<<grid_dim(n * groups), THREADS>>>(F(y), F(mean), F(rstd), CF(x), CF(gamma), CF(beta), c / groups,
                                                           hw, groups, eps, silu);
    LAUNCH_CHECK();
}

/* The gradient reaching the normalised value: dy, times silu'(pre) when fused. */
__device__ __forceinline__ float gn_upstream(float dy, float xhat, float gm, float bt, int silu) {
    return silu ? __fmul_rn(dy, silu_grad(mul_add_rn(xhat, gm, bt))) : dy;
}

/* Pass 1, one block per (image, channel): sums[(n C + ch) 2 + {0, 1}] = sum g, sum g xhat. */
__global__ void k_gn_channel_sums(double *sums, const float *x, const float *dy, const float *mean, const float *rstd,
                                  const float *gamma, const float *beta, int64_t c, int64_t hw, int64_t cpg, int groups,
                                  int silu) {
    int64_t nc = blockIdx.x, ch = nc % c, ng = nc / c * groups + ch / cpg;
    float m = mean[ng], rs = rstd[ng], gm = gamma ? gamma[ch] : 1.0f, bt = beta ? beta[ch] : 0.0f;
    const float *xs = x + nc * hw, *g = dy + nc * hw;
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) {
        float xhat = __fmul_rn(__fadd_rn(xs[i], -m), rs), up = gn_upstream(g[i], xhat, gm, bt, silu);
        sg += up, sgx += __fmul_rn(up, xhat);
    }
    sg = block_sum(sg);
    sgx = block_sum(sgx);
    if (threadIdx.x == 0) sums[nc * 2] = sg, sums[nc * 2 + 1] = sgx;
}

/* Pass 2, one block per (image, group): dx = rs (g gm - mean_a - xhat mean_b). */
__global__ void k_gn_dx(float *dx, const double *sums, const float *x, const float *dy, const float *mean, const float *rstd,
                        const float *gamma, const float *beta, int64_t c, int64_t hw, int64_t cpg, int groups, int silu) {
    int64_t ng = blockIdx.x, n = ng / groups, ch0 = ng % groups * cpg, size = cpg * hw;
    float m = mean[ng], rs = rstd[ng];
    double a = 0, b = 0; /* sums over the group of dxhat and dxhat xhat: a few channels, each thread alike */
    for (int64_t j = 0; j < cpg; j++) {
        float gm = gamma ? gamma[ch0 + j] : 1.0f;
        const double *s = sums + (n * c + ch0 + j) * 2;
        a += gm * s[0], b += gm * s[1];
    }
    float mean_a = (float)(a / (double)size), mean_b = (float)(b / (double)size);
    const float *xs = x + ng * size, *g = dy + ng * size;
    float *d = dx + ng * size;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
        int64_t ch = ch0 + i / hw;
        float gm = gamma ? gamma[ch] : 1.0f, bt = beta ? beta[ch] : 0.0f;
        float xhat = __fmul_rn(__fadd_rn(xs[i], -m), rs), up = gn_upstream(g[i], xhat, gm, bt, silu);
        d[i] = __fmul_rn(rs, __fadd_rn(__fadd_rn(__fmul_rn(up, gm), -mean_a), -__fmul_rn(xhat, mean_b)));
    }
}

/* Pass 3, one thread per channel: dgamma += sum over images of sum g xhat, dbeta += of sum g. */
__global__ void k_gn_param_grads(float *dgamma, float *dbeta, const double *sums, int64_t n, int64_t c) {
    GRID_STRIDE(ch, c) {
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < n; i++) sg += sums[(i * c + ch) * 2], sgx += sums[(i * c + ch) * 2 + 1];
        if (dgamma) dgamma[ch] += (float)sgx;
        if (dbeta) dbeta[ch] += (float)sg;
    }
}

void cuda_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                              const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                              int silu) {
    int64_t n = x->shape[0], c = x->shape[1], hw = tensor_numel(x) / (n * c), cpg = c / groups;
    double *sums = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (size_t)(n * c * 2));
    k_gn_channel_sums<<<grid_dim(n * c), THREADS>>>(sums, CF(x), CF(dy), CF(mean), CF(rstd), CF(gamma), CF(beta), c, hw, cpg,
                                                    groups, silu);
    LAUNCH_CHECK();
    if (dx) {
        k_gn_dx<<<grid_dim(n * groups), THREADS>>>(F(dx), sums, CF(x), CF(dy), CF(mean), CF(rstd), CF(gamma), CF(beta), c, hw,
                                                   cpg, groups, silu);
        LAUNCH_CHECK();
    }
    if (dgamma || dbeta) {
        k_gn_param_grads<<<blocks_for(c), THREADS>>>(F(dgamma), F(dbeta), sums, n, c);
        LAUNCH_CHECK();
    }
}

/* ---- layer norm over the last dim ---- */

template <typename T>
__global__ void k_layer_norm(T *y, float *mean, float *rstd, const T *x, const float *gamma, const float *beta, int64_t d,
                             float eps) {
    int64_t r = blockIdx.x;
    const T *xs = x + r * d;
    T *ys = y + r * d;
    float m, rs;
    set_stats(xs, d, eps, &m, &rs);
    if (threadIdx.x == 0) mean[r] = m, rstd[r] = rs;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float xhat = __fmul_rn(__fadd_rn(to_f(xs[j]), -m), rs);
        ys[j] = from_f<T>(mul_add_rn(xhat, gamma ? gamma[j] : 1.0f, beta ? beta[j] : 0.0f));
    }
}

void cuda_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                     float eps) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    k_layer_norm<float><<<grid_dim(rows), THREADS>>>(F(y), F(mean), F(rstd), CF(x), CF(gamma), CF(beta), d, eps);
    LAUNCH_CHECK();
}

/* One block per row: dx = rs (g G - mean_a - xhat mean_b). */
__global__ void k_ln_dx(float *dx, const float *x, const float *dy, const float *mean, const float *rstd, const float *gamma,
                        int64_t d) {
    int64_t r = blockIdx.x;
    const float *xs = x + r * d, *g = dy + r * d;
    float *out = dx + r * d, m = mean[r], rs = rstd[r];
    double a = 0, b = 0;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float dxhat = __fmul_rn(g[j], gamma ? gamma[j] : 1.0f), xhat = __fmul_rn(__fadd_rn(xs[j], -m), rs);
        a += dxhat, b += __fmul_rn(dxhat, xhat);
    }
    a = block_sum(a);
    b = block_sum(b);
    float mean_a = (float)(a / (double)d), mean_b = (float)(b / (double)d);
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
        float dxhat = __fmul_rn(g[j], gamma ? gamma[j] : 1.0f), xhat = __fmul_rn(__fadd_rn(xs[j], -m), rs);
        out[j] = __fmul_rn(rs, __fadd_rn(__fadd_rn(dxhat, -mean_a), -__fmul_rn(xhat, mean_b)));
    }
}

enum { LN_TILE = 32, LN_SLICES = 8, LN_ROWS_PER_CHUNK = 512, LN_MAX_CHUNKS = 256 };

/* Block (32, 8): 32 adjacent columns over one chunk of rows; partial[chunk][col]
 * of sum g xhat (into pg) and sum g (into pb). */
__global__ void k_ln_param_partials(double *pg, double *pb, const float *x, const float *dy, const float *mean,
                                    const float *rstd, int64_t rows, int64_t d, int64_t chunk_rows) {
    __shared__ double acc_g[LN_SLICES][LN_TILE], acc_b[LN_SLICES][LN_TILE];
    int64_t j = (int64_t)blockIdx.x * LN_TILE + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    double ag = 0, ab = 0;
    if (j < d)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += LN_SLICES) {
            float g = dy[r * d + j], xhat = __fmul_rn(__fadd_rn(x[r * d + j], -mean[r]), rstd[r]);
            ag += __fmul_rn(g, xhat), ab += g;
        }
    acc_g[threadIdx.y][threadIdx.x] = ag, acc_b[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        double sg = 0, sb = 0;
        for (int k = 0; k < LN_SLICES; k++) sg += acc_g[k][threadIdx.x], sb += acc_b[k][threadIdx.x];
        pg[(int64_t)blockIdx.y * d + j] = sg, pb[(int64_t)blockIdx.y * d + j] = sb;
    }
}

__global__ void k_ln_param_finish(float *dgamma, float *dbeta, const double *pg, const double *pb, int chunks, int64_t d) {
    GRID_STRIDE(j, d) {
        double sg = 0, sb = 0;
        for (int k = 0; k < chunks; k++) sg += pg[(int64_t)k * d + j], sb += pb[(int64_t)k * d + j];
        if (dgamma) dgamma[j] += (float)sg;
        if (dbeta) dbeta[j] += (float)sb;
    }
}

void cuda_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                              const tensor *rstd, const tensor *gamma, const tensor *dy) {
    int64_t d = x->shape[x->ndim - 1], rows = tensor_numel(x) / d;
    if (dgamma || dbeta) {
        int64_t chunks = (rows + LN_ROWS_PER_CHUNK - 1) / LN_ROWS_PER_CHUNK;
        if (chunks > LN_MAX_CHUNKS) chunks = LN_MAX_CHUNKS;
        int64_t chunk_rows = (rows + chunks - 1) / chunks;
        double *pg = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (size_t)(2 * chunks * d)), *pb = pg + chunks * d;
        dim3 grid(grid_dim((d + LN_TILE - 1) / LN_TILE), (unsigned)chunks), block(LN_TILE, LN_SLICES);
        k_ln_param_partials<<<grid, block>>>(pg, pb, CF(x), CF(dy), CF(mean), CF(rstd), rows, d, chunk_rows);
        LAUNCH_CHECK();
        k_ln_param_finish<<<blocks_for(d), THREADS>>>(F(dgamma), F(dbeta), pg, pb, (int)chunks, d);
        LAUNCH_CHECK();
    }
    if (dx) {
        k_ln_dx<<<grid_dim(rows), THREADS>>>(F(dx), CF(x), CF(dy), CF(mean), CF(rstd), CF(gamma), d);
        LAUNCH_CHECK();
    }
}
