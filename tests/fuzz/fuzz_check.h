/* fuzz_check.h - what every harness uses. FUZZ_CHECK(cond): a harness's own
 * assertion. Under libFuzzer it aborts (a finding); tests/unit/
 * test_fuzz_regress.c, which includes the harnesses to replay tests/fuzz/
 * regress/, defines it first as its CHECK. fuzz_touch: reads every byte, so
 * that ASan sees an out-of-bounds view the parser handed out. */
#ifndef LCM_FUZZ_CHECK_H
#define LCM_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                      \
        }                                                                                 \
    } while (0)
#endif

/* A volatile sink so that the reads are not optimised away. */
static volatile unsigned fuzz_sink;

static inline void fuzz_touch(const void *p, size_t n) {
    const uint8_t *b = p;
    unsigned h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + b[i];
    fuzz_sink += h;
}

#endif
