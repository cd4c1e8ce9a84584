/* test_gemm.c - cpu_gemm_nn (lib/cpu_gemm.c) against a double-precision
 * product: every edge of the packed kernel (rows past a 12-row sliver,
 * columns past a 32-column panel, k past a 256-deep block), strided
 * operands, beta 0 (C's old values ignored, NaN included) and beta 1. On a
 * CPU without AVX-512 this checks the OpenBLAS path, and says so. */
#include <math.h>
#include <stdint.h>

#include "cpu_nn.h"
#include "rng.h"
#include "test.h"
#include "util.h"

static float *random_matrix(rng *r, size_t n) {
    float *x = xmalloc(sizeof(float) * n);
    rng_normal_fill(r, x, n);
    return x;
}

/* max |C - ref| / max |ref| over the m x n block, ref = beta C0 + A B in double. */
static double gemm_error(int m, int n, int k, int lda, int ldb, int ldc, float beta) {
    rng r;
    rng_seed(&r, (uint64_t)(m * 1000003 + n * 1009 + k), 0);
    float *A = random_matrix(&r, (size_t)m * lda), *B = random_matrix(&r, (size_t)k * ldb);
    float *C = random_matrix(&r, (size_t)m * ldc), *C0 = xmalloc(sizeof(float) * (size_t)m * ldc);
    if (beta == 0.0f) C[0] = NAN; /* beta 0 must not read C */
    memcpy(C0, C, sizeof(float) * (size_t)m * ldc);
    cpu_gemm_nn(m, n, k, A, lda, B, ldb, beta, C, ldc);
    double worst = 0, scale = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            if (j >= n) { /* past the block: untouched */
                CHECKF(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j], "C[%d][%d] written past n = %d", i, j, n);
                continue;
            }
            double ref = beta != 0.0f ? beta * (double)C0[(size_t)i * ldc + j] : 0.0;
            for (int p = 0; p < k; p++) ref += (double)A[(size_t)i * lda + p] * B[(size_t)p * ldb + j];
            double d = fabs(C[(size_t)i * ldc + j] - ref);
            worst = d > worst || d != d ? d : worst;
            scale = fabs(ref) > scale ? fabs(ref) : scale;
        }
    free(A), free(B), free(C), free(C0);
    return worst / scale;
}

TEST(gemm_shapes) {
    static const int shapes[][3] = {{1, 1, 1},   {12, 32, 256}, {13, 33, 257}, {11, 31, 255}, {64, 910, 1152},
                                    {5, 17, 3},  {24, 64, 512}, {100, 7, 600}, {3, 200, 27},  {37, 45, 1000}};
    printf("# cpu_gemm_nn: %s\n", cpu_gemm_has_avx512() ? "AVX-512 kernel" : "OpenBLAS (no AVX-512 here)");
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1], k = shapes[t][2];
        for (int beta = 0; beta <= 1; beta++) {
            double e = gemm_error(m, n, k, k, n, n, (float)beta), es = gemm_error(m, n, k, k + 3, n + 5, n + 7, (float)beta);
            CHECKF(e <= 1e-5 && es <= 1e-5, "m %d n %d k %d beta %d: rel err %.3g (strided %.3g)", m, n, k, beta, e, es);
        }
    }
}

int main(void) {
    RUN(gemm_shapes);
    TEST_EXIT();
}
