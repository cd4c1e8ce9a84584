/* img_png.c - PNG decoding with libpng, giving what PIL's own PNG reader
 * followed by convert("RGB") gives (data-reference.md §8, PNG table).
 *
 * PIL differs from a plain libpng "expand to RGB" in ways that show in the
 * pixels, so the samples are read raw and converted here:
 *  - 16-bit colour keeps the high byte; 16-bit grey is clipped to 255, not
 *    scaled (PIL's mode "I");
 *  - 1/2/4-bit grey is bit-replicated (x255, x85, x17);
 *  - palette indices beyond PLTE are grey (i, i, i), PIL's default palette;
 *  - tRNS and alpha are ignored: colour under transparent pixels stays.
 * CRCs: PIL checks every chunk before the first IDAT and none after, so those
 * are checked here by hand and libpng's own CRC checks are turned off. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#include "img_decode.h"
#include "util.h"

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The chunk type for messages: four letters, or "a" when it is garbage. */
static const char *chunk_name(const uint8_t *type, char buf[5]) {
    for (int i = 0; i < 4; i++)
        if (!((type[i] | 0x20) >= 'a' && (type[i] | 0x20) <= 'z')) return "a";
    memcpy(buf, type, 4);
    buf[4] = 0;
    return buf;
}

/* Verifies the CRC of every chunk before the first IDAT, as PIL does. */
static int check_header_crcs(const uint8_t *d, size_t len, char *err) {
    size_t pos = 8;
    while (pos + 8 <= len) {
        uint32_t n = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (!memcmp(type, "IDAT", 4)) return 0;
        char name[5];
        if (pos + 12 > len || n > len - pos - 12)
            return seterr(err, "PNG: truncated %s chunk at byte %zu", chunk_name(type, name), pos);
        uint32_t want = be32(d + pos + 8 + n);
        uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, n + 4);
        if (got != want)
            return seterr(err, "PNG: broken %s chunk (CRC mismatch at byte %zu)", chunk_name(type, name), pos);
        pos += 12 + (size_t)n;
    }
    return seterr(err, "PNG: truncated before the image data");
}

typedef struct png_source {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
} png_source;

static void read_bytes(png_structp p, png_bytep dst, size_t n) {
    png_source *s = png_get_io_ptr(p);
    if (n > s->len - s->pos) png_error(p, "image file is truncated");
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
}

static void on_png_error(png_structp p, png_const_charp msg) {
    png_source *s = png_get_error_ptr(p);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void on_png_warning(png_structp p, png_const_charp msg) { (void)p, (void)msg; }

typedef struct png_layout {
    int color_type, depth, channels;
    png_colorp palette;
    int palette_len;
} png_layout;

/* One sample of a raw row (after png_set_packing, so depth < 8 is one byte). */
static unsigned sample(const uint8_t *row, int depth, size_t i) {
    return depth == 16 ? (unsigned)row[2 * i] << 8 | row[2 * i + 1] : row[i];
}

static uint8_t high_byte(const uint8_t *row, int depth, size_t i) {
    return depth == 16 ? row[2 * i] : row[i];
}

static uint8_t grey_level(unsigned v, int depth) {
    switch (depth) {
    case 1: return v ? 255 : 0;
    case 2: return (uint8_t)(v * 85);
    case 4: return (uint8_t)(v * 17);
    case 8: return (uint8_t)v;
    default: return (uint8_t)(v > 255 ? 255 : v); /* 16-bit grey: PIL mode I, clipped */
    }
}

static void convert_row(const png_layout *L, const uint8_t *row, uint8_t *out, int width) {
    for (int x = 0; x < width; x++, out += 3) {
        size_t i = (size_t)x * (size_t)L->channels;
        switch (L->color_type) {
        case PNG_COLOR_TYPE_GRAY: out[0] = out[1] = out[2] = grey_level(sample(row, L->depth, i), L->depth); break;
        case PNG_COLOR_TYPE_GRAY_ALPHA: out[0] = out[1] = out[2] = high_byte(row, L->depth, i); break;
        case PNG_COLOR_TYPE_PALETTE: {
            unsigned idx = row[i];
            if ((int)idx < L->palette_len) {
                out[0] = L->palette[idx].red, out[1] = L->palette[idx].green, out[2] = L->palette[idx].blue;
            } else {
                out[0] = out[1] = out[2] = (uint8_t)idx;
            }
            break;
        }
        default: /* RGB, RGBA */
            for (int c = 0; c < 3; c++) out[c] = high_byte(row, L->depth, i + (size_t)c);
        }
    }
}

typedef struct png_job {
    png_structp png;
    png_infop info;
    png_source src;
    uint8_t *raw;
    png_bytep *rows;
    rgb_image *out;
} png_job;

static int decode(png_job *j, const img_decode_opts *opts, char *err) {
    png_structp p = j->png;
    png_set_read_fn(p, &j->src, read_bytes);
    png_set_crc_action(p, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_read_info(p, j->info);
    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(p, j->info, &w, &h, &depth, &color_type, &interlace, NULL, NULL);
    if (img_check_size_opts(w, h, opts, err)) return -1;
    png_layout L = {color_type, depth, png_get_channels(p, j->info), NULL, 0};
    if (color_type == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(p, j->info, &L.palette, &L.palette_len))
        L.palette_len = 0;
    if (depth < 8) png_set_packing(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, j->info);
    size_t rowbytes = png_get_rowbytes(p, j->info);
    j->raw = xmalloc(rowbytes * h);
    j->rows = xmalloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) j->rows[y] = j->raw + rowbytes * y;
    png_read_image(p, j->rows);
    rgb_image_alloc(j->out, (int)w, (int)h);
    for (png_uint_32 y = 0; y < h; y++) convert_row(&L, j->rows[y], j->out->pix + (size_t)y * w * 3, (int)w);
    return 0;
}

int img_decode_png(const uint8_t *data, size_t len, const img_decode_opts *opts, rgb_image *out, char *err) {
    if (check_header_crcs(data, len, err)) return -1;
    png_job *j = xcalloc(1, sizeof *j);
    j->src = (png_source){.data = data, .len = len, .pos = 0};
    j->out = out;
    volatile int rc = -1;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j->src, on_png_error, on_png_warning);
    if (j->png) j->info = png_create_info_struct(j->png);
    if (!j->png || !j->info) {
        seterr(err, "PNG: out of memory");
    } else if (setjmp(png_jmpbuf(j->png))) {
        seterr(err, "PNG: %s", j->src.msg);
        rgb_image_free(out);
    } else {
        rc = decode(j, opts, err);
        if (rc) rgb_image_free(out);
    }
    png_destroy_read_struct(&j->png, j->info ? &j->info : NULL, NULL);
    free(j->raw);
    free(j->rows);
    free(j);
    return rc;
}
