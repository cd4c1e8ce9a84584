/* img_webp.c - WebP decoding with libwebp, as PIL does it.
 *
 * PIL decodes through WebPAnimDecoder with default options: straight (not
 * premultiplied) RGBA, fancy upsampling, no dithering. For a still image that
 * equals WebPDecodeRGB with the default configuration; the alpha channel is
 * dropped without compositing, like convert("RGB"). An animated file gives
 * its first frame composed on a transparent-black canvas, so only those go
 * through the animation decoder.
 *
 * The size is checked from the header before anything is decoded: for an
 * animation that is the canvas (WebPGetFeatures reports it), which
 * WebPAnimDecoderNew allocates twice over, 4 bytes a pixel, up to 2^32
 * pixels (a 100-byte file asked for 2 x 16 GiB). */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "img_decode.h"
#include "util.h"

static int first_frame(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err) {
    WebPData blob = {data, len};
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt)) return seterr(err, "WebP: libwebp version mismatch");
    opt.color_mode = MODE_RGBA;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&blob, &opt);
    if (!dec) return seterr(err, "WebP: cannot parse the animation");
    WebPAnimInfo info;
    uint8_t *canvas = NULL;
    int ts, rc = -1;
    if (!WebPAnimDecoderGetInfo(dec, &info)) {
        seterr(err, "WebP: cannot read the animation header");
    } else if (img_check_size_opts(info.canvas_width, info.canvas_height, opts, err) == 0) {
        if (!WebPAnimDecoderGetNext(dec, &canvas, &ts)) {
            seterr(err, "WebP: cannot decode the first frame");
        } else {
            size_t n = (size_t)info.canvas_width * info.canvas_height;
            rgb_image_alloc(out, (int)info.canvas_width, (int)info.canvas_height);
            for (size_t i = 0; i < n; i++) memcpy(out->pix + 3 * i, canvas + 4 * i, 3);
            rc = 0;
        }
    }
    WebPAnimDecoderDelete(dec);
    return rc;
}

static int decode(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err) {
    WebPBitstreamFeatures feat;
    VP8StatusCode st = WebPGetFeatures(data, len, &feat);
    if (st != VP8_STATUS_OK) return seterr(err, "WebP: cannot read the header (libwebp status %d)", (int)st);
    if (img_check_size_opts(feat.width, feat.height, opts, err)) return -1;
    if (feat.has_animation) return first_frame(data, len, opts, out, err);
    rgb_image_alloc(out, feat.width, feat.height);
    size_t stride = (size_t)feat.width * 3;
    if (!WebPDecodeRGBInto(data, len, out->pix, stride * (size_t)feat.height, (int)stride))
        return seterr(err, "WebP: cannot decode the image (corrupt or truncated)");
    return 0;
}

int img_decode_webp(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err) {
    int rc = decode(data, len, opts, out, err);
    if (rc) rgb_image_free(out);
    return rc;
}
