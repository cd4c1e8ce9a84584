/* test_img_resize.c - the crop-aware resize against resizing whole and
 * cropping, and the AVX2 and AVX-512 passes against the C passes, on random
 * images with every filter, up- and down-scaling and odd sizes. (Exactness
 * against PIL itself is tested in tests/e2e/img-prep.bats, with whichever
 * passes the CPU runs.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "img_resize.h"
#include "resample_passes.h"
#include "test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint32_t next_rand(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* Random pixels with some smooth areas, so that clipping at 0 and 255 after
 * lanczos and bicubic overshoot is exercised too. */
static rgb_image random_image(int w, int h) {
    rgb_image im = {0};
    rgb_image_alloc(&im, w, h);
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) {
        uint32_t r = next_rand();
        im.pix[i] = (r & 3) == 0 ? 0 : (r & 3) == 1 ? 255 : (uint8_t)(r >> 8);
    }
    return im;
}

/* in -> (ow, oh) sizes: down, up, one axis only, mixed, tiny. */
static const int size_cases[][4] = {
    {97, 61, 40, 25}, {40, 25, 97, 61}, {50, 51, 50, 20}, {53, 50, 20, 50}, {1, 3, 7, 2},  {300, 199, 117, 77},
    {31, 77, 90, 13}, {64, 64, 64, 64}, {7, 5, 3, 2},     {130, 67, 129, 66}, {9, 200, 5, 31},
    {641, 480, 117, 88}, {333, 500, 256, 385}, {700, 93, 700, 50}, {90, 700, 51, 700}, {1000, 751, 683, 512},
};

/* A box's span along one axis is at most what the widest filter (lanczos,
 * 3 input pixels a side per output pixel when downscaling) can read, plus
 * the SIMD passes' reads past the last tap. */
static int span_is_tight(int lo, int hi, int r0, int rn, int in_size, int out_size) {
    double scale = (double)in_size / out_size, support = 3.0 * (scale > 1.0 ? scale : 1.0);
    int slack = 2 + (RESAMPLE_OVERREAD + 2) / 3;
    return 0 <= lo && lo <= hi && hi <= in_size && hi - lo <= (int)(rn * scale + 2 * support) + slack &&
           (rn == 0 || (lo <= (int)(r0 * scale + 0.5) + 1 && hi >= (int)((r0 + rn) * scale) - 1));
}

/* in with every pixel outside box set to noise. */
static rgb_image scrambled_outside(const rgb_image *in, const int box[4]) {
    rgb_image out = {0};
    rgb_image_alloc(&out, in->width, in->height);
    memcpy(out.pix, in->pix, (size_t)in->width * (size_t)in->height * 3);
    for (int y = 0; y < in->height; y++)
        for (int x = 0; x < in->width; x++)
            if (x < box[0] || x >= box[2] || y < box[1] || y >= box[3])
                for (int c = 0; c < 3; c++) out.pix[((size_t)y * (size_t)in->width + (size_t)x) * 3 + c] = (uint8_t)next_rand();
    return out;
}

/* The region equals the whole resize's crop, also when every input pixel
 * outside img_resize_source_box's box is noise (the box is all it reads). */
static int region_matches(const rgb_image *in, int ow, int oh, resample_filter f, int x0, int y0, int rw, int rh) {
    rgb_image whole = {0}, part = {0};
    int box[4];
    img_resize_source_box(in->width, in->height, ow, oh, x0, y0, rw, rh, f, box);
    if (f != RESAMPLE_NEAREST && !(span_is_tight(box[0], box[2], x0, rw, in->width, ow) &&
                                   span_is_tight(box[1], box[3], y0, rh, in->height, oh)))
        return 0;
    rgb_image noisy = scrambled_outside(in, box);
    img_resize(in, ow, oh, f, &whole);
    img_resize_region(&noisy, ow, oh, x0, y0, rw, rh, f, NULL, &part);
    rgb_image_free(&noisy);
    int same = part.width == rw && part.height == rh;
    for (int y = 0; same && y < rh; y++)
        same = !memcmp(part.pix + (size_t)y * (size_t)rw * 3, whole.pix + ((size_t)(y0 + y) * (size_t)ow + (size_t)x0) * 3,
                       (size_t)rw * 3);
    rgb_image_free(&whole), rgb_image_free(&part);
    return same;
}

TEST(region_equals_whole_resize_then_crop) {
    for (size_t s = 0; s < sizeof size_cases / sizeof *size_cases; s++) {
        const int *c = size_cases[s];
        rgb_image in = random_image(c[0], c[1]);
        for (int f = RESAMPLE_NEAREST; f <= RESAMPLE_LANCZOS; f++) {
            int side = c[2] < c[3] ? c[2] : c[3];
            /* corners, the middle, a full region and random ones */
            int boxes[][4] = {{0, 0, side, side},
                              {c[2] - side, c[3] - side, side, side},
                              {0, 0, c[2], c[3]},
                              {c[2] / 3, c[3] / 3, c[2] - c[2] / 3, c[3] / 2 - c[3] / 3 + 1},
                              {0, 0, 0, 0}};
            for (int k = 0; k < 6; k++) {
                int *b = boxes[k < 4 ? k : 4];
                if (k >= 4) {
                    b[2] = 1 + (int)(next_rand() % (uint32_t)c[2]), b[3] = 1 + (int)(next_rand() % (uint32_t)c[3]);
                    b[0] = (int)(next_rand() % (uint32_t)(c[2] - b[2] + 1));
                    b[1] = (int)(next_rand() % (uint32_t)(c[3] - b[3] + 1));
                }
                CHECKF(region_matches(&in, c[2], c[3], (resample_filter)f, b[0], b[1], b[2], b[3]),
                       "%s %dx%d->%dx%d region %dx%d at (%d,%d)", resample_filter_name((resample_filter)f), c[0], c[1],
                       c[2], c[3], b[2], b[3], b[0], b[1]);
            }
        }
        rgb_image_free(&in);
    }
}

static int same_image(const rgb_image *a, const rgb_image *b) {
    return a->width == b->width && a->height == b->height &&
           !memcmp(a->pix, b->pix, (size_t)a->width * (size_t)a->height * 3);
}

static const char *const level_names[] = {"C", "AVX2", "AVX-512"};

/* The passes of SIMD level `level` against the C passes. */
static void check_passes_equal_c(int level) {
    for (size_t s = 0; s < sizeof size_cases / sizeof *size_cases; s++) {
        const int *c = size_cases[s];
        rgb_image in = random_image(c[0], c[1]);
        for (int f = RESAMPLE_BOX; f <= RESAMPLE_LANCZOS; f++) {
            /* the whole image, and a region off the corner */
            int x0 = c[2] / 5, y0 = c[3] / 7;
            rgb_image simd = {0}, plain = {0}, simd_part = {0}, plain_part = {0};
            img_resize_simd(level);
            img_resize(&in, c[2], c[3], (resample_filter)f, &simd);
            img_resize_region(&in, c[2], c[3], x0, y0, c[2] - x0, c[3] - y0, (resample_filter)f, NULL, &simd_part);
            img_resize_simd(RESIZE_SIMD_NONE);
            img_resize(&in, c[2], c[3], (resample_filter)f, &plain);
            img_resize_region(&in, c[2], c[3], x0, y0, c[2] - x0, c[3] - y0, (resample_filter)f, NULL, &plain_part);
            img_resize_simd(RESIZE_SIMD_AVX512);
            int same = same_image(&simd, &plain), same_part = same_image(&simd_part, &plain_part);
            rgb_image_free(&simd), rgb_image_free(&plain), rgb_image_free(&simd_part), rgb_image_free(&plain_part);
            CHECKF(same && same_part, "%s %dx%d->%dx%d: %s and C passes differ (%s)",
                   resample_filter_name((resample_filter)f), c[0], c[1], c[2], c[3], level_names[level],
                   same ? "region" : "whole");
        }
        rgb_image_free(&in);
    }
}

/* Blocks of 0 and 255: at their edges lanczos' and bicubic's negative lobes
 * drive sums below 0 and above 255 << 22, which both passes must clip alike. */
static void check_clip_like_c(int level) {
    rgb_image in = {0};
    rgb_image_alloc(&in, 67, 45);
    memset(in.pix, 0, 67 * 45 * 3);
    for (int i = 0; i < 67 * 45 * 3; i++) in.pix[i] = ((i / 3 % 67) / 5 + i / 201 / 4) % 2 ? 255 : 0;
    for (int f = RESAMPLE_BILINEAR; f <= RESAMPLE_LANCZOS; f++) {
        const int outs[][2] = {{160, 99}, {33, 22}, {67, 130}, {20, 45}};
        for (int o = 0; o < 4; o++) {
            rgb_image a = {0}, b = {0};
            img_resize_simd(level);
            img_resize(&in, outs[o][0], outs[o][1], (resample_filter)f, &a);
            img_resize_simd(RESIZE_SIMD_NONE);
            img_resize(&in, outs[o][0], outs[o][1], (resample_filter)f, &b);
            img_resize_simd(RESIZE_SIMD_AVX512);
            int same = same_image(&a, &b);
            rgb_image_free(&a), rgb_image_free(&b);
            CHECKF(same, "%s %s 67x45->%dx%d", level_names[level], resample_filter_name((resample_filter)f),
                   outs[o][0], outs[o][1]);
        }
    }
    rgb_image_free(&in);
}

TEST(avx2_passes_equal_c_passes) { check_passes_equal_c(RESIZE_SIMD_AVX2); }
TEST(avx2_passes_clip_like_c_passes) { check_clip_like_c(RESIZE_SIMD_AVX2); }
TEST(avx512_pass_equals_c_pass) { check_passes_equal_c(RESIZE_SIMD_AVX512); }
TEST(avx512_pass_clips_like_c_pass) { check_clip_like_c(RESIZE_SIMD_AVX512); }

int main(void) {
    RUN(region_equals_whole_resize_then_crop);
    if (img_resize_simd(RESIZE_SIMD_AVX2) == RESIZE_SIMD_AVX2) {
        RUN(avx2_passes_equal_c_passes);
        RUN(avx2_passes_clip_like_c_passes);
    } else {
        SKIP(avx2_passes_equal_c_passes, "no AVX2 on this CPU");
        SKIP(avx2_passes_clip_like_c_passes, "no AVX2 on this CPU");
    }
    if (img_resize_simd(RESIZE_SIMD_AVX512) == RESIZE_SIMD_AVX512) {
        RUN(avx512_pass_equals_c_pass);
        RUN(avx512_pass_clips_like_c_pass);
    } else {
        SKIP(avx512_pass_equals_c_pass, "no AVX-512 (F, BW, VL) on this CPU");
        SKIP(avx512_pass_clips_like_c_pass, "no AVX-512 (F, BW, VL) on this CPU");
    }
    TEST_EXIT();
}
