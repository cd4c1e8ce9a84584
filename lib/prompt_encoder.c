/* prompt_encoder.c - see prompt_encoder.h. */
#include "prompt_encoder.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "util.h"

int prompt_encoder_load(prompt_encoder *e, const char *pipeline, int sdxl, const struct backend *be, char *err) {
    static const char *const toks[2] = {"tokenizer", "tokenizer_2"}, *const encs[2] = {"text_encoder", "text_encoder_2"};
    memset(e, 0, sizeof *e);
    e->be = be;
    for (int k = 0; k < (sdxl ? 2 : 1); k++) {
        char *path = path_join(pipeline, toks[k]);
        e->tok[k] = clip_tokenizer_load(path, err);
        free(path);
        if (!e->tok[k] || clip_text_load(&e->model[k], pipeline, encs[k], be, err)) {
            if (e->tok[k]) clip_tokenizer_free(e->tok[k]);
            prompt_encoder_free(e);
            return -1;
        }
        e->n = k + 1;
        int L = clip_tokenizer_max_length(e->tok[k]);
        if (L > e->model[k].cfg.max_positions) {
            seterr(err, "%s: model_max_length %d exceeds %s's %d positions", pipeline, L, encs[k], e->model[k].cfg.max_positions);
        } else if (k && L != e->L) {
            seterr(err, "%s: the two tokenizers differ in length (%d, %d)", pipeline, e->L, L);
        } else {
            e->L = L, e->D += e->model[k].cfg.hidden_size;
            continue;
        }
        prompt_encoder_free(e);
        return -1;
    }
    if (sdxl) e->P = e->model[1].cfg.projection_dim;
    return 0;
}

int prompt_encoder_encode(prompt_encoder *e, const char *text, size_t len, float *out, float *pooled, char *err) {
    int32_t *ids32 = xmalloc(sizeof(int32_t) * (size_t)e->L);
    int64_t *ids = xmalloc(sizeof(int64_t) * (size_t)e->L);
    int col = 0, rc = 0;
    for (int k = 0; k < e->n && !rc; k++) {
        int D = e->model[k].cfg.hidden_size;
        if (clip_encode(e->tok[k], text, len, ids32, err) < 0) {
            rc = -1;
            break;
        }
        for (int j = 0; j < e->L; j++) ids[j] = ids32[j];
        tensor *hidden = tensor_new(e->be, DT_F32, 3, (int64_t[]){1, e->L, D});
        tensor *proj = k == 1 ? tensor_new(e->be, DT_F32, 2, (int64_t[]){1, e->P}) : NULL;
        clip_text_out o = e->n == 1 ? (clip_text_out){.last_hidden_state = hidden} : (clip_text_out){.penultimate = hidden, .text_embeds = proj};
        clip_text_forward(&e->model[k], ids, 1, e->L, o);
        float *seq = xmalloc(sizeof(float) * (size_t)e->L * D);
        tensor_to_host(hidden, seq);
        for (int j = 0; j < e->L; j++) memcpy(out + (size_t)j * e->D + col, seq + (size_t)j * D, sizeof(float) * (size_t)D);
        if (proj && pooled) tensor_to_host(proj, pooled);
        free(seq);
        tensor_free(hidden), tensor_free(proj);
        col += D;
    }
    free(ids32), free(ids);
    return rc;
}

void prompt_encoder_free(prompt_encoder *e) {
    for (int k = 0; k < e->n; k++) clip_tokenizer_free(e->tok[k]), clip_text_free(&e->model[k]);
    memset(e, 0, sizeof *e);
}
