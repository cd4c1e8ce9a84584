/* The LCD training step against the reference's goldens
 * (tests/fixtures/lcd, made by scripts/reference/golden_lcd.py with diffusers
 * on the same teacher, student init and replayed draws): the loss of every
 * micro-step, the gradient norm of every optimizer step, and the student
 * and target weights after steps 1 and 3. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "lcd.h"
#include "optim.h"
#include "safetensors.h"
#include "test.h"
#include "golden.h"
#include "golden_inputs.h"
#include "util.h"

static char top[900];

static void path(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/tests/fixtures/lcd/%s", top, rel); }

static void run_case(const char *name, const char *teacher_dir, loss_kind loss, int accum) {
    char p[1024], err[LCM_ERRLEN];
    snprintf(p, sizeof p, "%s/tests/fixtures/lcd/%s/golden.safetensors", top, name);
    st_file *g = st_open(p, err);
    CHECKF(g, "%s", err);
    unet_model teacher, student, target;
    path(p, sizeof p, teacher_dir);
    CHECKF(unet_load(&teacher, p, backend_default(), 0, err) == 0, "%s", err);
    path(p, sizeof p, "student_init");
    CHECKF(unet_load(&student, p, backend_default(), 1, err) == 0, "%s", err);
    CHECKF(unet_load(&target, p, backend_default(), 0, err) == 0, "%s", err);
    params init;
    params_init(&init);
    init.total = student.ps.total;
    init.data = params_values_to_host(&student.ps);

    noise_schedule ns;
    snprintf(p, sizeof p, "%s/tests/fixtures/lcd/%s/scheduler/scheduler_config.json", top, teacher_dir);
    CHECKF(schedule_from_config(&ns, p, err) == 0, "%s", err);
    lcd_config cfg = {.num_ddim_timesteps = 50, .w_min = 5, .w_max = 15, .timestep_scaling = 10, .loss = loss,
                      .huber_c = 0.001f, .scaling_factor = 0.18215f, .seed = 0};
    lcd_trainer tr = {.teacher = &teacher, .student = &student, .target = &target};
    CHECKF(lcd_init(&tr, &cfg, &ns, err) == 0, "%s", err);
    tr.uncond = golden_f32(g, "uncond_prompt_embeds", NULL);
    tr.uncond_len = 77, tr.uncond_dim = 32;
    adamw_state opt;
    adamw_init(&opt, &student.ps, 0.9f, 0.999f, 1e-8f, 1e-2f);

    float *want_loss = golden_f32(g, "loss_micro", NULL), *want_norm = golden_f32(g, "grad_norm", NULL);
    snprintf(p, sizeof p, "%s/tests/fixtures/lcd/%s/input.mpk", top, name);
    golden_inputs in;
    golden_inputs_open(&in, p);
    double worst_loss = 0, worst_norm = 0;
    for (int step = 1; step <= 3; step++) {
        for (int m = 0; m < accum; m++) {
            lcd_batch *batch = golden_inputs_next(&in, &cfg);
            /* the first micro-batch's first record has index 0: s = 19, t = 0,
             * where c_skip = 1 and c_out = 0 make the target x_t exactly */
            int64_t per = (int64_t)batch->C * batch->H * batch->W;
            double *xp = xmalloc(sizeof(double) * (size_t)(2 * per)), *tg = xmalloc(sizeof(double) * (size_t)(2 * per));
            lcd_trace trace = {.x_prev = xp, .target = tg};
            double l = lcd_micro_step(&tr, batch, 1.0f / (float)accum, &trace);
            if (step == 1 && m == 0) {
                CHECK(batch->index[0] == 0 && trace.c_skip[0] == 1.0f && trace.c_out[0] == 0.0f);
                for (int64_t e = 0; e < per; e++) CHECKF(tg[e] == xp[e], "boundary: target %.17g != x_t %.17g", tg[e], xp[e]);
                CHECK(tg[per] != xp[per]); /* the second record is not at the boundary */
            }
            free(xp), free(tg);
            double want = want_loss[(step - 1) * accum + m], e = fabs(l - want) / fabs(want);
            if (e > worst_loss) worst_loss = e;
            printf("# %s step %d micro %d: loss %.9g, reference %.9g, rel err %.3g\n", name, step, m, l, want, e);
            CHECKF(e <= 1e-4, "%s step %d micro %d: loss %.7g, reference %.7g", name, step, m, l, want);
        }
        double norm = lcd_apply_update(&tr, &opt, 1e-3f, 1.0f, 0.95f);
        double e = fabs(norm - want_norm[step - 1]) / want_norm[step - 1];
        if (e > worst_norm) worst_norm = e;
        CHECKF(e <= 1e-3, "%s step %d: grad norm %.7g, reference %.7g", name, step, norm, want_norm[step - 1]);
        if (step == 1 || step == 3) {
            char key[64];
            snprintf(key, sizeof key, "student_delta.%d", step);
            int64_t nd;
            float *d = golden_f32(g, key, &nd);
            double ue = update_error(&student.ps, init.data, d, (size_t)nd);
            printf("# %s step %d: student update rel err %.3g\n", name, step, ue);
            CHECKF(ue <= 3e-2, "%s step %d: student update error %.3g", name, step, ue);
            free(d);
            snprintf(key, sizeof key, "target_delta.%d", step);
            if (st_find(g, key)) {
                d = golden_f32(g, key, &nd);
                ue = update_error(&target.ps, init.data, d, (size_t)nd);
                printf("# %s step %d: target update rel err %.3g\n", name, step, ue);
                CHECKF(ue <= 3e-2, "%s step %d: target update error %.3g", name, step, ue);
                free(d);
            }
        }
    }
    printf("# %s: max loss rel err %.3g, max grad-norm rel err %.3g\n", name, worst_loss, worst_norm);
    golden_inputs_close(&in);
    lcd_free(&tr);
    adamw_free(&opt);
    free(want_loss), free(want_norm), free(tr.uncond), free(init.data);
    unet_free(&teacher), unet_free(&student), unet_free(&target);
    st_close(g);
}

TEST(eps_huber) { run_case("eps-huber", "teacher", LOSS_PSEUDO_HUBER, 1); }
TEST(eps_l2_accum2) { run_case("eps-l2-accum2", "teacher", LOSS_MSE, 2); }
TEST(v_huber) { run_case("v-huber", "teacher-v", LOSS_PSEUDO_HUBER, 1); }

int main(void) {
    const char *t = getenv("LCM_TOP");
    snprintf(top, sizeof top, "%s", t && *t ? t : ".");
    RUN(eps_huber);
    RUN(eps_l2_accum2);
    RUN(v_huber);
    TEST_EXIT();
}
