/* bench_lcd - one LCD optimizer step for tests/bench/run-lcd (CPU) and
 * run-lcd-gpu (CUDA), which run the same step written with PyTorch +
 * diffusers (bench_lcd.py, the golden_lcd.py math) beside it. Prints one
 * JSON line.
 *
 *   bench_lcd TEACHER_UNET BATCH LATENT_SIDE REPS [BACKEND]
 *
 * The teacher is a UNet folder; the student is the teacher plus a fresh
 * 256-wide w-embedding input (time_cond_proj_dim), the target a copy of
 * the student, as lcm-step builds them. A step: the micro-step of lcd.h
 * (student forward + backward, two teacher forwards, target forward,
 * pseudo-Huber loss), gradient-norm clipping, AdamW, the target's EMA.
 * Inputs are random (latents, 77x768 prompt embeddings, noise, solver
 * indices, w). One untimed warm-up step; the best of REPS steps. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "bench_mem.h"
#include "lcd.h"
#include "optim.h"
#include "rng.h"
#include "util.h"

static float *normal(rng *r, size_t n) {
    float *x = xmalloc(sizeof(float) * n);
    rng_normal_fill(r, x, n);
    return x;
}

static void load_models(const char *dir, const backend *be, unet_model *teacher, unet_model *student,
                        unet_model *target) {
    char err[LCM_ERRLEN];
    if (unet_load(teacher, dir, be, 0, err)) die("%s", err);
    unet_config cfg = teacher->cfg;
    cfg.json = cJSON_Duplicate(teacher->cfg.json, 1);
    if (unet_config_set_int(&cfg, "time_cond_proj_dim", 256, err)) die("%s", err);
    if (unet_from_config(student, &cfg, be, 1, 0, err)) die("%s", err);
    unet_config_free(&cfg);
    unet_copy_params(student, teacher, NULL, 0);
    if (unet_from_config(target, &student->cfg, be, 0, 0, err)) die("%s", err);
    unet_copy_params(target, student, NULL, 0);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    if (argc < 5) die_usage("usage: bench_lcd TEACHER_UNET BATCH LATENT_SIDE REPS [cpu|cuda]");
    int B = atoi(argv[2]), S = atoi(argv[3]), reps = atoi(argv[4]);
    char err[LCM_ERRLEN];
    const backend *be = backend_by_name(argc > 5 ? argv[5] : "cpu", err);
    if (!be) die("%s", err);
    unet_model teacher, student, target;
    size_t device_before = be->memory_in_use ? be->memory_in_use() : 0;
    load_models(argv[1], be, &teacher, &student, &target);
    noise_schedule ns;
    if (schedule_make(&ns, 1000, 0.00085, 0.012, "scaled_linear", err)) die("%s", err);
    lcd_config cfg = {.num_ddim_timesteps = 50, .w_min = 5, .w_max = 15, .timestep_scaling = 10, .loss = LOSS_PSEUDO_HUBER,
                      .huber_c = 0.001f, .scaling_factor = 0.18215f, .seed = 0};
    lcd_trainer tr = {.teacher = &teacher, .student = &student, .target = &target};
    if (lcd_init(&tr, &cfg, &ns, err)) die("%s", err);
    int L = 77, D = teacher.cfg.cross_attention_dim[0];
    rng r;
    rng_seed(&r, 1, 0);
    tr.uncond = normal(&r, (size_t)L * D), tr.uncond_len = L, tr.uncond_dim = D;
    size_t lat = (size_t)B * 4 * S * S;
    lcd_batch b = {.B = B, .C = 4, .H = S, .W = S, .L = L, .D = D};
    b.x0 = normal(&r, lat), b.noise = normal(&r, lat), b.prompt = normal(&r, (size_t)B * L * D);
    b.index = xmalloc(sizeof(int64_t) * (size_t)B), b.w = xmalloc(sizeof(float) * (size_t)B);
    for (int i = 0; i < B; i++) b.index[i] = (int64_t)rng_below(&r, 50), b.w[i] = 5 + 10 * rng_uniform(&r);
    adamw_state opt;
    adamw_init(&opt, &student.ps, 0.9f, 0.999f, 1e-8f, 1e-2f);
    bench_peak_reset();
    double best = 1e30, loss = 0;
    for (int it = 0; it <= reps; it++) {
        double t0 = now_seconds();
        loss = lcd_micro_step(&tr, &b, 1.0f, NULL);
        lcd_apply_update(&tr, &opt, 1e-6f, 1.0f, 0.95f);
        be->synchronize();
        double t = now_seconds() - t0;
        if (it && t < best) best = t;
    }
    int64_t n = 0;
    for (int i = 0; i < student.ps.n; i++) n += tensor_numel(&student.ps.p[i]->value);
    /* On a GPU: the device memory the run added (models, optimizer, arenas, scratch, library handles). */
    double gpu_mb = be->memory_in_use ? (double)(be->memory_in_use() - device_before) / (1 << 20) : 0;
    printf("{\"s\": %.4f, \"peak_mb\": %.0f, \"gpu_mb\": %.0f, \"params\": %lld, \"loss\": %.6g}\n", best, bench_peak_mb(),
           gpu_mb, (long long)n, loss);
    adamw_free(&opt);
    lcd_free(&tr);
    free(tr.uncond), free(b.x0), free(b.noise), free(b.prompt), free(b.index), free(b.w);
    unet_free(&teacher), unet_free(&student), unet_free(&target);
    return 0;
}
