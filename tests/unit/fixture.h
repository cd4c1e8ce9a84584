/* fixture.h - the committed fixtures' paths, and float fields of their
 * input records (include after test.h). */
#ifndef LCM_TEST_FIXTURE_H
#define LCM_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "frame.h"
#include "tensor.h"
#include "util.h"

/* The repository's top folder: $LCM_TOP (tests/run sets it), else ".". */
static inline const char *test_top(void) {
    const char *t = getenv("LCM_TOP");
    return t && *t ? t : ".";
}

/* tests/fixtures/REL under the top folder. The four latest results stay
 * valid, so one call may pass several. */
static inline char *fixture(const char *rel) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/tests/fixtures/%s", test_top(), rel);
    return buf[k];
}

/* A record's tensor `key` of n elements, as f32, into dst. */
static inline void read_field(const frame *f, const char *key, float *dst, int64_t n) {
    const frame_value *v = frame_get(f, key);
    CHECKF(v && v->kind == FV_TENSOR, "input.mpk: %s missing", key);
    tensor t = tensor_view(NULL, DT_F32, 1, &n, dst);
    char err[LCM_ERRLEN];
    CHECKF(frame_tensor_copy(v, &t, err) == 0, "%s", err);
}

#endif
