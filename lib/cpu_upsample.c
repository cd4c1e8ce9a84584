/* cpu_upsample.c - nearest-neighbour resize and its backward (a sum of the
 * output pixels that copied each input pixel). */
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

/* PyTorch's nearest source index: exact halving for x2, else floor(o * in / out) in float. */
static inline int nearest_source(int o, int in, int out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    int i = (int)((float)o * ((float)in / (float)out));
    return i < in - 1 ? i : in - 1;
}

void cpu_upsample_nearest(tensor *y, const tensor *x) {
    int64_t planes = x->shape[0] * x->shape[1];
    int h = (int)x->shape[2], w = (int)x->shape[3], oh = (int)y->shape[2], ow = (int)y->shape[3];
    const float *X = x->data;
    float *Y = y->data;
#pragma omp parallel for if (planes * oh * ow > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *src = X + pl * h * w;
        float *dst = Y + pl * oh * ow;
        for (int r = 0; r < oh; r++, dst += ow) {
            const float *srow = src + (int64_t)nearest_source(r, h, oh) * w;
            if (ow == 2 * w)
                for (int c = 0; c < ow; c++) dst[c] = srow[c >> 1];
            else
                for (int c = 0; c < ow; c++) dst[c] = srow[nearest_source(c, w, ow)];
        }
    }
}

void cpu_upsample_nearest_backward(tensor *dx, const tensor *dy) {
    int64_t planes = dx->shape[0] * dx->shape[1];
    int h = (int)dx->shape[2], w = (int)dx->shape[3], oh = (int)dy->shape[2], ow = (int)dy->shape[3];
    const float *DY = dy->data;
    float *DX = dx->data;
#pragma omp parallel for if (planes * oh * ow > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dst = DX + pl * h * w;
        const float *src = DY + pl * oh * ow;
        memset(dst, 0, sizeof(float) * (size_t)h * w);
        for (int r = 0; r < oh; r++, src += ow) {
            float *drow = dst + (int64_t)nearest_source(r, h, oh) * w;
            for (int c = 0; c < ow; c++) drow[nearest_source(c, w, ow)] += src[c];
        }
    }
}
