/* fuzz_check.h - FUZZ_CHECK(cond): a harness's own assertion. Under libFuzzer
 * it aborts (a finding); tests/unit/test_fuzz_regress.c, which includes the
 * harnesses to replay tests/fuzz/regress/, defines it first as its CHECK. */
#ifndef LCM_FUZZ_CHECK_H
#define LCM_FUZZ_CHECK_H

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

#endif
