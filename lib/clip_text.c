/* clip_text.c - see clip_text.h. Parameter names are transformers'. */
#include "clip_text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "json.h"
#include "modeldir.h"
#include "util.h"
#include "weights.h"

static int parse_activation(const char *name, activation *act) {
    if (!strcmp(name, "quick_gelu")) *act = ACT_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *act = ACT_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *act = ACT_GELU_TANH;
    else return -1;
    return 0;
}

static int read_config(clip_text_config *c, json_cfg *j, char *err) {
    c->vocab_size = (int)cfg_int(j, "vocab_size", 49408);
    c->hidden_size = (int)cfg_int(j, "hidden_size", 512);
    c->num_layers = (int)cfg_int(j, "num_hidden_layers", 12);
    c->num_heads = (int)cfg_int(j, "num_attention_heads", 8);
    c->intermediate_size = (int)cfg_int(j, "intermediate_size", 2048);
    c->max_positions = (int)cfg_int(j, "max_position_embeddings", 77);
    c->layer_norm_eps = (float)cfg_float(j, "layer_norm_eps", 1e-5);
    c->eos_token_id = (int)cfg_int(j, "eos_token_id", 2);
    const char *act = cfg_str(j, "hidden_act", "quick_gelu");
    const char *arch = "";
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j->root, "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0))) arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    c->projection_dim = strstr(arch, "WithProjection") ? (int)cfg_int(j, "projection_dim", 512) : 0;
    if (j->failed) return seterr(err, "%s", j->err);
    if (parse_activation(act, &c->act)) return seterr(err, "%s: hidden_act '%s' is not supported", j->name, act);
    if (c->num_heads < 1 || c->hidden_size % c->num_heads)
        return seterr(err, "%s: hidden_size %d is not a multiple of %d heads", j->name, c->hidden_size, c->num_heads);
    return 0;
}

static void build(clip_text_model *m) {
    const clip_text_config *c = &m->cfg;
    params *ps = &m->ps;
    int D = c->hidden_size, I = c->intermediate_size;
    m->token_embedding = params_add2(ps, "text_model.embeddings.token_embedding.weight", c->vocab_size, D);
    m->position_embedding = params_add2(ps, "text_model.embeddings.position_embedding.weight", c->max_positions, D);
    m->layers = xcalloc((size_t)c->num_layers, sizeof(clip_layer));
    for (int i = 0; i < c->num_layers; i++) {
        char p[96];
        clip_layer *l = &m->layers[i];
        snprintf(p, sizeof p, "text_model.encoder.layers.%d", i);
        add_norm(ps, p, "layer_norm1", D, &l->ln1_w, &l->ln1_b);
        l->q_w = add_linear(ps, p, "self_attn.q_proj", D, D, &l->q_b);
        l->k_w = add_linear(ps, p, "self_attn.k_proj", D, D, &l->k_b);
        l->v_w = add_linear(ps, p, "self_attn.v_proj", D, D, &l->v_b);
        l->o_w = add_linear(ps, p, "self_attn.out_proj", D, D, &l->o_b);
        add_norm(ps, p, "layer_norm2", D, &l->ln2_w, &l->ln2_b);
        l->fc1_w = add_linear(ps, p, "mlp.fc1", I, D, &l->fc1_b);
        l->fc2_w = add_linear(ps, p, "mlp.fc2", D, I, &l->fc2_b);
    }
    add_norm(ps, "text_model", "final_layer_norm", D, &m->final_ln_w, &m->final_ln_b);
    if (c->projection_dim) m->projection = add_linear(ps, "", "text_projection", c->projection_dim, D, NULL);
}

int clip_text_load(clip_text_model *m, const char *path, const char *component, const backend *be, char *err) {
    memset(m, 0, sizeof *m);
    model_dir *md = model_open(path, component, MODEL_VARIANT_AUTO, err);
    if (!md) return -1;
    int rc = read_config(&m->cfg, &md->config, err);
    if (!rc) {
        params_init(&m->ps);
        build(m);
        params_alloc(&m->ps, be, 0);
        rc = weights_load(&m->ps, md, err);
    }
    model_close(md);
    arena_init(&m->act, be, 0);
    return rc;
}

void clip_text_free(clip_text_model *m) {
    params_free(&m->ps);
    arena_free(&m->act);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* x [n, D] -> x + attention block(x), in place. */
static void attention_block(clip_text_model *m, const clip_layer *l, tensor *x, int batch, int len) {
    arena *a = &m->act;
    arena_mark mark = arena_get_mark(a);
    int D = m->cfg.hidden_size, H = m->cfg.num_heads, n = batch * len;
    tensor mean = arena_tensor(a, DT_F32, 1, (int64_t[]){n}), rstd = mean;
    rstd.data = arena_alloc(a, (size_t)n * 4);
    tensor h = arena_tensor(a, DT_F32, 2, (int64_t[]){n, D});
    op_layer_norm(&h, &mean, &rstd, x, &l->ln1_w->value, &l->ln1_b->value, m->cfg.layer_norm_eps);
    int64_t bld[3] = {batch, len, D};
    tensor q = arena_tensor(a, DT_F32, 3, bld), k = arena_tensor(a, DT_F32, 3, bld), v = arena_tensor(a, DT_F32, 3, bld);
    tensor o = arena_tensor(a, DT_F32, 3, bld);
    h.ndim = 3, memcpy(h.shape, bld, sizeof bld);
    op_linear(&q, &h, &l->q_w->value, &l->q_b->value);
    op_linear(&k, &h, &l->k_w->value, &l->k_b->value);
    op_linear(&v, &h, &l->v_w->value, &l->v_b->value);
    attention_params ap = {.heads = H, .scale = 1.0f / sqrtf((float)(D / H)), .causal = 1};
    op_attention(&o, NULL, &q, &k, &v, ap);
    op_linear(&h, &o, &l->o_w->value, &l->o_b->value);
    h.ndim = 2, h.shape[0] = n, h.shape[1] = D;
    op_axpby(x, 1.0f, x, 1.0f, &h);
    arena_release(a, mark);
}

/* x [n, D] -> x + mlp(layer_norm(x)), in place. */
static void mlp_block(clip_text_model *m, const clip_layer *l, tensor *x, int n) {
    arena *a = &m->act;
    arena_mark mark = arena_get_mark(a);
    int D = m->cfg.hidden_size, I = m->cfg.intermediate_size;
    tensor mean = arena_tensor(a, DT_F32, 1, (int64_t[]){n}), rstd = arena_tensor(a, DT_F32, 1, (int64_t[]){n});
    tensor h = arena_tensor(a, DT_F32, 2, (int64_t[]){n, D}), f = arena_tensor(a, DT_F32, 2, (int64_t[]){n, I});
    op_layer_norm(&h, &mean, &rstd, x, &l->ln2_w->value, &l->ln2_b->value, m->cfg.layer_norm_eps);
    op_linear(&f, &h, &l->fc1_w->value, &l->fc1_b->value);
    op_activation(&f, &f, m->cfg.act);
    op_linear(&h, &f, &l->fc2_w->value, &l->fc2_b->value);
    op_axpby(x, 1.0f, x, 1.0f, &h);
    arena_release(a, mark);
}

/* The pooled output: each sequence's hidden state at its first EOS token
 * (or, for configs from before transformers PR 24773 with eos_token_id 2,
 * at its highest token id, as transformers does). */
static void pool(clip_text_model *m, const int64_t *ids, int batch, int len, const tensor *last, tensor *pooled) {
    int D = m->cfg.hidden_size;
    for (int b = 0; b < batch; b++) {
        const int64_t *row = ids + (size_t)b * len;
        int at = 0;
        for (int i = 0; i < len; i++) {
            if (m->cfg.eos_token_id == 2 ? row[i] > row[at] : row[i] == m->cfg.eos_token_id) {
                at = i;
                if (m->cfg.eos_token_id != 2) break;
            }
        }
        tensor src = tensor_view(last->backend, DT_F32, 1, (int64_t[]){D}, (float *)last->data + ((size_t)b * len + at) * D);
        tensor dst = tensor_view(pooled->backend, DT_F32, 1, (int64_t[]){D}, (float *)pooled->data + (size_t)b * D);
        op_convert(&dst, &src);
    }
}

void clip_text_forward(clip_text_model *m, const int64_t *ids, int batch, int len, clip_text_out out) {
    const clip_text_config *c = &m->cfg;
    if (len > c->max_positions) die("clip_text_forward: %d tokens, at most %d", len, c->max_positions);
    arena *a = &m->act;
    arena_reset(a);
    int D = c->hidden_size, n = batch * len;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) die("token id %lld outside the vocabulary (%d)", (long long)ids[i], c->vocab_size);
    tensor tok = arena_tensor(a, DT_I64, 1, (int64_t[]){n});
    tensor_from_host(&tok, ids);
    tensor x = arena_tensor(a, DT_F32, 2, (int64_t[]){n, D});
    op_embedding(&x, &m->token_embedding->value, &tok);
    /* positions 0..len-1 for every sequence: a broadcast over the batch */
    tensor xb = tensor_view(x.backend, DT_F32, 2, (int64_t[]){batch, (int64_t)len * D}, x.data);
    tensor pos = tensor_view(x.backend, DT_F32, 1, (int64_t[]){(int64_t)len * D}, m->position_embedding->value.data);
    op_add_broadcast(&xb, &xb, &pos);
    for (int i = 0; i < c->num_layers; i++) {
        attention_block(m, &m->layers[i], &x, batch, len);
        mlp_block(m, &m->layers[i], &x, n);
        if (i == c->num_layers - 2 && out.penultimate) op_convert(out.penultimate, &x);
    }
    tensor last = out.last_hidden_state ? *out.last_hidden_state : arena_tensor(a, DT_F32, 2, (int64_t[]){n, D});
    tensor mean = arena_tensor(a, DT_F32, 1, (int64_t[]){n}), rstd = arena_tensor(a, DT_F32, 1, (int64_t[]){n});
    tensor last2 = tensor_view(last.backend, DT_F32, 2, (int64_t[]){n, D}, last.data);
    op_layer_norm(&last2, &mean, &rstd, &x, &m->final_ln_w->value, &m->final_ln_b->value, c->layer_norm_eps);
    tensor pooled = out.pooled ? *out.pooled : arena_tensor(a, DT_F32, 2, (int64_t[]){batch, D});
    if (out.pooled || out.text_embeds) pool(m, ids, batch, len, &last2, &pooled);
    if (out.text_embeds) {
        if (!m->projection) die("text_embeds asked of a CLIP text model without projection");
        op_linear(out.text_embeds, &pooled, &m->projection->value, NULL);
    }
}
