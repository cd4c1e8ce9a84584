/* vae.c - see vae.h. Parameter names are diffusers'. */
#include "vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "json.h"
#include "modeldir.h"
#include "ops.h"
#include "util.h"
#include "weights.h"

#define VAE_EPS 1e-6f /* every norm of AutoencoderKL */

static int read_config(vae_config *c, json_cfg *j, char *err) {
    int64_t boc[VAE_MAX_BLOCKS], dflt[4] = {128, 256, 512, 512};
    c->in_channels = (int)cfg_int(j, "in_channels", 3);
    c->out_channels = (int)cfg_int(j, "out_channels", 3);
    c->latent_channels = (int)cfg_int(j, "latent_channels", 4);
    c->n_blocks = cfg_int_list(j, "block_out_channels", boc, VAE_MAX_BLOCKS, dflt, 4);
    c->layers_per_block = (int)cfg_int(j, "layers_per_block", 2);
    c->groups = (int)cfg_int(j, "norm_num_groups", 32);
    c->scaling_factor = (float)cfg_float(j, "scaling_factor", 0.18215);
    c->use_quant_conv = cfg_bool(j, "use_quant_conv", 1);
    c->use_post_quant_conv = cfg_bool(j, "use_post_quant_conv", 1);
    c->mid_attention = cfg_bool(j, "mid_block_add_attention", 1);
    if (j->failed) return seterr(err, "%s", j->err);
    if (c->n_blocks < 1) return seterr(err, "%s: empty block_out_channels", j->name);
    for (int i = 0; i < c->n_blocks; i++) {
        c->block_out_channels[i] = (int)boc[i];
        if (boc[i] < 1 || boc[i] % c->groups) return seterr(err, "%s: block width %lld is not a multiple of %d groups", j->name, (long long)boc[i], c->groups);
    }
    return 0;
}

static void add_resnet(params *ps, vae_resnet *r, const char *prefix, int in, int out) {
    r->in = in, r->out = out;
    add_norm(ps, prefix, "norm1", in, &r->norm1_w, &r->norm1_b);
    r->conv1_w = add_conv(ps, prefix, "conv1", out, in, 3, &r->conv1_b);
    add_norm(ps, prefix, "norm2", out, &r->norm2_w, &r->norm2_b);
    r->conv2_w = add_conv(ps, prefix, "conv2", out, out, 3, &r->conv2_b);
    if (in != out) r->short_w = add_conv(ps, prefix, "conv_shortcut", out, in, 1, &r->short_b);
}

/* The mid-block attention; older checkpoints name its weights query, key,
 * value and proj_attn (diffusers renames them on load; so do we). */
static void add_attention(params *ps, vae_attention *a, const char *prefix, int ch) {
    static const char *const news[4] = {"to_q", "to_k", "to_v", "to_out.0"}, *const olds[4] = {"query", "key", "value", "proj_attn"};
    param **w[4] = {&a->q_w, &a->k_w, &a->v_w, &a->o_w}, **b[4] = {&a->q_b, &a->k_b, &a->v_b, &a->o_b};
    char buf[256];
    a->channels = ch;
    add_norm(ps, prefix, "group_norm", ch, &a->norm_w, &a->norm_b);
    for (int i = 0; i < 4; i++) {
        *w[i] = add_linear(ps, prefix, news[i], ch, ch, b[i]);
        snprintf(buf, sizeof buf, "%s.%s.weight", prefix, olds[i]);
        (*w[i])->alt_name = xstrdup(buf);
        snprintf(buf, sizeof buf, "%s.%s.bias", prefix, olds[i]);
        (*b[i])->alt_name = xstrdup(buf);
    }
}

static void add_mid(vae_model *m, vae_mid *mid, const char *prefix, int ch) {
    char p[128];
    snprintf(p, sizeof p, "%s.resnets.0", prefix);
    add_resnet(&m->ps, &mid->res[0], p, ch, ch);
    if (m->cfg.mid_attention) {
        snprintf(p, sizeof p, "%s.attentions.0", prefix);
        add_attention(&m->ps, &mid->attn, p, ch);
    }
    snprintf(p, sizeof p, "%s.resnets.1", prefix);
    add_resnet(&m->ps, &mid->res[1], p, ch, ch);
}

static void build_encoder(vae_model *m) {
    const vae_config *c = &m->cfg;
    params *ps = &m->ps;
    const int *boc = c->block_out_channels, L = c->layers_per_block, top = boc[c->n_blocks - 1];
    m->enc_in_w = add_conv(ps, "encoder", "conv_in", boc[0], c->in_channels, 3, &m->enc_in_b);
    m->enc_res = xcalloc((size_t)(c->n_blocks * L), sizeof(vae_resnet));
    for (int i = 0, in = boc[0]; i < c->n_blocks; i++) {
        char p[128];
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(ps, &m->enc_res[i * L + j], p, j ? boc[i] : in, boc[i]);
        }
        if (i < c->n_blocks - 1) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0", i);
            m->down_w[i] = add_conv(ps, p, "conv", boc[i], boc[i], 3, &m->down_b[i]);
        }
        in = boc[i];
    }
    add_mid(m, &m->enc_mid, "encoder.mid_block", top);
    add_norm(ps, "encoder", "conv_norm_out", top, &m->enc_norm_w, &m->enc_norm_b);
    m->enc_out_w = add_conv(ps, "encoder", "conv_out", 2 * c->latent_channels, top, 3, &m->enc_out_b);
    if (c->use_quant_conv) m->quant_w = add_conv(ps, "", "quant_conv", 2 * c->latent_channels, 2 * c->latent_channels, 1, &m->quant_b);
}

static void build_decoder(vae_model *m) {
    const vae_config *c = &m->cfg;
    params *ps = &m->ps;
    const int *boc = c->block_out_channels, L = c->layers_per_block + 1, nb = c->n_blocks, top = boc[nb - 1];
    if (c->use_post_quant_conv) m->post_quant_w = add_conv(ps, "", "post_quant_conv", c->latent_channels, c->latent_channels, 1, &m->post_quant_b);
    m->dec_in_w = add_conv(ps, "decoder", "conv_in", top, c->latent_channels, 3, &m->dec_in_b);
    add_mid(m, &m->dec_mid, "decoder.mid_block", top);
    m->dec_res = xcalloc((size_t)(nb * L), sizeof(vae_resnet));
    /* up blocks walk the widths in reverse */
    for (int i = 0, in = top; i < nb; i++) {
        int out = boc[nb - 1 - i];
        char p[128];
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            add_resnet(ps, &m->dec_res[i * L + j], p, j ? out : in, out);
        }
        if (i < nb - 1) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0", i);
            m->up_w[i] = add_conv(ps, p, "conv", out, out, 3, &m->up_b[i]);
        }
        in = out;
    }
    add_norm(ps, "decoder", "conv_norm_out", boc[0], &m->dec_norm_w, &m->dec_norm_b);
    m->dec_out_w = add_conv(ps, "decoder", "conv_out", c->out_channels, boc[0], 3, &m->dec_out_b);
}

int vae_load(vae_model *m, const char *path, const backend *be, char *err) {
    memset(m, 0, sizeof *m);
    model_dir *md = model_open(path, "vae", MODEL_VARIANT_AUTO, err);
    if (!md) return -1;
    int rc = read_config(&m->cfg, &md->config, err);
    if (!rc) {
        params_init(&m->ps);
        build_encoder(m);
        build_decoder(m);
        params_alloc(&m->ps, be, 0);
        rc = weights_load(&m->ps, md, err);
    }
    model_close(md);
    arena_init(&m->act, be, 0);
    return rc;
}

void vae_free(vae_model *m) {
    params_free(&m->ps);
    arena_free(&m->act);
    free(m->enc_res);
    free(m->dec_res);
    memset(m, 0, sizeof *m);
}

int vae_factor(const vae_model *m) { return 1 << (m->cfg.n_blocks - 1); }

static tensor like(arena *a, int64_t n, int64_t c, int64_t h, int64_t w) { return arena_tensor4(a, DT_F32, n, c, h, w); }

static void conv(tensor *y, const tensor *x, const param *w, const param *b, int stride, int pad) {
    op_conv2d(y, x, &w->value, b ? &b->value : NULL, conv2d_same_pad(stride, pad));
}

/* GroupNorm (+ SiLU) into a new arena tensor. */
static tensor norm(vae_model *m, const tensor *x, const param *w, const param *b, int silu) {
    arena *a = &m->act;
    tensor y = like(a, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
    int g = m->cfg.groups;
    tensor mean = arena_tensor(a, DT_F32, 2, (int64_t[]){x->shape[0], g}), rstd = arena_tensor(a, DT_F32, 2, (int64_t[]){x->shape[0], g});
    op_group_norm(&y, &mean, &rstd, x, &w->value, &b->value, g, VAE_EPS, silu);
    return y;
}

/* ResnetBlock2D without a time embedding, updating *x. With equal widths the
 * sum lands in x's own memory, so a chain of blocks does not grow the arena. */
static void resnet(vae_model *m, const vae_resnet *r, tensor *x) {
    arena *a = &m->act;
    int64_t n = x->shape[0], h = x->shape[2], w = x->shape[3];
    tensor out = r->short_w ? like(a, n, r->out, h, w) : *x;
    arena_mark mark = arena_get_mark(a);
    tensor t = norm(m, x, r->norm1_w, r->norm1_b, 1);
    tensor c1 = like(a, n, r->out, h, w), c2 = like(a, n, r->out, h, w);
    conv(&c1, &t, r->conv1_w, r->conv1_b, 1, 1);
    t = norm(m, &c1, r->norm2_w, r->norm2_b, 1);
    conv(&c2, &t, r->conv2_w, r->conv2_b, 1, 1);
    if (r->short_w) conv(&out, x, r->short_w, r->short_b, 1, 0);
    op_axpby(&out, 1.0f, &out, 1.0f, &c2);
    arena_release(a, mark);
    *x = out;
}

/* Single-head self-attention over the H*W positions, with a residual. */
static void attention(vae_model *m, const vae_attention *at, tensor *x) {
    arena *a = &m->act;
    arena_mark mark = arena_get_mark(a);
    int64_t n = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    tensor h = norm(m, x, at->norm_w, at->norm_b, 0);
    h.ndim = 3, h.shape[1] = c, h.shape[2] = hw;
    int64_t tok[3] = {n, hw, c};
    tensor t = arena_tensor(a, DT_F32, 3, tok), q = arena_tensor(a, DT_F32, 3, tok), k = arena_tensor(a, DT_F32, 3, tok);
    tensor v = arena_tensor(a, DT_F32, 3, tok), o = arena_tensor(a, DT_F32, 3, tok);
    op_transpose(&t, &h); /* [n, c, hw] -> [n, hw, c] */
    op_linear(&q, &t, &at->q_w->value, &at->q_b->value);
    op_linear(&k, &t, &at->k_w->value, &at->k_b->value);
    op_linear(&v, &t, &at->v_w->value, &at->v_b->value);
    attention_params ap = {.heads = 1, .scale = 1.0f / sqrtf((float)c), .causal = 0};
    op_attention(&o, NULL, &q, &k, &v, ap);
    op_linear(&t, &o, &at->o_w->value, &at->o_b->value);
    op_transpose(&h, &t); /* back to [n, c, hw] */
    tensor x3 = tensor_view(x->backend, DT_F32, 3, (int64_t[]){n, c, hw}, x->data);
    op_axpby(&x3, 1.0f, &x3, 1.0f, &h);
    arena_release(a, mark);
}

static void mid_block(vae_model *m, const vae_mid *mid, tensor *x) {
    resnet(m, &mid->res[0], x);
    if (m->cfg.mid_attention) attention(m, &mid->attn, x);
    resnet(m, &mid->res[1], x);
}

void vae_encode(vae_model *m, const tensor *x, tensor *moments) {
    const vae_config *c = &m->cfg;
    arena *a = &m->act;
    arena_reset(a);
    int64_t n = x->shape[0], h = x->shape[2], w = x->shape[3];
    tensor cur = like(a, n, c->block_out_channels[0], h, w);
    conv(&cur, x, m->enc_in_w, m->enc_in_b, 1, 1);
    for (int i = 0; i < c->n_blocks; i++) {
        for (int j = 0; j < c->layers_per_block; j++) resnet(m, &m->enc_res[i * c->layers_per_block + j], &cur);
        if (i < c->n_blocks - 1) {
            /* Downsample2D with padding 0: pad right and bottom by one, then stride 2 */
            h = (h - 2) / 2 + 1, w = (w - 2) / 2 + 1;
            tensor d = like(a, n, cur.shape[1], h, w);
            conv2d_params p = {.stride = 2, .pad_top = 0, .pad_left = 0, .pad_bottom = 1, .pad_right = 1};
            op_conv2d(&d, &cur, &m->down_w[i]->value, &m->down_b[i]->value, p);
            cur = d;
        }
    }
    mid_block(m, &m->enc_mid, &cur);
    tensor t = norm(m, &cur, m->enc_norm_w, m->enc_norm_b, 1);
    if (!c->use_quant_conv) {
        conv(moments, &t, m->enc_out_w, m->enc_out_b, 1, 1);
        return;
    }
    tensor pre = like(a, n, 2 * c->latent_channels, h, w);
    conv(&pre, &t, m->enc_out_w, m->enc_out_b, 1, 1);
    conv(moments, &pre, m->quant_w, m->quant_b, 1, 0);
}

void vae_decode(vae_model *m, const tensor *z, tensor *image) {
    const vae_config *c = &m->cfg;
    arena *a = &m->act;
    arena_reset(a);
    int64_t n = z->shape[0], h = z->shape[2], w = z->shape[3];
    const int nb = c->n_blocks, L = c->layers_per_block + 1;
    const tensor *in = z;
    tensor pq;
    if (c->use_post_quant_conv) {
        pq = like(a, n, c->latent_channels, h, w);
        conv(&pq, z, m->post_quant_w, m->post_quant_b, 1, 0);
        in = &pq;
    }
    tensor cur = like(a, n, c->block_out_channels[nb - 1], h, w);
    conv(&cur, in, m->dec_in_w, m->dec_in_b, 1, 1);
    mid_block(m, &m->dec_mid, &cur);
    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < L; j++) resnet(m, &m->dec_res[i * L + j], &cur);
        if (i < nb - 1) {
            h *= 2, w *= 2;
            tensor up = like(a, n, cur.shape[1], h, w), y = like(a, n, cur.shape[1], h, w);
            op_upsample_nearest(&up, &cur);
            conv(&y, &up, m->up_w[i], m->up_b[i], 1, 1);
            cur = y;
        }
    }
    tensor t = norm(m, &cur, m->dec_norm_w, m->dec_norm_b, 1);
    conv(image, &t, m->dec_out_w, m->dec_out_b, 1, 1);
}
