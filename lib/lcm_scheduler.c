/* lcm_scheduler.c - diffusers' LCMScheduler (lcd-reference.md §5): the
 * timesteps skip along the DDIM grid of original_inference_steps, and each
 * step maps the prediction to the consistency function's output
 * denoised = c_out x0 + c_skip x, then (but after the last step) re-noises
 * it to the next timestep with fresh noise. */
#include <math.h>

#include "scheduler.h"
#include "util.h"

/* The timesteps of set_timesteps(n) as numpy computes them: the grid
 * [1 .. int(K strength)] x (T / K) - 1 reversed, at the indices
 * floor(linspace(0, len, n, endpoint=False)) = floor(i x (len / n)). */
static int lcm_grid(scheduler *s, int K, int n, float strength, char *err) {
    int T = s->ns.T, k = T / K;
    int len = (int)((double)K * strength);
    if (n > K) return seterr(err, "num_inference_steps %d cannot exceed original_inference_steps %d", n, K);
    if (len / n < 1)
        return seterr(err, "strength %g leaves %d of the %d original steps for %d inference steps", strength, len, K, n);
    double step = (double)len / n;
    for (int i = 0; i < n; i++) {
        int idx = (int)floor((double)i * step);
        s->timesteps[i] = (len - idx) * k - 1;
    }
    s->n = n;
    return 0;
}

/* A custom list, checked by scheduler_init; strength trims its head as
 * diffusers does (img2img). Warns where it leaves the training grid. */
static int lcm_custom(scheduler *s, const scheduler_options *o, int K) {
    int T = s->ns.T, k = T / K, n = o->n_timesteps;
    int off_grid = 0;
    for (int i = 0; i < n; i++) off_grid |= (o->timesteps[i] + 1) % k != 0 || (o->timesteps[i] + 1) / k > K;
    if (off_grid) warn("custom timesteps are not all on the %d-step training grid of the LCM", K);
    if (o->timesteps[0] != T - 1) warn("custom timesteps start at %d, not %d: the first step is not from pure noise", o->timesteps[0], T - 1);
    if (n > K) warn("%d custom timesteps are more than original_inference_steps %d", n, K);
    int init = (int)((double)n * o->strength);
    if (init > n) init = n;
    int start = n - init > 0 ? n - init : 0;
    s->n = n - start;
    for (int i = 0; i < s->n; i++) s->timesteps[i] = o->timesteps[start + i];
    return s->n > 0 ? 0 : -1;
}

int lcm_set_timesteps(scheduler *s, const scheduler_options *o, int config_original_steps, char *err) {
    int K = o->original_inference_steps > 0 ? o->original_inference_steps : config_original_steps;
    if (K < 1 || K > s->ns.T) return seterr(err, "original_inference_steps %d out of range [1, %d]", K, s->ns.T);
    if (!(o->strength > 0 && o->strength <= 1)) return seterr(err, "strength %g outside (0, 1]", o->strength);
    if (o->timesteps) {
        if (lcm_custom(s, o, K)) return seterr(err, "strength %g leaves none of the %d custom timesteps", o->strength, o->n_timesteps);
        return 0;
    }
    return lcm_grid(s, K, o->num_inference_steps, o->strength, err);
}

void lcm_step(const scheduler *s, int i, const float *model_out, float *x, float *denoised, const float *noise,
              size_t n) {
    int t = s->timesteps[i], last = i == s->n - 1;
    int t_prev = last ? t : s->timesteps[i + 1];
    float abar = s->ns.alphas_cumprod[t], abar_prev = t_prev >= 0 ? s->ns.alphas_cumprod[t_prev] : s->final_alpha_cumprod;
    float a = sqrtf(abar), b = sqrtf(1.0f - abar);
    float c_skip, c_out;
    boundary_scalings(t, s->timestep_scaling, &c_skip, &c_out);
    float a_prev = sqrtf(abar_prev), b_prev = sqrtf(1.0f - abar_prev);
    float x0buf[4096];
    for (size_t base = 0; base < n; base += 4096) {
        size_t m = n - base < 4096 ? n - base : 4096;
        const float *e = model_out + base;
        float *xs = x + base;
        for (size_t j = 0; j < m; j++) {
            switch (s->ns.prediction) {
            case PRED_EPSILON: x0buf[j] = (xs[j] - b * e[j]) / a; break;
            case PRED_SAMPLE: x0buf[j] = e[j]; break;
            case PRED_V: x0buf[j] = a * xs[j] - b * e[j]; break;
            }
        }
        scheduler_clip(s, x0buf, m);
        for (size_t j = 0; j < m; j++) {
            float d = c_out * x0buf[j] + c_skip * xs[j];
            if (denoised) denoised[base + j] = d;
            xs[j] = last ? d : a_prev * d + b_prev * noise[base + j];
        }
    }
}
