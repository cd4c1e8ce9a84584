/* text_embed.c - see text_embed.h. */
#include "text_embed.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "prompt_encoder.h"
#include "util.h"

float *text_embed(const char *pipeline, int sdxl, const char *const *prompts, int n, int *L, int *D, float **pooled, int *P,
                  char *err) {
    prompt_encoder e;
    if (prompt_encoder_load(&e, pipeline, sdxl, backend_cpu(), err)) return NULL;
    float *out = xmalloc(sizeof(float) * (size_t)n * e.L * e.D), *pool = NULL;
    if (sdxl && pooled) pool = xmalloc(sizeof(float) * (size_t)n * e.P);
    for (int i = 0; i < n; i++) {
        float *pi = pool ? pool + (size_t)i * e.P : NULL;
        if (prompt_encoder_encode(&e, prompts[i], strlen(prompts[i]), out + (size_t)i * e.L * e.D, pi, err)) {
            free(out), free(pool);
            prompt_encoder_free(&e);
            return NULL;
        }
    }
    *L = e.L, *D = e.D;
    if (P) *P = e.P;
    if (pooled) *pooled = pool;
    prompt_encoder_free(&e);
    return out;
}
