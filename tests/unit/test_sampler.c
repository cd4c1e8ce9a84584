/* Sampling against diffusers' pipelines (tests/fixtures/sample, made by
 * scripts/reference/golden_sample.py): LatentConsistencyModelPipeline at 1
 * and 4 steps with the replayed step noise, StableDiffusionPipeline with
 * DDIMScheduler and real classifier-free guidance; plus the schedulers'
 * timesteps, batch independence, and Euler against DDIM (the same ODE
 * discretisation in other coordinates). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "safetensors.h"
#include "sampler.h"
#include "test.h"
#include "fixture.h"
#include "util.h"

#define TOL 1e-4 /* max relative error, float32 */
#define NREC 2
#define C_ 4
#define H_ 8
#define W_ 12
#define PER (C_ * H_ * W_)
#define L_ 77
#define D_ 32

/* The records of sample/input.mpk. */
typedef struct inputs {
    float embeds[NREC][L_ * D_], noise[NREC][PER], step_noise[NREC][3 * PER];
} inputs;

static inputs *load_inputs(void) {
    static inputs in;
    char err[LCM_ERRLEN];
    frame_reader *r = frame_reader_open(fixture("sample/input.mpk"), err);
    CHECKF(r, "%s", err);
    frame f;
    frame_init(&f);
    for (int i = 0; i < NREC; i++) {
        CHECKF(frame_read(r, &f) == 1, "input.mpk: record %d missing", i);
        read_field(&f, "prompt_embeds", in.embeds[i], L_ * D_);
        read_field(&f, "noise", in.noise[i], PER);
        read_field(&f, "step_noise", in.step_noise[i], 3 * PER);
    }
    frame_free(&f);
    frame_reader_close(r);
    return &in;
}

static float *golden(const char *name, int64_t n) {
    char err[LCM_ERRLEN];
    st_file *g = st_open(fixture("sample/golden.safetensors"), err);
    CHECKF(g, "%s", err);
    const st_tensor *t = st_find(g, name);
    CHECKF(t, "golden %s missing", name);
    float *data = xmalloc(sizeof(float) * (size_t)n);
    tensor dst = tensor_view(NULL, t->dtype == DT_I64 ? DT_I64 : DT_F32, 1, (int64_t[]){n}, NULL);
    int64_t *ints = NULL;
    if (t->dtype == DT_I64) dst.data = ints = xmalloc(sizeof(int64_t) * (size_t)n);
    else dst.data = data;
    CHECKF(st_tensor_copy(t, &dst, err) == 0, "%s", err);
    if (ints) {
        for (int64_t i = 0; i < n; i++) data[i] = (float)ints[i];
        free(ints);
    }
    st_close(g);
    return data;
}

static void expect_close(const char *label, const float *got, const float *want, size_t n) {
    double e = max_rel_err(got, want, n, 1e-6);
    printf("# %s max rel err %.3g\n", label, e);
    CHECKF(e <= TOL, "%s: max rel err %.3g > %g", label, e, TOL);
}

typedef struct models {
    unet_model unet;
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
} models;

static void load_models(models *m, const char *unet_dir) {
    char err[LCM_ERRLEN];
    CHECKF(unet_load(&m->unet, fixture(unet_dir), backend_default(), 0, err) == 0, "%s", err);
    CHECKF(vae_load(&m->vae, fixture("lcd/teacher"), backend_default(), err) == 0, "%s", err);
    const char *cfg = fixture("lcd/teacher/scheduler/scheduler_config.json");
    CHECKF(schedule_from_config(&m->ns, cfg, err) == 0, "%s", err);
    CHECKF(scheduler_extra_read(&m->extra, cfg, err) == 0, "%s", err);
}

static void free_models(models *m) {
    unet_free(&m->unet);
    vae_free(&m->vae);
}

/* Samples both records in one batch (or one by one) and returns the latents. */
static float *sample(models *m, sampler_kind kind, int steps, double g, int one_by_one, const float *uncond,
                     sampler *keep) {
    inputs *in = load_inputs();
    char err[LCM_ERRLEN];
    scheduler_options o = {.kind = kind, .num_inference_steps = steps, .strength = 1.0f};
    sampler s;
    CHECKF(sampler_init(&s, &m->unet, &m->vae, &m->ns, &m->extra, &o, g, H_, W_, err) == 0, "%s", err);
    float *lat = xmalloc(sizeof(float) * NREC * PER);
    memcpy(lat, in->noise, sizeof(float) * NREC * PER);
    sample_job jobs[NREC];
    for (int b = 0; b < NREC; b++)
        jobs[b] = (sample_job){.prompt_embeds = in->embeds[b], .latent = lat + PER * b, .step_noise = in->step_noise[b]};
    if (one_by_one)
        for (int b = 0; b < NREC; b++) sampler_run(&s, &jobs[b], 1, L_, uncond, NULL, NULL);
    else
        sampler_run(&s, jobs, NREC, L_, uncond, NULL, NULL);
    if (keep) *keep = s;
    else sampler_free(&s);
    return lat;
}

static void check_golden(models *m, sampler_kind kind, int steps, double g, const char *name, const float *uncond) {
    sampler s;
    float *lat = sample(m, kind, steps, g, 0, uncond, &s);
    char key[64];
    snprintf(key, sizeof key, "%s.timesteps", name);
    float *ts = golden(key, steps);
    for (int i = 0; i < steps; i++) CHECKF(s.sch.timesteps[i] == (int)ts[i], "%s step %d: timestep %d, want %g", name, i, s.sch.timesteps[i], ts[i]);
    snprintf(key, sizeof key, "%s.latent", name);
    float *want = golden(key, NREC * PER);
    snprintf(key, sizeof key, "%s latent", name);
    expect_close(key, lat, want, NREC * PER);
    size_t img_n = (size_t)NREC * 3 * (H_ * 2) * (W_ * 2);
    float *img = xmalloc(sizeof(float) * img_n);
    sampler_decode(&s, NREC, lat, img);
    snprintf(key, sizeof key, "%s.image", name);
    float *want_img = golden(key, (int64_t)img_n);
    snprintf(key, sizeof key, "%s image", name);
    expect_close(key, img, want_img, img_n);
    sampler_free(&s);
    free(lat), free(ts), free(want), free(img), free(want_img);
}

TEST(lcm_timesteps_as_diffusers) {
    static const int want[8][8] = {{999}, {999, 499}, {999, 679, 339}, {999, 759, 499, 259},
                                   {999, 799, 599, 399, 199}, {999, 839, 679, 499, 339, 179},
                                   {999, 859, 719, 579, 439, 299, 159}, {999, 879, 759, 639, 499, 379, 259, 139}};
    noise_schedule ns;
    scheduler_extra x = {.timestep_scaling = 10, .original_inference_steps = 50, .clip_sample_range = 1};
    char err[LCM_ERRLEN];
    CHECKF(schedule_make(&ns, 1000, 0.00085, 0.012, "scaled_linear", err) == 0, "%s", err);
    scheduler s;
    for (int n = 1; n <= 8; n++) {
        scheduler_options o = {.kind = SAMPLER_LCM, .num_inference_steps = n, .strength = 1};
        CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
        CHECK(s.n == n);
        int ref[8];
        CHECK(lcm_timesteps(1000, 50, n, 1.0f, ref, err) == n);
        for (int i = 0; i < n; i++) {
            CHECKF(s.timesteps[i] == want[n - 1][i], "n=%d i=%d: %d", n, i, s.timesteps[i]);
            CHECKF(s.timesteps[i] == ref[i], "n=%d i=%d: %d vs schedule.c %d", n, i, s.timesteps[i], ref[i]);
        }
    }
    scheduler_options half = {.kind = SAMPLER_LCM, .num_inference_steps = 4, .strength = 0.5f};
    CHECKF(scheduler_init(&s, &ns, &x, &half, err) == 0, "%s", err);
    CHECK(s.timesteps[0] == 499 && s.timesteps[1] == 379 && s.timesteps[2] == 259 && s.timesteps[3] == 139);
    scheduler_options nine = {.kind = SAMPLER_LCM, .num_inference_steps = 51, .strength = 1};
    CHECK(scheduler_init(&s, &ns, &x, &nine, err) == -1);
    int custom[] = {999, 499, 99};
    scheduler_options cu = {.kind = SAMPLER_LCM, .timesteps = custom, .n_timesteps = 3, .strength = 1};
    CHECKF(scheduler_init(&s, &ns, &x, &cu, err) == 0, "%s", err);
    CHECK(s.n == 3 && s.timesteps[2] == 99);
    int rising[] = {499, 999};
    scheduler_options bad = {.kind = SAMPLER_LCM, .timesteps = rising, .n_timesteps = 2, .strength = 1};
    CHECK(scheduler_init(&s, &ns, &x, &bad, err) == -1);
}

TEST(ddim_and_euler_timesteps) {
    noise_schedule ns;
    char err[LCM_ERRLEN];
    const char *cfg = fixture("lcd/teacher/scheduler/scheduler_config.json");
    CHECKF(schedule_from_config(&ns, cfg, err) == 0, "%s", err);
    scheduler_extra x;
    CHECKF(scheduler_extra_read(&x, cfg, err) == 0, "%s", err);
    scheduler s;
    scheduler_options o = {.kind = SAMPLER_DDIM, .num_inference_steps = 4, .strength = 1};
    CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
    CHECK(s.timesteps[0] == 751 && s.timesteps[3] == 1 && s.step_ratio == 250);
    CHECK(s.clip_sample == 0); /* the config says false; DDIM's default would clip */
    scheduler_extra unset = x;
    unset.has_clip_sample = 0;
    CHECKF(scheduler_init(&s, &ns, &unset, &o, err) == 0, "%s", err);
    CHECK(s.clip_sample == 1);
    strcpy(ns.timestep_spacing, "trailing");
    CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
    CHECK(s.timesteps[0] == 999 && s.timesteps[1] == 749 && s.timesteps[3] == 249);
    strcpy(ns.timestep_spacing, "linspace");
    CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
    CHECK(s.timesteps[0] == 999 && s.timesteps[1] == 666 && s.timesteps[2] == 333 && s.timesteps[3] == 0);
    o.kind = SAMPLER_EULER;
    CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
    CHECK(s.timesteps_f[1] == 666.0f && s.sigmas[4] == 0.0f);
    CHECK(s.init_noise_sigma == s.sigmas[0]); /* linspace: the largest sigma */
    strcpy(ns.timestep_spacing, "leading");
    CHECKF(scheduler_init(&s, &ns, &x, &o, err) == 0, "%s", err);
    float ac = ns.alphas_cumprod[751];
    CHECK_NEAR(s.sigmas[0], sqrtf((1 - ac) / ac), 0);
    CHECK_NEAR(s.init_noise_sigma, sqrtf(s.sigmas[0] * s.sigmas[0] + 1), 0);
}

TEST(lcm_1_step_matches_diffusers) {
    models m;
    load_models(&m, "lcd/student_init");
    check_golden(&m, SAMPLER_LCM, 1, 8.5, "lcm1", NULL);
    free_models(&m);
}

TEST(lcm_4_steps_match_diffusers) {
    models m;
    load_models(&m, "lcd/student_init");
    check_golden(&m, SAMPLER_LCM, 4, 8.5, "lcm4", NULL);
    free_models(&m);
}

TEST(ddim_cfg_matches_diffusers) {
    models m;
    load_models(&m, "lcd/teacher");
    float *uncond = golden("uncond_prompt_embeds", L_ * D_);
    sampler s;
    char err[LCM_ERRLEN];
    scheduler_options o = {.kind = SAMPLER_DDIM, .num_inference_steps = 4, .strength = 1};
    CHECKF(sampler_init(&s, &m.unet, &m.vae, &m.ns, &m.extra, &o, 7.5, H_, W_, err) == 0, "%s", err);
    CHECK(s.cfg == 1 && !s.w_embedding);
    sampler_free(&s);
    check_golden(&m, SAMPLER_DDIM, 4, 7.5, "ddim4", uncond);
    free(uncond);
    free_models(&m);
}

/* An image does not depend on the others in its batch. */
TEST(batch_independence) {
    models m;
    load_models(&m, "lcd/teacher");
    float *uncond = golden("uncond_prompt_embeds", L_ * D_);
    float *both = sample(&m, SAMPLER_DDIM, 2, 7.5, 0, uncond, NULL), *single = sample(&m, SAMPLER_DDIM, 2, 7.5, 1, uncond, NULL);
    double e = max_rel_err(both, single, NREC * PER, 1e-6);
    printf("# ddim batch of 2 vs 1+1 max rel err %.3g\n", e);
    CHECK(e <= 1e-5);
    free(both), free(single), free(uncond);
    free_models(&m);
}

/* DDIM (eta 0, final abar 1) and Euler discretise the same ODE: Euler's
 * x equals DDIM's x / sqrt(abar), and both end at the predicted x0. */
TEST(euler_agrees_with_ddim) {
    models m;
    load_models(&m, "lcd/teacher");
    m.ns.set_alpha_to_one = 1;
    float *uncond = golden("uncond_prompt_embeds", L_ * D_);
    float *ddim = sample(&m, SAMPLER_DDIM, 4, 7.5, 0, uncond, NULL), *euler = sample(&m, SAMPLER_EULER, 4, 7.5, 0, uncond, NULL);
    double e = max_rel_err(euler, ddim, NREC * PER, 1e-6);
    printf("# euler vs ddim (set_alpha_to_one) max rel err %.3g\n", e);
    CHECK(e <= 1e-4);
    inputs *in = load_inputs();
    CHECK(max_rel_err(euler, in->noise[0], NREC * PER, 1e-6) > 0.1); /* it did move */
    free(ddim), free(euler), free(uncond);
    free_models(&m);
}

/* Without replayed step noise, the generator's draws are used, and the same
 * seed gives the same image. */
TEST(generator_noise) {
    models m;
    load_models(&m, "lcd/student_init");
    inputs *in = load_inputs();
    char err[LCM_ERRLEN];
    scheduler_options o = {.kind = SAMPLER_LCM, .num_inference_steps = 3, .strength = 1};
    sampler s;
    CHECKF(sampler_init(&s, &m.unet, &m.vae, &m.ns, &m.extra, &o, 8.5, H_, W_, err) == 0, "%s", err);
    float a[PER], b[PER], c[PER];
    rng g;
    float *outs[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        memcpy(outs[k], in->noise[0], sizeof a);
        rng_seed(&g, k == 2 ? 8 : 7, 0);
        sample_job j = {.prompt_embeds = in->embeds[0], .latent = outs[k], .gen = &g};
        sampler_run(&s, &j, 1, L_, NULL, NULL, NULL);
    }
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a));
    sampler_free(&s);
    free_models(&m);
}

int main(void) {
    RUN(lcm_timesteps_as_diffusers);
    RUN(ddim_and_euler_timesteps);
    RUN(lcm_1_step_matches_diffusers);
    RUN(lcm_4_steps_match_diffusers);
    RUN(ddim_cfg_matches_diffusers);
    RUN(batch_independence);
    RUN(euler_agrees_with_ddim);
    RUN(generator_noise);
    TEST_EXIT();
}
