/* img_resize.h - PIL's Image.resize for 8-bit RGB images, bit for bit
 * (data-reference.md §9): separable two-pass convolution with PIL's filters,
 * 22-bit fixed-point weights and an 8-bit intermediate image, and PIL's
 * affine point sampling for NEAREST. */
#ifndef LCM_IMG_RESIZE_H
#define LCM_IMG_RESIZE_H

#include "img_decode.h"

typedef enum resample_filter {
    RESAMPLE_NEAREST, RESAMPLE_BOX, RESAMPLE_BILINEAR, RESAMPLE_HAMMING, RESAMPLE_BICUBIC, RESAMPLE_LANCZOS
} resample_filter;

/* "bilinear", "bicubic", "lanczos", "box", "hamming", "nearest"; -1 if unknown. */
int resample_filter_parse(const char *name);
const char *resample_filter_name(resample_filter f);

/* Resizes in to out_w x out_h into *out (its buffer reused or grown, as
 * rgb_image_alloc does). Same size: a copy. */
void img_resize(const rgb_image *in, int out_w, int out_h, resample_filter f, rgb_image *out);

/* The rw x rh region at (x0, y0) of img_resize(in, out_w, out_h, f), into
 * *out, computing only the pixels of that region (and the intermediate rows
 * they read); bit for bit the same as resizing whole and cropping. The region
 * must lie inside out_w x out_h. The intermediate image of the two passes goes
 * to *mid, whose buffer a loop can so reuse, or, with mid NULL, to a
 * temporary one. */
void img_resize_region(const rgb_image *in, int out_w, int out_h, int x0, int y0, int rw, int rh, resample_filter f,
                       rgb_image *mid, rgb_image *out);

/* The pixels of in (in_w x in_h) that img_resize_region with these
 * arguments reads, as box = {x_begin, y_begin, x_end, y_end}: the others may
 * hold anything, even be uninitialised, without changing its result or being
 * read. (The box includes the few pixels the SIMD passes read past the last
 * tap only to multiply them by 0.) The whole image for NEAREST. */
void img_resize_source_box(int in_w, int in_h, int out_w, int out_h, int x0, int y0, int rw, int rh, resample_filter f,
                           int box[4]);

/* The convolution passes run with SIMD where the CPU has it: the horizontal
 * one with AVX-512 (F, BW, VL) or AVX2, the vertical one with AVX2; every set
 * gives the same bytes as the C passes. img_resize_simd(level) caps the
 * instructions later resizes use (tests; not thread-safe) and returns the
 * level that will be used. */
enum { RESIZE_SIMD_NONE, RESIZE_SIMD_AVX2, RESIZE_SIMD_AVX512 };
int img_resize_simd(int level);

/* torchvision's Resize(R) size rule for an int size: the shorter side becomes
 * R, the longer int(R * long / short). Returns 0, or -1 where the longer side
 * would not fit an int (a thin image at a large R: 2 x 300000 at 16384); the
 * longer side is then INT_MAX. */
int resize_target(int w, int h, int r, int *out_w, int *out_h);

#endif
