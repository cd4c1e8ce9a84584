/* linear.cu - fully connected layers as cuBLAS SGEMMs (FP32, no TF32).
 *
 * cuBLAS is column-major; a row-major [m, n] matrix is the column-major
 * [n, m] one, its transpose. So the row-major C = op(A) op(B) is computed as
 * the column-major C^T = op(B)^T op(A)^T: operands swapped, flags kept. */
#include "cuda_common.h"

/* Row-major C[m, n] = alpha op(A) op(B) + beta C with leading dims lda, ldb, ldc. */
static void sgemm_row_major(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                            int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) die("cuda linear: GEMM of %lld x %lld x %lld is too large", (long long)m, (long long)n, (long long)k);
    CUBLAS_CHECK(cublasSgemm(cuda_cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                             (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, c, (int)ldc));
}

/* y[rows, out] = x[rows, in] W^T + b: the bias is broadcast into y first and
 * the GEMM adds onto it (beta 1), as the CPU reference does. */
void cuda_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    int64_t out = w->shape[0], in = w->shape[1], rows = tensor_numel(x) / in;
    if (b) cuda_broadcast_add(F(y), NULL, CF(b), rows, out, 1, 0);
    sgemm_row_major(0, 1, rows, out, in, 1.0f, CF(x), in, CF(w), in, b ? 1.0f : 0.0f, F(y), out);
}

/* dx = dy W (written), dW += dy^T x, db += column sums of dy (added). */
void cuda_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy) {
    int64_t out = w->shape[0], in = w->shape[1], rows = tensor_numel(x) / in;
    if (dx) sgemm_row_major(0, 0, rows, in, out, 1.0f, CF(dy), out, CF(w), in, 0.0f, F(dx), in);
    if (dw) sgemm_row_major(1, 0, out, in, rows, 1.0f, CF(dy), out, CF(x), in, 1.0f, F(dw), in);
    if (db) cuda_channel_sums(F(db), CF(dy), rows, out, 1);
}
