/* lcd.c - see lcd.h. Formulas and their float orders follow the reference
 * script (lcd-reference.md §3.2); the step numbers below are that section's. */
#include "lcd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "optim.h"
#include "rng.h"
#include "unet_lora.h"
#include "util.h"

void lcd_free(lcd_trainer *t) {
    lcd_work *w = &t->work;
    free(w->xs), free(w->out), free(w->mp), free(w->out2), free(w->pred_x0), free(w->pred_eps);
    free(w->xprev_f), free(w->tgt_f), free(w->wemb), free(w->x_prev), free(w->target);
    if (w->dev.backend) arena_free(&w->dev);
    memset(w, 0, sizeof *w);
}

int lcd_init(lcd_trainer *t, const lcd_config *cfg, const noise_schedule *sched, char *err) {
    memset(&t->work, 0, sizeof t->work);
    t->cfg = *cfg;
    t->sched = *sched;
    int N = cfg->num_ddim_timesteps;
    if (N < 1 || N > LCD_MAX_DDIM || N > sched->T) return seterr(err, "--num_ddim_timesteps %d out of range [1, %d]", N, sched->T);
    ddim_solver_grid(sched, N, t->tau, t->abar_prev);
    t->k = sched->T / N;
    return 0;
}

/* ---- the batch ---- */

static const frame_value *tensor_key(const frame *rec, const char *key) {
    const frame_value *v = frame_get(rec, key);
    return v && v->kind == FV_TENSOR ? v : NULL;
}

int lcd_batch_alloc(lcd_batch *b, int B, const frame *first, char *err) {
    memset(b, 0, sizeof *b);
    const frame_value *lat = tensor_key(first, "latent"), *mom = tensor_key(first, "latent_moments");
    const frame_value *pe = tensor_key(first, "prompt_embeds");
    if (!lat && !mom) return seterr(err, "record %llu has neither `latent` nor `latent_moments`", (unsigned long long)first->record);
    if (!pe) return seterr(err, "record %llu has no `prompt_embeds`", (unsigned long long)first->record);
    const frame_tensor *l = lat ? &lat->v.tensor : &mom->v.tensor;
    if (l->ndim != 3 || pe->v.tensor.ndim != 2) return seterr(err, "record %llu: latents must be [C,h,w] and prompt_embeds [L,D]", (unsigned long long)first->record);
    b->B = B;
    b->C = (int)(lat ? l->shape[0] : l->shape[0] / 2), b->H = (int)l->shape[1], b->W = (int)l->shape[2];
    b->L = (int)pe->v.tensor.shape[0], b->D = (int)pe->v.tensor.shape[1];
    size_t lat_n = (size_t)B * b->C * b->H * b->W;
    b->x0 = xmalloc(lat_n * sizeof(float));
    b->noise = xmalloc(lat_n * sizeof(float));
    b->prompt = xmalloc((size_t)B * b->L * b->D * sizeof(float));
    b->index = xmalloc((size_t)B * sizeof(int64_t));
    b->w = xmalloc((size_t)B * sizeof(float));
    const frame_value *pooled = tensor_key(first, "pooled_prompt_embeds");
    if (pooled) {
        if (pooled->v.tensor.ndim != 1) return seterr(err, "record %llu: pooled_prompt_embeds must be [P]", (unsigned long long)first->record);
        b->P = (int)pooled->v.tensor.shape[0];
        b->pooled = xmalloc((size_t)B * b->P * sizeof(float));
        b->time_ids = xmalloc((size_t)B * 6 * sizeof(float));
    }
    return 0;
}

void lcd_batch_free(lcd_batch *b) {
    free(b->x0), free(b->noise), free(b->prompt), free(b->index), free(b->w), free(b->pooled), free(b->time_ids);
    memset(b, 0, sizeof *b);
}

/* A replayed tensor of exactly n elements into dst (converted to f32), or 1 if absent. */
static int replay(const frame *rec, const char *key, float *dst, int64_t n, char *err) {
    const frame_value *v = frame_get(rec, key);
    if (!v) return 1;
    tensor t = tensor_view(NULL, DT_F32, 1, &n, dst);
    if (v->kind != FV_TENSOR || frame_tensor_copy(v, &t, err))
        return seterr(err, "record %llu: `%s`: %s", (unsigned long long)rec->record, key, v->kind == FV_TENSOR ? err : "not a tensor");
    return 0;
}

static int replay_scalar(const frame *rec, const char *key, double *out, char *err) {
    const frame_value *v = frame_get(rec, key);
    if (!v) return 1;
    if (v->kind == FV_INT) { *out = (double)v->v.i; return 0; }
    if (v->kind == FV_FLOAT) { *out = v->v.f; return 0; }
    double d;
    tensor t = tensor_view(NULL, DT_F64, 1, (int64_t[]){1}, &d);
    if (v->kind != FV_TENSOR || shape_numel(v->v.tensor.ndim, v->v.tensor.shape) != 1 || frame_tensor_copy(v, &t, err))
        return seterr(err, "record %llu: `%s` must be a one-element tensor", (unsigned long long)rec->record, key);
    *out = d;
    return 0;
}

/* SDXL's added conditioning of one record: the pooled embedding and
 * time_ids = [orig_h, orig_w, crop_top, crop_left, res, res]. The reference's
 * loader fills original_size with the JSON's (width, height); records carry
 * (height, width), the order SDXL was trained with, and that is used. */
static int fill_added_cond(lcd_batch *b, int slot, const frame *rec, const lcd_config *cfg, char *err) {
    unsigned long long id = (unsigned long long)rec->record;
    if (!b->pooled) return seterr(err, "record %llu: an SDXL teacher needs `pooled_prompt_embeds` in every record", id);
    int rc = replay(rec, "pooled_prompt_embeds", b->pooled + (size_t)slot * b->P, b->P, err);
    if (rc) return rc < 0 ? -1 : seterr(err, "record %llu has no `pooled_prompt_embeds`", id);
    float *ids = b->time_ids + (size_t)slot * 6;
    float res = (float)cfg->resolution;
    if (cfg->use_fix_crop_and_size) {
        ids[0] = ids[1] = res, ids[2] = ids[3] = 0;
    } else {
        if ((rc = replay(rec, "original_size", ids, 2, err)) != 0)
            return rc < 0 ? -1 : seterr(err, "record %llu has no `original_size` (or use --use_fix_crop_and_size)", id);
        if ((rc = replay(rec, "crop_coords", ids + 2, 2, err)) != 0)
            return rc < 0 ? -1 : seterr(err, "record %llu has no `crop_coords` (or use --use_fix_crop_and_size)", id);
    }
    ids[4] = ids[5] = res;
    return 0;
}

int lcd_batch_fill(lcd_batch *b, int slot, const frame *rec, uint64_t record_index, const lcd_config *cfg, char *err) {
    int64_t lat = (int64_t)b->C * b->H * b->W, emb = (int64_t)b->L * b->D;
    float *x0 = b->x0 + slot * lat, *noise = b->noise + slot * lat;
    rng r;
    rng_seed(&r, cfg->seed, record_index);
    int rc;
    /* step 4: the latent, sampled afresh from the moments at every use */
    if ((rc = replay(rec, "latent", x0, lat, err)) < 0) return -1;
    if (rc == 1) {
        float *mom = xmalloc((size_t)(2 * lat) * sizeof(float));
        if ((rc = replay(rec, "latent_moments", mom, 2 * lat, err)) != 0) {
            free(mom);
            return rc < 0 ? -1 : seterr(err, "record %llu has neither `latent` nor `latent_moments`", (unsigned long long)rec->record);
        }
        if ((rc = replay(rec, "posterior_noise", x0, lat, err)) < 0) { free(mom); return -1; }
        if (rc == 1) rng_normal_fill(&r, x0, (size_t)lat);
        for (int64_t i = 0; i < lat; i++) {
            float logvar = fminf(fmaxf(mom[lat + i], -30.0f), 20.0f);
            float sample = mom[i] + expf(0.5f * logvar) * x0[i];
            x0[i] = sample * cfg->scaling_factor;
        }
        free(mom);
    }
    if ((rc = replay(rec, "prompt_embeds", b->prompt + slot * emb, emb, err)) != 0)
        return rc < 0 ? -1 : seterr(err, "record %llu has no `prompt_embeds`", (unsigned long long)rec->record);
    /* steps 5, 7, 8: the solver index, the noise, the guidance weight */
    double d;
    if ((rc = replay_scalar(rec, "timestep_index", &d, err)) < 0) return -1;
    b->index[slot] = rc == 1 ? (int64_t)rng_below(&r, (uint64_t)cfg->num_ddim_timesteps) : (int64_t)d;
    if (b->index[slot] < 0 || b->index[slot] >= cfg->num_ddim_timesteps)
        return seterr(err, "record %llu: timestep_index %lld outside [0, %d)", (unsigned long long)rec->record, (long long)b->index[slot], cfg->num_ddim_timesteps);
    if ((rc = replay(rec, "noise", noise, lat, err)) < 0) return -1;
    if (rc == 1) rng_normal_fill(&r, noise, (size_t)lat);
    if ((rc = replay_scalar(rec, "w", &d, err)) < 0) return -1;
    b->w[slot] = rc == 1 ? (cfg->w_max - cfg->w_min) * rng_uniform(&r) + cfg->w_min : (float)d;
    return cfg->sdxl ? fill_added_cond(b, slot, rec, cfg, err) : 0;
}

/* ---- the step ---- */

/* The parametrisations of diffusers' LCD helpers, per element, with alpha and
 * sigma the script's float32 sqrt(abar) and sqrt(1 - abar). */
static double predicted_x0(prediction_type p, double out, double x, float alpha, float sigma) {
    switch (p) {
    case PRED_EPSILON: return (x - (double)sigma * out) / alpha;
    case PRED_SAMPLE: return out;
    default: return (double)alpha * x - (double)sigma * out; /* v */
    }
}

static float predicted_x0_f(prediction_type p, float out, float x, float alpha, float sigma) {
    switch (p) {
    case PRED_EPSILON: return (x - sigma * out) / alpha;
    case PRED_SAMPLE: return out;
    default: return alpha * x - sigma * out;
    }
}

static float predicted_noise_f(prediction_type p, float out, float x, float alpha, float sigma) {
    switch (p) {
    case PRED_EPSILON: return out;
    case PRED_SAMPLE: return (x - alpha * out) / sigma;
    default: return alpha * out + sigma * x;
    }
}

/* d x0 / d out for the student's parametrisation (its gradient path). */
static float dx0_dout(prediction_type p, float alpha, float sigma) {
    switch (p) {
    case PRED_EPSILON: return -sigma / alpha;
    case PRED_SAMPLE: return 1.0f;
    default: return -sigma;
    }
}

/* The host buffers of a step, grown to the largest batch seen and reused:
 * a steady-state loop allocates nothing. */
static void *grow(void **p, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        free(*p);
        *p = xmalloc(bytes);
        *cap = bytes;
    }
    return *p;
}

#define WORK(t, name, bytes) grow((void **)&(t)->work.name, &(t)->work.name##_cap, (bytes))

static tensor dev(arena *a, int ndim, const int64_t *shape) { return arena_tensor(a, DT_F32, ndim, shape); }

double lcd_micro_step(lcd_trainer *t, const lcd_batch *b, float grad_scale, lcd_trace *trace) {
    const lcd_config *cfg = &t->cfg;
    const noise_schedule *ns = &t->sched;
    prediction_type pred = ns->prediction;
    const backend *be = t->student->ps.backend;
    int B = b->B, P = t->student->cfg.time_cond_proj_dim;
    int64_t per = (int64_t)b->C * b->H * b->W, n = B * per, emb = (int64_t)b->L * b->D;
    if (B > 64) die("lcd: micro-batch of %d (at most 64)", B);
    if (!cfg->sdxl && (t->uncond_len != b->L || t->uncond_dim != b->D)) die("lcd: unconditional embedding [%d, %d], prompts [%d, %d]", t->uncond_len, t->uncond_dim, b->L, b->D);
    if (cfg->sdxl && !b->pooled) die("lcd: an SDXL step needs pooled prompt embeddings");

    /* host buffers for the elementwise steps */
    float *xs = WORK(t, xs, (size_t)n * 4), *out = WORK(t, out, (size_t)n * 4), *mp = WORK(t, mp, (size_t)n * 4);
    float *out2 = WORK(t, out2, (size_t)(2 * n) * 4), *pred_x0 = WORK(t, pred_x0, (size_t)n * 4);
    float *pred_eps = WORK(t, pred_eps, (size_t)n * 4), *xprev_f = WORK(t, xprev_f, (size_t)n * 4);
    float *tgt_f = WORK(t, tgt_f, (size_t)n * 4), *wemb = WORK(t, wemb, (size_t)B * (P > 0 ? P : 1) * 4);
    double *x_prev = WORK(t, x_prev, (size_t)n * 8), *target = WORK(t, target, (size_t)n * 8);
    float s_f[64], t_f[64], a_s[64], sg_s[64], a_t[64], sg_t[64], cs_s[64], co_s[64], cs_t[64], co_t[64];

    /* steps 5-6: timesteps and boundary scalings */
    for (int i = 0; i < B; i++) {
        int s = t->tau[b->index[i]], tt = s - t->k < 0 ? 0 : s - t->k;
        s_f[i] = (float)s, t_f[i] = (float)tt;
        a_s[i] = sqrtf(ns->alphas_cumprod[s]), sg_s[i] = sqrtf(1.0f - ns->alphas_cumprod[s]);
        a_t[i] = sqrtf(ns->alphas_cumprod[tt]), sg_t[i] = sqrtf(1.0f - ns->alphas_cumprod[tt]);
        boundary_scalings(s, cfg->timestep_scaling, &cs_s[i], &co_s[i]);
        boundary_scalings(tt, cfg->timestep_scaling, &cs_t[i], &co_t[i]);
        if (P > 0) guidance_embedding(b->w[i], P, wemb + (size_t)i * P);
    }
    /* step 7: x_s = add_noise(x0, eps, s), in float32 as DDPMScheduler.add_noise */
    for (int i = 0; i < B; i++) {
        float sa = powf(ns->alphas_cumprod[(int)s_f[i]], 0.5f), so = powf(1.0f - ns->alphas_cumprod[(int)s_f[i]], 0.5f);
        for (int64_t j = 0; j < per; j++) xs[i * per + j] = sa * b->x0[i * per + j] + so * b->noise[i * per + j];
    }

    arena *scratch = &t->work.dev;
    if (!scratch->backend) arena_init(scratch, be, 0);
    arena_reset(scratch);
    int64_t lat4[4] = {B, b->C, b->H, b->W}, lat4x2[4] = {2 * B, b->C, b->H, b->W};
    int64_t pe3[3] = {B, b->L, b->D}, pe3x2[3] = {2 * B, b->L, b->D}, we2[2] = {B, P > 0 ? P : 1};
    tensor x_d = dev(scratch, 4, lat4), out_d = dev(scratch, 4, lat4), pe_d = dev(scratch, 3, pe3), we_d = dev(scratch, 2, we2);
    tensor_from_host(&x_d, xs);
    tensor_from_host(&pe_d, b->prompt);
    if (P > 0) tensor_from_host(&we_d, wemb);
    /* SDXL: the added conditioning, the same for student and target */
    tensor te_d = {0}, ti_d = {0};
    if (cfg->sdxl) {
        te_d = dev(scratch, 2, (int64_t[]){B, b->P}), ti_d = dev(scratch, 2, (int64_t[]){B, 6});
        tensor_from_host(&te_d, b->pooled);
        tensor_from_host(&ti_d, b->time_ids);
    }

    /* step 9: the student, kept for the backward */
    unet_inputs in = {.sample = &x_d, .timesteps = s_f, .encoder_hidden_states = &pe_d, .timestep_cond = P > 0 ? &we_d : NULL,
                      .text_embeds = cfg->sdxl ? &te_d : NULL, .time_ids = cfg->sdxl ? &ti_d : NULL};
    unet_forward(t->student, in, &out_d, 1);
    tensor_to_host(&out_d, out);
    for (int i = 0; i < B; i++)
        for (int64_t j = 0; j < per; j++) {
            int64_t e = i * per + j;
            float x0s = predicted_x0_f(pred, out[e], xs[e], a_s[i], sg_s[i]);
            mp[e] = cs_s[i] * xs[e] + co_s[i] * x0s;
        }
    if (trace && trace->model_pred) memcpy(trace->model_pred, mp, (size_t)n * 4);

    /* step 10: the teacher, conditional and unconditional in one pass */
    {
        tensor x2 = dev(scratch, 4, lat4x2), o2 = dev(scratch, 4, lat4x2), p2 = dev(scratch, 3, pe3x2);
        float s2[128];
        /* x_s twice; the prompts, then the unconditional rows below */
        tensor x2a = tensor_view(be, DT_F32, 4, lat4, x2.data), x2b = tensor_view(be, DT_F32, 4, lat4, (float *)x2.data + n);
        tensor_from_host(&x2a, xs);
        tensor_from_host(&x2b, xs);
        tensor p2a = tensor_view(be, DT_F32, 3, pe3, p2.data);
        tensor_from_host(&p2a, b->prompt);
        tensor p2b = tensor_view(be, DT_F32, 3, pe3, (float *)p2.data + B * emb);
        if (cfg->sdxl) op_fill(&p2b, 0.0f); /* SDXL: the unconditional prompt is zeros */
        for (int i = 0; i < B; i++) {
            tensor row = tensor_view(be, DT_F32, 2, (int64_t[]){b->L, b->D}, (float *)p2.data + (B + i) * emb);
            if (!cfg->sdxl) tensor_from_host(&row, t->uncond);
            s2[i] = s2[B + i] = s_f[i];
        }
        unet_inputs tin = {.sample = &x2, .timesteps = s2, .encoder_hidden_states = &p2};
        tensor te2, ti2;
        if (cfg->sdxl) {
            /* cond: the record's pooled embedding; uncond: zeros; time_ids for both */
            te2 = dev(scratch, 2, (int64_t[]){2 * B, b->P}), ti2 = dev(scratch, 2, (int64_t[]){2 * B, 6});
            tensor te2a = tensor_view(be, DT_F32, 2, (int64_t[]){B, b->P}, te2.data);
            tensor te2b = tensor_view(be, DT_F32, 2, (int64_t[]){B, b->P}, (float *)te2.data + (size_t)B * b->P);
            tensor ti2a = tensor_view(be, DT_F32, 2, (int64_t[]){B, 6}, ti2.data);
            tensor ti2b = tensor_view(be, DT_F32, 2, (int64_t[]){B, 6}, (float *)ti2.data + (size_t)B * 6);
            tensor_from_host(&te2a, b->pooled);
            op_fill(&te2b, 0.0f);
            tensor_from_host(&ti2a, b->time_ids);
            tensor_from_host(&ti2b, b->time_ids);
            tin.text_embeds = &te2, tin.time_ids = &ti2;
        }
        unet_forward(t->teacher, tin, &o2, 0);
        tensor_to_host(&o2, out2);
    }
    for (int i = 0; i < B; i++) {
        double ap = t->abar_prev[b->index[i]];
        double sq_ap = sqrt(ap), sq_1ap = sqrt(1.0 - ap);
        for (int64_t j = 0; j < per; j++) {
            int64_t e = i * per + j;
            float oc = out2[e], ou = out2[n + e], x = xs[e];
            float x0c = predicted_x0_f(pred, oc, x, a_s[i], sg_s[i]), x0u = predicted_x0_f(pred, ou, x, a_s[i], sg_s[i]);
            float ec = predicted_noise_f(pred, oc, x, a_s[i], sg_s[i]), eu = predicted_noise_f(pred, ou, x, a_s[i], sg_s[i]);
            pred_x0[e] = x0c + b->w[i] * (x0c - x0u);
            pred_eps[e] = ec + b->w[i] * (ec - eu);
            /* the DDIM solver's abar_prev is float64: so is x_t */
            x_prev[e] = sq_ap * (double)pred_x0[e] + sq_1ap * (double)pred_eps[e];
            xprev_f[e] = (float)x_prev[e];
        }
    }

    /* step 11: the target at t, on x_t rounded to float32 (into tensors of
     * its own: the student's saved activations still point at x_d) */
    tensor xt_d = dev(scratch, 4, lat4), ot_d = dev(scratch, 4, lat4);
    tensor_from_host(&xt_d, xprev_f);
    in.sample = &xt_d, in.timesteps = t_f;
    /* LoRA: no target network; the student's prediction without grad, run on
     * the teacher's copy of the base weights with the adapters attached */
    unet_model *target_net = t->student->lora ? t->teacher : t->target;
    if (t->student->lora) t->teacher->lora = t->student->lora;
    unet_forward(target_net, in, &ot_d, 0);
    if (t->student->lora) t->teacher->lora = NULL;
    tensor_to_host(&ot_d, out2);
    for (int i = 0; i < B; i++)
        for (int64_t j = 0; j < per; j++) {
            int64_t e = i * per + j;
            double x0m = predicted_x0(pred, out2[e], x_prev[e], a_t[i], sg_t[i]);
            target[e] = (double)cs_t[i] * x_prev[e] + (double)co_t[i] * x0m;
            tgt_f[e] = (float)target[e];
        }

    /* step 12: the loss, both operands float32 */
    tensor mp_d = dev(scratch, 4, lat4), tg_d = dev(scratch, 4, lat4), dp_d = dev(scratch, 4, lat4);
    tensor_from_host(&mp_d, mp);
    tensor_from_host(&tg_d, tgt_f);
    double loss = op_loss(&mp_d, &tg_d, cfg->loss, cfg->huber_c);

    /* step 13: backward through the student only */
    op_loss_backward(&dp_d, &mp_d, &tg_d, cfg->loss, cfg->huber_c, grad_scale);
    tensor_to_host(&dp_d, mp); /* reuse: d loss / d f */
    for (int i = 0; i < B; i++) {
        float k = co_s[i] * dx0_dout(pred, a_s[i], sg_s[i]);
        for (int64_t j = 0; j < per; j++) out[i * per + j] = mp[i * per + j] * k;
    }
    tensor_from_host(&dp_d, out);
    unet_backward(t->student, &dp_d, NULL, NULL);

    if (trace) {
        if (trace->noisy) memcpy(trace->noisy, xs, (size_t)n * 4);
        if (trace->x_prev) memcpy(trace->x_prev, x_prev, (size_t)n * 8);
        if (trace->target) memcpy(trace->target, target, (size_t)n * 8);
        for (int i = 0; i < B; i++) trace->c_skip_start[i] = cs_s[i], trace->c_out_start[i] = co_s[i], trace->c_skip[i] = cs_t[i], trace->c_out[i] = co_t[i];
    }
    return loss;
}

double lcd_apply_update(lcd_trainer *t, adamw_state *opt, float lr, float max_grad_norm, float ema_decay) {
    params *ps = lcd_trained_params(t);
    double norm = grad_norm(ps);
    clip_grads(ps, norm, max_grad_norm);
    adamw_step(opt, ps, lr);
    params_zero_grad(ps);
    /* LoRA has no EMA target: the target is the student with its adapters */
    if (!t->student->lora) ema_update(&t->target->ps, ps, ema_decay);
    return norm;
}

params *lcd_trained_params(lcd_trainer *t) { return t->student->lora ? &t->student->lora->ps : &t->student->ps; }
