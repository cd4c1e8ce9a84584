/* cpu_linear.c - fully connected layers as OpenBLAS GEMMs. */
#include <cblas.h>
#include <string.h>

#include "cpu_nn.h"
#include "tensor.h"

/* db[j] += sum over rows of dy[row, j], in column blocks so that threads own columns. */
static void add_column_sums(float *db, const float *dy, int64_t rows, int64_t cols) {
    enum { BLOCK = 256 };
#pragma omp parallel for if (rows * cols > 65536)
    for (int64_t j0 = 0; j0 < cols; j0 += BLOCK) {
        int64_t n = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        double acc[BLOCK] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *row = dy + r * cols + j0;
            for (int64_t j = 0; j < n; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < n; j++) db[j0 + j] += (float)acc[j];
    }
}

void cpu_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    int out = (int)w->shape[0], in = (int)w->shape[1];
    int64_t rows = tensor_numel(x) / in;
    float *Y = y->data;
    if (b) {
#pragma omp parallel for if (rows * out > 65536)
        for (int64_t r = 0; r < rows; r++) memcpy(Y + r * out, b->data, sizeof(float) * (size_t)out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, out, in, 1.0f, x->data, in, w->data, in, b ? 1.0f : 0.0f,
                Y, out);
}

void cpu_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy) {
    int out = (int)w->shape[0], in = (int)w->shape[1];
    int rows = (int)(tensor_numel(x) / in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy->data, out, w->data, in, 0.0f, dx->data, in);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy->data, out, x->data, in, 1.0f, dw->data, in);
    if (db) add_column_sums(db->data, dy->data, rows, out);
}
