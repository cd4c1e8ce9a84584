/* Half-precision conversions: round to nearest even, specials, subnormals. */
#include "dtype.h"
#include "test.h"

TEST(f16_known_values) {
    CHECK(f32_to_f16(1.0f) == 0x3c00);
    CHECK(f32_to_f16(-2.0f) == 0xc000);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);     /* rounds up to inf */
    CHECK(f32_to_f16(5.9604645e-08f) == 0x0001); /* smallest subnormal */
    CHECK(f32_to_f16(2.9802322e-08f) == 0x0000); /* half of it: ties to even (0) */
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie between 0x3c00 and 0x3c01: even */
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie between 0x3c01 and 0x3c02: even */
    CHECK((f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (f32_to_f16(NAN) & 0x3ff));
}

TEST(f16_round_trip_all) {
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        CHECKF(f32_to_f16(f16_to_f32((uint16_t)h)) == h, "0x%04x", h);
    }
}

/* Every f16 midpoint must round to the even neighbour. */
TEST(f16_ties_to_even) {
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = f16_to_f32((uint16_t)h), hi = f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        CHECKF(f32_to_f16(mid) == want, "midpoint after 0x%04x gave 0x%04x", h, f32_to_f16(mid));
    }
}

TEST(bf16) {
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(f32_to_bf16(1.00390625f) == 0x3f80);  /* tie: 1 + 2^-8 -> even */
    CHECK(f32_to_bf16(1.01171875f) == 0x3f82);  /* tie: 1 + 3*2^-8 -> even */
    CHECK(f32_to_bf16(-INFINITY) == 0xff80);
    CHECK((f32_to_bf16(NAN) & 0x7f80) == 0x7f80 && (f32_to_bf16(NAN) & 0x7f));
}

TEST(parse_names) {
    CHECK(dtype_parse("f32", 3) == DT_F32);
    CHECK(dtype_parse("BF16", 4) == DT_BF16);
    CHECK(dtype_parse("I64", 3) == DT_I64);
    CHECK(dtype_parse("f33", 3) == DT_INVALID);
    CHECK(dtype_parse("f3", 2) == DT_INVALID);
}

TEST(convert_paths) {
    float src[4] = {1.5f, -2.25f, 3.0f, 0.0f};
    uint16_t h[4];
    float back[4];
    int64_t ints[4];
    dtype_convert(h, DT_F16, src, DT_F32, 4);
    dtype_convert(back, DT_F32, h, DT_F16, 4);
    CHECK(!memcmp(src, back, sizeof src));
    dtype_convert(ints, DT_I64, src, DT_F32, 4);
    CHECK(ints[0] == 1 && ints[1] == -2 && ints[2] == 3);
}

int main(void) {
    RUN(f16_known_values);
    RUN(f16_round_trip_all);
    RUN(f16_ties_to_even);
    RUN(bf16);
    RUN(parse_names);
    RUN(convert_paths);
    TEST_EXIT();
}
