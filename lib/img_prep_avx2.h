/* img_prep_avx2.h - crop_to_tensor's row conversion with AVX2 (and F16C for
 * f16): RGB bytes to [-1, 1] planes, the same floats as normalized_level, since
 * (v / 255 - 0.5) / 0.5 is computed with the same IEEE float32 operations and
 * _mm256_cvtps_ph rounds to nearest even as f32_to_f16 does. Internal to
 * img_prep. */
#ifndef LCM_IMG_PREP_AVX2_H
#define LCM_IMG_PREP_AVX2_H

#include <stdint.h>

/* 1 where the CPU runs the conversion to f32 (f16 = 0) or to f16 (f16 = 1). */
int tensor_row_avx2_supported(int f16);

/* Converts the first n - n % 8 output pixels of a row, reading pixel i of the
 * output from row[3 * i] (or row[3 * (width - 1 - i)] when mirrored, width the
 * pixels in the row), into planes r, g, b. Returns how many it converted. */
int tensor_row_avx2_f32(const uint8_t *row, int width, int flip, float *r, float *g, float *b);
int tensor_row_avx2_f16(const uint8_t *row, int width, int flip, uint16_t *r, uint16_t *g, uint16_t *b);

#endif
