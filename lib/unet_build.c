/* unet_build.c - the UNet's parameters, registered under diffusers' names in
 * diffusers' order of construction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_layers.h"
#include "util.h"
#include "weights.h"

static void add_resnet(params *ps, unet_resnet *r, const char *prefix, int in, int out, int temb, int scale_shift) {
    r->in = in, r->out = out, r->out_scale = 1.0f;
    add_norm(ps, prefix, "norm1", in, &r->norm1_w, &r->norm1_b);
    r->conv1_w = add_conv(ps, prefix, "conv1", out, in, 3, &r->conv1_b);
    r->temb_w = add_linear(ps, prefix, "time_emb_proj", scale_shift ? 2 * out : out, temb, &r->temb_b);
    add_norm(ps, prefix, "norm2", out, &r->norm2_w, &r->norm2_b);
    r->conv2_w = add_conv(ps, prefix, "conv2", out, out, 3, &r->conv2_b);
    if (in != out) r->short_w = add_conv(ps, prefix, "conv_shortcut", out, in, 1, &r->short_b);
}

/* to_q, to_k, to_v without bias, to_out.0 with (diffusers' Attention in a
 * BasicTransformerBlock: attention_bias false, out_bias true). */
static void add_attention(params *ps, unet_attention *a, const char *prefix, int dim, int heads, int kv_in, int cross) {
    a->heads = heads, a->dim_head = dim / heads, a->inner = dim, a->kv_in = kv_in, a->cross = cross;
    a->q = add_linear(ps, prefix, "to_q", dim, dim, NULL);
    a->k = add_linear(ps, prefix, "to_k", dim, kv_in, NULL);
    a->v = add_linear(ps, prefix, "to_v", dim, kv_in, NULL);
    a->o_w = add_linear(ps, prefix, "to_out.0", dim, dim, &a->o_b);
}

static void add_tblock(params *ps, unet_tblock *b, const char *prefix, int dim, int heads, int cross_dim, int only_cross) {
    char p[224];
    b->dim = dim, b->ff_inner = 4 * dim;
    add_norm(ps, prefix, "norm1", dim, &b->n1_w, &b->n1_b);
    snprintf(p, sizeof p, "%s.attn1", prefix);
    add_attention(ps, &b->attn1, p, dim, heads, only_cross ? cross_dim : dim, only_cross);
    add_norm(ps, prefix, "norm2", dim, &b->n2_w, &b->n2_b);
    snprintf(p, sizeof p, "%s.attn2", prefix);
    add_attention(ps, &b->attn2, p, dim, heads, cross_dim, 1);
    add_norm(ps, prefix, "norm3", dim, &b->n3_w, &b->n3_b);
    b->ff1_w = add_linear(ps, prefix, "ff.net.0.proj", 2 * b->ff_inner, dim, &b->ff1_b);
    b->ff2_w = add_linear(ps, prefix, "ff.net.2", dim, b->ff_inner, &b->ff2_b);
}

/* Transformer2DModel: proj_in/out are 1x1 convs, or linears with use_linear_projection. */
static void add_transformer(unet_model *m, unet_transformer *t, const char *prefix, int ch, int heads, int layers, int cross_dim, int only_cross) {
    params *ps = &m->ps;
    char p[192];
    t->channels = ch, t->inner = ch, t->n_layers = layers;
    add_norm(ps, prefix, "norm", ch, &t->norm_w, &t->norm_b);
    if (m->cfg.use_linear_projection) t->proj_in_w = add_linear(ps, prefix, "proj_in", ch, ch, &t->proj_in_b);
    else t->proj_in_w = add_conv(ps, prefix, "proj_in", ch, ch, 1, &t->proj_in_b);
    t->blocks = xcalloc((size_t)layers, sizeof *t->blocks);
    for (int l = 0; l < layers; l++) {
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", prefix, l);
        add_tblock(ps, &t->blocks[l], p, ch, heads, cross_dim, only_cross);
    }
    if (m->cfg.use_linear_projection) t->proj_out_w = add_linear(ps, prefix, "proj_out", ch, ch, &t->proj_out_b);
    else t->proj_out_w = add_conv(ps, prefix, "proj_out", ch, ch, 1, &t->proj_out_b);
    t->sv.hs = xcalloc((size_t)layers + 1, sizeof(tensor));
}

static void add_sampler(unet_model *m, unet_block *b, const char *prefix, const char *kind, int ch) {
    char p[192];
    snprintf(p, sizeof p, "%s.%s.0", prefix, kind);
    b->sampler = xcalloc(1, sizeof *b->sampler);
    b->sampler->channels = ch;
    b->sampler->w = add_conv(&m->ps, p, "conv", ch, ch, 3, &b->sampler->b);
}

static void alloc_block(unet_block *b, int layers, int has_attn) {
    b->n_layers = layers, b->has_attn = has_attn;
    b->res = xcalloc((size_t)layers, sizeof *b->res);
    if (has_attn) b->attn = xcalloc((size_t)layers, sizeof *b->attn);
    b->sv.cat = xcalloc((size_t)layers, sizeof(tensor));
    b->sv.rout = xcalloc((size_t)layers, sizeof(tensor));
}

static void build_down(unet_model *m) {
    const unet_config *c = &m->cfg;
    unet_net *n = m->net;
    for (int i = 0, in = c->block_out_channels[0]; i < c->n_blocks; i++) {
        int out = c->block_out_channels[i];
        unet_block *b = &n->down[i];
        char p[192], q[192];
        alloc_block(b, c->layers_per_block[i], c->down_cross[i]);
        for (int j = 0; j < b->n_layers; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            add_resnet(&m->ps, &b->res[j], p, j ? out : in, out, c->time_embed_dim, c->scale_shift);
            if (!b->has_attn) continue;
            snprintf(q, sizeof q, "down_blocks.%d.attentions.%d", i, j);
            add_transformer(m, &b->attn[j], q, out, c->heads[i], c->transformer_layers[i], c->cross_attention_dim[i], c->only_cross_attention[i]);
        }
        snprintf(p, sizeof p, "down_blocks.%d", i);
        if (i < c->n_blocks - 1) add_sampler(m, b, p, "downsamplers", out);
        in = out;
    }
}

static void build_mid(unet_model *m) {
    const unet_config *c = &m->cfg;
    int nb = c->n_blocks, ch = c->block_out_channels[nb - 1];
    unet_block *b = &m->net->mid;
    alloc_block(b, 2, 1);
    add_resnet(&m->ps, &b->res[0], "mid_block.resnets.0", ch, ch, c->time_embed_dim, c->scale_shift);
    add_transformer(m, &b->attn[0], "mid_block.attentions.0", ch, c->heads[nb - 1], c->transformer_layers[nb - 1], c->cross_attention_dim[nb - 1], 0);
    add_resnet(&m->ps, &b->res[1], "mid_block.resnets.1", ch, ch, c->time_embed_dim, c->scale_shift);
    b->res[0].out_scale = b->res[1].out_scale = c->mid_block_scale_factor;
    b->n_layers = 1; /* one attention between the two resnets */
}

/* Up block i reads the per-block settings in reverse. Resnet j takes the
 * previous output (prev channels for j = 0) concatenated with a skip (the
 * down block's input width for the last j). */
static void build_up(unet_model *m) {
    const unet_config *c = &m->cfg;
    int nb = c->n_blocks;
    int out = c->block_out_channels[nb - 1];
    for (int i = 0; i < nb; i++) {
        int r = nb - 1 - i, prev = out;
        out = c->block_out_channels[r];
        int in = c->block_out_channels[r > 0 ? r - 1 : 0];
        unet_block *b = &m->net->up[i];
        char p[192], q[192];
        alloc_block(b, c->layers_per_block[r] + 1, c->up_cross[i]);
        for (int j = 0; j < b->n_layers; j++) {
            int skip = j == b->n_layers - 1 ? in : out, rin = j ? out : prev;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            add_resnet(&m->ps, &b->res[j], p, rin + skip, out, c->time_embed_dim, c->scale_shift);
            if (!b->has_attn) continue;
            snprintf(q, sizeof q, "up_blocks.%d.attentions.%d", i, j);
            add_transformer(m, &b->attn[j], q, out, c->heads[r], c->up_transformer_layers[i], c->cross_attention_dim[r], c->only_cross_attention[r]);
        }
        snprintf(p, sizeof p, "up_blocks.%d", i);
        if (i < nb - 1) add_sampler(m, b, p, "upsamplers", out);
    }
}

void unet_build(unet_model *m) {
    const unet_config *c = &m->cfg;
    params *ps = &m->ps;
    unet_net *n = m->net = xcalloc(1, sizeof *n);
    int c0 = c->block_out_channels[0], T = c->time_embed_dim;
    n->conv_in_w = add_conv(ps, "", "conv_in", c0, c->in_channels, c->conv_in_kernel, &n->conv_in_b);
    n->t1_w = add_linear(ps, "time_embedding", "linear_1", T, c0, &n->t1_b);
    n->t2_w = add_linear(ps, "time_embedding", "linear_2", T, T, &n->t2_b);
    if (c->time_cond_proj_dim) n->cond_w = add_linear(ps, "time_embedding", "cond_proj", c0, c->time_cond_proj_dim, NULL);
    if (c->text_time) {
        n->a1_w = add_linear(ps, "add_embedding", "linear_1", T, c->projection_class_embeddings_input_dim, &n->a1_b);
        n->a2_w = add_linear(ps, "add_embedding", "linear_2", T, T, &n->a2_b);
    }
    build_down(m);
    if (c->has_mid) build_mid(m);
    build_up(m);
    add_norm(ps, "", "conv_norm_out", c0, &n->norm_out_w, &n->norm_out_b);
    n->conv_out_w = add_conv(ps, "", "conv_out", c->out_channels, c0, c->conv_out_kernel, &n->conv_out_b);
}

static void free_block(unet_block *b) {
    if (b->attn)
        for (int j = 0; j < b->n_layers; j++) free(b->attn[j].blocks), free(b->attn[j].sv.hs);
    free(b->res), free(b->attn), free(b->sampler), free(b->sv.cat), free(b->sv.rout);
}

void unet_net_free(unet_net *n) {
    if (!n) return;
    for (int i = 0; i < UNET_MAX_BLOCKS; i++) free_block(&n->down[i]), free_block(&n->up[i]);
    free_block(&n->mid);
    free(n->fw.skips);
    free(n);
}
