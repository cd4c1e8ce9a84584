/* scheduler.c - what the three schedulers share: names, the config keys
 * beyond the noise schedule, dispatch, and sample clipping. */
#include "scheduler.h"

#include <math.h>
#include <string.h>

#include "json.h"
#include "util.h"

static const char *const kind_names[] = {"lcm", "ddim", "euler"};

int sampler_kind_parse(const char *name, sampler_kind *out) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, kind_names[k])) {
            *out = (sampler_kind)k;
            return 0;
        }
    return -1;
}

const char *sampler_kind_name(sampler_kind k) { return kind_names[k]; }

/* A key that must be absent, null, false or the given string: the options
 * of diffusers' schedulers that are not reproduced here. */
static int refuse_true(json_cfg *c, const char *key, const char *path, char *err) {
    if (cfg_bool(c, key, 0)) return seterr(err, "%s: \"%s\": true is not supported", path, key);
    return 0;
}

static int refuse_other(json_cfg *c, const char *key, const char *want, const char *path, char *err) {
    const char *v = cfg_str(c, key, want);
    if (strcmp(v, want)) return seterr(err, "%s: \"%s\": \"%s\" is not supported (only \"%s\")", path, key, v, want);
    return 0;
}

int scheduler_extra_read(scheduler_extra *x, const char *path, char *err) {
    json_cfg c;
    if (json_cfg_load(&c, path, err)) return -1;
    memset(x, 0, sizeof *x);
    x->has_clip_sample = cfg_has(&c, "clip_sample");
    x->clip_sample = cfg_bool(&c, "clip_sample", 0);
    x->clip_sample_range = (float)cfg_float(&c, "clip_sample_range", 1.0);
    x->timestep_scaling = (float)cfg_float(&c, "timestep_scaling", 10.0);
    x->original_inference_steps = (int)cfg_int(&c, "original_inference_steps", 50);
    int rc = -1;
    if (refuse_true(&c, "thresholding", path, err) || refuse_true(&c, "rescale_betas_zero_snr", path, err) ||
        refuse_true(&c, "use_karras_sigmas", path, err) || refuse_true(&c, "use_exponential_sigmas", path, err) ||
        refuse_true(&c, "use_beta_sigmas", path, err) ||
        refuse_other(&c, "interpolation_type", "linear", path, err) ||
        refuse_other(&c, "timestep_type", "discrete", path, err) ||
        refuse_other(&c, "final_sigmas_type", "zero", path, err))
        goto out;
    if (c.failed) {
        seterr(err, "%s", c.err);
        goto out;
    }
    if (x->original_inference_steps < 1) {
        seterr(err, "%s: original_inference_steps %d must be positive", path, x->original_inference_steps);
        goto out;
    }
    rc = 0;
out:
    json_cfg_free(&c);
    return rc;
}

int scheduler_init(scheduler *s, const noise_schedule *ns, const scheduler_extra *x, const scheduler_options *o,
                   char *err) {
    memset(s, 0, sizeof *s);
    s->kind = o->kind;
    s->ns = *ns;
    s->init_noise_sigma = 1.0f;
    s->timestep_scaling = x->timestep_scaling;
    s->clip_sample_range = x->clip_sample_range;
    /* The schedulers' own defaults when the config does not say: DDIMScheduler
     * clips, LCMScheduler does not, EulerDiscreteScheduler has no such option. */
    s->clip_sample = x->has_clip_sample ? x->clip_sample : o->kind == SAMPLER_DDIM;
    if (o->kind == SAMPLER_EULER) s->clip_sample = 0;
    s->final_alpha_cumprod = ns->set_alpha_to_one ? 1.0f : ns->alphas_cumprod[0];
    if (o->timesteps) {
        if (o->n_timesteps < 1 || o->n_timesteps > ns->T) return seterr(err, "%d custom timesteps (1..%d allowed)", o->n_timesteps, ns->T);
        for (int i = 0; i < o->n_timesteps; i++) {
            if (o->timesteps[i] < 0 || o->timesteps[i] >= ns->T) return seterr(err, "timestep %d outside [0, %d)", o->timesteps[i], ns->T);
            if (i && o->timesteps[i] >= o->timesteps[i - 1]) return seterr(err, "custom timesteps must be in descending order");
        }
    } else if (o->num_inference_steps < 1 || o->num_inference_steps > ns->T) {
        return seterr(err, "num_inference_steps %d out of range [1, %d]", o->num_inference_steps, ns->T);
    }
    int rc = o->kind == SAMPLER_LCM    ? lcm_set_timesteps(s, o, x->original_inference_steps, err)
             : o->kind == SAMPLER_DDIM ? ddim_set_timesteps(s, o, err)
                                       : euler_set_timesteps(s, o, err);
    if (rc) return -1;
    if (o->kind != SAMPLER_EULER)
        for (int i = 0; i < s->n; i++) s->timesteps_f[i] = (float)s->timesteps[i];
    return 0;
}

int scheduler_step_needs_noise(const scheduler *s, int i) { return s->kind == SAMPLER_LCM && i < s->n - 1; }

void scheduler_scale_input(const scheduler *s, int i, const float *x, float *out, size_t n) {
    if (s->kind != SAMPLER_EULER) {
        memcpy(out, x, n * sizeof *x);
        return;
    }
    float sigma = s->sigmas[i], d = sqrtf(sigma * sigma + 1.0f);
    for (size_t j = 0; j < n; j++) out[j] = x[j] / d;
}

void scheduler_step(const scheduler *s, int i, const float *model_out, float *x, float *denoised, const float *noise,
                    size_t n) {
    switch (s->kind) {
    case SAMPLER_LCM: lcm_step(s, i, model_out, x, denoised, noise, n); break;
    case SAMPLER_DDIM: ddim_step(s, i, model_out, x, denoised, n); break;
    case SAMPLER_EULER: euler_step(s, i, model_out, x, denoised, n); break;
    }
}

void scheduler_clip(const scheduler *s, float *x0, size_t n) {
    if (!s->clip_sample) return;
    float r = s->clip_sample_range;
    for (size_t j = 0; j < n; j++) x0[j] = x0[j] < -r ? -r : x0[j] > r ? r : x0[j];
}
