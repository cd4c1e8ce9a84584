/* validation.h - lcm-step's validation images, as the reference's
 * log_validation: 4-step LCM samples of the online and the target UNet (or,
 * in LoRA mode, of the one UNet with its adapters) for a few prompts, with
 * the teacher's VAE, written as one PNG grid: a row per (model, prompt), a
 * column per image. The guidance is each reference script's: 7.5 for SD
 * (the w-embedding of 6.5), 5.0 for SDXL (of 4.0), 1.0 for LoRA SD and 0.0
 * for LoRA SDXL (no guidance: those students have no w-embedding). */
#ifndef LCM_VALIDATION_H
#define LCM_VALIDATION_H

#include <stdint.h>

#include "sampler.h"

typedef struct validation {
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
    float *embeds; /* [n_prompts, L, D] */
    float *pooled; /* SDXL: [n_prompts, P], else NULL */
    int n_prompts, L, D, P, per_prompt, h, w;
    double guidance;
    uint64_t seed;
} validation;

/* The reference's four prompts, used when prompts_file is NULL. */
extern const char *const validation_default_prompts[4];

/* teacher: the pipeline folder (vae/, scheduler/, tokenizer/, text_encoder/,
 * and for SDXL tokenizer_2/, text_encoder_2/). unet: the student, for the
 * latent size (sample_size) and whether it is SDXL's. lora: LoRA mode. 0,
 * or -1 with err. */
int validation_init(validation *v, const char *teacher, const char *prompts_file, int per_prompt, const unet_model *unet,
                    int lora, uint64_t seed, const struct backend *be, char *err);
/* target: NULL in LoRA mode (one row per prompt). */
int validation_run(validation *v, unet_model *online, unet_model *target, const char *png, char *err);
void validation_free(validation *v);

#endif
