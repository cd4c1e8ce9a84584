/* resample_avx2.c - the convolution passes of img_resize with AVX2.
 *
 * Same arithmetic as the C passes in img_resize.c: 32-bit products of a byte
 * and a 22-bit fixed-point weight, summed from 1 << 21 in int32, then clipped
 * to a byte. Integer sums are exact in any order, so these give the same
 * bytes; tests/unit/test_img_resize.c compares the two on random images.
 *
 * The clip: clip8(acc) is 255 for acc >= 1 << 30, 0 for acc <= 0, acc >> 22
 * otherwise, which is the arithmetic shift acc >> 22 saturated to [0, 255];
 * packs_epi32 + packus_epi16 saturate exactly so. */
#include <stdlib.h>
#include <string.h>

#include "resample_passes.h"
#include "util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define HALF (1 << (RESAMPLE_PRECISION_BITS - 1))

int resample_avx2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* ---- horizontal ---- */

/* The weights of each output as pairs of taps spread over 8 lanes,
 * [k0 k0 k0 k0 k1 k1 k1 k1], at a stride of `pairs` pairs per output (the
 * tap after an odd count has weight 0). */
AVX2 static __m256i *expand_weights(const taps *t, int n, int pairs) {
    __m256i *w = xaligned_alloc(sizeof(__m256i) * (size_t)n * (size_t)(pairs > 0 ? pairs : 1));
    for (int x = 0; x < n; x++) {
        const int32_t *k = t->weights + (size_t)x * (size_t)t->ksize;
        for (int m = 0; m < pairs; m++) {
            int32_t k0 = 2 * m < t->count[x] ? k[2 * m] : 0, k1 = 2 * m + 1 < t->count[x] ? k[2 * m + 1] : 0;
            w[(size_t)x * (size_t)pairs + (size_t)m] = _mm256_setr_epi32(k0, k0, k0, k0, k1, k1, k1, k1);
        }
    }
    return w;
}

/* One output pixel: [R G B x] sums (x is garbage) of its taps, from HALF,
 * shifted. Each step reads 16 bytes from the pair's first pixel, so the last
 * step may read up to 13 bytes past the last tap (the caller makes that
 * readable; the bytes meet weight 0 or are dropped by the shuffle). */
AVX2 static inline __m128i horizontal_pixel(const uint8_t *p, const __m256i *w, int pairs) {
    /* lane 0 widens pixel 0's RGB to int32s, lane 1 pixel 1's */
    const __m256i spread = _mm256_setr_epi8(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1, /* */
                                            3, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, -1, -1, -1, -1);
    __m256i acc = _mm256_setzero_si256();
    for (int m = 0; m < pairs; m++, p += 6) {
        __m256i px = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)), spread);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, _mm256_load_si256(w + m)));
    }
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    return _mm_srai_epi32(_mm_add_epi32(sum, _mm_set1_epi32(HALF)), RESAMPLE_PRECISION_BITS);
}

/* Four pixels' shifted sums to 12 RGB bytes at out. */
AVX2 static inline void store_4_pixels(uint8_t *out, __m128i a, __m128i b, __m128i c, __m128i d, int n) {
    const __m128i drop_x = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
    bytes = _mm_shuffle_epi8(bytes, drop_x);
    if (n == 4) {
        _mm_storel_epi64((__m128i *)out, bytes);
        uint32_t tail = (uint32_t)_mm_extract_epi32(bytes, 2);
        memcpy(out + 8, &tail, 4);
    } else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, bytes);
        memcpy(out, tmp, (size_t)n * 3);
    }
}

/* Output x of a row: its pairs of taps only, so that the reads end at most
 * 13 bytes past its last tap. */
AVX2 static inline __m128i horizontal_output(const uint8_t *in, const taps *t, const __m256i *w, int pairs, int x) {
    return horizontal_pixel(in + (size_t)t->first[x] * 3, w + (size_t)x * (size_t)pairs, (t->count[x] + 1) / 2);
}

AVX2 void *resample_weights_avx2(const taps *t, int dst_width) {
    return expand_weights(t, dst_width, (t->ksize + 1) / 2);
}

AVX2 void resample_row_avx2(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out) {
    const __m256i *w = weights;
    int pairs = (t->ksize + 1) / 2, x = 0;
    for (; x + 4 <= n; x += 4, out += 12) {
        __m128i a = horizontal_output(in, t, w, pairs, x), b = horizontal_output(in, t, w, pairs, x + 1);
        __m128i c = horizontal_output(in, t, w, pairs, x + 2), d = horizontal_output(in, t, w, pairs, x + 3);
        store_4_pixels(out, a, b, c, d, 4);
    }
    if (x < n) {
        __m128i v[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
        for (int i = 0; x + i < n; i++) v[i] = horizontal_output(in, t, w, pairs, x + i);
        store_4_pixels(out, v[0], v[1], v[2], v[3], n - x);
    }
}

/* ---- vertical ---- */

/* 8 int32 sums to 8 saturated bytes. */
AVX2 static inline __m128i clip_8(__m256i acc) {
    acc = _mm256_srai_epi32(acc, RESAMPLE_PRECISION_BITS);
    __m128i s = _mm_packs_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    return _mm_packus_epi16(s, s);
}

AVX2 static inline __m256i widen_times(const uint8_t *p, __m256i k) {
    return _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), k);
}

/* 32 output bytes of one row: the taps inner, four accumulators. */
AVX2 static inline void vertical_32(const uint8_t *p, size_t stride, const int32_t *k, int count, uint8_t *out) {
    __m256i a0 = _mm256_set1_epi32(HALF), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < count; j++, p += stride) {
        __m256i kj = _mm256_set1_epi32(k[j]);
        a0 = _mm256_add_epi32(a0, widen_times(p, kj));
        a1 = _mm256_add_epi32(a1, widen_times(p + 8, kj));
        a2 = _mm256_add_epi32(a2, widen_times(p + 16, kj));
        a3 = _mm256_add_epi32(a3, widen_times(p + 24, kj));
    }
    a0 = _mm256_srai_epi32(a0, RESAMPLE_PRECISION_BITS), a1 = _mm256_srai_epi32(a1, RESAMPLE_PRECISION_BITS);
    a2 = _mm256_srai_epi32(a2, RESAMPLE_PRECISION_BITS), a3 = _mm256_srai_epi32(a3, RESAMPLE_PRECISION_BITS);
    /* packs/packus work per 128-bit lane: the dwords come out as
     * a0lo a1lo a2lo a3lo | a0hi a1hi a2hi a3hi and are put back in order. */
    __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, bytes);
}

AVX2 void resample_vertical_avx2(const rgb_image *src, int row0, int col0, const taps *t, rgb_image *dst) {
    size_t stride = (size_t)src->width * 3, width = (size_t)dst->width * 3;
    for (int y = 0; y < dst->height; y++) {
        const int32_t *k = t->weights + (size_t)y * (size_t)t->ksize;
        const uint8_t *base = src->pix + (size_t)(t->first[y] - row0) * stride + (size_t)col0 * 3;
        uint8_t *out = dst->pix + (size_t)y * width;
        size_t c = 0;
        for (; c + 32 <= width; c += 32) vertical_32(base + c, stride, k, t->count[y], out + c);
        for (; c + 8 <= width; c += 8) {
            __m256i acc = _mm256_set1_epi32(HALF);
            const uint8_t *p = base + c;
            for (int j = 0; j < t->count[y]; j++, p += stride)
                acc = _mm256_add_epi32(acc, widen_times(p, _mm256_set1_epi32(k[j])));
            _mm_storel_epi64((__m128i *)(out + c), clip_8(acc));
        }
        for (; c < width; c++) { /* the last few bytes, as the C pass does them */
            int32_t acc = HALF;
            const uint8_t *p = base + c;
            for (int j = 0; j < t->count[y]; j++, p += stride) acc += *p * k[j];
            out[c] = acc >= (1 << RESAMPLE_PRECISION_BITS << 8) ? 255 : acc <= 0 ? 0 : (uint8_t)(acc >> RESAMPLE_PRECISION_BITS);
        }
    }
}

#else /* not x86: the C passes only */

int resample_avx2_supported(void) { return 0; }

void *resample_weights_avx2(const taps *t, int dst_width) {
    die("resample_weights_avx2 called on a CPU without AVX2");
}

void resample_row_avx2(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out) {
    die("resample_row_avx2 called on a CPU without AVX2");
}

void resample_vertical_avx2(const rgb_image *src, int row0, int col0, const taps *t, rgb_image *dst) {
    die("resample_vertical_avx2 called on a CPU without AVX2");
}

#endif
