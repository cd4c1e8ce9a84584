/* schedule.h - the noise schedule and the LCD/LCM timestep arithmetic.
 *
 * Everything here follows diffusers' float32 arithmetic in the order it uses
 * (lcd-reference.md §3.1, §3.2 and §5), because these numbers feed every
 * golden test: betas, alphas_cumprod, the DDIM solver grid, the boundary
 * scalings c_skip/c_out, the guidance-scale embedding and LCM's timesteps. */
#ifndef LCM_SCHEDULE_H
#define LCM_SCHEDULE_H

#include <stddef.h>

#define SCHEDULE_MAX_T 4096

typedef enum prediction_type { PRED_EPSILON, PRED_V, PRED_SAMPLE } prediction_type;

typedef struct noise_schedule {
    int T;                     /* num_train_timesteps */
    float betas[SCHEDULE_MAX_T];
    float alphas_cumprod[SCHEDULE_MAX_T];
    prediction_type prediction;
    int steps_offset;          /* for DDIM / Euler sampling */
    int set_alpha_to_one;
    char timestep_spacing[16]; /* leading, trailing, linspace */
} noise_schedule;

/* beta_schedule "linear", "scaled_linear" or "squaredcos_cap_v2"; 0 or -1 with err. */
int schedule_make(noise_schedule *s, int T, double beta_start, double beta_end, const char *beta_schedule, char *err);
/* From a diffusers scheduler_config.json (any scheduler class). */
int schedule_from_config(noise_schedule *s, const char *json_path, char *err);
int prediction_parse(const char *name, prediction_type *out);

/* The DDIM solver grid of LCD: tau[i] = (i + 1) * (T / N) - 1, i = 0..N-1, and
 * alpha_cumprod_prev[i] = abar(tau[i-1]) (abar(0) for i = 0), in double as the
 * reference holds it. Returns 0, or -1 if N does not divide into T. */
int ddim_solver_grid(const noise_schedule *s, int N, int *tau, double *abar_prev);

/* c_skip(t) = sd^2 / ((t*scale)^2 + sd^2), c_out(t) = t*scale / sqrt(...), sd = 0.5, in float32. */
void boundary_scalings(int t, float timestep_scaling, float *c_skip, float *c_out);

/* diffusers' guidance-scale embedding of w (dimension d) as LCD computes it. */
void guidance_embedding(float w, int d, float *out);

/* LCMScheduler.set_timesteps: n timesteps (descending) into out (capacity
 * n); original_steps K, strength in (0,1]. Returns n, or -1 with err. */
int lcm_timesteps(int T, int K, int n, float strength, int *out, char *err);

#endif
