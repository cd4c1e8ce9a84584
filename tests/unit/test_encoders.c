/* The frozen encoders against the reference harness's goldens
 * (tests/fixtures/golden, made by scripts/reference/golden_encoders.py with
 * transformers / diffusers on the same weights and inputs). */
#include <stdlib.h>

#include "backend.h"
#include "clip_text.h"
#include "safetensors.h"
#include "test.h"
#include "golden.h"
#include "util.h"
#include "vae.h"

#define TOL 1e-4 /* max relative error, float32 */

static const char *top(void) {
    const char *t = getenv("LCM_TOP");
    return t && *t ? t : ".";
}

/* A golden file: "name" under tests/fixtures/golden, or "/abs/path" as is. */
static st_file *golden(const char *name) {
    char path[1024], err[LCM_ERRLEN];
    if (name[0] == '/') snprintf(path, sizeof path, "%s", name);
    else snprintf(path, sizeof path, "%s/tests/fixtures/golden/%s.safetensors", top(), name);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    return f;
}

/* A golden tensor on the host: token ids stay I64, the rest becomes f32. */
static tensor *golden_value(st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    return golden_tensor_as(f, name, t && t->dtype == DT_I64 ? DT_I64 : DT_F32);
}

static double rel_err(const tensor *got, const tensor *want) {
    CHECK(tensor_numel(got) == tensor_numel(want));
    return max_rel_err(got->data, want->data, (size_t)tensor_numel(want), 1e-6);
}

#define EXPECT_CLOSE(label, got, want)                                                  \
    do {                                                                                \
        double e_ = rel_err(got, want);                                                 \
        printf("# %s max rel err %.3g\n", label, e_);                                   \
        CHECKF(e_ <= TOL, "%s: max rel err %.3g > %g", label, e_, TOL);                 \
    } while (0)

static void check_text(const char *model_path, const char *component, const char *gname) {
    char err[LCM_ERRLEN], path[1024];
    if (model_path[0] == '/') snprintf(path, sizeof path, "%s", model_path);
    else snprintf(path, sizeof path, "%s/%s", top(), model_path);
    clip_text_model m;
    CHECKF(clip_text_load(&m, path, component, backend_default(), err) == 0, "%s", err);
    st_file *g = golden(gname);
    tensor *ids = golden_value(g, "input_ids");
    int B = (int)ids->shape[0], L = (int)ids->shape[1], D = m.cfg.hidden_size;
    tensor *last = tensor_new(backend_default(), DT_F32, 3, (int64_t[]){B, L, D});
    tensor *pen = tensor_new(backend_default(), DT_F32, 3, (int64_t[]){B, L, D});
    tensor *pooled = tensor_new(backend_default(), DT_F32, 2, (int64_t[]){B, D});
    tensor *proj = m.cfg.projection_dim ? tensor_new(backend_default(), DT_F32, 2, (int64_t[]){B, m.cfg.projection_dim}) : NULL;
    clip_text_out out = {.last_hidden_state = last, .penultimate = pen, .pooled = pooled, .text_embeds = proj};
    clip_text_forward(&m, ids->data, B, L, out);
    tensor *want = golden_value(g, "last_hidden_state");
    tensor *h_last = tensor_clone(last, backend_cpu(), DT_F32);
    EXPECT_CLOSE("last_hidden_state", h_last, want);
    if (st_find(g, "penultimate_hidden_state")) {
        tensor *wp = golden_value(g, "penultimate_hidden_state"), *hp = tensor_clone(pen, backend_cpu(), DT_F32);
        EXPECT_CLOSE("penultimate", hp, wp);
        tensor_free(wp), tensor_free(hp);
    }
    if (st_find(g, "pooler_output")) {
        tensor *wp = golden_value(g, "pooler_output"), *hp = tensor_clone(pooled, backend_cpu(), DT_F32);
        EXPECT_CLOSE("pooler_output", hp, wp);
        tensor_free(wp), tensor_free(hp);
    }
    if (proj) {
        tensor *wp = golden_value(g, "text_embeds"), *hp = tensor_clone(proj, backend_cpu(), DT_F32);
        EXPECT_CLOSE("text_embeds", hp, wp);
        tensor_free(wp), tensor_free(hp);
    }
    tensor_free(want), tensor_free(h_last), tensor_free(ids), tensor_free(last), tensor_free(pen), tensor_free(pooled), tensor_free(proj);
    st_close(g);
    clip_text_free(&m);
}

TEST(text_encoder_tiny) { check_text("tests/fixtures/tiny-sd", "text_encoder", "text-tiny"); }
TEST(text_encoder_b_with_projection) { check_text("tests/fixtures/models/text-b", NULL, "text-b"); }

static void check_vae(const char *model_path, const char *gname) {
    char err[LCM_ERRLEN], path[1024];
    if (model_path[0] == '/') snprintf(path, sizeof path, "%s", model_path);
    else snprintf(path, sizeof path, "%s/%s", top(), model_path);
    vae_model m;
    CHECKF(vae_load(&m, path, backend_default(), err) == 0, "%s", err);
    st_file *g = golden(gname);
    tensor *img = golden_value(g, "image"), *want_m = golden_value(g, "moments");
    tensor *x = tensor_clone(img, backend_default(), DT_F32);
    tensor *mom = tensor_new(backend_default(), DT_F32, want_m->ndim, want_m->shape);
    vae_encode(&m, x, mom);
    tensor *hm = tensor_clone(mom, backend_cpu(), DT_F32);
    EXPECT_CLOSE("moments", hm, want_m);
    tensor *z = golden_value(g, "latent_in"), *want_d = golden_value(g, "decoded");
    tensor *zd = tensor_clone(z, backend_default(), DT_F32);
    tensor *dec = tensor_new(backend_default(), DT_F32, want_d->ndim, want_d->shape);
    vae_decode(&m, zd, dec);
    tensor *hd = tensor_clone(dec, backend_cpu(), DT_F32);
    EXPECT_CLOSE("decoded", hd, want_d);
    tensor_free(img), tensor_free(want_m), tensor_free(x), tensor_free(mom), tensor_free(hm);
    tensor_free(z), tensor_free(want_d), tensor_free(zd), tensor_free(dec), tensor_free(hd);
    st_close(g);
    vae_free(&m);
}

TEST(vae_tiny) { check_vae("tests/fixtures/tiny-sd", "vae-tiny"); }
TEST(vae_b_three_blocks) { check_vae("tests/fixtures/models/vae-b", "vae-b"); }

/* `make golden-full`: CLIP-L and the SD 1.5 VAE at their real sizes (random
 * weights), written by scripts/reference/golden_full.py into
 * $LCM_GOLDEN_FULL; skipped when that is not set. */
static char full_dir[900];

TEST(full_size_clip_l) {
    char model[1024], g[1024];
    snprintf(model, sizeof model, "%s/text_encoder", full_dir);
    snprintf(g, sizeof g, "%s/golden/text.safetensors", full_dir);
    check_text(model, NULL, g);
}

TEST(full_size_sd_vae) {
    char model[1024], g[1024];
    snprintf(model, sizeof model, "%s/vae", full_dir);
    snprintf(g, sizeof g, "%s/golden/vae.safetensors", full_dir);
    check_vae(model, g);
}

int main(void) {
    const char *full = getenv("LCM_GOLDEN_FULL");
    if (full && *full) {
        snprintf(full_dir, sizeof full_dir, "%s", full);
        RUN(full_size_clip_l);
        RUN(full_size_sd_vae);
        TEST_EXIT();
    }
    RUN(text_encoder_tiny);
    RUN(text_encoder_b_with_projection);
    RUN(vae_tiny);
    RUN(vae_b_three_blocks);
    TEST_EXIT();
}
