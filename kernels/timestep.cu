/* timestep.cu - diffusers' sinusoidal timestep embedding, FP32, operation for
 * operation as cpu_timestep.c: the arguments reach ~1000 radians, where one
 * rounding more or less moves the sine, so the products are unfused
 * (__fmul_rn, __fdiv_rn) and exp is torch_expf's algorithm (SLEEF's u10 with
 * FMAs, lib/torch_math.c), not CUDA's expf, which rounds differently. */
#include "cuda_common.h"

/* A device copy of torch_expf (lib/torch_math.c), line for line. */
__device__ float torch_expf_dev(float x) {
    if (x < -104.0f) return 0.0f;
    if (x > 104.0f) return INFINITY;
    if (isnan(x)) return x;
    float q = nearbyintf(__fmul_rn(x, 1.442695040888963407359924681001892137f));
    float s = fmaf(q, -0.693145751953125f, x);
    s = fmaf(q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = __fadd_rn(1.0f, fmaf(__fmul_rn(s, s), u, s));
    return ldexpf(u, (int)q);
}

/* One thread per (timestep, frequency): the sine and the cosine of one argument. */
__global__ void k_timestep_embedding(float *emb, const float *t, int64_t n, int64_t dim, float neg_log_period, float denom,
                                     float scale, int flip) {
    int64_t half = dim / 2;
    GRID_STRIDE(i, n * half) {
        int64_t b = i / half, j = i % half;
        float *row = emb + b * dim;
        float exponent = __fdiv_rn(__fmul_rn(neg_log_period, (float)j), denom);
        float arg = __fmul_rn(scale, __fmul_rn(t[b], torch_expf_dev(exponent)));
        row[(flip ? half : 0) + j] = sinf(arg);
        row[(flip ? 0 : half) + j] = cosf(arg);
        if (dim % 2 && j == 0) row[dim - 1] = 0; /* odd dim: a zero column at the end */
    }
}

void cuda_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p) {
    int64_t n = t->shape[0], dim = emb->shape[1], half = dim / 2;
    /* Host-side constants computed exactly as cpu_timestep.c computes them. */
    float neg_log_period = (float)-log((double)p.max_period), denom = (float)half - p.downscale_freq_shift;
    k_timestep_embedding<<<blocks_for(n * half), THREADS>>>(F(emb), CF(t), n, dim, neg_log_period, denom, p.scale,
                                                            p.flip_sin_to_cos);
    LAUNCH_CHECK();
}
