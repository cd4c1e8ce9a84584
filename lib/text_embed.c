/* text_embed.c - see text_embed.h. */
#include "text_embed.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "clip_text.h"
#include "clip_tokenizer.h"
#include "util.h"

float *text_embed(const char *pipeline, const char *const *prompts, int n, int *L, int *D, char *err) {
    char *tok_dir = path_join(pipeline, "tokenizer");
    clip_tokenizer *tok = clip_tokenizer_load(tok_dir, err);
    free(tok_dir);
    if (!tok) return NULL;
    clip_text_model te;
    if (clip_text_load(&te, pipeline, "text_encoder", backend_cpu(), err)) {
        clip_tokenizer_free(tok);
        return NULL;
    }
    int len = clip_tokenizer_max_length(tok), dim = te.cfg.hidden_size;
    int32_t *ids32 = xmalloc(sizeof(int32_t) * (size_t)len);
    int64_t *ids = xmalloc(sizeof(int64_t) * (size_t)(n * len));
    float *out = NULL;
    for (int i = 0; i < n; i++) {
        if (clip_encode(tok, prompts[i], strlen(prompts[i]), ids32, err) < 0) goto done;
        for (int j = 0; j < len; j++) ids[i * len + j] = ids32[j];
    }
    out = xmalloc(sizeof(float) * (size_t)(n * len * dim));
    tensor hidden = tensor_view(NULL, DT_F32, 3, (int64_t[]){n, len, dim}, out);
    clip_text_forward(&te, ids, n, len, (clip_text_out){.last_hidden_state = &hidden});
    *L = len, *D = dim;
done:
    free(ids32), free(ids);
    clip_text_free(&te);
    clip_tokenizer_free(tok);
    return out;
}
