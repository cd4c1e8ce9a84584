/* cpu_gemm.c - a single-threaded SGEMM for the convolution's tasks, with an
 * AVX-512 kernel picked at run time.
 *
 * Why our own: each forward task of cpu_conv.c is one GEMM on one thread,
 * C[m, n] = beta C + A[m, k] B[k, n], all row-major (weights times unfolded
 * columns). On AVX-512 machines whose environment pins OpenBLAS to its AVX2
 * kernels (OPENBLAS_CORETYPE), or whose OpenBLAS does not know the CPU, that
 * GEMM runs at half the machine's width; this kernel does not depend on
 * OpenBLAS's choice. Without AVX-512 the call goes to cblas_sgemm.
 *
 * The layout is the usual one of packed GEMMs (Goto, BLIS): for each block of
 * KC rows of B, the matching columns of A are packed into MR-row slivers
 * (k-major, MR values per k) and B into NR-column panels (NR values per k),
 * so that the micro-kernel reads both sequentially. The micro-kernel keeps an
 * MR x NR block of C in 24 zmm registers (12 rows x 2 vectors of 16 columns)
 * and does one broadcast of A and two FMAs per row per k. Edges: A's last
 * sliver and B's last panel are zero-padded when packed, and the kernel
 * stores only the rows and columns that exist (masked stores). The packed
 * buffers belong to the calling thread and only grow. */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_nn.h"
#include "util.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#define AVX512 __attribute__((target("avx512f")))

enum { MR = 12, NR = 32, KC = 256 };

/* The calling thread's packing buffers (64-byte aligned, grown on demand). */
static _Thread_local float *packed_a, *packed_b;
static _Thread_local size_t packed_a_floats, packed_b_floats;

static float *grow(float **buf, size_t *have, size_t want) {
    if (*have >= want) return *buf;
    free(*buf);
    *buf = aligned_alloc(64, (want * sizeof(float) + 63) & ~(size_t)63);
    if (!*buf) die("out of memory (%zu bytes for GEMM packing)", want * sizeof(float));
    *have = want;
    return *buf;
}

/* A[i0 : i0 + MR, k0 : k0 + kc] into dst[k][MR], rows past m zero. */
static void pack_a_sliver(const float *A, int lda, int rows, int kc, float *dst) {
    for (int i = 0; i < MR; i++) {
        const float *src = A + (int64_t)i * lda;
        if (i < rows)
            for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
        else
            for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
    }
}

/* B[k0 : k0 + kc, j0 : j0 + NR] into dst[k][NR], columns past n zero. */
AVX512 static void pack_b_panel(const float *B, int ldb, int cols, int kc, float *dst) {
    __mmask16 lo = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 hi = cols >= NR ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int k = 0; k < kc; k++, B += ldb, dst += NR) {
        _mm512_store_ps(dst, _mm512_maskz_loadu_ps(lo, B));
        _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(hi, B + 16));
    }
}

/* C[0 : rows, 0 : cols] (ldc) = (accumulate ? C : 0) + a b over kc, a and b packed. */
AVX512 static void micro_kernel(int kc, const float *a, const float *b, float *C, int ldc, int rows, int cols,
                                int accumulate) {
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = _mm512_setzero_ps(), c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
        }
    }
    __mmask16 lo = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 hi = cols >= NR ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int i = 0; i < rows; i++, C += ldc) {
        __m512 v0 = c[i][0], v1 = c[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, C));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, C + 16));
        }
        _mm512_mask_storeu_ps(C, lo, v0);
        _mm512_mask_storeu_ps(C + 16, hi, v1);
    }
}

AVX512 static void gemm_avx512(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                               int ldc) {
    int slivers = (m + MR - 1) / MR;
    float *pa = grow(&packed_a, &packed_a_floats, (size_t)slivers * MR * KC);
    float *pb = grow(&packed_b, &packed_b_floats, (size_t)NR * KC);
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        /* beta is 0 or 1 here; the first block of k applies it, later ones add. */
        int accumulate = k0 > 0 || beta != 0.0f;
        for (int s = 0; s < slivers; s++)
            pack_a_sliver(A + (int64_t)s * MR * lda + k0, lda, m - s * MR < MR ? m - s * MR : MR, kc,
                          pa + (size_t)s * MR * kc);
        for (int j0 = 0; j0 < n; j0 += NR) {
            int cols = n - j0 < NR ? n - j0 : NR;
            pack_b_panel(B + (int64_t)k0 * ldb + j0, ldb, cols, kc, pb);
            for (int s = 0; s < slivers; s++) {
                int rows = m - s * MR < MR ? m - s * MR : MR;
                micro_kernel(kc, pa + (size_t)s * MR * kc, pb, C + (int64_t)s * MR * ldc + j0, ldc, rows, cols, accumulate);
            }
        }
    }
}
#endif

/* LCM_NO_AVX512=1 turns the kernel off (to compare with OpenBLAS). */
int cpu_gemm_has_avx512(void) {
#ifdef HAVE_AVX512_PATH
    static int known = -1; /* a benign race: every thread computes the same value */
    if (known < 0) {
        const char *off = getenv("LCM_NO_AVX512");
        known = __builtin_cpu_supports("avx512f") && !(off && *off && strcmp(off, "0")) ? 1 : 0;
    }
    return known;
#else
    return 0;
#endif
}

void cpu_gemm_nn(int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef HAVE_AVX512_PATH
    if ((beta == 0.0f || beta == 1.0f) && m > 0 && n > 0 && k > 0 && cpu_gemm_has_avx512()) {
        gemm_avx512(m, n, k, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
