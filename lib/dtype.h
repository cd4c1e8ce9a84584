/* dtype.h - element types of tensors, their names and conversions.
 *
 * Names are those of the frame format (interfaces.md §1) and safetensors
 * ("F32", "BF16", ...); both spellings parse. Half-precision conversions round
 * to nearest even, as PyTorch's .to(torch.float16 / torch.bfloat16) does. */
#ifndef LCM_DTYPE_H
#define LCM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum dtype_id {
    DT_F32, DT_F16, DT_BF16, DT_F64, DT_U8, DT_I8, DT_I16, DT_I32, DT_I64, DT_BOOL,
    DT_COUNT, DT_INVALID = -1
} dtype_id;

size_t dtype_size(dtype_id t);
const char *dtype_name(dtype_id t);        /* "f32", "bf16", ...       */
const char *dtype_st_name(dtype_id t);     /* "F32", "BF16", ... (safetensors) */
/* Parses either spelling, n bytes (not NUL-terminated); DT_INVALID if unknown. */
dtype_id dtype_parse(const char *s, size_t n);
int dtype_is_float(dtype_id t);

uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);

/* Converts n elements between any two dtypes (through double for the
 * integer and f64 cases, exact where the target can hold the value). */
void dtype_convert(void *dst, dtype_id dt, const void *src, dtype_id st, size_t n);

#endif
