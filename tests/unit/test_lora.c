/* LoRA on the UNet (unet_lora.h) and the LCM-LoRA step
 * (train_lcm_distill_lora_sd_wds.py) against the PEFT goldens of
 * tests/fixtures/lora: loss and gradient norm of each step and the adapters
 * after steps 1 and 3, from the golden's init_lora file; PEFT's fresh init;
 * the diffusers file layout, read and written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "frame.h"
#include "lcd.h"
#include "optim.h"
#include "safetensors.h"
#include "test.h"
#include "golden.h"
#include "golden_inputs.h"
#include "unet_lora.h"
#include "util.h"

static char top[900];

static void fixture(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/tests/fixtures/%s", top, rel); }

/* Device-side tensors for the forward pass, filled from host arrays. */
static tensor *device_copy(const backend *be, int ndim, const int64_t *shape, const float *host) {
    tensor *t = tensor_new(be, DT_F32, ndim, shape);
    tensor_from_host(t, host);
    return t;
}

TEST(lora_golden_steps) {
    char p[1024], err[LCM_ERRLEN];
    fixture(p, sizeof p, "lora/eps-huber/golden.safetensors");
    st_file *g = st_open(p, err);
    CHECKF(g, "%s", err);
    unet_model teacher, student;
    fixture(p, sizeof p, "lcd/teacher");
    CHECKF(unet_load(&teacher, p, backend_default(), 0, err) == 0, "%s", err);
    CHECKF(unet_load(&student, p, backend_default(), 0, err) == 0, "%s", err);
    unet_lora lora;
    CHECKF(unet_lora_create(&lora, &student, 4, 8.0f, 1, 0, err) == 0, "%s", err);
    fixture(p, sizeof p, "lora/init/" UNET_LORA_FILE);
    CHECKF(unet_lora_load(&lora, p, err) == 0, "%s", err);
    student.lora = &lora;
    float *init = params_values_to_host(&lora.ps);

    noise_schedule ns;
    fixture(p, sizeof p, "lcd/teacher/scheduler/scheduler_config.json");
    CHECKF(schedule_from_config(&ns, p, err) == 0, "%s", err);
    lcd_config cfg = {.num_ddim_timesteps = 50, .w_min = 5, .w_max = 15, .timestep_scaling = 10, .loss = LOSS_PSEUDO_HUBER,
                      .huber_c = 0.001f, .scaling_factor = 0.18215f};
    lcd_trainer tr = {.teacher = &teacher, .student = &student, .target = NULL};
    CHECKF(lcd_init(&tr, &cfg, &ns, err) == 0, "%s", err);
    CHECK(lcd_trained_params(&tr) == &lora.ps);
    st_file *lg;
    fixture(p, sizeof p, "lcd/eps-huber/golden.safetensors");
    CHECKF((lg = st_open(p, err)), "%s", err);
    tr.uncond = golden_f32(lg, "uncond_prompt_embeds", NULL), tr.uncond_len = 77, tr.uncond_dim = 32;
    st_close(lg);
    adamw_state opt;
    adamw_init(&opt, &lora.ps, 0.9f, 0.999f, 1e-8f, 1e-2f);

    float *want_loss = golden_f32(g, "loss", NULL), *want_norm = golden_f32(g, "grad_norm", NULL);
    fixture(p, sizeof p, "lcd/eps-huber/input.mpk");
    golden_inputs in;
    golden_inputs_open(&in, p);
    for (int step = 1; step <= 3; step++) {
        double l = lcd_micro_step(&tr, golden_inputs_next(&in, &cfg), 1.0f, NULL);
        CHECK(teacher.lora == NULL); /* the adapters were lent to the teacher for the target only */
        double norm = lcd_apply_update(&tr, &opt, 1e-3f, 1.0f, 0.95f);
        double el = fabs(l - want_loss[step - 1]) / fabs(want_loss[step - 1]), en = fabs(norm - want_norm[step - 1]) / want_norm[step - 1];
        printf("# lora step %d: loss rel err %.3g, grad-norm rel err %.3g\n", step, el, en);
        CHECKF(el <= 1e-4, "step %d: loss %.7g, reference %.7g", step, l, want_loss[step - 1]);
        CHECKF(en <= 1e-3, "step %d: grad norm %.7g, reference %.7g", step, norm, want_norm[step - 1]);
        if (step == 1 || step == 3) {
            char key[64];
            snprintf(key, sizeof key, "lora_delta.%d", step);
            const st_tensor *t = st_find(g, key);
            float *d = golden_f32(g, key, NULL);
            double ue = update_error(&lora.ps, init, d, (size_t)shape_numel(t->ndim, t->shape));
            printf("# lora step %d: adapter update rel err %.3g\n", step, ue);
            CHECKF(ue <= 3e-2, "step %d: adapter update error %.3g", step, ue);
            free(d);
        }
    }
    golden_inputs_close(&in);
    lcd_free(&tr);
    adamw_free(&opt);
    free(want_loss), free(want_norm), free(init), free(tr.uncond);
    unet_lora_free(&lora);
    unet_free(&teacher), unet_free(&student);
    st_close(g);
}

/* PEFT's init: lora_B = 0, so the adapted UNet equals the base; lora_A
 * within +-1/sqrt(fan_in) and not constant. */
TEST(lora_fresh_init_is_identity) {
    char p[1024], err[LCM_ERRLEN];
    unet_model m;
    fixture(p, sizeof p, "lcd/teacher");
    CHECKF(unet_load(&m, p, backend_default(), 0, err) == 0, "%s", err);
    unet_lora lora;
    CHECKF(unet_lora_create(&lora, &m, 3, 3.0f, 0, 7, err) == 0, "%s", err);
    CHECK(lora.scale == 1.0f);
    int convs = 0;
    float *values = params_values_to_host(&lora.ps);
    for (int i = 0; i < lora.n; i++) {
        const param *a = lora.mods[i].a, *b = lora.mods[i].b;
        int64_t n = tensor_numel(&a->value);
        const float *va = values + a->offset, *vb = values + b->offset;
        float bound = 1.0f / sqrtf((float)(n / a->value.shape[0])), lo = 1, hi = -1;
        for (int64_t j = 0; j < n; j++) lo = fminf(lo, va[j]), hi = fmaxf(hi, va[j]);
        CHECKF(lo >= -bound && hi <= bound && hi > lo, "%s: lora_A outside +-%g", a->name, bound);
        for (int64_t j = 0; j < tensor_numel(&b->value); j++) CHECK(vb[j] == 0.0f);
        convs += a->value.ndim == 4;
    }
    CHECK(convs > 0 && convs < lora.n);
    CHECK(params_find(&lora.ps, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"));
    CHECK(params_find(&lora.ps, "up_blocks.0.upsamplers.0.conv.lora_B.weight"));
    CHECK(!params_find(&lora.ps, "conv_in.lora_A.weight"));
    float x[2 * 4 * 6 * 8], pe[2 * 77 * 32], ts[2] = {999, 19}, o1[2 * 4 * 6 * 8], o2[2 * 4 * 6 * 8];
    for (size_t i = 0; i < sizeof x / 4; i++) x[i] = sinf((float)i);
    for (size_t i = 0; i < sizeof pe / 4; i++) pe[i] = cosf(0.3f * (float)i);
    const backend *be = m.ps.backend;
    const int64_t xs[4] = {2, 4, 6, 8}, ps[3] = {2, 77, 32};
    tensor *xt = device_copy(be, 4, xs, x), *pt = device_copy(be, 3, ps, pe), *out = tensor_new(be, DT_F32, 4, xs);
    unet_inputs in = {.sample = xt, .timesteps = ts, .encoder_hidden_states = pt};
    unet_forward(&m, in, out, 0);
    tensor_to_host(out, o1);
    m.lora = &lora;
    unet_forward(&m, in, out, 0);
    tensor_to_host(out, o2);
    CHECK(memcmp(o1, o2, sizeof o1) == 0);
    /* and with lora_B non-zero the output moves */
    for (size_t j = 0; j < lora.ps.total; j++) values[j] += 0.01f;
    tensor all = params_values(&lora.ps);
    tensor_from_host(&all, values);
    unet_forward(&m, in, out, 0);
    tensor_to_host(out, o2);
    CHECK(memcmp(o1, o2, sizeof o1) != 0);
    m.lora = NULL;
    tensor_free(xt), tensor_free(pt), tensor_free(out), free(values);
    unet_lora_free(&lora);
    unet_free(&m);
}

/* What we write is what diffusers wrote: the same keys and shapes; and it reads back. */
TEST(lora_file_layout) {
    char p[1024], err[LCM_ERRLEN], out[1200];
    unet_model m;
    fixture(p, sizeof p, "lcd/teacher");
    CHECKF(unet_load(&m, p, backend_default(), 0, err) == 0, "%s", err);
    unet_lora a, b;
    CHECKF(unet_lora_create(&a, &m, 4, 8.0f, 0, 1, err) == 0, "%s", err);
    CHECKF(unet_lora_create(&b, &m, 4, 8.0f, 0, 2, err) == 0, "%s", err);
    fixture(p, sizeof p, "lora/init/" UNET_LORA_FILE);
    CHECKF(unet_lora_load(&a, p, err) == 0, "%s", err);
    snprintf(out, sizeof out, "/tmp/test_lora.%d.safetensors", (int)getpid());
    CHECKF(unet_lora_save(&a, out, err) == 0, "%s", err);
    CHECKF(unet_lora_load(&b, out, err) == 0, "%s", err);
    float *va = params_values_to_host(&a.ps), *vb = params_values_to_host(&b.ps);
    CHECK(memcmp(va, vb, a.ps.total * 4) == 0);
    free(va), free(vb);
    st_file *ref = st_open(p, err), *mine = st_open(out, err);
    CHECK(ref && mine && st_count(ref) == st_count(mine) && st_count(mine) == a.ps.n);
    for (int i = 0; i < st_count(ref); i++) {
        const st_tensor *r = st_at(ref, i), *t = st_find(mine, r->name);
        CHECKF(t && t->ndim == r->ndim && !memcmp(t->shape, r->shape, sizeof(int64_t) * (size_t)r->ndim), "%s", r->name);
    }
    st_close(ref), st_close(mine);
    unlink(out);
    /* a rank that does not fit is refused with the tensor named */
    unet_lora c;
    CHECKF(unet_lora_create(&c, &m, 8, 8.0f, 0, 3, err) == 0, "%s", err);
    CHECK(unet_lora_load(&c, p, err) < 0 && strstr(err, "lora_A") && strstr(err, "rank 8"));
    unet_lora_free(&a), unet_lora_free(&b), unet_lora_free(&c);
    unet_free(&m);
}

int main(void) {
    const char *t = getenv("LCM_TOP");
    snprintf(top, sizeof top, "%s", t && *t ? t : ".");
    RUN(lora_golden_steps);
    RUN(lora_fresh_init_is_identity);
    RUN(lora_file_layout);
    TEST_EXIT();
}
