/* test_img_prep.c - UTF-8 validation, torchvision's size rule, crop
 * placement, the per-sample generator, normalisation and resampler
 * invariants. Pixel exactness against PIL is tested in tests/e2e/img-prep.bats. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "img_decode.h"
#include "img_prep.h"
#include "img_resize.h"

#include "test.h"
#include "utf8_valid.h"

#define U8(s) utf8_invalid_at(s, sizeof(s) - 1)

TEST(utf8_accepts_well_formed) {
    CHECK(U8("") == -1);
    CHECK(U8("plain ascii") == -1);
    CHECK(U8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == -1); /* 2, 3 and 4 bytes */
    CHECK(U8("\xef\xbb\xbf" "bom") == -1);
    CHECK(U8("nul\0inside") == -1);
    CHECK(U8("\xf4\x8f\xbf\xbf") == -1); /* U+10FFFF */
    CHECK(U8("\xed\x9f\xbf") == -1);     /* U+D7FF, just below the surrogates */
}

TEST(utf8_rejects_what_python_rejects) {
    CHECK(U8("a\xc0\xaf") == 1);          /* overlong '/' */
    CHECK(U8("\xe0\x80\xaf") == 0);       /* overlong, 3 bytes */
    CHECK(U8("\xf0\x8f\xbf\xbf") == 0);   /* overlong, 4 bytes */
    CHECK(U8("ok\xed\xa0\x80") == 2);     /* surrogate U+D800 */
    CHECK(U8("\xf4\x90\x80\x80") == 0);   /* above U+10FFFF */
    CHECK(U8("\xf5\x80\x80\x80") == 0);
    CHECK(U8("abc\xe2\x82") == 3);        /* truncated */
    CHECK(U8("\x80") == 0);               /* lone continuation */
    CHECK(U8("\xc3\x28") == 0);           /* bad continuation */
    CHECK(U8("\xff") == 0);
}

TEST(torchvision_size_rule) {
    int w, h;
    resize_target(700, 551, 512, &w, &h);
    CHECK(w == 650 && h == 512); /* int(512 * 700 / 551) = int(650.45) */
    resize_target(333, 671, 104, &w, &h);
    CHECK(w == 104 && h == 209);
    resize_target(28, 28, 64, &w, &h);
    CHECK(w == 64 && h == 64);
    resize_target(4352, 2448, 512, &w, &h);
    CHECK(w == 910 && h == 512); /* 910.22 truncated */
    CHECK(resize_target(2, 300000, 16384, &w, &h) == -1); /* 2457600000: beyond an int */
    CHECK(w == 16384 && h == INT_MAX);
    CHECK(resize_target(300000, 2, 16384, &w, &h) == -1);
    CHECK(w == INT_MAX && h == 16384);
    CHECK(resize_target(1, 131071, 16384, &w, &h) == 0); /* 2^31 - 2^14: still fits */
    CHECK(w == 16384 && h == 2147467264);
    CHECK(resize_target(1, 131072, 16384, &w, &h) == -1); /* 2^31 */
}

TEST(center_crop_rounds_half_to_even) {
    sample_rng r;
    sample_rng_init(&r, 0, 0);
    crop_plan p = plan_crop(104, 209, 104, 1, 0, &r);
    CHECK(p.top == 52 && p.left == 0); /* 52.5 -> 52 */
    p = plan_crop(107, 104, 104, 1, 0, &r);
    CHECK(p.top == 0 && p.left == 2); /* 1.5 -> 2 */
    p = plan_crop(512, 512, 512, 0, 0, &r);
    CHECK(p.top == 0 && p.left == 0 && !p.flip);
}

TEST(random_crop_covers_its_range_and_is_per_sample) {
    int seen_top[6] = {0}, seen_left[4] = {0}, flips = 0;
    for (uint64_t i = 0; i < 4000; i++) {
        sample_rng r;
        sample_rng_init(&r, 42, i);
        crop_plan p = plan_crop(103, 105, 100, 0, 1, &r);
        CHECK(p.top >= 0 && p.top <= 5 && p.left >= 0 && p.left <= 3);
        seen_top[p.top]++, seen_left[p.left]++, flips += p.flip;
    }
    for (int i = 0; i < 6; i++) CHECKF(seen_top[i] > 550 && seen_top[i] < 800, "top %d drawn %d times", i, seen_top[i]);
    for (int i = 0; i < 4; i++) CHECKF(seen_left[i] > 850 && seen_left[i] < 1150, "left %d drawn %d times", i, seen_left[i]);
    CHECKF(flips > 1800 && flips < 2200, "%d flips", flips);
    /* The same (seed, index) gives the same numbers; a neighbour does not. */
    sample_rng a, b, c;
    sample_rng_init(&a, 7, 123), sample_rng_init(&b, 7, 123), sample_rng_init(&c, 7, 124);
    uint64_t x = sample_rng_next(&a);
    CHECK(x == sample_rng_next(&b));
    CHECK(x != sample_rng_next(&c));
}

TEST(normalisation_matches_torch_float32) {
    CHECK(normalized_level(0) == -1.0f);
    CHECK(normalized_level(255) == 1.0f);
    for (int v = 0; v < 256; v++) {
        float want = ((float)v / 255.0f - 0.5f) / 0.5f;
        CHECK(normalized_level((uint8_t)v) == want);
        CHECK_NEAR(normalized_level((uint8_t)v), 2.0 * v / 255.0 - 1.0, 1e-6);
    }
}

static rgb_image filled(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    rgb_image im = {0};
    rgb_image_alloc(&im, w, h);
    for (int i = 0; i < w * h; i++) im.pix[3 * i] = r, im.pix[3 * i + 1] = g, im.pix[3 * i + 2] = b;
    return im;
}

TEST(resize_keeps_flat_images_flat_for_every_filter) {
    const int sizes[][4] = {{97, 61, 40, 25}, {40, 25, 97, 61}, {50, 50, 50, 20}, {50, 50, 20, 50}, {1, 3, 7, 2}};
    for (int f = RESAMPLE_NEAREST; f <= RESAMPLE_LANCZOS; f++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            rgb_image in = filled(sizes[s][0], sizes[s][1], 255, 0, 137), out = {0};
            img_resize(&in, sizes[s][2], sizes[s][3], (resample_filter)f, &out);
            CHECK(out.width == sizes[s][2] && out.height == sizes[s][3]);
            for (int i = 0; i < out.width * out.height; i++)
                CHECKF(out.pix[3 * i] == 255 && out.pix[3 * i + 1] == 0 && out.pix[3 * i + 2] == 137,
                       "%s %dx%d->%dx%d pixel %d", resample_filter_name((resample_filter)f), sizes[s][0], sizes[s][1],
                       sizes[s][2], sizes[s][3], i);
            rgb_image_free(&in), rgb_image_free(&out);
        }
}

TEST(resize_same_size_is_a_copy_and_box_halving_averages) {
    rgb_image in = filled(4, 2, 0, 0, 0), out = {0};
    for (int i = 0; i < 8; i++) in.pix[3 * i] = (uint8_t)(i * 30), in.pix[3 * i + 1] = 7;
    img_resize(&in, 4, 2, RESAMPLE_LANCZOS, &out);
    CHECK(!memcmp(in.pix, out.pix, 24));
    rgb_image_free(&out);
    /* 2x2 box average, rounded half up: rows (0,30 / 120,150) -> 75. */
    img_resize(&in, 2, 1, RESAMPLE_BOX, &out);
    CHECK(out.pix[0] == 75 && out.pix[3] == 135 && out.pix[1] == 7);
    rgb_image_free(&out);
    rgb_image_free(&in);
}

TEST(filter_names) {
    CHECK(resample_filter_parse("bilinear") == RESAMPLE_BILINEAR);
    CHECK(resample_filter_parse("lanczos") == RESAMPLE_LANCZOS);
    CHECK(resample_filter_parse("nearest") == RESAMPLE_NEAREST);
    CHECK(resample_filter_parse("nearest_exact") == -1);
    CHECK(!strcmp(resample_filter_name(RESAMPLE_BICUBIC), "bicubic"));
}

TEST(sniff_and_size_limit) {
    const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0}, png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ", gif[] = "GIF89a";
    CHECK(img_sniff(jpg, sizeof jpg) == IMG_JPEG);
    CHECK(img_sniff(png, sizeof png) == IMG_PNG);
    CHECK(img_sniff(webp, sizeof webp - 1) == IMG_WEBP);
    CHECK(img_sniff(gif, sizeof gif - 1) == IMG_UNKNOWN);
    CHECK(img_sniff(jpg, 2) == IMG_UNKNOWN);
    char err[512];
    CHECK(img_check_size(13377, 13377, err) == 0);     /* 178,944,129: under the limit */
    CHECK(img_check_size(13378, 13378, err) == -1);    /* 178,970,884: over */
    CHECK(img_check_size(0, 10, err) == -1);
    rgb_image im = {0};
    int w, h;
    CHECK(img_decode(gif, sizeof gif - 1, NULL, &im, &w, &h, err) == -1);
    CHECK(strstr(err, "not a JPEG, PNG or WebP") != NULL);
}

/* The crop as a tensor, with the AVX2 conversion or the C one. */
static void *tensor_of(const rgb_image *im, const crop_plan *p, int res, dtype_id dt, int simd) {
    void *t = malloc((size_t)3 * (size_t)res * (size_t)res * dtype_size(dt));
    img_prep_simd(simd);
    crop_to_tensor(im, p, res, dt, t);
    img_prep_simd(1);
    return t;
}

TEST(crop_to_tensor_simd_equals_c) {
    /* every level occurs: pixel bytes run through 0..255 in a shifted order */
    const int sides[][3] = {{300, 211, 200}, {40, 57, 37}, {9, 9, 9}, {64, 80, 64}, {515, 512, 512}, {23, 30, 7}};
    for (int s = 0; s < 6; s++) {
        int w = sides[s][0], h = sides[s][1], res = sides[s][2];
        rgb_image im = {0};
        rgb_image_alloc(&im, w, h); /* exact size: no slack to read past */
        for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) im.pix[i] = (uint8_t)(i * 7 + i / 97);
        for (int k = 0; k < 8; k++) {
            crop_plan p = {k % 3 == 0 ? 0 : h - res, k % 2 ? w - res : (w - res) / 2, k / 4};
            for (int d = 0; d < 2; d++) {
                dtype_id dt = d ? DT_F16 : DT_F32;
                void *a = tensor_of(&im, &p, res, dt, 1), *b = tensor_of(&im, &p, res, dt, 0);
                int same = !memcmp(a, b, (size_t)3 * (size_t)res * (size_t)res * dtype_size(dt));
                free(a), free(b);
                CHECKF(same, "%dx%d crop %d at (%d,%d) flip %d %s", w, h, res, p.top, p.left, p.flip, dtype_name(dt));
            }
        }
        free(im.pix);
    }
}

TEST(crop_to_tensor_places_and_mirrors) {
    rgb_image im = {0};
    rgb_image_alloc(&im, 20, 3);
    for (int i = 0; i < 60; i++) im.pix[3 * i] = (uint8_t)i, im.pix[3 * i + 1] = (uint8_t)(100 + i), im.pix[3 * i + 2] = 255;
    crop_plan p = {1, 3, 1};
    float *t = tensor_of(&im, &p, 2, DT_F32, 1);
    /* row 1 of the crop is image row 2; mirrored, its first pixel is column 4 */
    CHECK(t[2] == normalized_level(2 * 20 + 4) && t[3] == normalized_level(2 * 20 + 3));
    CHECK(t[4 + 2] == normalized_level(100 + 44) && t[8] == 1.0f);
    free(t);
    free(im.pix);
}

int main(void) {
    RUN(utf8_accepts_well_formed);
    RUN(utf8_rejects_what_python_rejects);
    RUN(torchvision_size_rule);
    RUN(center_crop_rounds_half_to_even);
    RUN(random_crop_covers_its_range_and_is_per_sample);
    RUN(normalisation_matches_torch_float32);
    RUN(resize_keeps_flat_images_flat_for_every_filter);
    RUN(resize_same_size_is_a_copy_and_box_halving_averages);
    RUN(filter_names);
    RUN(sniff_and_size_limit);
    if (img_prep_simd(1)) RUN(crop_to_tensor_simd_equals_c);
    else SKIP(crop_to_tensor_simd_equals_c, "no AVX2 on this CPU");
    RUN(crop_to_tensor_places_and_mirrors);
    TEST_EXIT();
}
