/* The optimizer against torch's formulas (lcd-reference.md §3.3), worked in
 * double here: AdamW, gradient clipping, the EMA and the LR schedules. */
#include <math.h>

#include "backend.h"
#include "optim.h"
#include "test.h"
#include "util.h"

static void make_params(params *ps, int n) {
    params_init(ps);
    params_add1(ps, "a", n);
    params_add2(ps, "b", 2, 3);
    params_alloc(ps, NULL, 1);
}

TEST(adamw_three_steps_match_formula) {
    params ps;
    make_params(&ps, 5);
    float *w = ps.data, *g = ps.grad;
    size_t n = ps.total;
    double W[64], M[64] = {0}, V[64] = {0};
    for (size_t i = 0; i < n; i++) W[i] = w[i] = 0.1f * (float)i - 0.3f;
    adamw_state o;
    adamw_init(&o, &ps, 0.9f, 0.999f, 1e-8f, 1e-2f);
    const double lr = 1e-3;
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)sin(1.0 + i * step);
        adamw_step(&o, &ps, (float)lr);
        for (size_t i = 0; i < n; i++) {
            double gi = g[i];
            W[i] *= 1 - lr * 1e-2;
            M[i] = 0.9 * M[i] + 0.1 * gi;
            V[i] = 0.999 * V[i] + 0.001 * gi * gi;
            double mh = M[i] / (1 - pow(0.9, step)), vh = V[i] / (1 - pow(0.999, step));
            W[i] -= lr * mh / (sqrt(vh) + 1e-8);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (i < 5 || (i >= 16 && i < 22)) CHECK_NEAR(w[i], W[i], 4e-7 * fabs(W[i]) + 1e-9); /* float vs double: ~2 ulp */
    CHECK(o.step == 3);
    adamw_free(&o);
    params_free(&ps);
}

TEST(clip_scales_only_above_the_norm) {
    params ps;
    make_params(&ps, 4);
    float *g = ps.grad;
    for (size_t i = 0; i < ps.total; i++) g[i] = 0;
    g[0] = 3, g[1] = 4; /* norm 5 */
    double norm = grad_norm(&ps);
    CHECK_NEAR(norm, 5.0, 1e-12);
    clip_grads(&ps, norm, 1.0);
    CHECK_NEAR(g[0], 3 * (1.0 / (5 + 1e-6)), 1e-7);
    CHECK_NEAR(g[1], 4 * (1.0 / (5 + 1e-6)), 1e-7);
    g[0] = 0.3f, g[1] = 0.4f;
    clip_grads(&ps, grad_norm(&ps), 1.0); /* coef clamped at 1: unchanged */
    CHECK(g[0] == 0.3f && g[1] == 0.4f);
    params_free(&ps);
}

TEST(ema_update_mixes) {
    params a, b;
    make_params(&a, 3);
    make_params(&b, 3);
    for (size_t i = 0; i < a.total; i++) a.data[i] = 1, b.data[i] = 3;
    ema_update(&a, &b, 0.95f);
    CHECK_NEAR(a.data[0], 0.95 + 0.05 * 3, 1e-6);
    params_free(&a), params_free(&b);
}

TEST(lr_schedules) {
    lr_schedule s = {.kind = LR_CONSTANT, .base_lr = 1e-4, .warmup_steps = 10, .total_steps = 110};
    CHECK(lr_at(&s, 0) == 1e-4); /* constant ignores warmup */
    s.kind = LR_CONSTANT_WITH_WARMUP;
    CHECK(lr_at(&s, 0) == 0);
    CHECK_NEAR(lr_at(&s, 5), 0.5e-4, 1e-15);
    CHECK(lr_at(&s, 50) == 1e-4);
    s.kind = LR_LINEAR;
    CHECK_NEAR(lr_at(&s, 60), 1e-4 * 50 / 100, 1e-15);
    CHECK(lr_at(&s, 200) == 0);
    s.kind = LR_COSINE;
    CHECK_NEAR(lr_at(&s, 60), 1e-4 * 0.5 * (1 + cos(M_PI * 0.5)), 1e-15);
    s.kind = LR_COSINE_WITH_RESTARTS;
    CHECK_NEAR(lr_at(&s, 60), 1e-4 * 0.5 * (1 + cos(M_PI * 0.5)), 1e-15);
    CHECK(lr_at(&s, 110) == 0);
    s.kind = LR_POLYNOMIAL;
    CHECK_NEAR(lr_at(&s, 60), (1e-4 - 1e-7) * 0.5 + 1e-7, 1e-15);
    lr_kind k;
    CHECK(lr_kind_parse("cosine", &k) == 0 && k == LR_COSINE);
    CHECK(lr_kind_parse("piecewise_constant", &k) == -1);
}

int main(void) {
    RUN(adamw_three_steps_match_formula);
    RUN(clip_scales_only_above_the_norm);
    RUN(ema_update_mixes);
    RUN(lr_schedules);
    TEST_EXIT();
}
