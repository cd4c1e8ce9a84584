/* fuzz_image.c - libFuzzer harness for img-prep's per-sample path.
 *
 * Input: three control bytes, then the image file's bytes.
 *   byte 0  target resolution, 1 + b % 96 (up- and downscaling, odd sizes)
 *   byte 1  filter, b % 6 (nearest, box, bilinear, hamming, bicubic, lanczos)
 *   byte 2  bit 0 centre crop, bit 1 random flip, bit 2 --fast-decode,
 *           bits 3-7 the record index the sample's generator is seeded with
 * For every input it does what bin/img-prep.c's transform_image does, in the
 * same order, and checks each step:
 *   1. img_decode (JPEG/PNG/WebP) with images above IMG_FUZZ_MAX_PIXELS
 *      refused from the header, so that a run stays short: an error must come
 *      back with a message and nothing allocated (a WebP whose header is too
 *      large with the size message: refused before libwebp allocates); an
 *      image must have the size the file declares (or, under fast decoding,
 *      a DCT-scaled size whose shorter side still reaches the resolution);
 *   2. resize_target (also at img-prep's largest resolution, where a thin
 *      image's long side must not overflow) and plan_crop: the crop lies
 *      inside the resized image;
 *   3. img_resize_region with the AVX2 passes and again with the C passes
 *      (img_resize_simd(0)): the same bytes; for small targets also the
 *      same bytes as resizing whole and cropping;
 *   4. crop_to_tensor to f32 and f16, with AVX2 and with plain C
 *      (img_prep_simd(0)): the same bits, each value normalized_level of its
 *      pixel (mirrored when flipped), each f16 the rounding of the f32.
 * tests/unit/test_fuzz_regress.c includes this file and replays
 * tests/fuzz/regress/fuzz_image/ through the same function. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>

#include "dtype.h"
#include "img_decode.h"
#include "img_prep.h"
#include "img_resize.h"
#include "util.h"

#include "fuzz_check.h"

/* 4 Mpixels (2048 x 2048): larger images only cost time, the code paths are
 * the same. img-prep itself refuses above IMG_MAX_PIXELS (PIL's limit). */
#define IMG_FUZZ_MAX_PIXELS (1LL << 22)
#define IMG_FUZZ_MAX_RES 96
/* Targets up to this many pixels are also resized whole, to compare. */
#define IMG_FUZZ_WHOLE_PIXELS (1LL << 16)

typedef struct img_fuzz_params {
    int res;
    resample_filter filter;
    int center, flip, fast;
    uint64_t record;
} img_fuzz_params;

static img_fuzz_params img_fuzz_params_of(const uint8_t *c) {
    img_fuzz_params p;
    p.res = 1 + c[0] % IMG_FUZZ_MAX_RES;
    p.filter = (resample_filter)(c[1] % 6);
    p.center = c[2] & 1, p.flip = c[2] >> 1 & 1, p.fast = c[2] >> 2 & 1;
    p.record = c[2] >> 3;
    return p;
}

/* A WebP whose header (the canvas, for an animation) declares more than the
 * limit is refused for its size, not for a failed allocation inside libwebp. */
static void img_fuzz_check_refused(const uint8_t *data, size_t len, const char *err) {
    WebPBitstreamFeatures feat;
    if (img_sniff(data, len) == IMG_WEBP && WebPGetFeatures(data, len, &feat) == VP8_STATUS_OK &&
        (long long)feat.width * feat.height > IMG_FUZZ_MAX_PIXELS)
        FUZZ_CHECK(strstr(err, "image too large"));
}

static void img_fuzz_check_decoded(const img_fuzz_params *p, const rgb_image *im, int sw, int sh) {
    FUZZ_CHECK(im->pix && im->width > 0 && im->height > 0);
    FUZZ_CHECK((long long)sw * sh <= IMG_FUZZ_MAX_PIXELS);
    if (im->width == sw && im->height == sh) return;
    /* Only fast decoding shrinks, by 1/2, 1/4 or 1/8, keeping the short side. */
    FUZZ_CHECK(p->fast);
    int d = 2;
    while (d <= 8 && (im->width != (sw + d - 1) / d || im->height != (sh + d - 1) / d)) d *= 2;
    FUZZ_CHECK(d <= 8);
    FUZZ_CHECK((im->width < im->height ? im->width : im->height) >= p->res);
}

/* a's rw x rh region at (x0, y0) equals b. */
static int img_fuzz_same_region(const rgb_image *a, int x0, int y0, const rgb_image *b) {
    size_t row = (size_t)b->width * 3;
    for (int y = 0; y < b->height; y++)
        if (memcmp(a->pix + ((size_t)(y0 + y) * (size_t)a->width + (size_t)x0) * 3, b->pix + (size_t)y * row, row))
            return 0;
    return 1;
}

/* Step 3: the crop-aware resize, AVX2 and C, and against the whole resize. */
static void img_fuzz_resize(const img_fuzz_params *p, const rgb_image *im, int tw, int th, const crop_plan *plan,
                            rgb_image *out) {
    img_resize_simd(1);
    img_resize_region(im, tw, th, plan->left, plan->top, p->res, p->res, p->filter, NULL, out);
    FUZZ_CHECK(out->width == p->res && out->height == p->res);
    rgb_image c_pass = {0};
    img_resize_simd(0);
    img_resize_region(im, tw, th, plan->left, plan->top, p->res, p->res, p->filter, NULL, &c_pass);
    img_resize_simd(1);
    FUZZ_CHECK(!memcmp(out->pix, c_pass.pix, (size_t)p->res * (size_t)p->res * 3));
    rgb_image_free(&c_pass);
    if ((long long)tw * th <= IMG_FUZZ_WHOLE_PIXELS) {
        rgb_image whole = {0};
        img_resize(im, tw, th, p->filter, &whole);
        FUZZ_CHECK(img_fuzz_same_region(&whole, plan->left, plan->top, out));
        rgb_image_free(&whole);
    }
}

/* Step 4: one dtype, AVX2 and C, checked value by value. */
static void img_fuzz_tensor(const img_fuzz_params *p, const rgb_image *crop, int flip, dtype_id dtype) {
    size_t n = (size_t)3 * (size_t)p->res * (size_t)p->res, bytes = n * dtype_size(dtype);
    void *simd = xmalloc(bytes), *plain = xmalloc(bytes);
    crop_plan whole = {0, 0, flip};
    img_prep_simd(1);
    crop_to_tensor(crop, &whole, p->res, dtype, simd);
    img_prep_simd(0);
    crop_to_tensor(crop, &whole, p->res, dtype, plain);
    img_prep_simd(1);
    FUZZ_CHECK(!memcmp(simd, plain, bytes));
    size_t plane = (size_t)p->res * (size_t)p->res;
    for (size_t i = 0; i < n; i++) {
        size_t c = i / plane, y = i % plane / (size_t)p->res, x = i % (size_t)p->res;
        size_t sx = flip ? (size_t)p->res - 1 - x : x;
        float want = normalized_level(crop->pix[(y * (size_t)p->res + sx) * 3 + c]);
        if (dtype == DT_F16) FUZZ_CHECK(((uint16_t *)plain)[i] == f32_to_f16(want));
        else FUZZ_CHECK(!memcmp((float *)plain + i, &want, sizeof want));
    }
    free(simd);
    free(plain);
}

static void fixed_box(void *ctx, int w, int h, int box[4]) {
    (void)w, (void)h;
    memcpy(box, ctx, sizeof(int) * 4);
}

/* 3b. img-prep decodes only the pixels the crop reads (a JPEG then skips
 * the others): the same crop as from the whole image, and no new failure. */
static void img_fuzz_region_decode(const img_fuzz_params *p, const uint8_t *data, size_t len, int in_w, int in_h,
                                   int tw, int th, const crop_plan *plan, const rgb_image *crop) {
    int box[4], sw, sh;
    rgb_image part = {0}, part_crop = {0};
    img_resize_source_box(in_w, in_h, tw, th, plan->left, plan->top, p->res, p->res, p->filter, box);
    img_decode_opts opts = {.max_pixels = IMG_FUZZ_MAX_PIXELS, .region = fixed_box, .region_ctx = box};
    char err[LCM_ERRLEN] = "";
    FUZZ_CHECK(img_decode(data, len, &opts, &part, &sw, &sh, err) == 0);
    img_resize_region(&part, tw, th, plan->left, plan->top, p->res, p->res, p->filter, NULL, &part_crop);
    FUZZ_CHECK(!memcmp(part_crop.pix, crop->pix, (size_t)p->res * (size_t)p->res * 3));
    rgb_image_free(&part);
    rgb_image_free(&part_crop);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t in_len) {
    if (in_len < 3) return 0;
    img_fuzz_params p = img_fuzz_params_of(in);
    const uint8_t *data = in + 3;
    size_t len = in_len - 3;

    /* 1. decode, as img-prep does (fast decoding aims at the resolution) */
    img_decode_opts opts = {.fast_min_short = p.fast ? p.res : 0, .max_pixels = IMG_FUZZ_MAX_PIXELS};
    rgb_image im = {0};
    int sw = 0, sh = 0;
    char err[LCM_ERRLEN] = "";
    if (img_decode(data, len, &opts, &im, &sw, &sh, err)) {
        FUZZ_CHECK(err[0] && !im.pix); /* refused, with a message, nothing kept */
        img_fuzz_check_refused(data, len, err);
        return 0;
    }
    img_fuzz_check_decoded(&p, &im, sw, sh);

    /* 2. target size and crop from the declared size */
    int tw, th, big_w, big_h;
    /* img-prep allows --resolution up to 16384: the rule must not overflow there. */
    if (resize_target(sw, sh, 16384, &big_w, &big_h) == 0)
        FUZZ_CHECK(big_w >= 16384 && big_h >= 16384 && (big_w == 16384 || big_h == 16384));
    else
        FUZZ_CHECK((big_w == 16384 && big_h == INT_MAX) || (big_w == INT_MAX && big_h == 16384));
    int too_large = resize_target(sw, sh, p.res, &tw, &th);
    FUZZ_CHECK(tw >= p.res && th >= p.res && (tw == p.res || th == p.res));
    if (too_large || (long long)tw * th > IMG_MAX_PIXELS) { /* img-prep skips these */
        rgb_image_free(&im);
        return 0;
    }
    sample_rng rng;
    sample_rng_init(&rng, 0, p.record);
    crop_plan plan = plan_crop(tw, th, p.res, p.center, p.flip, &rng);
    FUZZ_CHECK(plan.left >= 0 && plan.left <= tw - p.res && plan.top >= 0 && plan.top <= th - p.res);
    FUZZ_CHECK(p.flip || !plan.flip);

    /* 3. resize only the crop */
    rgb_image crop = {0};
    img_fuzz_resize(&p, &im, tw, th, &plan, &crop);
    rgb_image_free(&im);
    if (!p.fast) img_fuzz_region_decode(&p, data, len, sw, sh, tw, th, &plan, &crop);

    /* 4. the tensor */
    img_fuzz_tensor(&p, &crop, plan.flip, DT_F32);
    img_fuzz_tensor(&p, &crop, plan.flip, DT_F16);
    rgb_image_free(&crop);
    return 0;
}
