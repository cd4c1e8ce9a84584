/* upsample.cu - nearest-neighbour resize and its backward, FP32.
 *
 * The source index is PyTorch's (cpu_upsample.c's) in the same float
 * operations, so both backends pick the same pixel. The backward is a gather,
 * not a scatter: each input pixel sums the window of output pixels that
 * copied it, found by inverting the (monotonic) source index. One writer per
 * element, no atomics, and the sum runs in the CPU reference's order (rows,
 * then columns, ascending). */
#include "cuda_common.h"

/* The input index output o copies: exact halving for x2, else floor(o * in / out) in float. */
__device__ __forceinline__ int nearest_source(int o, int in, int out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    int i = (int)__fmul_rn((float)o, __fdiv_rn((float)in, (float)out));
    return i < in - 1 ? i : in - 1;
}

/* The first output index whose source is >= i (out when none). nearest_source
 * is non-decreasing in o, so the outputs copying input i are
 * [first_output(i), first_output(i + 1)). Starts from an estimate and walks;
 * the walk, not the estimate, makes it exact. */
__device__ int first_output(int i, int in, int out) {
    if (i <= 0) return 0;
    if (i >= in) return out;
    int o = (int)((int64_t)i * out / in);
    if (o > out) o = out;
    while (o > 0 && nearest_source(o - 1, in, out) >= i) o--;
    while (o < out && nearest_source(o, in, out) < i) o++;
    return o;
}

template <typename T> __global__ void k_upsample(T *y, const T *x, int64_t planes, int h, int w, int oh, int ow) {
    GRID_STRIDE(idx, planes * oh * ow) {
        int64_t pl = idx / ((int64_t)oh * ow);
        int r = (int)(idx / ow % oh), c = (int)(idx % ow);
        y[idx] = x[(pl * h + nearest_source(r, h, oh)) * w + nearest_source(c, w, ow)];
    }
}

template <typename T> __global__ void k_upsample_backward(T *dx, const T *dy, int64_t planes, int h, int w, int oh, int ow) {
    GRID_STRIDE(idx, planes * h * w) {
        int64_t pl = idx / ((int64_t)h * w);
        int i = (int)(idx / w % h), j = (int)(idx % w);
        int r0 = first_output(i, h, oh), r1 = first_output(i + 1, h, oh);
        int c0 = first_output(j, w, ow), c1 = first_output(j + 1, w, ow);
        const T *src = dy + pl * oh * ow;
        float acc = 0;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) acc += to_f(src[(int64_t)r * ow + c]);
        dx[idx] = from_f<T>(acc);
    }
}

void cuda_upsample_nearest(tensor *y, const tensor *x) {
    int64_t planes = x->shape[0] * x->shape[1];
    int h = (int)x->shape[2], w = (int)x->shape[3], oh = (int)y->shape[2], ow = (int)y->shape[3];
    k_upsample<float><<<blocks_for(planes * oh * ow), THREADS>>>(F(y), CF(x), planes, h, w, oh, ow);
    LAUNCH_CHECK();
}

void cuda_upsample_nearest_backward(tensor *dx, const tensor *dy) {
    int64_t planes = dx->shape[0] * dx->shape[1];
    int h = (int)dx->shape[2], w = (int)dx->shape[3], oh = (int)dy->shape[2], ow = (int)dy->shape[3];
    k_upsample_backward<float><<<blocks_for(planes * h * w), THREADS>>>(F(dx), CF(dy), planes, h, w, oh, ow);
    LAUNCH_CHECK();
}
