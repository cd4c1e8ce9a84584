/* cpu_layout.c - ops that move data without arithmetic: embedding lookup and
 * the batched transpose between NCHW and token-major layouts. */
#include <string.h>

#include "cpu_nn.h"

void cpu_embedding(tensor *y, const tensor *table, const tensor *ids) {
    const int64_t *id = ids->data;
    int64_t n = tensor_numel(ids), D = table->shape[1];
    const float *t = table->data;
    float *out = y->data;
#pragma omp parallel for if (n * D > 65536)
    for (int64_t i = 0; i < n; i++) memcpy(out + i * D, t + id[i] * D, sizeof(float) * (size_t)D);
}

/* Tiles of 32 x 32 keep both the reads and the writes in cache lines. */
void cpu_transpose(tensor *y, const tensor *x) {
    int64_t b = x->ndim == 3 ? x->shape[0] : 1, m = x->shape[x->ndim - 2], n = x->shape[x->ndim - 1];
    const float *src = x->data;
    float *dst = y->data;
    enum { T = 32 };
    int64_t tiles_m = (m + T - 1) / T, tiles_n = (n + T - 1) / T;
#pragma omp parallel for collapse(2) if (b * m * n > 65536)
    for (int64_t k = 0; k < b; k++)
        for (int64_t tm = 0; tm < tiles_m; tm++)
            for (int64_t tn = 0; tn < tiles_n; tn++) {
                const float *s = src + k * m * n;
                float *d = dst + k * m * n;
                int64_t i1 = tm * T + T < m ? tm * T + T : m, j1 = tn * T + T < n ? tn * T + T : n;
                for (int64_t i = tm * T; i < i1; i++)
                    for (int64_t j = tn * T; j < j1; j++) d[j * m + i] = s[i * n + j];
            }
}
