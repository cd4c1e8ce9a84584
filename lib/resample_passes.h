/* resample_passes.h - the two convolution passes behind img_resize, shared by
 * the portable C versions (img_resize.c), the AVX2 ones (resample_avx2.c)
 * and the AVX-512 horizontal one (resample_avx512.c). Both give the same bytes: the arithmetic is integer, so
 * any order of summation is exact. Internal to img_resize. */
#ifndef LCM_RESAMPLE_PASSES_H
#define LCM_RESAMPLE_PASSES_H

#include <stdint.h>

#include "img_decode.h"

#define RESAMPLE_PRECISION_BITS 22

/* The taps of one axis for a run of outputs: for the i-th of them,
 * `count[i]` input pixels from `first[i]`, with fixed-point weights at
 * weights[i * ksize] (zero past count[i]). */
typedef struct taps {
    int ksize;
    int *first, *count;
    int32_t *weights;
} taps;

/* 1 where the CPU runs the AVX2 passes (and they were compiled in). */
int resample_avx2_supported(void);
/* 1 where the CPU runs the AVX-512 horizontal pass (F, BW and VL). */
int resample_avx512_supported(void);

/* A SIMD horizontal pass, in two parts: the weights of a pass's dst_width
 * outputs laid out for its registers (aligned; free with free), then one
 * row: in (one source row) to n outputs at out. A row reads up to
 * RESAMPLE_OVERREAD bytes past each output's last tap, only to multiply them
 * by 0; the caller makes them readable. */
#define RESAMPLE_OVERREAD 13
void *resample_weights_avx2(const taps *t, int dst_width);
void resample_row_avx2(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out);
void *resample_weights_avx512(const taps *t, int dst_width);
void resample_row_avx512(const uint8_t *in, const taps *t, const void *weights, int n, uint8_t *out);

/* Vertical pass over src's columns from col0 (dst->width of them); tap rows
 * are relative to src's first row minus row0. */
void resample_vertical_avx2(const rgb_image *src, int row0, int col0, const taps *t, rgb_image *dst);

#endif
