/* img_prep_avx2.c - RGB rows to normalised planes with AVX2 (img_prep_avx2.h). */
#include "img_prep_avx2.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX2_F16C __attribute__((target("avx2,f16c")))

/* F16C from CPUID leaf 1 (clang's __builtin_cpu_supports does not know it);
 * every CPU with AVX2 and an OS that saves its registers has passed the
 * avx2 check first. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

int tensor_row_avx2_supported(int f16) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && (!f16 || has_f16c());
}

/* 12 bytes at p; never reads past them. */
AVX2 static inline __m128i load_12(const uint8_t *p) {
    int32_t last;
    __builtin_memcpy(&last, p + 8, 4);
    return _mm_insert_epi32(_mm_loadl_epi64((const __m128i *)p), last, 2);
}

/* 8 output pixels from pixels [0, 8) at p, or mirrored from pixels [0, 8) at
 * p in reverse: three vectors of 8 int32 levels (R, G, B). */
AVX2 static inline void load_8_pixels(const uint8_t *p, int flip, __m256i *r, __m256i *g, __m256i *b) {
    /* per 4 pixels: [R0..R3 G0..G3 B0..B3 -] or the same reversed */
    const __m256i planar = _mm256_setr_epi8(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1, /* */
                                            0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1);
    const __m256i reversed = _mm256_setr_epi8(9, 6, 3, 0, 10, 7, 4, 1, 11, 8, 5, 2, -1, -1, -1, -1, /* */
                                              9, 6, 3, 0, 10, 7, 4, 1, 11, 8, 5, 2, -1, -1, -1, -1);
    __m128i first = load_12(p), second = load_12(p + 12);
    __m256i v = flip ? _mm256_shuffle_epi8(_mm256_set_m128i(first, second), reversed)
                     : _mm256_shuffle_epi8(_mm256_set_m128i(second, first), planar);
    /* dwords R(0-3) G B - | R(4-7) G B - -> R R G G B B - - */
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    __m128i lo = _mm256_castsi256_si128(v);
    *r = _mm256_cvtepu8_epi32(lo);
    *g = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    *b = _mm256_cvtepu8_epi32(_mm256_extracti128_si256(v, 1));
}

/* (v / 255 - 0.5) / 0.5 in float32, operation by operation as normalized_level. */
AVX2 static inline __m256 normalise(__m256i v) {
    __m256 x = _mm256_div_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(255.0f));
    return _mm256_div_ps(_mm256_sub_ps(x, _mm256_set1_ps(0.5f)), _mm256_set1_ps(0.5f));
}

/* Where output pixels [x, x + 8) come from. */
static inline const uint8_t *source_of(const uint8_t *row, int width, int flip, int x) {
    return row + 3 * (size_t)(flip ? width - 8 - x : x);
}

AVX2 int tensor_row_avx2_f32(const uint8_t *row, int width, int flip, float *r, float *g, float *b) {
    int x = 0;
    for (; x + 8 <= width; x += 8) {
        __m256i vr, vg, vb;
        load_8_pixels(source_of(row, width, flip, x), flip, &vr, &vg, &vb);
        _mm256_storeu_ps(r + x, normalise(vr));
        _mm256_storeu_ps(g + x, normalise(vg));
        _mm256_storeu_ps(b + x, normalise(vb));
    }
    return x;
}

AVX2_F16C int tensor_row_avx2_f16(const uint8_t *row, int width, int flip, uint16_t *r, uint16_t *g, uint16_t *b) {
    int x = 0;
    for (; x + 8 <= width; x += 8) {
        __m256i vr, vg, vb;
        load_8_pixels(source_of(row, width, flip, x), flip, &vr, &vg, &vb);
        _mm_storeu_si128((__m128i *)(r + x), _mm256_cvtps_ph(normalise(vr), _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(g + x), _mm256_cvtps_ph(normalise(vg), _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(b + x), _mm256_cvtps_ph(normalise(vb), _MM_FROUND_TO_NEAREST_INT));
    }
    return x;
}

#else /* not x86 */

int tensor_row_avx2_supported(int f16) { return 0; }
int tensor_row_avx2_f32(const uint8_t *row, int width, int flip, float *r, float *g, float *b) { return 0; }
int tensor_row_avx2_f16(const uint8_t *row, int width, int flip, uint16_t *r, uint16_t *g, uint16_t *b) { return 0; }

#endif
