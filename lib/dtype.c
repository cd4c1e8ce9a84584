/* dtype.c - see dtype.h. */
#include "dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name, *st_name;
    size_t size;
} dtypes[DT_COUNT] = {
    [DT_F32] = {"f32", "F32", 4},  [DT_F16] = {"f16", "F16", 2}, [DT_BF16] = {"bf16", "BF16", 2},
    [DT_F64] = {"f64", "F64", 8},  [DT_U8] = {"u8", "U8", 1},    [DT_I8] = {"i8", "I8", 1},
    [DT_I16] = {"i16", "I16", 2},  [DT_I32] = {"i32", "I32", 4}, [DT_I64] = {"i64", "I64", 8},
    [DT_BOOL] = {"bool", "BOOL", 1},
};

size_t dtype_size(dtype_id t) { return (t >= 0 && t < DT_COUNT) ? dtypes[t].size : 0; }
const char *dtype_name(dtype_id t) { return (t >= 0 && t < DT_COUNT) ? dtypes[t].name : "?"; }
const char *dtype_st_name(dtype_id t) { return (t >= 0 && t < DT_COUNT) ? dtypes[t].st_name : "?"; }
int dtype_is_float(dtype_id t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16 || t == DT_F64; }

dtype_id dtype_parse(const char *s, size_t n) {
    for (int t = 0; t < DT_COUNT; t++) {
        if (strlen(dtypes[t].name) == n && !strncasecmp(s, dtypes[t].name, n)) return (dtype_id)t;
        if (strlen(dtypes[t].st_name) == n && !strncmp(s, dtypes[t].st_name, n)) return (dtype_id)t;
    }
    return DT_INVALID;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);                                          /* nearest even */
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffff;
    if (abs > 0x7f800000) return (uint16_t)(sign | 0x7e00);   /* NaN */
    if (abs >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  /* rounds to inf */
    if (abs < 0x38800000) {                                   /* f16 subnormal or zero */
        /* Adding 0.5 shifts the value so the FPU's own rounding does the job. */
        float v = bits_f32(abs) + 0.5f;
        return (uint16_t)(sign | (f32_bits(v) - 0x3f000000));
    }
    uint32_t mant_odd = (abs >> 13) & 1;
    abs += 0xc8000fff + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (abs >> 13));
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24 */
        float v = (float)mant * 5.9604644775390625e-08f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000 | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static double load_double(const void *p, dtype_id t, size_t i) {
    switch (t) {
    case DT_F32: return ((const float *)p)[i];
    case DT_F16: return f16_to_f32(((const uint16_t *)p)[i]);
    case DT_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    case DT_F64: return ((const double *)p)[i];
    case DT_U8: return ((const uint8_t *)p)[i];
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_I16: return ((const int16_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I64: return (double)((const int64_t *)p)[i];
    case DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static void store_double(void *p, dtype_id t, size_t i, double v) {
    switch (t) {
    case DT_F32: ((float *)p)[i] = (float)v; break;
    case DT_F16: ((uint16_t *)p)[i] = f32_to_f16((float)v); break;
    case DT_BF16: ((uint16_t *)p)[i] = f32_to_bf16((float)v); break;
    case DT_F64: ((double *)p)[i] = v; break;
    case DT_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case DT_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case DT_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case DT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case DT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

void dtype_convert(void *dst, dtype_id dt, const void *src, dtype_id st, size_t n) {
    if (dt == st) {
        memmove(dst, src, n * dtype_size(dt));
        return;
    }
    /* The common float paths go direct: f16 -> f32 through double would be
     * exact too, but this is the hot case when frames arrive in half precision. */
    if (dt == DT_F32 && st == DT_F16) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = f16_to_f32(((const uint16_t *)src)[i]);
    } else if (dt == DT_F32 && st == DT_BF16) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = bf16_to_f32(((const uint16_t *)src)[i]);
    } else if (dt == DT_F16 && st == DT_F32) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_f16(((const float *)src)[i]);
    } else if (dt == DT_BF16 && st == DT_F32) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = f32_to_bf16(((const float *)src)[i]);
    } else if (dt == DT_I64 && st == DT_I32) {
        for (size_t i = 0; i < n; i++) ((int64_t *)dst)[i] = ((const int32_t *)src)[i];
    } else {
        for (size_t i = 0; i < n; i++) store_double(dst, dt, i, load_double(src, st, i));
    }
}
