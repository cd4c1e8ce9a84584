/* img_decode.h - JPEG, PNG and WebP bytes to 8-bit RGB, the way PIL's
 * Image.open(...).convert("RGB") does it (data-reference.md §8).
 *
 * The format is detected from the bytes, never from a file extension. Only
 * JPEG, PNG and WebP are decoded; anything else (GIF, BMP, TIFF ...) is an
 * error, where PIL would open it. Every decoder is re-entrant, so worker
 * threads may call img_decode concurrently. */
#ifndef LCM_IMG_DECODE_H
#define LCM_IMG_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* PIL's DecompressionBombError threshold: 2 x Image.MAX_IMAGE_PIXELS. An image
 * with more pixels than this is refused from its header, before decoding. */
#define IMG_MAX_PIXELS 178956970LL

/* An image and its buffer. Zero-initialise one before its first use; the
 * functions that fill it reuse its buffer where that is large enough, so a
 * loop over many images allocates only when an image is larger than all
 * before it. */
typedef struct rgb_image {
    int width, height;
    uint8_t *pix; /* width*height*3 bytes, rows top to bottom, RGB */
    size_t cap;   /* bytes allocated at pix */
} rgb_image;

typedef enum img_format { IMG_UNKNOWN, IMG_JPEG, IMG_PNG, IMG_WEBP } img_format;

typedef struct img_decode_opts {
    /* 0: decode at full size (PIL parity). N > 0: a JPEG may be decoded with
     * libjpeg's DCT scaling (1/2, 1/4, 1/8) as long as its shorter side stays
     * >= N. Faster, but no longer identical to PIL. */
    int fast_min_short;
    /* 0: IMG_MAX_PIXELS. N > 0: refuse images of more than N pixels, from
     * the header, before decoding (the fuzz harness keeps its runs short). */
    long long max_pixels;
    /* NULL, or called once the size (w x h, as stored) is known, to set box =
     * {x_begin, y_begin, x_end, y_end} to the pixels the caller will read
     * (it starts as the whole image). A JPEG decoded at full size is then
     * decoded there only, and where libjpeg's blocks make it, the other pixels
     * of out left undefined; the entropy-coded data is still read to the
     * end, so a corrupt or truncated file fails as it would whole. Other
     * formats are decoded whole. */
    void (*region)(void *ctx, int w, int h, int box[4]);
    void *region_ctx;
} img_decode_opts;

img_format img_sniff(const uint8_t *data, size_t len);
const char *img_format_name(img_format f);

/* Decodes data into out (its buffer reused or grown; free with rgb_image_free).
 * *stored_w, *stored_h receive the size the file declares (which differs from
 * out's size only under fast decoding). Returns 0, or -1 with err set and
 * out freed. */
int img_decode(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, int *stored_w,
               int *stored_h, char *err);
void rgb_image_free(rgb_image *im);

/* Makes im a w x h image (contents undefined), growing its buffer only when
 * it holds fewer than w*h*3 bytes. */
void rgb_image_alloc(rgb_image *im, int w, int h);

/* The decoders behind img_decode; same contract (opts may be NULL). */
int img_decode_jpeg(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, int *stored_w,
                    int *stored_h, char *err);
int img_decode_png(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err);
int img_decode_webp(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err);

/* The size check every decoder makes from the header: against IMG_MAX_PIXELS,
 * or against opts->max_pixels where that is set. */
int img_check_size(long long w, long long h, char *err);
int img_check_size_opts(long long w, long long h, const img_decode_opts *opts, char *err);

#endif
