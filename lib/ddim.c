/* ddim.c - diffusers' DDIMScheduler with eta = 0 (deterministic): the
 * timestep spacing of the config ("leading" + steps_offset as SD 1.5 ships,
 * "trailing", "linspace"), and the step
 * x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps. */
#include <math.h>
#include <string.h>

#include "scheduler.h"
#include "util.h"

int ddim_set_timesteps(scheduler *s, const scheduler_options *o, char *err) {
    if (o->timesteps) return seterr(err, "the ddim scheduler takes no custom timesteps (as diffusers' DDIMScheduler)");
    int T = s->ns.T, n = o->num_inference_steps;
    const char *spacing = s->ns.timestep_spacing;
    if (!strcmp(spacing, "leading")) {
        int ratio = T / n;
        for (int i = 0; i < n; i++) s->timesteps[i] = (n - 1 - i) * ratio + s->ns.steps_offset;
    } else if (!strcmp(spacing, "trailing")) {
        /* np.round(np.arange(T, 0, -T / n)) - 1, whose length numpy takes as
         * ceil(T / (T / n)) in double */
        double ratio = (double)T / n;
        int len = (int)ceil((0.0 - T) / -ratio);
        if (len != n) return seterr(err, "trailing spacing gives %d timesteps for %d steps (as numpy does); pick another step count", len, n);
        for (int i = 0; i < n; i++) s->timesteps[i] = (int)nearbyint(T + i * -ratio) - 1;
    } else if (!strcmp(spacing, "linspace")) {
        double step = n > 1 ? (double)(T - 1) / (n - 1) : 0;
        for (int i = 0; i < n; i++) s->timesteps[n - 1 - i] = (int)nearbyint(i == n - 1 && n > 1 ? T - 1 : i * step);
    } else {
        return seterr(err, "timestep_spacing \"%s\" is not supported (leading, trailing, linspace)", spacing);
    }
    for (int i = 0; i < n; i++)
        if (s->timesteps[i] < 0 || s->timesteps[i] >= T) return seterr(err, "timestep %d outside [0, %d): steps_offset too large", s->timesteps[i], T);
    s->n = n;
    s->step_ratio = T / n;
    return 0;
}

void ddim_step(const scheduler *s, int i, const float *model_out, float *x, float *pred_x0, size_t n) {
    /* diffusers takes the previous timestep as t - T / n whatever the spacing */
    int t = s->timesteps[i], t_prev = t - s->step_ratio;
    float abar = s->ns.alphas_cumprod[t], abar_prev = t_prev >= 0 ? s->ns.alphas_cumprod[t_prev] : s->final_alpha_cumprod;
    float beta = 1.0f - abar;
    float a = sqrtf(abar), b = sqrtf(beta), a_prev = sqrtf(abar_prev), dir = sqrtf(1.0f - abar_prev - 0.0f);
    float x0buf[4096], epsbuf[4096];
    for (size_t base = 0; base < n; base += 4096) {
        size_t m = n - base < 4096 ? n - base : 4096;
        const float *e = model_out + base;
        float *xs = x + base;
        for (size_t j = 0; j < m; j++) {
            switch (s->ns.prediction) {
            case PRED_EPSILON: x0buf[j] = (xs[j] - b * e[j]) / a, epsbuf[j] = e[j]; break;
            case PRED_SAMPLE: x0buf[j] = e[j], epsbuf[j] = (xs[j] - a * e[j]) / b; break;
            case PRED_V: x0buf[j] = a * xs[j] - b * e[j], epsbuf[j] = a * e[j] + b * xs[j]; break;
            }
        }
        /* clipping changes x0 only; eps keeps the value computed before, as in diffusers */
        scheduler_clip(s, x0buf, m);
        for (size_t j = 0; j < m; j++) {
            if (pred_x0) pred_x0[base + j] = x0buf[j];
            xs[j] = a_prev * x0buf[j] + dir * epsbuf[j];
        }
    }
}
