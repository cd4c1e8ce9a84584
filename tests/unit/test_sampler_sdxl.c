/* Sampling with SDXL UNets (pooled embeddings, time_ids, zero negatives)
 * against diffusers' StableDiffusionXLPipeline (tests/fixtures/sample-sdxl,
 * made by scripts/reference/golden_sample_sdxl.py). */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "safetensors.h"
#include "sampler.h"
#include "test.h"
#include "fixture.h"
#include "golden.h"
#include "util.h"

#define TOL 1e-4
#define NREC 2
#define PER (4 * 8 * 12)
#define L_ 77
#define D_ 56 /* 32 + 24: both text encoders */
#define P_ 16

static float *golden(const char *name, int64_t n) {
    return golden_file_f32(fixture("sample-sdxl/golden.safetensors"), name, n);
}

static void check(const char *name, const char *unet_dir, sampler_kind kind) {
    static float embeds[NREC][L_ * D_], pooled[NREC][P_], noise[NREC][PER], step_noise[NREC][3 * PER];
    char err[LCM_ERRLEN];
    frame_reader *r = frame_reader_open(fixture("sample-sdxl/input.mpk"), err);
    CHECKF(r, "%s", err);
    frame f;
    frame_init(&f);
    for (int i = 0; i < NREC; i++) {
        CHECKF(frame_read(r, &f) == 1, "record %d missing", i);
        read_field(&f, "prompt_embeds", embeds[i], L_ * D_);
        read_field(&f, "pooled_prompt_embeds", pooled[i], P_);
        read_field(&f, "noise", noise[i], PER);
        read_field(&f, "step_noise", step_noise[i], 3 * PER);
    }
    frame_free(&f);
    frame_reader_close(r);
    unet_model unet;
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
    CHECKF(unet_load(&unet, fixture(unet_dir), backend_default(), 0, err) == 0, "%s", err);
    CHECKF(vae_load(&vae, fixture("sdxl/teacher"), backend_default(), err) == 0, "%s", err);
    const char *cfg = fixture("sdxl/teacher/scheduler/scheduler_config.json");
    CHECKF(schedule_from_config(&ns, cfg, err) == 0 && scheduler_extra_read(&extra, cfg, err) == 0, "%s", err);
    scheduler_options o = {.kind = kind, .num_inference_steps = 4, .strength = 1.0f};
    sampler s;
    CHECKF(sampler_init(&s, &unet, &vae, &ns, &extra, &o, 5.0, 8, 12, err) == 0, "%s", err);
    float *want_ids = golden("time_ids", 6);
    CHECK(s.pooled_dim == P_ && memcmp(s.time_ids, want_ids, sizeof s.time_ids) == 0);
    CHECK(s.cfg == (kind != SAMPLER_LCM));
    static float zeros[L_ * D_], lat[NREC * PER];
    memcpy(lat, noise, sizeof lat);
    sample_job jobs[NREC];
    for (int b = 0; b < NREC; b++)
        jobs[b] = (sample_job){.prompt_embeds = embeds[b], .pooled = pooled[b], .latent = lat + PER * b, .step_noise = step_noise[b]};
    sampler_run(&s, jobs, NREC, L_, zeros, NULL, NULL);
    char key[64];
    snprintf(key, sizeof key, "%s.latent", name);
    float *want = golden(key, NREC * PER);
    double e = max_rel_err(lat, want, NREC * PER, 1e-6);
    printf("# %s latent max rel err %.3g\n", name, e);
    CHECKF(e <= TOL, "%s: max rel err %.3g", name, e);
    size_t img_n = (size_t)NREC * 3 * 16 * 24;
    float *img = xmalloc(sizeof(float) * img_n);
    sampler_decode(&s, NREC, lat, img);
    snprintf(key, sizeof key, "%s.image", name);
    float *want_img = golden(key, (int64_t)img_n);
    e = max_rel_err(img, want_img, img_n, 1e-6);
    printf("# %s image max rel err %.3g\n", name, e);
    CHECKF(e <= TOL, "%s image: max rel err %.3g", name, e);
    sampler_free(&s);
    unet_free(&unet), vae_free(&vae);
    free(want_ids), free(want), free(img), free(want_img);
}

TEST(sdxl_lcm_student_matches_diffusers) { check("lcm4", "sdxl/student_init", SAMPLER_LCM); }
TEST(sdxl_ddim_cfg_zero_negatives_matches_diffusers) { check("ddim4", "sdxl/teacher", SAMPLER_DDIM); }

int main(void) {
    RUN(sdxl_lcm_student_matches_diffusers);
    RUN(sdxl_ddim_cfg_zero_negatives_matches_diffusers);
    TEST_EXIT();
}
