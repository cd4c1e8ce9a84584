/* resample_avx512.c - the horizontal pass of img_resize with AVX-512.
 *
 * Same arithmetic as the C pass in img_resize.c: 32-bit products of a byte
 * and a 22-bit fixed-point weight, summed in int32 with 1 << 21, shifted,
 * clipped to a byte; integer sums are exact in any order, so the bytes are
 * the same (tests/unit/test_img_resize.c compares them on random images).
 *
 * Four taps of one output per step: 128-bit lane t of a zmm holds tap t's
 * R G B (and a 0), widened to int32. Where the AVX2 pass reduces every
 * output's accumulator on its own, here four outputs' accumulators are
 * folded together by lane shuffles into one zmm that holds one output per
 * lane, then shifted, clipped and narrowed to 12 bytes at once. The pass is
 * the largest cost of img-prep after libjpeg; this takes about half the
 * instructions of the AVX2 one, and 15-20% less time on an AMD EPYC that
 * splits 512-bit operations in two (the int32 multiplies bound it). */
#include <stdint.h>

#include "resample_passes.h"
#include "util.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define HALF (1 << (RESAMPLE_PRECISION_BITS - 1))

int resample_avx512_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

/* The weights of each output as quads of taps, [k0 x4 | k1 x4 | k2 x4 | k3 x4]
 * per quad (weight 0 past the output's count), `quads` per output. */
static __m512i *expand_weights(const taps *t, int n, int quads) {
    __m512i *w = xaligned_alloc(sizeof(__m512i) * (size_t)n * (size_t)(quads > 0 ? quads : 1));
    int32_t *lanes = (int32_t *)w;
    for (int x = 0; x < n; x++) {
        const int32_t *k = t->weights + (size_t)x * (size_t)t->ksize;
        for (int tap = 0; tap < 4 * quads; tap++) {
            int32_t v = tap < t->count[x] ? k[tap] : 0;
            for (int c = 0; c < 4; c++) lanes[((size_t)x * (size_t)quads * 4 + (size_t)tap) * 4 + (size_t)c] = v;
        }
    }
    return w;
}

/* Lane t takes pixel t's three bytes (offsets 3t..3t+2 of the 16 loaded) as
 * int32s; the fourth int32 is 0. */
static const int8_t spread_bytes[64] = {
    0,  -1, -1, -1, 1,  -1, -1, -1, 2,  -1, -1, -1, -1, -1, -1, -1, /* */
    3,  -1, -1, -1, 4,  -1, -1, -1, 5,  -1, -1, -1, -1, -1, -1, -1, /* */
    6,  -1, -1, -1, 7,  -1, -1, -1, 8,  -1, -1, -1, -1, -1, -1, -1, /* */
    9,  -1, -1, -1, 10, -1, -1, -1, 11, -1, -1, -1, -1, -1, -1, -1,
};

/* One output's product sums, one quad of taps per lane. Each step reads 16
 * bytes from its quad's first pixel: up to 13 bytes past the output's last
 * tap (the caller makes them readable; they meet weight 0). */
AVX512 static inline __m512i output_sums(const uint8_t *in, const taps *t, const __m512i *w, int quads, int x) {
    const __m512i spread = _mm512_loadu_si512(spread_bytes);
    const uint8_t *p = in + (size_t)t->first[x] * 3;
    const __m512i *k = w + (size_t)x * (size_t)quads;
    int steps = (t->count[x] + 3) / 4;
    __m512i acc = _mm512_setzero_si512();
    for (int m = 0; m < steps; m++, p += 12) {
        __m512i px = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p)), spread);
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(px, _mm512_load_si512(k + m)));
    }
    return acc;
}

/* Four outputs' sums (lanes = quads) to their 12 RGB bytes at out; the first
 * n of them stored. Lanes are folded pairwise: [a0 a1 b0 b1] + [a2 a3 b2 b3],
 * likewise c and d, then [a02 b02 c02 d02] + [a13 b13 c13 d13]. */
AVX512 static inline void store_outputs(uint8_t *out, __m512i a, __m512i b, __m512i c, __m512i d, int n) {
    const __m128i drop_x = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    __m512i ab = _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_i32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    __m512i cd = _mm512_add_epi32(_mm512_shuffle_i32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_i32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    __m512i sums = _mm512_add_epi32(_mm512_shuffle_i32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm512_shuffle_i32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
    sums = _mm512_srai_epi32(_mm512_add_epi32(sums, _mm512_set1_epi32(HALF)), RESAMPLE_PRECISION_BITS);
    /* clip8: negatives to 0, then unsigned saturation to 255 */
    __m128i bytes = _mm512_cvtusepi32_epi8(_mm512_max_epi32(sums, _mm512_setzero_si512()));
    _mm_mask_storeu_epi8(out, (__mmask16)((1u << (3 * n)) - 1), _mm_shuffle_epi8(bytes, drop_x));
}

void *resample_weights_avx512(const taps *t, int dst_width) {
    return expand_weights(t, dst_width, (t->ksize + 3) / 4);
}

AVX512 void resample_row_avx512(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out) {
    const __m512i *w = weights;
    int quads = (t->ksize + 3) / 4, x = 0;
    for (; x + 4 <= n; x += 4, out += 12)
        store_outputs(out, output_sums(in, t, w, quads, x), output_sums(in, t, w, quads, x + 1),
                      output_sums(in, t, w, quads, x + 2), output_sums(in, t, w, quads, x + 3), 4);
    if (x < n) {
        __m512i v[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                        _mm512_setzero_si512()};
        for (int i = 0; x + i < n; i++) v[i] = output_sums(in, t, w, quads, x + i);
        store_outputs(out, v[0], v[1], v[2], v[3], n - x);
    }
}

#else /* not x86-64: the other passes only */

int resample_avx512_supported(void) { return 0; }

void *resample_weights_avx512(const taps *t, int dst_width) {
    die("resample_weights_avx512 called on a CPU without AVX-512");
}

void resample_row_avx512(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out) {
    die("resample_row_avx512 called on a CPU without AVX-512");
}

#endif
