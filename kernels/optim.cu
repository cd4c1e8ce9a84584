/* optim.cu - the optimizer's passes over the flat buffers: AdamW and the sum
 * of squares behind the gradient norm, as lib/cpu_optim.c computes them. */
#include <math.h>

#include "cuda_common.h"

enum { SUMSQ_BLOCKS = 1024 };

/* torch.optim.AdamW's order of operations; unfused products so the rounding
 * is the CPU's. */
__global__ void k_adamw(float *w, const float *g, float *m, float *v, int64_t n, float decay, float step_size,
                        float bc2_sqrt, float beta2, float one_b1, float one_b2, float eps) {
    GRID_STRIDE(i, n) {
        float wi = __fmul_rn(w[i], decay);
        float mi = __fadd_rn(m[i], __fmul_rn(one_b1, __fsub_rn(g[i], m[i])));
        float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_b2, g[i]), g[i]));
        float denom = __fadd_rn(__fdiv_rn(sqrtf(vi), bc2_sqrt), eps);
        w[i] = __fsub_rn(wi, __fdiv_rn(__fmul_rn(step_size, mi), denom));
        m[i] = mi;
        v[i] = vi;
    }
}

void cuda_adamw(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p) {
    int64_t n = tensor_numel(param);
    float decay = 1.0f - p.lr * p.weight_decay;
    float step_size = (float)(p.lr / (1.0 - pow(p.beta1, (double)p.step)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(p.beta2, (double)p.step));
    k_adamw<<<blocks_for(n), THREADS>>>(F(param), CF(grad), F(m), F(v), n, decay, step_size, bc2_sqrt, p.beta2,
                                        1.0f - p.beta1, 1.0f - p.beta2, p.eps);
    LAUNCH_CHECK();
}

__global__ void k_sumsq_partials(double *partial, const float *x, int64_t n) {
    double acc = 0;
    GRID_STRIDE(i, n) acc += (double)x[i] * x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

double cuda_sumsq(const tensor *x) {
    int64_t n = tensor_numel(x);
    if (!n) return 0;
    int blocks = blocks_for(n) < SUMSQ_BLOCKS ? blocks_for(n) : SUMSQ_BLOCKS;
    double *partial = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * SUMSQ_BLOCKS), host[SUMSQ_BLOCKS], total = 0;
    k_sumsq_partials<<<blocks, THREADS>>>(partial, CF(x), n);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpy(host, partial, sizeof(double) * (size_t)blocks, cudaMemcpyDeviceToHost));
    for (int i = 0; i < blocks; i++) total += host[i];
    return total;
}
