/* cpu_channels.c - channel-slice copies (concatenation along dim 1 and its
 * backward) and the scale/shift modulation of diffusers' ResnetBlock2D. */
#include <string.h>

#include "cpu_nn.h"

static int64_t per_channel(const tensor *t) { return tensor_numel(t) / (t->shape[0] * t->shape[1]); }

/* Per image the slice is one contiguous run in both tensors. */
void cpu_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels) {
    int64_t n = dst->shape[0], inner = per_channel(dst), run = channels * inner;
    int64_t dst_stride = dst->shape[1] * inner, src_stride = src->shape[1] * inner;
    float *d = (float *)dst->data + dst_c0 * inner;
    const float *s = (const float *)src->data + src_c0 * inner;
#pragma omp parallel for if (n * run > 65536)
    for (int64_t i = 0; i < n; i++) memcpy(d + i * dst_stride, s + i * src_stride, sizeof(float) * (size_t)run);
}

void cpu_scale_shift(tensor *y, const tensor *x, const tensor *ss) {
    int64_t n = x->shape[0], c = x->shape[1], inner = per_channel(x);
    const float *X = x->data, *S = ss->data;
    float *Y = y->data;
#pragma omp parallel for if (n * c * inner > 65536)
    for (int64_t plane = 0; plane < n * c; plane++) {
        int64_t i = plane / c, ch = plane % c;
        float scale = 1.0f + S[i * 2 * c + ch], shift = S[i * 2 * c + c + ch];
        const float *xp = X + plane * inner;
        float *yp = Y + plane * inner;
        for (int64_t k = 0; k < inner; k++) yp[k] = xp[k] * scale + shift;
    }
}

void cpu_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy) {
    int64_t n = x->shape[0], c = x->shape[1], inner = per_channel(x);
    const float *X = x->data, *S = ss->data, *DY = dy->data;
    float *DX = dx ? dx->data : NULL, *DS = dss ? dss->data : NULL;
#pragma omp parallel for if (n * c * inner > 65536)
    for (int64_t plane = 0; plane < n * c; plane++) {
        int64_t i = plane / c, ch = plane % c;
        float scale = 1.0f + S[i * 2 * c + ch];
        const float *xp = X + plane * inner, *g = DY + plane * inner;
        double sx = 0, s1 = 0;
        for (int64_t k = 0; k < inner; k++) {
            sx += (double)g[k] * xp[k];
            s1 += g[k];
            if (DX) DX[plane * inner + k] = g[k] * scale;
        }
        if (DS) DS[i * 2 * c + ch] = (float)sx, DS[i * 2 * c + c + ch] = (float)s1;
    }
}
