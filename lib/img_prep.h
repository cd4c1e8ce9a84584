/* img_prep.h - the per-sample image transform of img-prep: crop placement
 * from a per-sample random generator, and RGB bytes to a [-1, 1] tensor.
 *
 * Each sample draws from its own generator seeded by (seed, record index),
 * never from a shared stream, so the output does not depend on how many
 * threads process the stream or in which order they finish. */
#ifndef LCM_IMG_PREP_H
#define LCM_IMG_PREP_H

#include <stdint.h>

#include "dtype.h"
#include "img_decode.h"

typedef struct sample_rng {
    uint64_t state;
} sample_rng;

void sample_rng_init(sample_rng *r, uint64_t seed, uint64_t index);
uint64_t sample_rng_next(sample_rng *r);
/* Uniform integer in [0, n], without modulo bias. */
int sample_rng_upto(sample_rng *r, int n);

typedef struct crop_plan {
    int top, left; /* in the resized (unflipped) image */
    int flip;      /* mirror the crop horizontally */
} crop_plan;

/* Where to cut a res x res square from a w x h image (short side == res):
 * center: torchvision's CenterCrop (round half to even of (size - res) / 2);
 * otherwise top uniform in [0, h-res], then left in [0, w-res]. A flip is
 * drawn last, with probability 1/2, when flip_wanted. */
crop_plan plan_crop(int w, int h, int res, int center, int flip_wanted, sample_rng *rng);

/* The crop of im at plan, mirrored if plan->flip, as a [3,res,res] tensor of
 * dtype DT_F32 or DT_F16 in dst, normalised as torchvision's to_tensor +
 * normalize([0.5],[0.5]): (v/255 - 0.5)/0.5 in float32. */
void crop_to_tensor(const rgb_image *im, const crop_plan *plan, int res, dtype_id dtype, void *dst);

/* The conversion runs with AVX2 where the CPU has it (the same values).
 * img_prep_simd(0) makes later conversions use plain C, img_prep_simd(1)
 * allows AVX2 again (tests; not thread-safe). Returns 1 if AVX2 will be used
 * (for f32). */
int img_prep_simd(int enable);

/* The float32 value a byte v becomes, bit for bit as torch computes it. */
float normalized_level(uint8_t v);

#endif
