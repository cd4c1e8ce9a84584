/* lcd.h - one latent consistency distillation micro-step, exactly as
 * train_lcm_distill_sd_wds.py takes it (lcd-reference.md §3.2):
 *
 *   x_s   = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps            s = tau_i
 *   f     = c_skip(s) x_s + c_out(s) x0(student(x_s, s, w, c))
 *   x_t   = DDIM step to t = s - k of the teacher's LCM-paper CFG with w
 *   tgt   = c_skip(t) x_t + c_out(t) x0(target(x_t, t, w, c))   (no grad)
 *   loss  = mean l2 or pseudo-Huber (f, tgt)
 *
 * and its backward through the student only. The optimizer step, the EMA
 * and the loop live in the caller (lcm-step). The elementwise arithmetic runs
 * on the host in the reference's dtypes (x_t and the target in float64). */
#ifndef LCM_LCD_H
#define LCM_LCD_H

#include <stdint.h>

#include "ops.h"
#include "schedule.h"
#include "unet.h"

#define LCD_MAX_DDIM 1000

typedef struct lcd_config {
    int num_ddim_timesteps;   /* N, 50 */
    float w_min, w_max;       /* guidance range, [5, 15] */
    float timestep_scaling;   /* 10 */
    loss_kind loss;           /* l2 (LOSS_MSE) or huber */
    float huber_c;            /* 0.001 */
    float scaling_factor;     /* the VAE's, 0.18215 for SD */
    uint64_t seed;            /* draws not replayed come from streams keyed by (seed, record) */
    /* SDXL (a teacher with addition_embed_type text_time): every UNet also
     * gets the pooled prompt embedding and time_ids = [orig_h, orig_w,
     * crop_top, crop_left, res, res]; the unconditional prompt and pooled
     * embeddings are zeros (train_lcm_distill_sdxl_wds.py). */
    int sdxl;
    int use_fix_crop_and_size; /* time_ids (res, res, 0, 0, res, res) */
    int resolution;            /* res, 1024 */
} lcd_config;

/* One micro-batch, on the host, f32 unless said: everything a step draws is
 * here, either replayed from the records or drawn from the generator. */
typedef struct lcd_batch {
    int B, C, H, W, L, D; /* latent [C,H,W]; prompt embeddings [L,D] */
    float *x0;            /* [B,C,H,W] scaled latents */
    float *prompt;        /* [B,L,D] */
    float *noise;         /* [B,C,H,W] forward-process noise */
    int64_t *index;       /* [B] DDIM solver index i */
    float *w;             /* [B] guidance weight */
    int P;                /* SDXL: pooled width, else 0 */
    float *pooled;        /* SDXL: [B,P] pooled_prompt_embeds */
    float *time_ids;      /* SDXL: [B,6] */
} lcd_batch;

typedef struct lcd_work {
    float *xs, *out, *mp, *out2, *pred_x0, *pred_eps, *xprev_f, *tgt_f, *wemb;
    double *x_prev, *target;
    size_t xs_cap, out_cap, mp_cap, out2_cap, pred_x0_cap, pred_eps_cap, xprev_f_cap, tgt_f_cap, wemb_cap, x_prev_cap, target_cap;
    arena dev; /* device tensors of a step */
} lcd_work;

typedef struct lcd_trainer {
    lcd_config cfg;
    noise_schedule sched;
    int tau[LCD_MAX_DDIM];
    double abar_prev[LCD_MAX_DDIM];
    int k;                /* T / N */
    unet_model *teacher, *student, *target;
    float *uncond;        /* [L, D] host: the teacher's unconditional embedding (unused for SDXL: zeros) */
    int uncond_len, uncond_dim;
    lcd_work work;
} lcd_trainer;

/* 0, or -1 with err (e.g. N does not divide T). */
int lcd_init(lcd_trainer *t, const lcd_config *cfg, const noise_schedule *sched, char *err);
void lcd_free(lcd_trainer *t);

/* Intermediates of a micro-step, for tests and debugging (host copies; any
 * pointer may be NULL). Sizes: latents [B,C,H,W] unless said. */
typedef struct lcd_trace {
    float *noisy;      /* x_s */
    float *model_pred; /* f */
    double *x_prev;    /* x_t */
    double *target;
    float c_skip_start[64], c_out_start[64], c_skip[64], c_out[64];
} lcd_trace;

/* Runs the micro-step; adds dloss/dtheta * grad_scale into the student's
 * gradient buffer (grad_scale = 1 / gradient_accumulation_steps). Returns
 * the loss (NaN/Inf included: the caller decides). */
double lcd_micro_step(lcd_trainer *t, const lcd_batch *b, float grad_scale, lcd_trace *trace);

/* After the micro-steps of one optimizer step: the gradient norm (returned,
 * before clipping), clipping to max_grad_norm, AdamW at lr, zeroing the
 * gradients, then the EMA of the target towards the student. */
struct adamw_state;
/* LoRA (student->lora set: the teacher's base weights plus adapters): only
 * the adapters train, no guidance embedding unless the student has
 * time_cond_proj_dim, and the target is the student's own prediction under
 * no grad, run on the teacher with the adapters attached (t->target unused,
 * no EMA). */
double lcd_apply_update(lcd_trainer *t, struct adamw_state *opt, float lr, float max_grad_norm, float ema_decay);

/* What the optimizer updates: the student's parameters, or its adapters. */
params *lcd_trained_params(lcd_trainer *t);

/* Fills what a record does not replay from the generator stream of (seed,
 * record); x0 from `latent` or from `latent_moments` with posterior noise.
 * SDXL (cfg->sdxl): also `pooled_prompt_embeds` [P], and time_ids from
 * `original_size` (height, width) and `crop_coords` (top, left) unless
 * cfg->use_fix_crop_and_size. lcd_batch_alloc sizes P from the first record. */
struct frame;
int lcd_batch_fill(lcd_batch *b, int slot, const struct frame *rec, uint64_t record_index, const lcd_config *cfg, char *err);
int lcd_batch_alloc(lcd_batch *b, int B, const struct frame *first, char *err);
void lcd_batch_free(lcd_batch *b);

#endif
