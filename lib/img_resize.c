/* img_resize.c - a re-implementation of PIL's Resample.c arithmetic.
 *
 * Each axis gets its own table of taps: for output index i, center =
 * (i + 0.5) * scale, taps from trunc(center - support + 0.5) to
 * trunc(center + support + 0.5), weights K((j - center + 0.5) / filterscale)
 * normalised to sum 1 and rounded to 22-bit fixed point half away from zero.
 * The horizontal pass runs first and rounds to 8 bits; the vertical pass
 * reads that intermediate. Every expression keeps PIL's operand order, since
 * the results must match to the last bit. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "img_resize.h"
#include "resample_passes.h"
#include "util.h"

#define PRECISION_BITS RESAMPLE_PRECISION_BITS

/* Lowered by img_resize_simd, for tests of each set of passes. */
static int simd_allowed = RESIZE_SIMD_AVX512;

static int simd_level(void) {
    if (simd_allowed >= RESIZE_SIMD_AVX512 && resample_avx512_supported()) return RESIZE_SIMD_AVX512;
    if (simd_allowed >= RESIZE_SIMD_AVX2 && resample_avx2_supported()) return RESIZE_SIMD_AVX2;
    return RESIZE_SIMD_NONE;
}

int img_resize_simd(int level) {
    simd_allowed = level;
    return simd_level();
}

static double box_kernel(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double bilinear_kernel(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_kernel(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    /* PIL writes 0.54f and 0.46f: single-precision constants. */
    return sin(x) / x * ((double)0.54f + (double)0.46f * cos(x));
}

static double bicubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_kernel(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

typedef struct kernel {
    double (*fn)(double);
    double support;
} kernel;

static kernel kernel_of(resample_filter f) {
    switch (f) {
    case RESAMPLE_BOX: return (kernel){box_kernel, 0.5};
    case RESAMPLE_HAMMING: return (kernel){hamming_kernel, 1.0};
    case RESAMPLE_BICUBIC: return (kernel){bicubic_kernel, 2.0};
    case RESAMPLE_LANCZOS: return (kernel){lanczos_kernel, 3.0};
    default: return (kernel){bilinear_kernel, 1.0};
    }
}

static const char *const filter_names[] = {"nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"};

int resample_filter_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof filter_names / sizeof *filter_names); i++)
        if (!strcmp(name, filter_names[i])) return i;
    return -1;
}

const char *resample_filter_name(resample_filter f) { return filter_names[f]; }

int resize_target(int w, int h, int r, int *out_w, int *out_h) {
    int shorter = w < h ? w : h, longer = w < h ? h : w;
    double exact = (double)((long long)r * longer) / shorter;
    int fits = exact < (double)INT_MAX + 1; /* else the conversion would be undefined */
    int new_long = fits ? (int)exact : INT_MAX;
    if (w <= h) *out_w = r, *out_h = new_long;
    else *out_w = new_long, *out_h = r;
    return fits ? 0 : -1;
}


static void taps_free(taps *t) {
    free(t->first), free(t->count), free(t->weights);
}

/* The taps (resample_passes.h) of outputs [out0, out0 + n) of one axis.
 * Each output's taps depend only on its own index, so a range gives the same
 * numbers as the whole axis. */
static taps precompute_taps(int in_size, int out_size, int out0, int n, kernel k) {
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = k.support * filterscale;
    taps t;
    t.ksize = (int)ceil(support) * 2 + 1;
    t.first = xmalloc(sizeof(int) * (size_t)n);
    t.count = xmalloc(sizeof(int) * (size_t)n);
    t.weights = xcalloc((size_t)n * (size_t)t.ksize, sizeof(int32_t));
    double *w = xmalloc(sizeof(double) * (size_t)t.ksize);
    for (int i = 0; i < n; i++) {
        double center = 0.0 + (out0 + i + 0.5) * scale;
        double ss = 1.0 / filterscale, sum = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = k.fn((x + xmin - center + 0.5) * ss);
            sum += w[x];
        }
        int32_t *out = t.weights + (size_t)i * (size_t)t.ksize;
        for (int x = 0; x < xmax; x++) {
            double v = sum != 0.0 ? w[x] / sum : w[x];
            out[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        t.first[i] = xmin, t.count[i] = xmax;
    }
    free(w);
    return t;
}

static uint8_t clip8(int32_t acc) {
    if (acc >= (1 << PRECISION_BITS << 8)) return 255;
    if (acc <= 0) return 0;
    return (uint8_t)(acc >> PRECISION_BITS);
}

/* The horizontal pass with SIMD rows. Their reads past the last output's
 * last tap land in the row itself or, where that tap is near the row's end,
 * beyond it (in the next row, or past the image): then every row is read
 * from a copy padded with zeros, so no byte outside what
 * img_resize_source_box names is ever read. */
static void pass_horizontal_simd(void *(*weights_of)(const taps *, int),
                                 void (*row)(const uint8_t *, const taps *, const void *, int, uint8_t *),
                                 const rgb_image *src, int row0, int rows, const taps *t, rgb_image *dst) {
    void *w = weights_of(t, dst->width);
    size_t row_bytes = (size_t)src->width * 3, last = (size_t)dst->width - 1;
    size_t read_end = (size_t)(t->first[last] + t->count[last]) * 3 + RESAMPLE_OVERREAD;
    uint8_t *padded = xcalloc(row_bytes + RESAMPLE_OVERREAD, 1);
    for (int y = 0; y < rows; y++) {
        int sy = y + row0;
        const uint8_t *in = src->pix + (size_t)sy * row_bytes;
        if (read_end > row_bytes) in = memcpy(padded, in, row_bytes);
        row(in, t, w, dst->width, dst->pix + (size_t)y * (size_t)dst->width * 3);
    }
    free(padded);
    free(w);
}

/* Horizontal pass over `rows` rows of src starting at row `row0`. */
static void pass_horizontal(const rgb_image *src, int row0, int rows, const taps *t, rgb_image *dst) {
    int level = simd_level();
    if (level == RESIZE_SIMD_AVX512) {
        pass_horizontal_simd(resample_weights_avx512, resample_row_avx512, src, row0, rows, t, dst);
        return;
    }
    if (level == RESIZE_SIMD_AVX2) {
        pass_horizontal_simd(resample_weights_avx2, resample_row_avx2, src, row0, rows, t, dst);
        return;
    }
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src->pix + (size_t)(y + row0) * (size_t)src->width * 3;
        uint8_t *out = dst->pix + (size_t)y * (size_t)dst->width * 3;
        for (int x = 0; x < dst->width; x++) {
            const int32_t *k = t->weights + (size_t)x * (size_t)t->ksize;
            const uint8_t *p = in + (size_t)t->first[x] * 3;
            int32_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
            for (int j = 0; j < t->count[x]; j++, p += 3) a0 += p[0] * k[j], a1 += p[1] * k[j], a2 += p[2] * k[j];
            out[3 * x] = clip8(a0), out[3 * x + 1] = clip8(a1), out[3 * x + 2] = clip8(a2);
        }
    }
}

/* Vertical pass over src's columns from col0 (dst->width of them); tap rows
 * are relative to src's first row minus row0. */
static void pass_vertical(const rgb_image *src, int row0, int col0, const taps *t, rgb_image *dst) {
    if (simd_level() >= RESIZE_SIMD_AVX2) {
        resample_vertical_avx2(src, row0, col0, t, dst);
        return;
    }
    size_t stride = (size_t)src->width * 3, width = (size_t)dst->width * 3;
    for (int y = 0; y < dst->height; y++) {
        const int32_t *k = t->weights + (size_t)y * (size_t)t->ksize;
        const uint8_t *base = src->pix + (size_t)(t->first[y] - row0) * stride + (size_t)col0 * 3;
        uint8_t *out = dst->pix + (size_t)y * width;
        for (size_t c = 0; c < width; c++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = base + c;
            for (int j = 0; j < t->count[y]; j++, p += stride) acc += *p * k[j];
            out[c] = clip8(acc);
        }
    }
}

/* PIL's NEAREST resize: an affine point sample at pixel centres, the source
 * coordinate stepped by repeated addition as ImagingScaleAffine does (so the
 * steps before the region are taken too, to land on the same doubles). */
static void resize_nearest(const rgb_image *in, int out_w, int out_h, int x0, int y0, rgb_image *out) {
    double ax = (double)(float)in->width / out_w, ay = (double)(float)in->height / out_h;
    int *xs = xmalloc(sizeof(int) * (size_t)out->width);
    double xo = 0.0 + ax * 0.5, yo = 0.0 + ay * 0.5;
    for (int x = 0; x < x0 + out->width; x++, xo += ax) {
        int xi = xo < 0.0 ? 0 : (int)xo;
        if (x >= x0) xs[x - x0] = xi < in->width ? xi : in->width - 1;
    }
    for (int y = 0; y < y0 + out->height; y++, yo += ay) {
        if (y < y0) continue;
        int yi = yo < 0.0 ? 0 : (int)yo;
        if (yi >= in->height) yi = in->height - 1;
        const uint8_t *row = in->pix + (size_t)yi * (size_t)in->width * 3;
        uint8_t *dst = out->pix + (size_t)(y - y0) * (size_t)out->width * 3;
        for (int x = 0; x < out->width; x++) memcpy(dst + 3 * x, row + 3 * (size_t)xs[x], 3);
    }
    free(xs);
}

static void copy_region(const rgb_image *in, int x0, int y0, rgb_image *out) {
    size_t row_bytes = (size_t)out->width * 3;
    for (int y = 0; y < out->height; y++)
        memcpy(out->pix + (size_t)y * row_bytes, in->pix + ((size_t)(y0 + y) * (size_t)in->width + (size_t)x0) * 3,
               row_bytes);
}

void img_resize_region(const rgb_image *in, int out_w, int out_h, int x0, int y0, int rw, int rh, resample_filter f,
                       rgb_image *mid, rgb_image *out) {
    rgb_image_alloc(out, rw, rh);
    if (rw <= 0 || rh <= 0) return;
    if (out_w == in->width && out_h == in->height) {
        copy_region(in, x0, y0, out);
        return;
    }
    if (f == RESAMPLE_NEAREST) {
        resize_nearest(in, out_w, out_h, x0, y0, out);
        return;
    }
    kernel k = kernel_of(f);
    if (out_w == in->width) { /* vertical pass only */
        taps tv = precompute_taps(in->height, out_h, y0, rh, k);
        pass_vertical(in, 0, x0, &tv, out);
        taps_free(&tv);
        return;
    }
    taps th = precompute_taps(in->width, out_w, x0, rw, k);
    if (out_h == in->height) { /* horizontal pass only */
        pass_horizontal(in, y0, rh, &th, out);
        taps_free(&th);
        return;
    }
    /* Both passes; the horizontal one only over the rows the vertical needs. */
    taps tv = precompute_taps(in->height, out_h, y0, rh, k);
    int row0 = tv.first[0], row_end = tv.first[rh - 1] + tv.count[rh - 1];
    rgb_image own = {0};
    if (!mid) mid = &own;
    rgb_image_alloc(mid, rw, row_end - row0);
    pass_horizontal(in, row0, row_end - row0, &th, mid);
    pass_vertical(mid, row0, 0, &tv, out);
    rgb_image_free(&own);
    taps_free(&th);
    taps_free(&tv);
}

/* The range [lo, hi) of input indices that outputs [out0, out0 + n) of one
 * axis read. */
static void tap_span(int in_size, int out_size, int out0, int n, kernel k, int *lo, int *hi) {
    taps t = precompute_taps(in_size, out_size, out0, n, k);
    *lo = t.first[0], *hi = t.first[n - 1] + t.count[n - 1];
    taps_free(&t);
}

void img_resize_source_box(int in_w, int in_h, int out_w, int out_h, int x0, int y0, int rw, int rh, resample_filter f,
                           int box[4]) {
    box[0] = 0, box[1] = 0, box[2] = in_w, box[3] = in_h;
    if (rw <= 0 || rh <= 0 || f == RESAMPLE_NEAREST) return; /* NEAREST: the whole image, simply */
    kernel k = kernel_of(f);
    if (out_w == in_w) {
        box[0] = x0, box[2] = x0 + rw;
    } else {
        tap_span(in_w, out_w, x0, rw, k, &box[0], &box[2]);
        /* the SIMD rows' reads past the last tap (multiplied by 0) */
        box[2] += (RESAMPLE_OVERREAD + 2) / 3;
        if (box[2] > in_w) box[2] = in_w;
    }
    if (out_h == in_h) box[1] = y0, box[3] = y0 + rh;
    else tap_span(in_h, out_h, y0, rh, k, &box[1], &box[3]);
}

void img_resize(const rgb_image *in, int out_w, int out_h, resample_filter f, rgb_image *out) {
    img_resize_region(in, out_w, out_h, 0, 0, out_w, out_h, f, NULL, out);
}
