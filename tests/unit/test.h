/* test.h - a minimal unit-test harness.
 *
 * Each test file defines tests with TEST(name) and lists them in main with
 * RUN(name). Output is one line per test, "PASS name" or "FAIL name: why",
 * which tests/run counts. A failed CHECK ends the test, not the file. */
#ifndef LCM_TEST_H
#define LCM_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf test_jmp_;
static char test_why_[1024];
static int test_failed_count_;

#define TEST(name) static void test_##name(void)

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            snprintf(test_why_, sizeof test_why_, "%s:%d: %s", __FILE__, __LINE__, #cond);       \
            longjmp(test_jmp_, 1);                                                              \
        }                                                                                       \
    } while (0)

#define CHECKF(cond, ...)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            int n_ = snprintf(test_why_, sizeof test_why_, "%s:%d: ", __FILE__, __LINE__);       \
            snprintf(test_why_ + n_, sizeof test_why_ - (size_t)n_, __VA_ARGS__);               \
            longjmp(test_jmp_, 1);                                                              \
        }                                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                   \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, %s = %.9g (tol %g)", #a,         \
           (double)(a), #b, (double)(b), (double)(tol))

#define RUN(name)                                                                               \
    do {                                                                                        \
        if (!setjmp(test_jmp_)) {                                                               \
            test_##name();                                                                      \
            printf("PASS %s\n", #name);                                                         \
        } else {                                                                                \
            printf("FAIL %s: %s\n", #name, test_why_);                                          \
            test_failed_count_++;                                                               \
        }                                                                                       \
        fflush(stdout);                                                                         \
    } while (0)

#define SKIP(name, why) printf("SKIP %s: %s\n", #name, why)

#define TEST_EXIT() return test_failed_count_ ? 1 : 0

/* Max |a-b| / max(|b|, floor) over n floats: the relative error the goldens quote. */
static inline double max_rel_err(const float *a, const float *b, size_t n, double floor_) {
    double worst = 0, scale = floor_;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst / scale;
}

#endif
