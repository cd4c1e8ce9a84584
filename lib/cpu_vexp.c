/* cpu_vexp.c - the exp-heavy inner loops of softmax and attention, with an
 * AVX2+FMA version picked at run time (__builtin_cpu_supports), so that the
 * binary still runs on any x86-64. The exp is cpu_expf's (cpu_nn.h): same
 * reduction and polynomial, 8 lanes at a time; GCC does not vectorise the
 * scalar one (its clamps are control flow without -ffast-math). */
#include <math.h>

#include "cpu_nn.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 s = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
    s = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), s);
    __m256 u = _mm256_set1_ps(0.000198527617612853646278381f);
    u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(0.00139304355252534151077271f));
    u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(0.00833336077630519866943359f));
    u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(0.0416664853692054748535156f));
    u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(0.166666671633720397949219f));
    u = _mm256_fmadd_ps(u, s, _mm256_set1_ps(0.5f));
    u = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_mul_ps(s, s), u, s));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 r = _mm256_mul_ps(u, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ), r);
}

AVX2 static float hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

AVX2 static float max_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    float mx = _mm_cvtss_f32(a);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

AVX2 static float exp_shift_sum_avx2(float *x, int64_t n, float shift) {
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; i < n; i++) sum += x[i] = cpu_expf(x[i] - shift);
    return sum;
}

AVX2 static void softmax_grad_avx2(float *p, float *dp, int64_t n, const float *shift, const float *dsum, int64_t step) {
    int64_t i = 0;
    if (step == 0) {
        __m256 sh = _mm256_set1_ps(shift[0]), dd = _mm256_set1_ps(dsum[0]);
        for (; i + 8 <= n; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), sh));
            _mm256_storeu_ps(p + i, e);
            _mm256_storeu_ps(dp + i, _mm256_mul_ps(e, _mm256_sub_ps(_mm256_loadu_ps(dp + i), dd)));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(shift + i)));
            _mm256_storeu_ps(p + i, e);
            _mm256_storeu_ps(dp + i, _mm256_mul_ps(e, _mm256_sub_ps(_mm256_loadu_ps(dp + i), _mm256_loadu_ps(dsum + i))));
        }
    }
    for (; i < n; i++) {
        float e = cpu_expf(p[i] - shift[i * step]);
        p[i] = e, dp[i] = e * (dp[i] - dsum[i * step]);
    }
}

static int use_avx2(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return known;
}
#else
#define HAVE_AVX2_PATH 0
static int use_avx2(void) { return 0; }
#endif

float cpu_max(const float *x, int64_t n) {
#if HAVE_AVX2_PATH
    if (use_avx2()) return max_avx2(x, n);
#endif
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

float cpu_exp_shift_sum(float *x, int64_t n, float shift) {
#if HAVE_AVX2_PATH
    if (use_avx2()) return exp_shift_sum_avx2(x, n, shift);
#endif
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i] = cpu_expf(x[i] - shift);
    return sum;
}

void cpu_softmax_grad(float *p, float *dp, int64_t n, const float *shift, const float *dsum, int64_t step) {
#if HAVE_AVX2_PATH
    if (use_avx2()) {
        softmax_grad_avx2(p, dp, n, shift, dsum, step);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        float e = cpu_expf(p[i] - shift[i * step]);
        p[i] = e, dp[i] = e * (dp[i] - dsum[i * step]);
    }
}
