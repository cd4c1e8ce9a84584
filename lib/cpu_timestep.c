/* cpu_timestep.c - the sinusoidal timestep embedding of diffusers'
 * get_timestep_embedding, operation for operation in float32:
 *   exponent = -ln(max_period) * arange(half) / (half - downscale_freq_shift)
 *   emb = scale * (t[:, None] * exp(exponent)[None, :])
 *   emb = cat(sin(emb), cos(emb)), swapped to (cos, sin) by flip_sin_to_cos,
 *   zero-padded by one column when dim is odd.
 * The arguments reach t (1000) radians, where one rounding more or less moves
 * the result, so the float32 order matters, and so does exp's last bit: it is
 * PyTorch's (torch_expf), not the C library's. */
#include <math.h>

#include "cpu_nn.h"
#include "torch_math.h"
#include "tensor.h"

void cpu_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p) {
    int64_t n = t->shape[0], dim = emb->shape[1], half = dim / 2;
    const float *T = t->data;
    float *E = emb->data;
    float neg_log_period = (float)-log((double)p.max_period), denom = (float)half - p.downscale_freq_shift;
    for (int64_t b = 0; b < n; b++) {
        float *row = E + b * dim;
        float *sin_part = row + (p.flip_sin_to_cos ? half : 0), *cos_part = row + (p.flip_sin_to_cos ? 0 : half);
        for (int64_t j = 0; j < half; j++) {
            float exponent = neg_log_period * (float)j;
            exponent = exponent / denom;
            float arg = T[b] * torch_expf(exponent);
            arg = p.scale * arg;
            sin_part[j] = sinf(arg);
            cos_part[j] = cosf(arg);
        }
        if (dim % 2) row[dim - 1] = 0;
    }
}
