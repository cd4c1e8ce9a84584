/* pyrandom.c - see pyrandom.h. MT19937 as published by Matsumoto and
 * Nishimura; the seeding and integer draws follow CPython's _randommodule.c
 * and random.py (3.11). */
#include "pyrandom.h"

#define MT_N 624
#define MT_M 397

static void init_genrand(pyrandom *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

void pyrandom_init_by_array(pyrandom *r, const uint32_t *key, size_t n) {
    init_genrand(r, 19650218u);
    size_t i = 1, j = 0;
    for (size_t k = MT_N > n ? MT_N : n; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
        if (j >= n) j = 0;
    }
    for (size_t k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
    }
    r->mt[0] = 0x80000000u;
}

/* CPython: the key is |seed| as little-endian 32-bit words, at least one. */
void pyrandom_seed(pyrandom *r, uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    pyrandom_init_by_array(r, key, key[1] ? 2 : 1);
}

uint32_t pyrandom_u32(pyrandom *r) {
    if (r->index >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % MT_N] & 0x7fffffffu);
            r->mt[k] = r->mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        r->index = 0;
    }
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* CPython fills words from the least significant end and drops the low bits
 * of the last (most significant) word. */
uint64_t pyrandom_getrandbits(pyrandom *r, int k) {
    if (k <= 0) return 0;
    if (k <= 32) return pyrandom_u32(r) >> (32 - k);
    uint64_t lo = pyrandom_u32(r);
    uint64_t hi = pyrandom_u32(r) >> (64 - k);
    return lo | hi << 32;
}

uint64_t pyrandom_below(pyrandom *r, uint64_t n) {
    int k = 0;
    while (k < 64 && (n >> k)) k++; /* n.bit_length() */
    uint64_t v = pyrandom_getrandbits(r, k);
    while (v >= n) v = pyrandom_getrandbits(r, k);
    return v;
}

void pyrandom_shuffle(pyrandom *r, void **items, size_t n) {
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)pyrandom_below(r, i + 1);
        void *t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}
