/* png_write.c - see png_write.h. */
#include "png_write.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct png_err_ctx {
    char msg[LCM_ERRLEN];
} png_err_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg;
}

/* Encodes into an open stream; 0, or -1 with ctx->msg. */
static int encode(FILE *f, const unsigned char *rgb, int width, int height, const char *const *text, int n_text,
                  png_err_ctx *ctx) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
    if (!png) return snprintf(ctx->msg, sizeof ctx->msg, "out of memory"), -1;
    png_infop info = png_create_info_struct(png);
    png_textp volatile chunks = NULL; /* volatile: read after a longjmp */
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info) snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        png_destroy_write_struct(&png, info ? &info : NULL);
        free((void *)chunks);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) {
        chunks = xcalloc((size_t)n_text, sizeof *chunks);
        for (int i = 0; i < n_text; i++) {
            chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
            chunks[i].key = (png_charp)text[2 * i];
            chunks[i].text = (png_charp)text[2 * i + 1];
            chunks[i].text_length = strlen(text[2 * i + 1]);
        }
        png_set_text(png, info, chunks, n_text);
    }
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * width * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free((void *)chunks);
    return 0;
}

int png_write_rgb(const char *path, const unsigned char *rgb, int width, int height, const char *const *text,
                  int n_text, char *err) {
    if (width < 1 || height < 1) return seterr(err, "%s: empty image %dx%d", path, width, height);
    atomic_file af;
    if (atomic_open(&af, path, err)) return -1;
    png_err_ctx ctx = {{0}};
    if (encode(af.f, rgb, width, height, text, n_text, &ctx)) {
        atomic_abort(&af);
        return seterr(err, "%s: %s", path, ctx.msg);
    }
    return atomic_commit(&af, err);
}
