/* text_embed.h - prompts to text-encoder hidden states with a pipeline's
 * tokenizer/ and text_encoder/ (SD 1.x/2.x: the last hidden state), for the
 * programs that need a few embeddings outside a frame stream: lcm-step's
 * unconditional embedding and validation prompts. */
#ifndef LCM_TEXT_EMBED_H
#define LCM_TEXT_EMBED_H

struct backend;

/* n prompts -> [n, L, D] floats (malloc'ed) on the host; NULL with err. */
float *text_embed(const char *pipeline, const char *const *prompts, int n, int *L, int *D, char *err);

#endif
