/* channels.cu - channel-slice copies (concatenation along dim 1 and its
 * backward) and the scale/shift modulation of diffusers' ResnetBlock2D; the
 * CUDA side of lib/cpu_channels.c, which is the reference.
 *
 * Tensors are [N, C, inner...] (inner 1 for [N, C]); ss is [N, 2C], the scale
 * in its first C columns and the shift in the last C. */
#include "cuda_common.h"

static int64_t per_channel(const tensor *t) { return tensor_numel(t) / (t->shape[0] * t->shape[1]); }

/* Per image the slice is one contiguous run of `run` floats in both tensors. */
__global__ void k_copy_channels(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t n,
                                int64_t run) {
    GRID_STRIDE(e, n * run) {
        int64_t i = e / run, k = e % run;
        dst[i * dst_stride + k] = src[i * src_stride + k];
    }
}

void cuda_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels) {
    if (tensor_numel(dst) == 0) return;
    int64_t n = dst->shape[0], inner = per_channel(dst), run = channels * inner;
    float *d = F(dst) + dst_c0 * inner;
    const float *s = CF(src) + src_c0 * inner;
    k_copy_channels<<<blocks_for(n * run), THREADS>>>(d, dst->shape[1] * inner, s, src->shape[1] * inner, n, run);
    LAUNCH_CHECK();
}

/* y = x (1 + scale) + shift, elementwise. The product and the sum are rounded
 * separately (no FMA), as the CPU reference computes them. */
__global__ void k_scale_shift(float *y, const float *x, const float *ss, int64_t c, int64_t inner, int64_t total) {
    GRID_STRIDE(e, total) {
        int64_t plane = e / inner, i = plane / c, ch = plane % c;
        float scale = __fadd_rn(1.0f, ss[i * 2 * c + ch]), shift = ss[i * 2 * c + c + ch];
        y[e] = __fadd_rn(__fmul_rn(x[e], scale), shift);
    }
}

void cuda_scale_shift(tensor *y, const tensor *x, const tensor *ss) {
    int64_t total = tensor_numel(x);
    if (total == 0) return;
    k_scale_shift<<<blocks_for(total), THREADS>>>(F(y), CF(x), CF(ss), x->shape[1], per_channel(x), total);
    LAUNCH_CHECK();
}

/* One block per (image, channel) plane: dx = dy (1 + scale) is written (dx may
 * be dy: each element is read before it is written, by the same thread), and
 * dss = (sum dy x, sum dy) over the plane is written, summed in double as on
 * the CPU. dx or dss may be NULL. */
__global__ void k_scale_shift_backward(float *dx, float *dss, const float *x, const float *ss, const float *dy, int64_t c,
                                       int64_t inner) {
    int64_t plane = blockIdx.x, i = plane / c, ch = plane % c;
    float scale = __fadd_rn(1.0f, ss[i * 2 * c + ch]);
    const float *xp = x + plane * inner, *g = dy + plane * inner;
    double sx = 0, s1 = 0;
    for (int64_t k = threadIdx.x; k < inner; k += blockDim.x) {
        float gk = g[k];
        if (dss) sx += (double)gk * xp[k], s1 += gk;
        if (dx) dx[plane * inner + k] = gk * scale;
    }
    if (!dss) return; /* uniform across the block: no thread is left waiting at a barrier */
    sx = block_sum(sx);
    s1 = block_sum(s1);
    if (threadIdx.x == 0) dss[i * 2 * c + ch] = (float)sx, dss[i * 2 * c + c + ch] = (float)s1;
}

void cuda_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy) {
    int64_t c = x->shape[1], planes = x->shape[0] * c;
    if (tensor_numel(x) == 0) return;
    k_scale_shift_backward<<<grid_dim(planes), THREADS>>>(F(dx), F(dss), CF(x), CF(ss), CF(dy), c, per_channel(x));
    LAUNCH_CHECK();
}
