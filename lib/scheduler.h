/* scheduler.h - the inference schedulers of diffusers that lcm-sample offers:
 * LCMScheduler (lcm_scheduler.c), DDIMScheduler with eta 0 (ddim.c) and
 * EulerDiscreteScheduler (euler.c), in diffusers' float32 arithmetic and
 * order (lcd-reference.md §5).
 *
 * A scheduler is built once per run (set_timesteps) and then stepped on host
 * arrays, one image at a time, so that a step needs no model and each image
 * may draw its noise from its own generator. */
#ifndef LCM_SCHEDULER_H
#define LCM_SCHEDULER_H

#include <stddef.h>

#include "schedule.h"

typedef enum sampler_kind { SAMPLER_LCM, SAMPLER_DDIM, SAMPLER_EULER } sampler_kind;

/* "lcm", "ddim", "euler"; -1 if unknown. */
int sampler_kind_parse(const char *name, sampler_kind *out);
const char *sampler_kind_name(sampler_kind k);

/* What set_timesteps is asked for. */
typedef struct scheduler_options {
    sampler_kind kind;
    int num_inference_steps;      /* ignored when timesteps is given */
    const int *timesteps;         /* custom descending list (LCM, Euler), or NULL */
    int n_timesteps;
    int original_inference_steps; /* LCM: K; 0 = the config's, else 50 */
    float strength;               /* LCM: (0, 1], 1 = text-to-image */
} scheduler_options;

/* The scheduler_config.json keys beyond the noise schedule (schedule.h). */
typedef struct scheduler_extra {
    int clip_sample;          /* default: LCM 0, DDIM 1, Euler has none */
    float clip_sample_range;  /* 1.0 */
    float timestep_scaling;   /* LCM, 10.0 */
    int original_inference_steps; /* LCM config, 50 */
    int has_clip_sample;      /* the key was present */
} scheduler_extra;

/* Reads the keys above and refuses the options that are not reproduced
 * (thresholding, rescale_betas_zero_snr, Karras/exponential/beta sigmas,
 * Euler's non-linear interpolation). 0, or -1 with err. */
int scheduler_extra_read(scheduler_extra *x, const char *json_path, char *err);

typedef struct scheduler {
    sampler_kind kind;
    noise_schedule ns;
    int n;                             /* inference steps */
    int timesteps[SCHEDULE_MAX_T];     /* descending */
    float timesteps_f[SCHEDULE_MAX_T]; /* the same as the UNet gets them (Euler: may be fractional) */
    float sigmas[SCHEDULE_MAX_T + 1];  /* Euler: sigma per step, then 0 */
    float init_noise_sigma;            /* the initial latents are N(0,1) times this */
    float final_alpha_cumprod;         /* DDIM, LCM: abar "before" t = 0 */
    int step_ratio;                    /* DDIM: T / n */
    float timestep_scaling;            /* LCM */
    int clip_sample;
    float clip_sample_range;
} scheduler;

/* set_timesteps for o->kind; 0, or -1 with err. */
int scheduler_init(scheduler *s, const noise_schedule *ns, const scheduler_extra *x, const scheduler_options *o,
                   char *err);

/* Whether step i injects fresh noise (LCM, every step but the last); the
 * caller then passes noise of the latent's size to scheduler_step. */
int scheduler_step_needs_noise(const scheduler *s, int i);

/* The UNet input for step i: x, scaled as scale_model_input does (Euler
 * divides by sqrt(sigma^2 + 1); the others leave it). n floats. */
void scheduler_scale_input(const scheduler *s, int i, const float *x, float *out, size_t n);

/* Step i on one image of n floats: model_out is the (guided) UNet output,
 * x the current latents, updated in place to the next ones; denoised (may be
 * NULL) gets LCM's denoised / DDIM's and Euler's predicted x0. noise: see
 * scheduler_step_needs_noise, else NULL. */
void scheduler_step(const scheduler *s, int i, const float *model_out, float *x, float *denoised, const float *noise,
                    size_t n);

/* Per scheduler (lcm_scheduler.c, ddim.c, euler.c). */
int lcm_set_timesteps(scheduler *s, const scheduler_options *o, int config_original_steps, char *err);
void lcm_step(const scheduler *s, int i, const float *model_out, float *x, float *denoised, const float *noise,
              size_t n);
int ddim_set_timesteps(scheduler *s, const scheduler_options *o, char *err);
void ddim_step(const scheduler *s, int i, const float *model_out, float *x, float *pred_x0, size_t n);
int euler_set_timesteps(scheduler *s, const scheduler_options *o, char *err);
void euler_step(const scheduler *s, int i, const float *model_out, float *x, float *pred_x0, size_t n);

/* x0 clipped to +-range where the config asks for it (clip_sample). */
void scheduler_clip(const scheduler *s, float *x0, size_t n);

#endif
