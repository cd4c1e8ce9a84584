/* euler.c - diffusers' EulerDiscreteScheduler (no churn, linear sigma
 * interpolation, final sigma 0): sigma(t) = sqrt((1 - abar) / abar), the
 * UNet sees x / sqrt(sigma^2 + 1), and one Euler step of the probability-flow
 * ODE follows x0 = x - sigma eps to the next sigma. */
#include <math.h>
#include <string.h>

#include "scheduler.h"
#include "util.h"

/* The training sigmas, float32 as torch computes them. */
static float train_sigma(const noise_schedule *ns, int t) {
    float ac = ns->alphas_cumprod[t];
    return sqrtf((1.0f - ac) / ac);
}

/* np.interp(t, arange(T), sigmas) in double, then float32. */
static float interp_sigma(const noise_schedule *ns, double t) {
    int lo = (int)floor(t);
    if (lo >= ns->T - 1) return train_sigma(ns, ns->T - 1);
    if (lo < 0) return train_sigma(ns, 0);
    double s0 = train_sigma(ns, lo), s1 = train_sigma(ns, lo + 1);
    return (float)((s1 - s0) * (t - lo) + s0);
}

/* The timesteps as float32 values (linspace spacing gives fractions). */
static int euler_timesteps(const scheduler *s, const scheduler_options *o, float *ts, int *n_out, char *err) {
    int T = s->ns.T, n = o->num_inference_steps;
    const char *spacing = s->ns.timestep_spacing;
    if (o->timesteps) {
        n = o->n_timesteps;
        for (int i = 0; i < n; i++) ts[i] = (float)o->timesteps[i];
    } else if (!strcmp(spacing, "leading")) {
        int ratio = T / n;
        for (int i = 0; i < n; i++) ts[i] = (float)((n - 1 - i) * ratio) + (float)s->ns.steps_offset;
    } else if (!strcmp(spacing, "trailing")) {
        double ratio = (double)T / n;
        int len = (int)ceil((0.0 - T) / -ratio);
        if (len != n) return seterr(err, "trailing spacing gives %d timesteps for %d steps (as numpy does); pick another step count", len, n);
        for (int i = 0; i < n; i++) ts[i] = (float)nearbyint(T + i * -ratio) - 1.0f;
    } else if (!strcmp(spacing, "linspace")) {
        double step = n > 1 ? (double)(T - 1) / (n - 1) : 0;
        for (int i = 0; i < n; i++) ts[n - 1 - i] = (float)(i == n - 1 && n > 1 ? T - 1 : i * step);
    } else {
        return seterr(err, "timestep_spacing \"%s\" is not supported (leading, trailing, linspace)", spacing);
    }
    *n_out = n;
    return 0;
}

int euler_set_timesteps(scheduler *s, const scheduler_options *o, char *err) {
    static float ts[SCHEDULE_MAX_T];
    int n = 0;
    if (euler_timesteps(s, o, ts, &n, err)) return -1;
    float max_sigma = 0;
    for (int i = 0; i < n; i++) {
        if (!(ts[i] >= 0 && ts[i] <= (float)(s->ns.T - 1))) return seterr(err, "timestep %g outside [0, %d]", ts[i], s->ns.T - 1);
        s->sigmas[i] = interp_sigma(&s->ns, ts[i]);
        s->timesteps[i] = (int)ts[i];
        s->timesteps_f[i] = ts[i];
        if (s->sigmas[i] > max_sigma) max_sigma = s->sigmas[i];
    }
    s->sigmas[n] = 0.0f;
    s->n = n;
    /* init_noise_sigma: the largest sigma, or sqrt(sigma^2 + 1) for "leading" */
    const char *sp = s->ns.timestep_spacing;
    s->init_noise_sigma = !strcmp(sp, "linspace") || !strcmp(sp, "trailing") ? max_sigma : sqrtf(max_sigma * max_sigma + 1.0f);
    return 0;
}

void euler_step(const scheduler *s, int i, const float *model_out, float *x, float *pred_x0, size_t n) {
    float sigma = s->sigmas[i], dt = s->sigmas[i + 1] - sigma;
    float vscale = -sigma / sqrtf(sigma * sigma + 1.0f), vdiv = sigma * sigma + 1.0f;
    for (size_t j = 0; j < n; j++) {
        float x0;
        switch (s->ns.prediction) {
        case PRED_EPSILON: x0 = x[j] - sigma * model_out[j]; break;
        case PRED_V: x0 = model_out[j] * vscale + x[j] / vdiv; break;
        default: x0 = model_out[j]; break;
        }
        if (pred_x0) pred_x0[j] = x0;
        float derivative = (x[j] - x0) / sigma;
        x[j] = x[j] + derivative * dt;
    }
}
