/* loss.cu - the distillation losses (means over all elements of (x - y)^2 or
 * of sqrt((x - y)^2 + c^2) - c) and their gradients. The forward sums in
 * double per block, as cuda_sum does, and the host adds the partials: the
 * result is a double, like the CPU reference's. */
#include <math.h>

#include "cuda_common.h"

enum { LOSS_BLOCKS = 1024 };

/* The terms in cpu_loss.c's double arithmetic; one partial sum per block. */
__global__ void k_loss_partials(double *partial, const float *x, const float *y, int64_t n, int huber, double c) {
    double acc = 0, cc = c * c;
    GRID_STRIDE(i, n) {
        if (huber) {
            double e = (double)x[i] - y[i];
            acc += sqrt(e * e + cc) - c;
        } else {
            acc += (double)(x[i] - y[i]) * (x[i] - y[i]);
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

double cuda_loss(const tensor *x, const tensor *y, loss_kind kind, float c) {
    int64_t n = tensor_numel(x);
    if (!n) return 0;
    int blocks = blocks_for(n) < LOSS_BLOCKS ? blocks_for(n) : LOSS_BLOCKS;
    double *partial = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * LOSS_BLOCKS), host[LOSS_BLOCKS], total = 0;
    k_loss_partials<<<blocks, THREADS>>>(partial, CF(x), CF(y), n, kind == LOSS_PSEUDO_HUBER, (double)c);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpy(host, partial, sizeof(double) * (size_t)blocks, cudaMemcpyDeviceToHost));
    for (int i = 0; i < blocks; i++) total += host[i];
    return total / (double)n;
}

/* dx = k d(term)/dx with k = dloss / n, in cpu_loss.c's float order. */
__global__ void k_loss_backward(float *dx, const float *x, const float *y, int64_t n, int huber, float c, float k) {
    GRID_STRIDE(i, n) {
        float e = x[i] - y[i];
        dx[i] = huber ? __fdiv_rn(__fmul_rn(k, e), sqrtf(__fadd_rn(__fmul_rn(e, e), __fmul_rn(c, c))))
                      : __fmul_rn(__fmul_rn(2.0f, k), e);
    }
}

void cuda_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss) {
    int64_t n = tensor_numel(x);
    float k = n ? dloss / (float)n : 0;
    k_loss_backward<<<blocks_for(n), THREADS>>>(F(dx), CF(x), CF(y), n, kind == LOSS_PSEUDO_HUBER, c, k);
    LAUNCH_CHECK();
}
