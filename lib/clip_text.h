/* clip_text.h - the CLIP text encoder (transformers' CLIPTextModel and
 * CLIPTextModelWithProjection), forward only: it is frozen in LCD.
 *
 * Pre-LN transformer with causal self-attention; SD 1.x/2.x use the last
 * hidden state, SDXL the penultimate one and the projected pooled output. */
#ifndef LCM_CLIP_TEXT_H
#define LCM_CLIP_TEXT_H

#include "arena.h"
#include "ops.h"
#include "params.h"

struct backend;

typedef struct clip_text_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions;
    float layer_norm_eps;
    activation act;
    int projection_dim; /* > 0 for CLIPTextModelWithProjection */
    int eos_token_id;
} clip_text_config;

typedef struct clip_layer {
    param *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    param *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} clip_layer;

typedef struct clip_text_model {
    clip_text_config cfg;
    params ps;
    param *token_embedding, *position_embedding, *final_ln_w, *final_ln_b, *projection;
    clip_layer *layers;
    arena act; /* activations, reused by every forward */
} clip_text_model;

/* path: a text encoder folder, or a pipeline folder with `component`
 * ("text_encoder", "text_encoder_2"). 0, or -1 with err. */
int clip_text_load(clip_text_model *m, const char *path, const char *component, const struct backend *be, char *err);
void clip_text_free(clip_text_model *m);

/* The outputs a caller wants; any may be NULL. Shapes: last and penultimate
 * [B, L, D], pooled [B, D], text_embeds [B, projection_dim]. */
typedef struct clip_text_out {
    tensor *last_hidden_state, *penultimate, *pooled, *text_embeds;
} clip_text_out;

/* ids: [B, L] token ids on the host (L <= max_positions). */
void clip_text_forward(clip_text_model *m, const int64_t *ids, int batch, int len, clip_text_out out);

#endif
