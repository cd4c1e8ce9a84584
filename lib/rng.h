/* rng.h - a small, fast, seedable random generator (xoshiro256**) with
 * uniform and normal draws. Streams are derived from (seed, stream id), so
 * that a record's draws do not depend on how many threads or batches came
 * before it. Not PyTorch's generator: golden tests replay the reference's
 * draws through the replay keys of interfaces.md §1 instead. */
#ifndef LCM_RNG_H
#define LCM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
    int has_spare;
    float spare;
} rng;

void rng_seed(rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(rng *r);
/* Uniform in [0, 1) with 24 random bits, as a float. */
float rng_uniform(rng *r);
/* Uniform integer in [0, n). */
uint64_t rng_below(rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float rng_normal(rng *r);
void rng_normal_fill(rng *r, float *out, size_t n);

#endif
