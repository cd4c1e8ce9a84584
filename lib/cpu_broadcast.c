/* cpu_broadcast.c - adding a per-channel ([C]) or per-image-and-channel
 * ([N, C], e.g. the time embedding) vector to an [N, C, ...] tensor, and the
 * backward: the sum over the dims the vector was broadcast along. */
#include "cpu_nn.h"
#include "tensor.h"

void cpu_add_broadcast(tensor *y, const tensor *x, const tensor *v) {
    int64_t n = x->shape[0], c = x->shape[1], inner = tensor_numel(x) / (n * c);
    int per_image = v->ndim == 2;
    const float *X = x->data, *V = v->data;
    float *Y = y->data;
#pragma omp parallel for if (n * c * inner > 65536)
    for (int64_t plane = 0; plane < n * c; plane++) {
        float add = V[per_image ? plane : plane % c];
        const float *src = X + plane * inner;
        float *dst = Y + plane * inner;
        for (int64_t i = 0; i < inner; i++) dst[i] = src[i] + add;
    }
}

void cpu_add_broadcast_backward(tensor *dv, const tensor *dy) {
    int64_t n = dy->shape[0], c = dy->shape[1], inner = tensor_numel(dy) / (n * c);
    int per_image = dv->ndim == 2;
    const float *DY = dy->data;
    float *DV = dv->data;
    /* One owner per output element: planes when per image, channels otherwise. */
    int64_t outputs = per_image ? n * c : c, images = per_image ? 1 : n;
#pragma omp parallel for if (n * c * inner > 65536)
    for (int64_t o = 0; o < outputs; o++) {
        double acc = 0;
        for (int64_t b = 0; b < images; b++) {
            const float *src = DY + (per_image ? o : b * c + o) * inner;
            float part = 0;
#pragma omp simd reduction(+ : part)
            for (int64_t i = 0; i < inner; i++) part += src[i];
            acc += part;
        }
        DV[o] += (float)acc;
    }
}
