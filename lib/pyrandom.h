/* pyrandom.h - Python's random.Random (MT19937) for the draws webdataset makes.
 *
 * Seeded with an integer the way CPython seeds it (init_by_array over the
 * 32-bit words of |seed|), and drawing integers the way CPython does
 * (_randbelow by rejection over getrandbits), so that a given seed gives the
 * same shard order, shuffle-buffer picks and resampled shards as webdataset
 * with random.Random(seed). */
#ifndef LCM_PYRANDOM_H
#define LCM_PYRANDOM_H

#include <stddef.h>
#include <stdint.h>

typedef struct pyrandom {
    uint32_t mt[624];
    int index;
} pyrandom;

void pyrandom_seed(pyrandom *r, uint64_t seed);
/* MT19937's init_by_array, exposed for the reference test vector. */
void pyrandom_init_by_array(pyrandom *r, const uint32_t *key, size_t n);
uint32_t pyrandom_u32(pyrandom *r);
uint64_t pyrandom_getrandbits(pyrandom *r, int k); /* 0 <= k <= 64 */
/* random.randrange(n) = _randbelow(n), n > 0. */
uint64_t pyrandom_below(pyrandom *r, uint64_t n);
/* random.shuffle over an array of pointers. */
void pyrandom_shuffle(pyrandom *r, void **items, size_t n);

#endif
