/* text_embed.h - a few prompts to their embeddings in one call (the
 * pipeline's text encoders loaded, used and freed; prompt_encoder.h), for
 * lcm-step's unconditional embedding and validation prompts. */
#ifndef LCM_TEXT_EMBED_H
#define LCM_TEXT_EMBED_H

/* n prompts -> [n, L, D] floats (malloc'ed) on the host; for an SDXL
 * pipeline (sdxl 1) also *pooled = [n, P] (malloc'ed) when pooled is not
 * NULL. NULL with err. */
float *text_embed(const char *pipeline, int sdxl, const char *const *prompts, int n, int *L, int *D, float **pooled, int *P,
                  char *err);

#endif
