/* unet_layers.c - forward and backward of the UNet's layers (see
 * unet_layers.h for the conventions). The math is diffusers':
 *
 *   ResnetBlock2D   h = conv1(SiLU(GN1(x))) + time_emb_proj(SiLU(emb))   ("default")
 *                   h = conv2(SiLU(GN2(h)))
 *                or h = conv2(SiLU(GN2(conv1(..)) (1 + scale) + shift))  ("scale_shift")
 *                   y = (shortcut(x) + h) / output_scale_factor
 *   Transformer2D   y = x + proj_out(blocks(proj_in(GN(x) as tokens)))   (GN eps 1e-6)
 *   BasicTransformerBlock  h += attn1(LN1 h); h += attn2(LN2 h, ctx); h += ff(LN3 h)  (LN eps 1e-5)
 *   FeedForward     ff.net.2(GEGLU(ff.net.0.proj(x)))
 *
 * Images stay NCHW; a transformer moves to [B, HW, C] tokens by one
 * transpose each way. 1x1 proj_in/proj_out convs run as linears on the
 * tokens (the same numbers as diffusers' conv then permute). Attention is
 * op_attention: blocked, with the log-sum-exp saved so that the backward
 * recomputes score tiles instead of keeping the score matrix. */
#include <math.h>

#include "ops.h"
#include "unet_layers.h"
#include "unet_lora.h"
#include "util.h"

#define TRANSFORMER_GN_EPS 1e-6f
#define BLOCK_LN_EPS 1e-5f

/* ---- small helpers ---- */

static tensor act4(unet_model *m, int64_t a, int64_t b, int64_t c, int64_t d) { return arena_tensor4(&m->act, DT_F32, a, b, c, d); }
static tensor act3(unet_model *m, int64_t a, int64_t b, int64_t c) { return arena_tensor(&m->act, DT_F32, 3, (int64_t[]){a, b, c}); }
static tensor act2(unet_model *m, int64_t a, int64_t b) { return arena_tensor(&m->act, DT_F32, 2, (int64_t[]){a, b}); }
static tensor act1(unet_model *m, int64_t a) { return arena_tensor(&m->act, DT_F32, 1, &a); }
static tensor act_like(unet_model *m, const tensor *t) { return arena_tensor(&m->act, DT_F32, t->ndim, t->shape); }

/* A view of t with another shape (same element count). */
static tensor reshape3(const tensor *t, int64_t a, int64_t b, int64_t c) {
    return tensor_view(t->backend, DT_F32, 3, (int64_t[]){a, b, c}, t->data);
}

/* The gradient of p, or NULL when the model keeps none. */
static tensor *G(param *p) { return p && p->grad.data ? &p->grad : NULL; }
static const tensor *V(const param *p) { return p ? &p->value : NULL; }

/* A 2-D [out, in] view of a linear or 1x1-conv weight (value and grad). */
typedef struct w2d {
    tensor value, grad;
    int has_grad;
} w2d;
static w2d as_2d(param *p) {
    int64_t s[2] = {p->value.shape[0], p->value.shape[1]};
    w2d w = {tensor_view(p->value.backend, DT_F32, 2, s, p->value.data), tensor_view(p->value.backend, DT_F32, 2, s, p->grad.data),
             p->grad.data != NULL};
    return w;
}

static void add_into(tensor *acc, const tensor *x) { op_axpby(acc, 1.0f, acc, 1.0f, x); }

static tensor group_stats(unet_model *m, int64_t batch) { return act2(m, batch, m->cfg.groups); }

static conv2d_params same(int k) { return conv2d_same_pad(1, k / 2); }

/* ---- ResnetBlock2D ---- */

void unet_resnet_forward(unet_model *m, unet_resnet *r, const tensor *x, const tensor *semb, tensor *y) {
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    int g = m->cfg.groups;
    float eps = m->cfg.norm_eps;
    struct unet_resnet_sv *s = &r->sv;
    s->x = *x, s->semb = *semb;
    s->mean1 = group_stats(m, B), s->rstd1 = group_stats(m, B), s->mean2 = group_stats(m, B), s->rstd2 = group_stats(m, B);
    s->t1 = act4(m, B, r->in, H, W);
    op_group_norm(&s->t1, &s->mean1, &s->rstd1, x, V(r->norm1_w), V(r->norm1_b), g, eps, 1);
    s->c1 = act4(m, B, r->out, H, W);
    op_conv2d(&s->c1, &s->t1, V(r->conv1_w), V(r->conv1_b), same(3));
    unet_lora_conv(m, r->conv1_w, &s->t1, &s->c1, same(3));
    s->tp = act2(m, B, r->temb_w->value.shape[0]);
    op_linear(&s->tp, semb, V(r->temb_w), V(r->temb_b));
    unet_lora_linear(m, r->temb_w, semb, &s->tp);
    s->t2 = act4(m, B, r->out, H, W);
    if (!m->cfg.scale_shift) {
        op_add_broadcast(&s->c1, &s->c1, &s->tp);
        op_group_norm(&s->t2, &s->mean2, &s->rstd2, &s->c1, V(r->norm2_w), V(r->norm2_b), g, eps, 1);
    } else {
        s->n2 = act4(m, B, r->out, H, W), s->m2 = act4(m, B, r->out, H, W);
        op_group_norm(&s->n2, &s->mean2, &s->rstd2, &s->c1, V(r->norm2_w), V(r->norm2_b), g, eps, 0);
        op_scale_shift(&s->m2, &s->n2, &s->tp);
        op_silu(&s->t2, &s->m2);
    }
    op_conv2d(y, &s->t2, V(r->conv2_w), V(r->conv2_b), same(3));
    unet_lora_conv(m, r->conv2_w, &s->t2, y, same(3));
    float inv = 1.0f / r->out_scale;
    if (!r->short_w) {
        op_axpby(y, inv, y, inv, x);
        return;
    }
    arena_mark mark = arena_get_mark(&m->act);
    tensor sc = act4(m, B, r->out, H, W);
    op_conv2d(&sc, x, V(r->short_w), V(r->short_b), conv2d_same_pad(1, 0));
    unet_lora_conv(m, r->short_w, x, &sc, conv2d_same_pad(1, 0));
    op_axpby(y, inv, y, inv, &sc);
    arena_release(&m->act, mark);
}

void unet_resnet_backward(unet_model *m, unet_resnet *r, const tensor *dy, tensor *dx, tensor *dsemb) {
    struct unet_resnet_sv *s = &r->sv;
    int64_t B = s->x.shape[0], H = s->x.shape[2], W = s->x.shape[3];
    int g = m->cfg.groups;
    arena_mark mark = arena_get_mark(&m->act);
    const tensor *gy = dy;
    tensor scaled;
    if (r->out_scale != 1.0f) {
        scaled = act_like(m, dy);
        op_axpby(&scaled, 1.0f / r->out_scale, dy, 0, NULL);
        gy = &scaled;
    }
    tensor dt2 = act4(m, B, r->out, H, W), dc1 = act4(m, B, r->out, H, W), dtp = act_like(m, &s->tp);
    op_conv2d_backward(&dt2, G(r->conv2_w), G(r->conv2_b), &s->t2, V(r->conv2_w), gy, same(3));
    unet_lora_conv_backward(m, r->conv2_w, &s->t2, gy, &dt2, same(3));
    if (!m->cfg.scale_shift) {
        op_group_norm_backward(&dc1, G(r->norm2_w), G(r->norm2_b), &s->c1, &s->mean2, &s->rstd2, V(r->norm2_w), V(r->norm2_b), &dt2, g, 1);
        op_fill(&dtp, 0.0f);
        op_add_broadcast_backward(&dtp, &dc1);
    } else {
        op_silu_backward(&dt2, &s->m2, &dt2); /* now d m2 */
        op_scale_shift_backward(&dt2, &dtp, &s->n2, &s->tp, &dt2); /* now d n2 */
        op_group_norm_backward(&dc1, G(r->norm2_w), G(r->norm2_b), &s->c1, &s->mean2, &s->rstd2, V(r->norm2_w), V(r->norm2_b), &dt2, g, 0);
    }
    tensor ds = act_like(m, &s->semb);
    op_linear_backward(dsemb ? &ds : NULL, G(r->temb_w), G(r->temb_b), &s->semb, V(r->temb_w), &dtp);
    unet_lora_linear_backward(m, r->temb_w, &s->semb, &dtp, dsemb ? &ds : NULL);
    if (dsemb) add_into(dsemb, &ds);
    tensor dt1 = act4(m, B, r->in, H, W);
    op_conv2d_backward(&dt1, G(r->conv1_w), G(r->conv1_b), &s->t1, V(r->conv1_w), &dc1, same(3));
    unet_lora_conv_backward(m, r->conv1_w, &s->t1, &dc1, &dt1, same(3));
    op_group_norm_backward(dx, G(r->norm1_w), G(r->norm1_b), &s->x, &s->mean1, &s->rstd1, V(r->norm1_w), V(r->norm1_b), &dt1, g, 1);
    if (r->short_w) {
        op_conv2d_backward(&dt1, G(r->short_w), G(r->short_b), &s->x, V(r->short_w), gy, conv2d_same_pad(1, 0));
        unet_lora_conv_backward(m, r->short_w, &s->x, gy, &dt1, conv2d_same_pad(1, 0));
        add_into(dx, &dt1);
    } else {
        add_into(dx, gy);
    }
    arena_release(&m->act, mark);
}

/* ---- Attention (to_q, to_k, to_v, to_out.0) ---- */

static attention_params attn_params(const unet_attention *a) {
    return (attention_params){.heads = a->heads, .scale = 1.0f / sqrtf((float)a->dim_head), .causal = 0};
}

/* x [B, N, D] -> y [B, N, D]; keys and values from ctx when cross. */
static void attention_forward(unet_model *m, unet_attention *a, const tensor *x, const tensor *ctx, tensor *y) {
    struct unet_attention_sv *s = &a->sv;
    const tensor *src = a->cross ? ctx : x;
    int64_t B = x->shape[0], N = x->shape[1], L = src->shape[1];
    s->x = *x, s->ctx = *src;
    s->q = act3(m, B, N, a->inner), s->k = act3(m, B, L, a->inner), s->v = act3(m, B, L, a->inner);
    s->o = act3(m, B, N, a->inner), s->lse = act3(m, B, a->heads, N);
    op_linear(&s->q, x, V(a->q), NULL);
    op_linear(&s->k, src, V(a->k), NULL);
    op_linear(&s->v, src, V(a->v), NULL);
    unet_lora_linear(m, a->q, x, &s->q);
    unet_lora_linear(m, a->k, src, &s->k);
    unet_lora_linear(m, a->v, src, &s->v);
    op_attention(&s->o, &s->lse, &s->q, &s->k, &s->v, attn_params(a));
    op_linear(y, &s->o, V(a->o_w), V(a->o_b));
    unet_lora_linear(m, a->o_w, &s->o, y);
}

/* Writes dx; adds the keys' and values' share into dctx (cross) or dx (self). */
static void attention_backward(unet_model *m, unet_attention *a, const tensor *dy, tensor *dx, tensor *dctx) {
    struct unet_attention_sv *s = &a->sv;
    arena_mark mark = arena_get_mark(&m->act);
    tensor dout = act_like(m, &s->o), dq = act_like(m, &s->q), dk = act_like(m, &s->k), dv = act_like(m, &s->v);
    op_linear_backward(&dout, G(a->o_w), G(a->o_b), &s->o, V(a->o_w), dy);
    unet_lora_linear_backward(m, a->o_w, &s->o, dy, &dout);
    op_attention_backward(&dq, &dk, &dv, &s->q, &s->k, &s->v, &s->o, &s->lse, &dout, attn_params(a));
    op_linear_backward(dx, G(a->q), NULL, &s->x, V(a->q), &dq);
    unet_lora_linear_backward(m, a->q, &s->x, &dq, dx);
    tensor *acc = a->cross ? dctx : dx, tmp = act_like(m, &s->ctx);
    op_linear_backward(acc ? &tmp : NULL, G(a->k), NULL, &s->ctx, V(a->k), &dk);
    unet_lora_linear_backward(m, a->k, &s->ctx, &dk, acc ? &tmp : NULL);
    if (acc) add_into(acc, &tmp);
    op_linear_backward(acc ? &tmp : NULL, G(a->v), NULL, &s->ctx, V(a->v), &dv);
    unet_lora_linear_backward(m, a->v, &s->ctx, &dv, acc ? &tmp : NULL);
    if (acc) add_into(acc, &tmp);
    arena_release(&m->act, mark);
}

/* ---- BasicTransformerBlock ---- */

static void layer_norm(unet_model *m, const tensor *x, const param *w, const param *b, tensor *mean, tensor *rstd, tensor *y) {
    int64_t rows = x->shape[0] * x->shape[1];
    *mean = act1(m, rows), *rstd = act1(m, rows), *y = act_like(m, x);
    op_layer_norm(y, mean, rstd, x, V(w), V(b), BLOCK_LN_EPS);
}

static void tblock_forward(unet_model *m, unet_tblock *b, const tensor *h, const tensor *ctx, tensor *out) {
    struct unet_tblock_sv *s = &b->sv;
    int64_t B = h->shape[0], N = h->shape[1];
    s->h = *h;
    layer_norm(m, h, b->n1_w, b->n1_b, &s->mean1, &s->rstd1, &s->n1);
    s->h1 = act_like(m, h);
    attention_forward(m, &b->attn1, &s->n1, ctx, &s->h1);
    add_into(&s->h1, h);
    layer_norm(m, &s->h1, b->n2_w, b->n2_b, &s->mean2, &s->rstd2, &s->n2);
    s->h2 = act_like(m, h);
    attention_forward(m, &b->attn2, &s->n2, ctx, &s->h2);
    add_into(&s->h2, &s->h1);
    layer_norm(m, &s->h2, b->n3_w, b->n3_b, &s->mean3, &s->rstd3, &s->n3);
    s->f1 = act3(m, B, N, 2 * b->ff_inner), s->g = act3(m, B, N, b->ff_inner);
    op_linear(&s->f1, &s->n3, V(b->ff1_w), V(b->ff1_b));
    unet_lora_linear(m, b->ff1_w, &s->n3, &s->f1);
    op_geglu(&s->g, &s->f1);
    op_linear(out, &s->g, V(b->ff2_w), V(b->ff2_b));
    unet_lora_linear(m, b->ff2_w, &s->g, out);
    add_into(out, &s->h2);
}

static void tblock_backward(unet_model *m, unet_tblock *b, const tensor *dy, tensor *dx, tensor *dctx) {
    struct unet_tblock_sv *s = &b->sv;
    arena_mark mark = arena_get_mark(&m->act);
    tensor dg = act_like(m, &s->g), df1 = act_like(m, &s->f1), dn = act_like(m, &s->h), dh2 = act_like(m, &s->h), dh1 = act_like(m, &s->h);
    op_linear_backward(&dg, G(b->ff2_w), G(b->ff2_b), &s->g, V(b->ff2_w), dy);
    unet_lora_linear_backward(m, b->ff2_w, &s->g, dy, &dg);
    op_geglu_backward(&df1, &s->f1, &dg);
    op_linear_backward(&dn, G(b->ff1_w), G(b->ff1_b), &s->n3, V(b->ff1_w), &df1);
    unet_lora_linear_backward(m, b->ff1_w, &s->n3, &df1, &dn);
    op_layer_norm_backward(&dh2, G(b->n3_w), G(b->n3_b), &s->h2, &s->mean3, &s->rstd3, V(b->n3_w), &dn);
    add_into(&dh2, dy);
    attention_backward(m, &b->attn2, &dh2, &dn, dctx);
    op_layer_norm_backward(&dh1, G(b->n2_w), G(b->n2_b), &s->h1, &s->mean2, &s->rstd2, V(b->n2_w), &dn);
    add_into(&dh1, &dh2);
    attention_backward(m, &b->attn1, &dh1, &dn, dctx);
    op_layer_norm_backward(dx, G(b->n1_w), G(b->n1_b), &s->h, &s->mean1, &s->rstd1, V(b->n1_w), &dn);
    add_into(dx, &dh1);
    arena_release(&m->act, mark);
}

/* ---- Transformer2DModel ---- */

void unet_transformer_forward(unet_model *m, unet_transformer *t, const tensor *x, const tensor *ctx, tensor *y) {
    struct unet_transformer_sv *s = &t->sv;
    int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2] * x->shape[3];
    s->x = *x;
    s->mean = group_stats(m, B), s->rstd = group_stats(m, B);
    s->tok = act3(m, B, N, C);
    for (int l = 0; l <= t->n_layers; l++) s->hs[l] = act3(m, B, N, t->inner);
    arena_mark mark = arena_get_mark(&m->act);
    tensor gn = act_like(m, x);
    op_group_norm(&gn, &s->mean, &s->rstd, x, V(t->norm_w), V(t->norm_b), m->cfg.groups, TRANSFORMER_GN_EPS, 0);
    tensor gn3 = reshape3(&gn, B, C, N);
    op_transpose(&s->tok, &gn3);
    arena_release(&m->act, mark);
    w2d pin = as_2d(t->proj_in_w), pout = as_2d(t->proj_out_w);
    op_linear(&s->hs[0], &s->tok, &pin.value, V(t->proj_in_b));
    unet_lora_linear(m, t->proj_in_w, &s->tok, &s->hs[0]);
    for (int l = 0; l < t->n_layers; l++) tblock_forward(m, &t->blocks[l], &s->hs[l], ctx, &s->hs[l + 1]);
    mark = arena_get_mark(&m->act);
    tensor po = act3(m, B, N, C), y3 = reshape3(y, B, C, N);
    op_linear(&po, &s->hs[t->n_layers], &pout.value, V(t->proj_out_b));
    unet_lora_linear(m, t->proj_out_w, &s->hs[t->n_layers], &po);
    op_transpose(&y3, &po);
    add_into(y, x);
    arena_release(&m->act, mark);
}

void unet_transformer_backward(unet_model *m, unet_transformer *t, const tensor *dy, tensor *dx, tensor *dctx) {
    struct unet_transformer_sv *s = &t->sv;
    int64_t B = s->x.shape[0], C = s->x.shape[1], N = s->x.shape[2] * s->x.shape[3];
    arena_mark mark = arena_get_mark(&m->act);
    w2d pin = as_2d(t->proj_in_w), pout = as_2d(t->proj_out_w);
    tensor dtok = act3(m, B, N, C), dy3 = reshape3(dy, B, C, N);
    op_transpose(&dtok, &dy3);
    tensor dh[2] = {act_like(m, &s->hs[0]), act_like(m, &s->hs[0])};
    op_linear_backward(&dh[0], pout.has_grad ? &pout.grad : NULL, G(t->proj_out_b), &s->hs[t->n_layers], &pout.value, &dtok);
    unet_lora_linear_backward(m, t->proj_out_w, &s->hs[t->n_layers], &dtok, &dh[0]);
    int cur = 0;
    for (int l = t->n_layers - 1; l >= 0; l--, cur ^= 1) tblock_backward(m, &t->blocks[l], &dh[cur], &dh[cur ^ 1], dctx);
    op_linear_backward(&dtok, pin.has_grad ? &pin.grad : NULL, G(t->proj_in_b), &s->tok, &pin.value, &dh[cur]);
    unet_lora_linear_backward(m, t->proj_in_w, &s->tok, &dh[cur], &dtok);
    tensor dgn = act_like(m, &s->x), dgn3 = reshape3(&dgn, B, C, N);
    op_transpose(&dgn3, &dtok);
    op_group_norm_backward(dx, G(t->norm_w), G(t->norm_b), &s->x, &s->mean, &s->rstd, V(t->norm_w), V(t->norm_b), &dgn, m->cfg.groups, 0);
    add_into(dx, dy);
    arena_release(&m->act, mark);
}

/* ---- Downsample2D / Upsample2D ---- */

/* padding 1: a 3x3 stride-2 conv padded 1; padding 0: diffusers pads right
 * and bottom by one first. */
static conv2d_params down_params(const unet_model *m) {
    if (m->cfg.downsample_padding) return conv2d_same_pad(2, 1);
    return (conv2d_params){.stride = 2, .pad_top = 0, .pad_left = 0, .pad_bottom = 1, .pad_right = 1};
}

void unet_downsample_forward(unet_model *m, unet_sampler *s, const tensor *x, tensor *y) {
    s->sv.x = *x;
    op_conv2d(y, x, V(s->w), V(s->b), down_params(m));
    unet_lora_conv(m, s->w, x, y, down_params(m));
}

void unet_downsample_backward(unet_model *m, unet_sampler *s, const tensor *dy, tensor *dx) {
    op_conv2d_backward(dx, G(s->w), G(s->b), &s->sv.x, V(s->w), dy, down_params(m));
    unet_lora_conv_backward(m, s->w, &s->sv.x, dy, dx, down_params(m));
}

void unet_upsample_forward(unet_model *m, unet_sampler *s, const tensor *x, tensor *y) {
    s->sv.x = *x;
    s->sv.up = act4(m, x->shape[0], x->shape[1], y->shape[2], y->shape[3]);
    op_upsample_nearest(&s->sv.up, x);
    op_conv2d(y, &s->sv.up, V(s->w), V(s->b), same(3));
    unet_lora_conv(m, s->w, &s->sv.up, y, same(3));
}

void unet_upsample_backward(unet_model *m, unet_sampler *s, const tensor *dy, tensor *dx) {
    arena_mark mark = arena_get_mark(&m->act);
    tensor dup = act_like(m, &s->sv.up);
    op_conv2d_backward(&dup, G(s->w), G(s->b), &s->sv.up, V(s->w), dy, same(3));
    unet_lora_conv_backward(m, s->w, &s->sv.up, dy, &dup, same(3));
    op_upsample_nearest_backward(dx, &dup);
    arena_release(&m->act, mark);
}

/* ---- Time embedding ---- */

static timestep_embedding_params time_params(const unet_model *m) {
    return (timestep_embedding_params){.flip_sin_to_cos = m->cfg.flip_sin_to_cos, .downscale_freq_shift = m->cfg.freq_shift,
                                       .scale = 1.0f, .max_period = 10000.0f};
}

/* SDXL: emb += add_embedding(concat(text_embeds, sinusoids(time_ids))). */
static void text_time_forward(unet_model *m, const unet_inputs *in) {
    unet_net *n = m->net;
    const unet_config *c = &m->cfg;
    int64_t B = in->sample->shape[0], A = c->addition_time_embed_dim, P = c->projection_class_embeddings_input_dim;
    int64_t text = P - 6 * A;
    if (!in->text_embeds || !in->time_ids || in->time_ids->ndim != 2 || in->time_ids->shape[0] != B || in->time_ids->shape[1] != 6 ||
        in->text_embeds->ndim != 2 || in->text_embeds->shape[0] != B || in->text_embeds->shape[1] != text)
        die("unet: this UNet (addition_embed_type text_time) needs text_embeds [%lld, %lld] and time_ids [%lld, 6]", (long long)B,
            (long long)text, (long long)B);
    n->fw.acat = act2(m, B, P), n->fw.al1 = act2(m, B, c->time_embed_dim), n->fw.as1 = act2(m, B, c->time_embed_dim);
    arena_mark mark = arena_get_mark(&m->act);
    tensor ids = tensor_view(in->time_ids->backend, DT_F32, 1, (int64_t[]){6 * B}, in->time_ids->data);
    tensor proj = act2(m, 6 * B, A), aug = act2(m, B, c->time_embed_dim);
    op_timestep_embedding(&proj, &ids, time_params(m));
    tensor proj_rows = tensor_view(proj.backend, DT_F32, 2, (int64_t[]){B, 6 * A}, proj.data);
    op_copy_channels(&n->fw.acat, 0, in->text_embeds, 0, text);
    op_copy_channels(&n->fw.acat, text, &proj_rows, 0, 6 * A);
    op_linear(&n->fw.al1, &n->fw.acat, V(n->a1_w), V(n->a1_b));
    op_silu(&n->fw.as1, &n->fw.al1);
    op_linear(&aug, &n->fw.as1, V(n->a2_w), V(n->a2_b));
    add_into(&n->fw.emb, &aug);
    arena_release(&m->act, mark);
}

void unet_time_forward(unet_model *m, const unet_inputs *in) {
    unet_net *n = m->net;
    const unet_config *c = &m->cfg;
    int64_t B = in->sample->shape[0], C0 = c->block_out_channels[0], T = c->time_embed_dim;
    n->fw.tsum = act2(m, B, C0), n->fw.l1 = act2(m, B, T), n->fw.s1 = act2(m, B, T), n->fw.emb = act2(m, B, T), n->fw.semb = act2(m, B, T);
    arena_mark mark = arena_get_mark(&m->act);
    tensor t = act1(m, B);
    tensor_from_host(&t, in->timesteps);
    op_timestep_embedding(&n->fw.tsum, &t, time_params(m));
    if (c->time_cond_proj_dim) {
        if (!in->timestep_cond || in->timestep_cond->ndim != 2 || in->timestep_cond->shape[0] != B || in->timestep_cond->shape[1] != c->time_cond_proj_dim)
            die("unet: this UNet (time_cond_proj_dim %d) needs timestep_cond [%lld, %d]", c->time_cond_proj_dim, (long long)B, c->time_cond_proj_dim);
        n->fw.tcond = *in->timestep_cond;
        tensor cp = act2(m, B, C0);
        op_linear(&cp, in->timestep_cond, V(n->cond_w), NULL);
        add_into(&n->fw.tsum, &cp);
    }
    arena_release(&m->act, mark);
    op_linear(&n->fw.l1, &n->fw.tsum, V(n->t1_w), V(n->t1_b));
    op_silu(&n->fw.s1, &n->fw.l1);
    op_linear(&n->fw.emb, &n->fw.s1, V(n->t2_w), V(n->t2_b));
    if (c->text_time) text_time_forward(m, in);
    op_silu(&n->fw.semb, &n->fw.emb);
}

void unet_time_backward(unet_model *m, const tensor *dsemb) {
    unet_net *n = m->net;
    arena_mark mark = arena_get_mark(&m->act);
    tensor demb = act_like(m, &n->fw.emb), ds = act_like(m, &n->fw.emb);
    op_silu_backward(&demb, &n->fw.emb, dsemb);
    if (m->cfg.text_time) {
        op_linear_backward(&ds, G(n->a2_w), G(n->a2_b), &n->fw.as1, V(n->a2_w), &demb);
        op_silu_backward(&ds, &n->fw.al1, &ds);
        op_linear_backward(NULL, G(n->a1_w), G(n->a1_b), &n->fw.acat, V(n->a1_w), &ds);
    }
    op_linear_backward(&ds, G(n->t2_w), G(n->t2_b), &n->fw.s1, V(n->t2_w), &demb);
    op_silu_backward(&ds, &n->fw.l1, &ds);
    tensor dsum = act_like(m, &n->fw.tsum);
    op_linear_backward(n->cond_w ? &dsum : NULL, G(n->t1_w), G(n->t1_b), &n->fw.tsum, V(n->t1_w), &ds);
    if (n->cond_w) op_linear_backward(NULL, G(n->cond_w), NULL, &n->fw.tcond, V(n->cond_w), &dsum);
    arena_release(&m->act, mark);
}
