/* img_jpeg.c - JPEG decoding with libjpeg-turbo, byte-identical to PIL.
 *
 * PIL leaves libjpeg at its defaults (ISLOW IDCT, fancy upsampling, block
 * smoothing, scale 1/1) and only picks the output colour space from the
 * component count, so this decoder does the same. PIL aborts on libjpeg
 * errors and ignores warnings, except that its data source never invents an
 * EOI marker: running out of data is an error there, so here the warning
 * libjpeg's memory source gives for it (JWRN_JPEG_EOF) is one too.
 *
 * One departure: a progressive file may hold any number of scans, and each
 * one walks every block of the image, even when its data is missing (libjpeg
 * fills in and goes on). A 40 KB file of 4000 empty scans over 8000 x 8000
 * took 14 s; at the pixel limit and 64 KB, minutes. Real encoders write
 * about 10 scans (jpeglib's default script), so more than JPEG_MAX_SCANS
 * is refused as a bomb, the limit libjpeg-turbo's own fuzzers use. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "img_decode.h"
#include "util.h"

typedef struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_failure;

static void on_jpeg_error(j_common_ptr c) {
    jpeg_failure *f = (jpeg_failure *)c->err;
    c->err->format_message(c, f->msg);
    longjmp(f->jump, 1);
}

#define JPEG_MAX_SCANS 500

typedef struct jpeg_watch {
    struct jpeg_progress_mgr mgr;
    jpeg_failure *fail;
} jpeg_watch;

/* libjpeg calls this between rows of blocks while it reads the scans. */
static void on_jpeg_progress(j_common_ptr c) {
    jpeg_watch *w = (jpeg_watch *)c->progress;
    if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(w->fail->msg, sizeof w->fail->msg, "more than %d scans (decompression bomb)", JPEG_MAX_SCANS);
        longjmp(w->fail->jump, 1);
    }
}

static void on_jpeg_message(j_common_ptr c, int level) {
    if (level == -1 && c->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_failure *f = (jpeg_failure *)c->err;
        snprintf(f->msg, sizeof f->msg, "image file is truncated");
        longjmp(f->jump, 1);
    }
}

/* PIL reads every 4-component JPEG as Adobe-inverted CMYK and converts it
 * with R = k - MULDIV255(255 - c, k) (and G, B likewise), where c, m, y, k are
 * libjpeg's raw bytes. */
static uint8_t muldiv255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int width) {
    for (int x = 0; x < width; x++, in += 4, out += 3) {
        unsigned k = in[3];
        for (int ch = 0; ch < 3; ch++) {
            int v = (int)k - muldiv255(255u - in[ch], k);
            out[ch] = (uint8_t)(v < 0 ? 0 : v);
        }
    }
}

static void grey_row_to_rgb(const uint8_t *in, uint8_t *out, int width) {
    for (int x = 0; x < width; x++, out += 3) out[0] = out[1] = out[2] = in[x];
}

/* The largest DCT scaling 1/d whose output keeps the shorter side >= min_short. */
static int fast_denominator(int w, int h, int min_short) {
    for (int d = 8; d > 1; d /= 2) {
        int sw = (w + d - 1) / d, sh = (h + d - 1) / d;
        if ((sw < sh ? sw : sh) >= min_short) return d;
    }
    return 1;
}

typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    jpeg_watch watch;
    uint8_t *row;
    rgb_image *out;
} jpeg_job;

/* Reads the next scanline into dst, width pixels, converted to RGB. */
static void read_row(jpeg_job *j, uint8_t *dst, int width) {
    struct jpeg_decompress_struct *ci = &j->cinfo;
    JSAMPROW rows[1] = {ci->out_color_space == JCS_RGB ? dst : j->row};
    jpeg_read_scanlines(ci, rows, 1);
    if (ci->out_color_space == JCS_GRAYSCALE) grey_row_to_rgb(j->row, dst, width);
    else if (ci->out_color_space == JCS_CMYK) cmyk_row_to_rgb(j->row, dst, width);
}

/* Rows and columns decoded around the caller's box: libjpeg's fancy
 * upsampling treats the edge of a cropped or skipped-to region as the
 * image's, so the pixels near it differ from a whole decode's (by up to one
 * chroma sample, 2 pixels; tests/unit/test_img_jpeg.c fails without a
 * margin and passes with 8). The box's own pixels stay the whole decode's. */
#define REGION_MARGIN 16

static void region_box(const img_decode_opts *opts, int w, int h, int box[4]) {
    box[0] = 0, box[1] = 0, box[2] = w, box[3] = h;
    if (!opts || !opts->region) return;
    opts->region(opts->region_ctx, w, h, box);
    box[0] = box[0] - REGION_MARGIN < 0 ? 0 : box[0] - REGION_MARGIN;
    box[1] = box[1] - REGION_MARGIN < 0 ? 0 : box[1] - REGION_MARGIN;
    box[2] = box[2] + REGION_MARGIN > w ? w : box[2] + REGION_MARGIN;
    box[3] = box[3] + REGION_MARGIN > h ? h : box[3] + REGION_MARGIN;
    if (box[2] <= box[0] || box[3] <= box[1]) box[0] = 0, box[1] = 0, box[2] = w, box[3] = h;
}

/* The scanlines of box into out (out's full width), the columns cropped with
 * jpeg_crop_scanline, the rows above and below skipped: skipping decodes
 * their entropy-coded data but not their pixels. The last scanline is read,
 * not skipped, since libjpeg-turbo skips to the end without reading it. */
static void read_region(jpeg_job *j, const int box[4]) {
    struct jpeg_decompress_struct *ci = &j->cinfo;
    int w = (int)ci->output_width, h = (int)ci->output_height;
    JDIMENSION x0 = (JDIMENSION)box[0], cw = (JDIMENSION)(box[2] - box[0]);
    if ((int)cw < w) jpeg_crop_scanline(ci, &x0, &cw); /* widens to whole iMCU columns */
    j->row = xmalloc((size_t)cw * 4);
    if (box[1] > 0) jpeg_skip_scanlines(ci, (JDIMENSION)box[1]);
    uint8_t *at = j->out->pix + (size_t)x0 * 3;
    while ((int)ci->output_scanline < box[3]) read_row(j, at + (size_t)ci->output_scanline * (size_t)w * 3, (int)cw);
    if (box[3] < h) {
        if (box[3] < h - 1) jpeg_skip_scanlines(ci, (JDIMENSION)(h - 1 - box[3]));
        uint8_t *last = xmalloc((size_t)cw * 3);
        read_row(j, last, (int)cw);
        free(last);
    }
}

static int decode(jpeg_job *j, const uint8_t *data, size_t len, const img_decode_opts *opts, int *stored_w,
                  int *stored_h, char *err) {
    struct jpeg_decompress_struct *ci = &j->cinfo;
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    *stored_w = (int)ci->image_width, *stored_h = (int)ci->image_height;
    if (img_check_size_opts(ci->image_width, ci->image_height, opts, err)) return -1;
    int comps = ci->num_components;
    if (comps == 1) ci->out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) ci->out_color_space = JCS_RGB;
    else if (comps == 4) ci->out_color_space = JCS_CMYK;
    else return seterr(err, "cannot handle %d-layer JPEG images", comps);
    int fast = opts && opts->fast_min_short > 0;
    if (fast) {
        ci->scale_num = 1;
        ci->scale_denom = (unsigned)fast_denominator(*stored_w, *stored_h, opts->fast_min_short);
    }
    jpeg_start_decompress(ci);
    int w = (int)ci->output_width, h = (int)ci->output_height;
    rgb_image_alloc(j->out, w, h);
    int box[4];
    region_box(fast ? NULL : opts, w, h, box);
    read_region(j, box);
    jpeg_finish_decompress(ci);
    return 0;
}

int img_decode_jpeg(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, int *stored_w,
                    int *stored_h, char *err) {
    /* Heap state: everything longjmp may skip over lives behind one pointer
     * that is never reassigned after setjmp. */
    jpeg_job *j = xcalloc(1, sizeof *j);
    j->out = out;
    volatile int rc = -1;
    j->cinfo.err = jpeg_std_error(&j->fail.mgr);
    j->fail.mgr.error_exit = on_jpeg_error;
    j->fail.mgr.emit_message = on_jpeg_message;
    if (setjmp(j->fail.jump)) {
        seterr(err, "JPEG: %s", j->fail.msg);
        rgb_image_free(out);
    } else {
        jpeg_create_decompress(&j->cinfo);
        j->watch.mgr.progress_monitor = on_jpeg_progress;
        j->watch.fail = &j->fail;
        j->cinfo.progress = &j->watch.mgr;
        rc = decode(j, data, len, opts, stored_w, stored_h, err);
        if (rc) rgb_image_free(out);
    }
    jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    free(j);
    return rc;
}
