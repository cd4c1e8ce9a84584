/* img_prep.c - crop placement and tensor conversion for img-prep. */
#include <math.h>
#include <string.h>

#include "img_prep.h"
#include "img_prep_avx2.h"

/* splitmix64: a well-mixed 64-bit generator whose state can be set from any
 * seed, so that (seed, index) pairs give independent streams. */
uint64_t sample_rng_next(sample_rng *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sample_rng_init(sample_rng *r, uint64_t seed, uint64_t index) {
    r->state = seed;
    uint64_t mixed = sample_rng_next(r) ^ index;
    r->state = mixed;
    sample_rng_next(r);
}

int sample_rng_upto(sample_rng *r, int n) {
    if (n <= 0) return 0;
    uint64_t range = (uint64_t)n + 1, limit = UINT64_MAX - UINT64_MAX % range;
    uint64_t v;
    do v = sample_rng_next(r);
    while (v >= limit);
    return (int)(v % range);
}

crop_plan plan_crop(int w, int h, int res, int center, int flip_wanted, sample_rng *rng) {
    crop_plan p = {0, 0, 0};
    if (center) {
        /* torchvision: int(round((size - res) / 2.0)), Python's round (half to even). */
        p.top = (int)nearbyint((h - res) / 2.0);
        p.left = (int)nearbyint((w - res) / 2.0);
    } else {
        p.top = sample_rng_upto(rng, h - res);
        p.left = sample_rng_upto(rng, w - res);
    }
    if (flip_wanted) p.flip = (int)(sample_rng_next(rng) >> 63);
    return p;
}

float normalized_level(uint8_t v) {
    volatile float x = (float)v / 255.0f; /* a true float32 division, as torch */
    return (x - 0.5f) / 0.5f;
}

/* Cleared by img_prep_simd(0), for tests of the C conversion. */
static int simd_allowed = 1;

int img_prep_simd(int enable) {
    simd_allowed = enable;
    return enable && tensor_row_avx2_supported(0);
}

/* Output pixels [x0, res) of one row, through the table. */
static void row_to_planes_c(const uint8_t *row, int res, int flip, int x0, const float *lut, dtype_id dtype,
                            void *dst, size_t at, size_t plane) {
    for (int x = x0; x < res; x++) {
        const uint8_t *px = row + 3 * (size_t)(flip ? res - 1 - x : x);
        for (int c = 0; c < 3; c++) {
            float v = lut[px[c]];
            if (dtype == DT_F16) ((uint16_t *)dst)[c * plane + at + (size_t)x] = f32_to_f16(v);
            else ((float *)dst)[c * plane + at + (size_t)x] = v;
        }
    }
}

void crop_to_tensor(const rgb_image *im, const crop_plan *plan, int res, dtype_id dtype, void *dst) {
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = normalized_level((uint8_t)v);
    size_t plane = (size_t)res * (size_t)res;
    int simd = simd_allowed && tensor_row_avx2_supported(dtype == DT_F16);
    for (int y = 0; y < res; y++) {
        const uint8_t *row = im->pix + ((size_t)(plan->top + y) * (size_t)im->width + (size_t)plan->left) * 3;
        size_t at = (size_t)y * (size_t)res;
        int done = 0;
        if (simd && dtype == DT_F16) {
            uint16_t *d = dst;
            done = tensor_row_avx2_f16(row, res, plan->flip, d + at, d + plane + at, d + 2 * plane + at);
        } else if (simd) {
            float *d = dst;
            done = tensor_row_avx2_f32(row, res, plan->flip, d + at, d + plane + at, d + 2 * plane + at);
        }
        row_to_planes_c(row, res, plan->flip, done, lut, dtype, dst, at, plane);
    }
}
