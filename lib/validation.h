/* validation.h - lcm-step's validation images, as the reference's
 * log_validation: 4-step LCM samples of the online and the target UNet for
 * a few prompts (guidance 7.5, i.e. the w-embedding of 6.5), with the
 * teacher's VAE, written as one PNG grid: a row per (model, prompt), a
 * column per image. */
#ifndef LCM_VALIDATION_H
#define LCM_VALIDATION_H

#include <stdint.h>

#include "sampler.h"

typedef struct validation {
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
    float *embeds; /* [n_prompts, L, D] */
    int n_prompts, L, D, per_prompt, h, w;
    uint64_t seed;
} validation;

/* The reference's four prompts, used when prompts_file is NULL. */
extern const char *const validation_default_prompts[4];

/* teacher: the pipeline folder (vae/, scheduler/, tokenizer/, text_encoder/).
 * unet: for the latent size (sample_size). 0, or -1 with err. */
int validation_init(validation *v, const char *teacher, const char *prompts_file, int per_prompt, const unet_model *unet,
                    uint64_t seed, const struct backend *be, char *err);
int validation_run(validation *v, unet_model *online, unet_model *target, const char *png, char *err);
void validation_free(validation *v);

#endif
