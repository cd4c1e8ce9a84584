/* LoRA files for inference (unet_lora_open, unet_lora_merge, the kohya
 * layout): sampling with adapters against diffusers' load_lora_weights +
 * LCMScheduler (tests/fixtures/sample-lora, made by
 * scripts/reference/golden_sample_lora.py), where alpha comes from, and a
 * merged UNet against the UNet with the adapters attached. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "optim.h"
#include "safetensors.h"
#include "sampler.h"
#include "test.h"
#include "fixture.h"
#include "golden.h"
#include "unet_lora.h"
#include "util.h"

#define TOL 1e-4 /* max relative error against diffusers, float32 */
#define NREC 2
#define C_ 4
#define H_ 8
#define W_ 12
#define PER (C_ * H_ * W_)
#define L_ 77
#define D_ 32
#define STEPS 4

static void open_lora(unet_lora *l, const unet_model *m, const char *file, float scale) {
    char err[LCM_ERRLEN];
    CHECKF(unet_lora_open(l, m, file, scale, err) == 0, "%s", err);
}

/* The teacher + adapters at lora_scale, LCM, 4 steps, against the golden. */
static void check_case(const char *name, double guidance, float lora_scale) {
    static float embeds[NREC][L_ * D_], noise[NREC][PER], step_noise[NREC][3 * PER];
    char err[LCM_ERRLEN];
    frame_reader *r = frame_reader_open(fixture("sample/input.mpk"), err);
    CHECKF(r, "%s", err);
    frame f;
    frame_init(&f);
    for (int i = 0; i < NREC; i++) {
        CHECKF(frame_read(r, &f) == 1, "input.mpk: record %d missing", i);
        read_field(&f, "prompt_embeds", embeds[i], L_ * D_);
        read_field(&f, "noise", noise[i], PER);
        read_field(&f, "step_noise", step_noise[i], 3 * PER);
    }
    frame_free(&f);
    frame_reader_close(r);

    unet_model unet;
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
    CHECKF(unet_load(&unet, fixture("lcd/teacher"), backend_default(), 0, err) == 0, "%s", err);
    CHECKF(vae_load(&vae, fixture("lcd/teacher"), backend_default(), err) == 0, "%s", err);
    const char *cfg = fixture("lcd/teacher/scheduler/scheduler_config.json");
    CHECKF(schedule_from_config(&ns, cfg, err) == 0 && scheduler_extra_read(&extra, cfg, err) == 0, "%s", err);
    unet_lora lora;
    open_lora(&lora, &unet, fixture("lora/init/" UNET_LORA_FILE), lora_scale);
    unet.lora = &lora;
    scheduler_options o = {.kind = SAMPLER_LCM, .num_inference_steps = STEPS, .strength = 1.0f};
    sampler s;
    CHECKF(sampler_init(&s, &unet, &vae, &ns, &extra, &o, guidance, H_, W_, err) == 0, "%s", err);
    CHECK(s.cfg == (guidance > 1));
    float *uncond = golden_file_f32(fixture("sample/golden.safetensors"), "uncond_prompt_embeds", L_ * D_);
    float lat[NREC * PER];
    memcpy(lat, noise, sizeof lat);
    sample_job jobs[NREC];
    for (int b = 0; b < NREC; b++)
        jobs[b] = (sample_job){.prompt_embeds = embeds[b], .latent = lat + PER * b, .step_noise = step_noise[b]};
    sampler_run(&s, jobs, NREC, L_, uncond, NULL, NULL);

    char key[64];
    const char *gold = fixture("sample-lora/golden.safetensors");
    snprintf(key, sizeof key, "%s.latent", name);
    float *want = golden_file_f32(gold, key, NREC * PER);
    double e = max_rel_err(lat, want, NREC * PER, 1e-6);
    printf("# %s latent max rel err %.3g\n", name, e);
    CHECKF(e <= TOL, "%s latent: max rel err %.3g", name, e);
    size_t img_n = (size_t)NREC * 3 * (H_ * 2) * (W_ * 2);
    float *img = xmalloc(sizeof(float) * img_n);
    sampler_decode(&s, NREC, lat, img);
    snprintf(key, sizeof key, "%s.image", name);
    float *want_img = golden_file_f32(gold, key, (int64_t)img_n);
    e = max_rel_err(img, want_img, img_n, 1e-6);
    printf("# %s image max rel err %.3g\n", name, e);
    CHECKF(e <= TOL, "%s image: max rel err %.3g", name, e);
    sampler_free(&s);
    unet_lora_free(&lora);
    unet_free(&unet), vae_free(&vae);
    free(uncond), free(want), free(img), free(want_img);
}

TEST(lora_sampling_matches_diffusers_scale) { check_case("lora4", 1.0, 0.7f); }
TEST(lora_sampling_matches_diffusers_cfg) { check_case("lora4cfg", 1.5, 1.0f); }

TEST(lora_alpha_sources) {
    char err[LCM_ERRLEN], tmp[] = "/tmp/lora-files-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    int rank;
    float alpha;
    lora_alpha_source src;
    /* diffusers' save_lora_weights writes no alpha: rank, scale 1 */
    CHECKF(unet_lora_file_info(fixture("lora/init/" UNET_LORA_FILE), &rank, &alpha, &src, err) == 0, "%s", err);
    CHECK(rank == 4 && alpha == 4.0f && src == LORA_ALPHA_RANK);
    /* ours carries lora_alpha in the metadata; kohya's, .alpha tensors */
    unet_model m;
    CHECKF(unet_load(&m, fixture("lcd/teacher"), backend_default(), 0, err) == 0, "%s", err);
    unet_lora l, back;
    CHECKF(unet_lora_create(&l, &m, 2, 6.0f, 0, 7, err) == 0, "%s", err);
    char *ours = path_join(tmp, "ours.safetensors"), *kohya = path_join(tmp, "kohya.safetensors");
    CHECKF(unet_lora_save(&l, ours, err) == 0, "%s", err);
    CHECKF(unet_lora_file_info(ours, &rank, &alpha, &src, err) == 0, "%s", err);
    CHECK(rank == 2 && alpha == 6.0f && src == LORA_ALPHA_METADATA);
    open_lora(&back, &m, ours, 0.5f);
    CHECK_NEAR(back.scale, 0.5 * 6.0 / 2.0, 1e-7);
    unet_lora_free(&back);
    int skipped = -1;
    CHECKF(unet_lora_to_kohya(ours, kohya, &skipped, err) == 0, "%s", err);
    CHECK(skipped == 0);
    CHECKF(unet_lora_file_info(kohya, &rank, &alpha, &src, err) == 0, "%s", err);
    CHECK(rank == 2 && alpha == 6.0f && src == LORA_ALPHA_TENSORS);
    open_lora(&back, &m, kohya, 1.0f);
    CHECK_NEAR(back.scale, 3.0, 1e-7);
    /* the same adapters, read back from kohya's names */
    float *a = params_values_to_host(&l.ps), *b = params_values_to_host(&back.ps);
    CHECK(back.ps.total == l.ps.total && memcmp(a, b, l.ps.total * sizeof(float)) == 0);
    unet_lora_free(&back);
    /* a file without adapters is refused with its name */
    CHECK(unet_lora_file_info(fixture("lcd/teacher/unet/diffusion_pytorch_model.safetensors"), &rank, &alpha, &src, err) == -1);
    CHECKF(strstr(err, "no UNet LoRA adapters") != NULL, "%s", err);
    unet_lora_free(&l);
    unet_free(&m);
    free(a), free(b), free(ours), free(kohya);
    rm_rf(tmp);
}

static void forward(unet_model *m, const float *x, const float *ctx, float *out) {
    const backend *be = backend_default();
    tensor *xs = tensor_new4(be, DT_F32, 2, C_, 8, 8), *cs = tensor_new(be, DT_F32, 3, (int64_t[]){2, L_, D_});
    tensor *o = tensor_new4(be, DT_F32, 2, C_, 8, 8);
    tensor_from_host(xs, x), tensor_from_host(cs, ctx);
    float ts[2] = {999, 259};
    unet_forward(m, (unet_inputs){.sample = xs, .timesteps = ts, .encoder_hidden_states = cs}, o, 0);
    tensor_to_host(o, out);
    tensor_free(xs), tensor_free(cs), tensor_free(o);
}

TEST(merged_unet_equals_adapters) {
    char err[LCM_ERRLEN];
    unet_model with, merged;
    CHECKF(unet_load(&with, fixture("lcd/teacher"), backend_default(), 0, err) == 0, "%s", err);
    CHECKF(unet_load(&merged, fixture("lcd/teacher"), backend_default(), 0, err) == 0, "%s", err);
    unet_lora lora;
    open_lora(&lora, &with, fixture("lora/init/" UNET_LORA_FILE), 1.3f);
    enum { NX = 2 * C_ * 64, NC = 2 * L_ * D_ };
    static float x[NX], ctx[NC], base[NX], want[NX], got[NX];
    rng r;
    rng_seed(&r, 5, 0);
    rng_normal_fill(&r, x, NX), rng_normal_fill(&r, ctx, NC);
    forward(&with, x, ctx, base);
    with.lora = &lora;
    forward(&with, x, ctx, want);
    unet_lora_merge(&merged, &lora);
    forward(&merged, x, ctx, got);
    double e = max_rel_err(got, want, NX, 1e-6), moved = max_rel_err(base, want, NX, 1e-6);
    printf("# merged vs attached: max rel err %.3g (the adapters move the output by %.3g)\n", e, moved);
    CHECKF(e <= 1e-5, "merged UNet: max rel err %.3g", e);
    CHECKF(moved > 1e-3, "the adapters hardly change the output (%.3g): the test would prove nothing", moved);
    unet_lora_free(&lora);
    unet_free(&with), unet_free(&merged);
}

int main(void) {
    RUN(lora_sampling_matches_diffusers_scale);
    RUN(lora_sampling_matches_diffusers_cfg);
    RUN(lora_alpha_sources);
    RUN(merged_unet_equals_adapters);
    TEST_EXIT();
}
