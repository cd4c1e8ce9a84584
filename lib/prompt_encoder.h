/* prompt_encoder.h - captions to the embeddings a UNet is conditioned on,
 * with a pipeline's own tokenizer(s) and text encoder(s), one caption at a
 * time: SD 1.x/2.x's one encoder (its last hidden state), or SDXL's two
 * (penultimate hidden states side by side, [L, 768 + 1280]; the pooled
 * embedding is the second encoder's projected output), as diffusers'
 * StableDiffusionPipeline / StableDiffusionXLPipeline.encode_prompt. For the
 * programs that encode a few prompts outside a frame stream (lcm-sample,
 * lcm-step's unconditional embedding and validation); text-encode batches
 * a stream itself. */
#ifndef LCM_PROMPT_ENCODER_H
#define LCM_PROMPT_ENCODER_H

#include <stddef.h>

#include "clip_text.h"
#include "clip_tokenizer.h"

struct backend;

typedef struct prompt_encoder {
    clip_tokenizer *tok[2];
    clip_text_model model[2];
    int n;    /* encoders: 1, or 2 for SDXL */
    int L, D; /* tokens, embedding width (the sum of both encoders' widths for SDXL) */
    int P;    /* SDXL: the pooled embedding's width, else 0 */
    const struct backend *be;
} prompt_encoder;

/* pipeline: a folder with tokenizer/ and text_encoder/ (and, when sdxl,
 * tokenizer_2/ and text_encoder_2/). 0, or -1 with err. */
int prompt_encoder_load(prompt_encoder *e, const char *pipeline, int sdxl, const struct backend *be, char *err);

/* text (len bytes) -> out [L, D] and, for SDXL, pooled [P] (host memory). 0, or -1 with err. */
int prompt_encoder_encode(prompt_encoder *e, const char *text, size_t len, float *out, float *pooled, char *err);

void prompt_encoder_free(prompt_encoder *e);

#endif
