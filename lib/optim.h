/* optim.h - what happens to the student's parameters after the backward
 * pass: gradient-norm clipping, AdamW, the learning-rate schedule, and the
 * EMA of the target network. Each is one pass over the flat buffers of a
 * params store (params.h). */
#ifndef LCM_OPTIM_H
#define LCM_OPTIM_H

#include <stdint.h>

#include "ops.h"
#include "params.h"

typedef enum lr_kind {
    LR_CONSTANT, LR_CONSTANT_WITH_WARMUP, LR_LINEAR, LR_COSINE, LR_COSINE_WITH_RESTARTS, LR_POLYNOMIAL
} lr_kind;

/* diffusers' get_scheduler schedules (optimization.py) with their defaults:
 * cosine 0.5 cycles, cosine_with_restarts 1 cycle, polynomial power 1 to
 * lr_end 1e-7. */
typedef struct lr_schedule {
    lr_kind kind;
    double base_lr;
    int64_t warmup_steps, total_steps;
} lr_schedule;

/* "constant", "linear", ...; 0, or -1 if unknown (piecewise_constant is not supported). */
int lr_kind_parse(const char *name, lr_kind *out);
extern const char *const lr_kind_names[];
/* The learning rate of optimizer step `step` (0-based), as LambdaLR gives it. */
double lr_at(const lr_schedule *s, int64_t step);

typedef struct adamw_state {
    tensor m, v; /* flat, like the parameters */
    adamw_params hp;
    int64_t step; /* optimizer steps taken */
} adamw_state;

void adamw_init(adamw_state *o, const params *ps, float beta1, float beta2, float eps, float weight_decay);
void adamw_free(adamw_state *o);
/* One step over every parameter of ps with its gradients. */
void adamw_step(adamw_state *o, params *ps, float lr);

/* The L2 norm of all gradients together. */
double grad_norm(const params *ps);
/* torch.nn.utils.clip_grad_norm_: grads *= min(1, max_norm / (norm + 1e-6)). */
void clip_grads(params *ps, double norm, double max_norm);
/* target = decay target + (1 - decay) src, parameter by parameter (same layout). */
void ema_update(params *target, const params *src, float decay);

/* Flat views of a store's buffers. */
tensor params_values(const params *ps);
tensor params_grads(const params *ps);
/* A malloc'ed host copy of a store's values (on CUDA they live on the device). */
float *params_values_to_host(const params *ps);

#endif
