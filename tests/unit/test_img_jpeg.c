/* test_img_jpeg.c - decoding a region of a JPEG (img_decode_opts.region)
 * against decoding it whole: the region's pixels must be the same bytes for
 * every chroma subsampling, grey and CMYK files, progressive files, restart
 * markers and odd sizes, and a file that is corrupt after the region must
 * fail as it does whole. The JPEGs are made here with libjpeg. (Exactness of
 * whole decodes against PIL is tested in tests/e2e/img-prep.bats.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "img_decode.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t next_rand(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

typedef struct variant {
    const char *name;
    int comps, h_samp, v_samp, progressive, restart_rows;
} variant;

static const variant variants[] = {
    {"4:2:0", 3, 2, 2, 0, 0}, {"4:2:2", 3, 2, 1, 0, 0},   {"4:4:4", 3, 1, 1, 0, 0},
    {"4:4:0", 3, 1, 2, 0, 0}, {"4:1:1", 3, 4, 1, 0, 0},   {"grey", 1, 1, 1, 0, 0},
    {"cmyk", 4, 1, 1, 0, 0},  {"progressive 4:2:0", 3, 2, 2, 1, 0}, {"restarts 4:2:0", 3, 2, 2, 0, 1},
};

/* Smooth gradients, noise and hard colour edges: what chroma upsampling
 * across a crop's edge would get wrong. */
static uint8_t *test_pixels(int w, int h, int comps) {
    uint8_t *p = malloc((size_t)w * (size_t)h * (size_t)comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) {
                int edge = ((x / 7 + y / 5 + c) % 3 == 0) ? 200 : 0;
                int v = (x * (c + 1) * 3 + y * (3 - c % 3) * 2) % 256 / 2 + edge / 2 + (int)(next_rand() % 24);
                p[((size_t)y * (size_t)w + (size_t)x) * (size_t)comps + (size_t)c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return p;
}

static unsigned char *encode(const variant *v, int w, int h, unsigned long *len) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    jpeg_mem_dest(&ci, &out, len);
    ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h;
    ci.input_components = v->comps;
    ci.in_color_space = v->comps == 1 ? JCS_GRAYSCALE : v->comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    if (v->comps == 3) ci.comp_info[0].h_samp_factor = v->h_samp, ci.comp_info[0].v_samp_factor = v->v_samp;
    if (v->progressive) jpeg_simple_progression(&ci);
    ci.restart_in_rows = v->restart_rows;
    jpeg_start_compress(&ci, TRUE);
    uint8_t *pix = test_pixels(w, h, v->comps);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = pix + (size_t)ci.next_scanline * (size_t)w * (size_t)v->comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(pix);
    return out;
}

static void set_box(void *ctx, int w, int h, int box[4]) {
    (void)w, (void)h;
    memcpy(box, ctx, sizeof(int) * 4);
}

/* Decodes data with the region box; 1 if its pixels equal whole's. */
static int region_equals_whole(const unsigned char *data, unsigned long len, const rgb_image *whole, int box[4]) {
    rgb_image part = {0};
    img_decode_opts opts = {.region = set_box, .region_ctx = box};
    char err[256];
    int w, h;
    if (img_decode(data, len, &opts, &part, &w, &h, err)) return 0;
    int same = part.width == whole->width && part.height == whole->height && w == whole->width;
    size_t row = (size_t)whole->width * 3;
    for (int y = box[1]; same && y < box[3]; y++)
        same = !memcmp(part.pix + y * row + (size_t)box[0] * 3, whole->pix + y * row + (size_t)box[0] * 3,
                       (size_t)(box[2] - box[0]) * 3);
    rgb_image_free(&part);
    return same;
}

TEST(region_decode_equals_whole_decode) {
    const int sizes[][2] = {{203, 157}, {64, 48}, {517, 33}, {40, 300}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            int w = sizes[s][0], h = sizes[s][1];
            unsigned long len = 0;
            unsigned char *data = encode(&variants[v], w, h, &len);
            rgb_image whole = {0};
            char err[256];
            int sw, sh;
            CHECKF(img_decode(data, len, NULL, &whole, &sw, &sh, err) == 0, "%s: %s", variants[v].name, err);
            int boxes[][4] = {{0, 0, w, h},         {1, 1, w - 1, h - 1},       {w / 2, 0, w / 2 + 1, h},
                              {0, h / 3, w, h / 3 + 1}, {w - 5, h - 5, w, h},  {0, 0, 0, 0}};
            for (int k = 0; k < 12; k++) {
                int *b = boxes[k < 5 ? k : 5];
                if (k >= 5) { /* random boxes */
                    b[0] = (int)(next_rand() % (uint32_t)w), b[1] = (int)(next_rand() % (uint32_t)h);
                    b[2] = b[0] + 1 + (int)(next_rand() % (uint32_t)(w - b[0]));
                    b[3] = b[1] + 1 + (int)(next_rand() % (uint32_t)(h - b[1]));
                }
                CHECKF(region_equals_whole(data, len, &whole, b), "%s %dx%d box [%d,%d)x[%d,%d)", variants[v].name,
                       w, h, b[0], b[2], b[1], b[3]);
            }
            rgb_image_free(&whole);
            free(data);
        }
}

/* A file cut short after the region's rows still fails: the rows below are
 * skipped, not left unread. */
TEST(truncation_below_the_region_still_fails) {
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        unsigned long len = 0;
        unsigned char *data = encode(&variants[v], 320, 240, &len);
        unsigned long cut = len * 3 / 4;
        rgb_image im = {0};
        char whole_err[256], part_err[256];
        int w, h, box[4] = {10, 0, 100, 20};
        CHECK(img_decode(data, cut, NULL, &im, &w, &h, whole_err) == -1);
        img_decode_opts opts = {.region = set_box, .region_ctx = box};
        CHECKF(img_decode(data, cut, &opts, &im, &w, &h, part_err) == -1, "%s: region decode of a cut file passed",
               variants[v].name);
        CHECKF(!strcmp(whole_err, part_err), "%s: '%s' vs '%s'", variants[v].name, whole_err, part_err);
        CHECK(im.pix == NULL);
        free(data);
    }
}

int main(void) {
    RUN(region_decode_equals_whole_decode);
    RUN(truncation_below_the_region_still_fails);
    TEST_EXIT();
}
