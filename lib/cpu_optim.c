/* cpu_optim.c - the optimizer's elementwise passes over the flat buffers. */
#include <math.h>

#include "cpu_nn.h"

/* torch.optim.AdamW, single-tensor path, in its order of operations:
 * p *= 1 - lr wd; m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
 * p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
void cpu_adamw(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p) {
    float *w = param->data, *ms = m->data, *vs = v->data;
    const float *g = grad->data;
    int64_t n = tensor_numel(param);
    float decay = 1.0f - p.lr * p.weight_decay;
    float step_size = (float)(p.lr / (1.0 - pow(p.beta1, (double)p.step)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(p.beta2, (double)p.step));
    float one_b1 = 1.0f - p.beta1, one_b2 = 1.0f - p.beta2;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        w[i] *= decay;
        ms[i] += one_b1 * (g[i] - ms[i]);
        vs[i] = p.beta2 * vs[i] + one_b2 * g[i] * g[i];
        float denom = sqrtf(vs[i]) / bc2_sqrt + p.eps;
        w[i] -= step_size * ms[i] / denom;
    }
}

double cpu_sumsq(const tensor *x) {
    const float *xs = x->data;
    int64_t n = tensor_numel(x);
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (int64_t i = 0; i < n; i++) s += (double)xs[i] * xs[i];
    return s;
}
