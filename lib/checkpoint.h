/* checkpoint.h - lcm-step's training state on disk (interfaces.md §4):
 *
 *   OUTPUT_DIR/checkpoint-N/unet/          the student (diffusers layout)
 *                          /unet_target/   the EMA target
 *                          /optimizer.safetensors   AdamW's exp_avg, exp_avg_sq
 *                          /state.json     step, records consumed, options
 *
 * In LoRA mode (student->lora set) pytorch_lora_weights.safetensors (the
 * adapters, diffusers layout) takes the place of unet/ and unet_target/, and
 * the optimizer state is the adapters'.
 *
 * A checkpoint is built under a temporary name and renamed into place, so a
 * crash (kill -9 included) never leaves a half checkpoint where `latest`
 * would find it. */
#ifndef LCM_CHECKPOINT_H
#define LCM_CHECKPOINT_H

#include <stdint.h>

#include "optim.h"
#include "unet.h"

/* Writes checkpoint-<step>, first pruning the oldest checkpoints so that at
 * most total_limit remain afterwards (total_limit <= 0: keep all). */
int checkpoint_save(const char *output_dir, int64_t step, const unet_model *student, const unet_model *target,
                    const adamw_state *opt, const char *state_json, int total_limit, char *err);
/* The highest-numbered checkpoint-N in output_dir into path (size n); 0 if
 * there is none (1 when found). */
int checkpoint_latest(const char *output_dir, char *path, size_t n);
/* Loads a checkpoint into existing models and optimizer; *state_json gets
 * the malloc'ed state.json text. 0, or -1 with err. */
int checkpoint_load(const char *dir, unet_model *student, unet_model *target, adamw_state *opt, char **state_json, char *err);
/* Loads the parameters of a UNet folder into an existing model. */
int unet_load_params(unet_model *m, const char *dir, char *err);

#endif
