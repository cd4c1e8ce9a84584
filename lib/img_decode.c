/* img_decode.c - format detection and dispatch to the JPEG/PNG/WebP decoders. */
#include <stdlib.h>
#include <string.h>

#include "img_decode.h"
#include "util.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

img_format img_sniff(const uint8_t *d, size_t len) {
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return IMG_JPEG;
    if (len >= 8 && !memcmp(d, png_signature, 8)) return IMG_PNG;
    if (len >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return IMG_WEBP;
    return IMG_UNKNOWN;
}

const char *img_format_name(img_format f) {
    switch (f) {
    case IMG_JPEG: return "JPEG";
    case IMG_PNG: return "PNG";
    case IMG_WEBP: return "WebP";
    default: return "unknown";
    }
}

int img_check_size_opts(long long w, long long h, const img_decode_opts *opts, char *err) {
    long long max = opts && opts->max_pixels > 0 ? opts->max_pixels : IMG_MAX_PIXELS;
    if (w <= 0 || h <= 0) return seterr(err, "image has an empty size %lldx%lld", w, h);
    if (w * h > max)
        return seterr(err, "image too large: %lldx%lld = %lld pixels exceeds the limit of %lld (decompression bomb)", w,
                      h, w * h, max);
    return 0;
}

int img_check_size(long long w, long long h, char *err) { return img_check_size_opts(w, h, NULL, err); }

void rgb_image_free(rgb_image *im) {
    free(im->pix);
    memset(im, 0, sizeof *im);
}

void rgb_image_alloc(rgb_image *im, int w, int h) {
    size_t need = (size_t)w * (size_t)h * 3;
    if (need > im->cap) {
        free(im->pix); /* not realloc: the old contents are not wanted */
        im->pix = xmalloc(need);
        im->cap = need;
    }
    im->width = w, im->height = h;
}

int img_decode(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, int *stored_w,
               int *stored_h, char *err) {
    img_format format = img_sniff(data, len);
    int rc;
    switch (format) {
    case IMG_JPEG: rc = img_decode_jpeg(data, len, opts, out, stored_w, stored_h, err); break;
    case IMG_PNG: rc = img_decode_png(data, len, opts, out, err); break;
    case IMG_WEBP: rc = img_decode_webp(data, len, opts, out, err); break;
    default:
        rgb_image_free(out); /* the decoders free it on their own errors */
        return seterr(err, "not a JPEG, PNG or WebP image (%zu bytes)", len);
    }
    if (rc == 0 && format != IMG_JPEG) *stored_w = out->width, *stored_h = out->height; /* only JPEG decodes scaled */
    return rc;
}
