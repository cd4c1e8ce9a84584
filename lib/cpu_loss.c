/* cpu_loss.c - the distillation losses, as means over all elements:
 * mse (x - y)^2 and pseudo-Huber sqrt((x - y)^2 + c^2) - c. */
#include <math.h>

#include "cpu_nn.h"
#include "tensor.h"

double cpu_loss(const tensor *x, const tensor *y, loss_kind kind, float c) {
    const float *X = x->data, *Y = y->data;
    int64_t n = tensor_numel(x);
    double total = 0;
    if (kind == LOSS_MSE) {
#pragma omp parallel for reduction(+ : total) if (n > 65536)
        for (int64_t i = 0; i < n; i++) total += (double)(X[i] - Y[i]) * (X[i] - Y[i]);
    } else {
        double cc = (double)c * c;
#pragma omp parallel for reduction(+ : total) if (n > 65536)
        for (int64_t i = 0; i < n; i++) {
            double e = (double)X[i] - Y[i];
            total += sqrt(e * e + cc) - c;
        }
    }
    return n ? total / (double)n : 0;
}

void cpu_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss) {
    const float *X = x->data, *Y = y->data;
    float *D = dx->data;
    int64_t n = tensor_numel(x);
    float k = n ? dloss / (float)n : 0;
    if (kind == LOSS_MSE) {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) D[i] = 2.0f * k * (X[i] - Y[i]);
    } else {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) {
            float e = X[i] - Y[i];
            D[i] = k * e / sqrtf(e * e + c * c);
        }
    }
}
