/* The SDXL LCD step (train_lcm_distill_sdxl_wds.py) against the goldens of
 * tests/fixtures/sdxl (scripts/reference/golden_sdxl.py): added conditioning
 * (pooled embeddings, time_ids from original_size and crop_coords or fixed),
 * zero unconditional embeddings; the traced intermediates of step 1, the loss
 * and gradient norm of every step and the weights after steps 1 and 3. */
#include <math.h>
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

static double max_rel_f64(const double *a, const double *b, int64_t n) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / scale);
    return worst;
}

static void check_trace(st_file *g, const char *name, const lcd_batch *b, const lcd_trace *tr, int64_t n) {
    float *ids = golden_f32(g, "step1.time_ids", NULL), *mp = golden_f32(g, "step1.model_pred", NULL);
    for (int i = 0; i < 2 * 6; i++) CHECKF(b->time_ids[i] == ids[i], "%s: time_ids[%d] %g, reference %g", name, i, b->time_ids[i], ids[i]);
    double *xp = golden_f64(g, "step1.x_prev"), *tg = golden_f64(g, "step1.target");
    double *mpd = xmalloc((size_t)n * 8), *mine = xmalloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) mpd[i] = mp[i], mine[i] = tr->model_pred[i];
    double e_mp = max_rel_f64(mine, mpd, n), e_xp = max_rel_f64(tr->x_prev, xp, n), e_tg = max_rel_f64(tr->target, tg, n);
    printf("# %s step 1: model_pred %.3g, x_prev %.3g, target %.3g (max abs err / max |ref|)\n", name, e_mp, e_xp, e_tg);
    CHECKF(e_mp <= 1e-4 && e_xp <= 1e-4 && e_tg <= 1e-4, "%s: step-1 intermediates off", name);
    free(ids), free(mp), free(xp), free(tg), free(mpd), free(mine);
}

static void run_case(const char *name, loss_kind loss, int steps, int fix, int resolution) {
    char p[1024], err[LCM_ERRLEN];
    snprintf(p, sizeof p, "%s/tests/fixtures/sdxl/%s/golden.safetensors", top, name);
    st_file *g = st_open(p, err);
    CHECKF(g, "%s", err);
    unet_model teacher, student, target;
    snprintf(p, sizeof p, "%s/tests/fixtures/sdxl/teacher", top);
    CHECKF(unet_load(&teacher, p, backend_default(), 0, err) == 0, "%s", err);
    CHECK(teacher.cfg.text_time);
    snprintf(p, sizeof p, "%s/tests/fixtures/sdxl/student_init", top);
    CHECKF(unet_load(&student, p, backend_default(), 1, err) == 0, "%s", err);
    CHECKF(unet_load(&target, p, backend_default(), 0, err) == 0, "%s", err);
    float *init = params_values_to_host(&student.ps);

    noise_schedule ns;
    snprintf(p, sizeof p, "%s/tests/fixtures/sdxl/teacher/scheduler/scheduler_config.json", top);
    CHECKF(schedule_from_config(&ns, p, err) == 0, "%s", err);
    lcd_config cfg = {.num_ddim_timesteps = 50, .w_min = 3, .w_max = 15, .timestep_scaling = 10, .loss = loss, .huber_c = 0.001f,
                      .scaling_factor = 0.18215f, .sdxl = 1, .use_fix_crop_and_size = fix, .resolution = resolution};
    lcd_trainer tr = {.teacher = &teacher, .student = &student, .target = &target};
    CHECKF(lcd_init(&tr, &cfg, &ns, err) == 0, "%s", err);
    adamw_state opt;
    adamw_init(&opt, &student.ps, 0.9f, 0.999f, 1e-8f, 1e-2f);

    float *want_loss = golden_f32(g, "loss", NULL), *want_norm = golden_f32(g, "grad_norm", NULL);
    snprintf(p, sizeof p, "%s/tests/fixtures/sdxl/eps-huber/input.mpk", top);
    golden_inputs in;
    golden_inputs_open(&in, p);
    for (int step = 1; step <= steps; step++) {
        lcd_batch *batch = golden_inputs_next(&in, &cfg);
        CHECK(batch->P == 16);
        int64_t n = 2 * (int64_t)batch->C * batch->H * batch->W;
        float *mp = xmalloc((size_t)n * 4);
        double *xp = xmalloc((size_t)n * 8), *tg = xmalloc((size_t)n * 8);
        lcd_trace trace = {.model_pred = mp, .x_prev = xp, .target = tg};
        double l = lcd_micro_step(&tr, batch, 1.0f, &trace);
        if (step == 1) check_trace(g, name, batch, &trace, n);
        free(mp), free(xp), free(tg);
        double el = fabs(l - want_loss[step - 1]) / fabs(want_loss[step - 1]);
        double norm = lcd_apply_update(&tr, &opt, 1e-3f, 1.0f, 0.95f);
        double en = fabs(norm - want_norm[step - 1]) / want_norm[step - 1];
        printf("# %s step %d: loss rel err %.3g, grad-norm rel err %.3g\n", name, step, el, en);
        /* Step 1's loss comes from the same weights as the reference's: 1e-4.
         * Later losses come from weights AdamW has moved, and AdamW turns
         * 1e-7 differences in near-zero gradients into whole lr-sized steps
         * (this tiny SDXL UNet's step-1 update differs by 4e-3 to 6e-3 from
         * the reference's, against 3e-4 for the SD goldens); the step-2 loss
         * inherits 5e-5 in the plain build and 1.1e-4 in the sanitizer
         * build, whose float code rounds differently. The updates themselves
         * are checked below, as the issue asks. */
        double loss_tol = step == 1 ? 1e-4 : 3e-4;
        CHECKF(el <= loss_tol, "%s step %d: loss %.7g, reference %.7g", name, step, l, want_loss[step - 1]);
        CHECKF(en <= 1e-3, "%s step %d: grad norm %.7g, reference %.7g", name, step, norm, want_norm[step - 1]);
        if (step != 1 && step != steps) continue;
        const char *nets[2] = {"student", "target"};
        const params *ps[2] = {&student.ps, &target.ps};
        for (int k = 0; k < 2; k++) {
            char key[64];
            snprintf(key, sizeof key, "%s_delta.%d", nets[k], step);
            if (!st_find(g, key)) continue;
            int64_t nd;
            float *d = golden_f32(g, key, &nd);
            double ue = update_error(ps[k], init, d, (size_t)nd);
            printf("# %s step %d: %s update rel err %.3g\n", name, step, nets[k], ue);
            CHECKF(ue <= 3e-2, "%s step %d: %s update error %.3g", name, step, nets[k], ue);
            free(d);
        }
    }
    golden_inputs_close(&in);
    lcd_free(&tr);
    adamw_free(&opt);
    free(want_loss), free(want_norm), free(init);
    unet_free(&teacher), unet_free(&student), unet_free(&target);
    st_close(g);
}

TEST(sdxl_eps_huber) { run_case("eps-huber", LOSS_PSEUDO_HUBER, 3, 0, 1024); }
TEST(sdxl_fixcrop_l2) { run_case("fixcrop-l2", LOSS_MSE, 1, 1, 16); }

/* A record without the SDXL keys is refused with its number named. */
TEST(sdxl_missing_keys) {
    char err[LCM_ERRLEN];
    frame_out *fo = frame_out_new();
    float lat[4 * 2 * 2] = {0}, pe[3 * 4] = {0}, pooled[5] = {0};
    fo_tensor(fo, "latent", DT_F32, 3, (int64_t[]){4, 2, 2}, lat);
    fo_tensor(fo, "prompt_embeds", DT_F32, 2, (int64_t[]){3, 4}, pe);
    frame f;
    frame_init(&f);
    frame_from_out(&f, fo);
    f.record = 7;
    lcd_batch b;
    lcd_config cfg = {.num_ddim_timesteps = 50, .w_min = 3, .w_max = 15, .sdxl = 1, .resolution = 1024};
    CHECK(lcd_batch_alloc(&b, 1, &f, err) == 0);
    CHECK(lcd_batch_fill(&b, 0, &f, 0, &cfg, err) < 0 && strstr(err, "record 7") && strstr(err, "pooled_prompt_embeds"));
    lcd_batch_free(&b);
    fo_tensor(fo, "pooled_prompt_embeds", DT_F32, 1, (int64_t[]){5}, pooled);
    frame_from_out(&f, fo);
    f.record = 7;
    CHECK(lcd_batch_alloc(&b, 1, &f, err) == 0 && b.P == 5);
    CHECK(lcd_batch_fill(&b, 0, &f, 0, &cfg, err) < 0 && strstr(err, "original_size"));
    cfg.use_fix_crop_and_size = 1;
    CHECK(lcd_batch_fill(&b, 0, &f, 0, &cfg, err) == 0);
    CHECK(b.time_ids[0] == 1024 && b.time_ids[1] == 1024 && b.time_ids[2] == 0 && b.time_ids[3] == 0 && b.time_ids[5] == 1024);
    lcd_batch_free(&b);
    frame_free(&f);
    frame_out_free(fo);
}

int main(void) {
    const char *t = getenv("LCM_TOP");
    snprintf(top, sizeof top, "%s", t && *t ? t : ".");
    RUN(sdxl_eps_huber);
    RUN(sdxl_fixcrop_l2);
    RUN(sdxl_missing_keys);
    TEST_EXIT();
}
