/* `make golden-full`: the SD 1.5 UNet at its real size (859,520,964 random
 * parameters) against diffusers' forward at 64x64 latents, batch 1, 77
 * tokens, written by scripts/reference/golden_full.py into $LCM_GOLDEN_FULL.
 * Skipped (and passing) when LCM_GOLDEN_FULL is not set: the model is 3.4 GB
 * and lives outside the repository. */
#include <stdlib.h>

#include "backend.h"
#include "safetensors.h"
#include "test.h"
#include "golden.h"
#include "unet.h"
#include "util.h"

#define TOL 1e-4 /* max |got - want| / max |want|, float32, as the encoders' full-size goldens */

static char full_dir[900];

TEST(full_size_sd15_unet_forward) {
    char dir[1024], path[1100], err[LCM_ERRLEN];
    snprintf(dir, sizeof dir, "%s/unet", full_dir);
    unet_model m;
    CHECKF(unet_load(&m, dir, backend_default(), 0, err) == 0, "%s", err);
    int64_t count = 0;
    for (int i = 0; i < m.ps.n; i++) count += tensor_numel(&m.ps.p[i]->value);
    CHECKF(count == 859520964, "%lld parameters, SD 1.5 has 859520964", (long long)count);
    snprintf(path, sizeof path, "%s/golden/unet.safetensors", full_dir);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    tensor *sample = golden_tensor(f, "sample"), *ehs = golden_tensor(f, "encoder_hidden_states");
    tensor *ts = golden_tensor(f, "timestep"), *want = golden_tensor(f, "out.sample");
    tensor *in_dev = tensor_clone(sample, backend_default(), DT_F32), *ehs_dev = tensor_clone(ehs, backend_default(), DT_F32);
    tensor *out = tensor_new(backend_default(), DT_F32, 4, want->shape);
    unet_inputs in = {.sample = in_dev, .timesteps = ts->data, .encoder_hidden_states = ehs_dev};
    unet_forward(&m, in, out, 0);
    tensor *got = tensor_clone(out, backend_cpu(), DT_F32);
    CHECK(tensor_numel(got) == tensor_numel(want));
    double e = max_rel_err(got->data, want->data, (size_t)tensor_numel(want), 1e-6);
    printf("# SD 1.5 UNet 1x4x%lldx%lld out.sample max rel err %.3g\n", (long long)want->shape[2], (long long)want->shape[3], e);
    CHECKF(e <= TOL, "out.sample max rel err %.3g > %g", e, TOL);
    tensor *all[] = {sample, ehs, ts, want, in_dev, ehs_dev, out, got};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    st_close(f);
    unet_free(&m);
}

int main(void) {
    const char *full = getenv("LCM_GOLDEN_FULL");
    if (!full || !*full) {
        SKIP(full_size_sd15_unet_forward, "LCM_GOLDEN_FULL not set (make golden-full)");
        TEST_EXIT();
    }
    snprintf(full_dir, sizeof full_dir, "%s", full);
    RUN(full_size_sd15_unet_forward);
    TEST_EXIT();
}
