/* unet.c - loading the UNet, and the forward and backward of the whole net.
 *
 * Memory: the arena is reset at each forward. Block boundaries (every
 * down-path output, which the up path reads as skips, the mid and up block
 * outputs) are allocated first; each block's own activations after a mark.
 * Without checkpointing they stay for the backward; with it (and in
 * inference) each block releases them, and the backward runs the block's
 * forward again before its backward. The backward carries the gradient from
 * block to block in two ping-pong buffers and keeps one gradient per skip. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "modeldir.h"
#include "ops.h"
#include "rng.h"
#include "unet_layers.h"
#include "util.h"
#include "weights.h"

/* ---- construction ---- */

static void init_model(unet_model *m, const backend *be, int train) {
    params_init(&m->ps);
    unet_build(m);
    params_alloc(&m->ps, be, train);
    arena_init(&m->act, be, 0);
}

int unet_load(unet_model *m, const char *path, const backend *be, int train, char *err) {
    memset(m, 0, sizeof *m);
    model_dir *md = model_open(path, "unet", MODEL_VARIANT_AUTO, err);
    if (!md) return -1;
    int rc = unet_config_parse(&m->cfg, md->config.root, md->config.name, err);
    if (!rc) {
        init_model(m, be, train);
        rc = weights_load(&m->ps, md, err);
    }
    model_close(md);
    if (rc) unet_free(m);
    return rc;
}

/* PyTorch's defaults: Linear and Conv2d weights and biases uniform in
 * +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) gives the same bound),
 * norm weights 1, norm biases 0. */
static void init_param(const params *ps, param *p, rng *r) {
    size_t n = (size_t)tensor_numel(&p->value);
    float *host = xmalloc(n * sizeof(float));
    const param *w = p;
    size_t len = strlen(p->name);
    if (p->value.ndim == 1 && len > 5 && !strcmp(p->name + len - 5, ".bias")) {
        char *wname = xmalloc(len + 3);
        memcpy(wname, p->name, len - 5);
        strcpy(wname + len - 5, ".weight");
        w = params_find(ps, wname);
        free(wname);
    }
    if (w && w->value.ndim >= 2) {
        float bound = 1.0f / sqrtf((float)(tensor_numel(&w->value) / w->value.shape[0]));
        for (size_t i = 0; i < n; i++) host[i] = (2.0f * rng_uniform(r) - 1.0f) * bound;
    } else {
        float v = p == w ? 1.0f : 0.0f; /* a norm's weight, or its bias */
        for (size_t i = 0; i < n; i++) host[i] = v;
    }
    tensor_from_host(&p->value, host);
    free(host);
}

int unet_from_config(unet_model *m, const unet_config *cfg, const backend *be, int train, uint64_t seed, char *err) {
    memset(m, 0, sizeof *m);
    if (unet_config_parse(&m->cfg, cfg->json, "config", err)) return -1;
    init_model(m, be, train);
    rng r;
    rng_seed(&r, seed, 0);
    for (int i = 0; i < m->ps.n; i++) init_param(&m->ps, m->ps.p[i], &r);
    return 0;
}

int unet_copy_params(unet_model *dst, const unet_model *src, const char **missing, int max) {
    int n_missing = 0;
    for (int i = 0; i < dst->ps.n; i++) {
        param *d = dst->ps.p[i];
        const param *s = params_find(&src->ps, d->name);
        if (s && tensor_numel(&s->value) == tensor_numel(&d->value)) {
            tensor_copy(&d->value, &s->value);
            continue;
        }
        if (missing && n_missing < max) missing[n_missing] = d->name;
        n_missing++;
    }
    return n_missing;
}

void unet_free(unet_model *m) {
    params_free(&m->ps);
    arena_free(&m->act);
    unet_net_free(m->net);
    unet_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

/* ---- bookkeeping of skips ---- */

static tensor act4(unet_model *m, int64_t a, int64_t b, int64_t c, int64_t d) { return arena_tensor4(&m->act, DT_F32, a, b, c, d); }
static tensor act_like(unet_model *m, const tensor *t) { return arena_tensor(&m->act, DT_F32, t->ndim, t->shape); }
static void add_into(tensor *acc, const tensor *x) { op_axpby(acc, 1.0f, acc, 1.0f, x); }
static tensor *G(param *p) { return p && p->grad.data ? &p->grad : NULL; }

/* Down block i writes skips[first .. first + n_layers (+ 1 with a downsampler)). */
static int down_first_skip(const unet_net *n, int i) {
    int k = 1;
    for (int b = 0; b < i; b++) k += n->down[b].n_layers + (n->down[b].sampler != NULL);
    return k;
}

/* Resnet j of up block i takes the last skip not yet taken. */
static int up_skip(const unet_net *n, int i, int j) {
    int used = 0;
    for (int b = 0; b < i; b++) used += n->up[b].n_layers;
    return n->fw.n_skips - 1 - used - j;
}

static tensor *up_input(unet_model *m, int i) {
    unet_net *n = m->net;
    if (i > 0) return &n->fw.up_out[i - 1];
    return m->cfg.has_mid ? &n->fw.mid_out : &n->fw.skips[n->fw.n_skips - 1];
}

static void note_boundary(unet_net *n, const tensor *t) {
    if (tensor_numel(t) > n->fw.max_boundary) n->fw.max_boundary = tensor_numel(t);
}

/* ---- blocks: output allocation, then the computation ---- */

static void down_alloc(unet_model *m, int i) {
    unet_net *n = m->net;
    unet_block *b = &n->down[i];
    const tensor *x = &n->fw.down_in[i];
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], C = m->cfg.block_out_channels[i];
    int k = down_first_skip(n, i);
    for (int j = 0; j < b->n_layers; j++) n->fw.skips[k + j] = act4(m, B, C, H, W), note_boundary(n, &n->fw.skips[k + j]);
    if (b->sampler) {
        int64_t h = m->cfg.downsample_padding ? (H - 1) / 2 + 1 : (H - 2) / 2 + 1, w = m->cfg.downsample_padding ? (W - 1) / 2 + 1 : (W - 2) / 2 + 1;
        n->fw.skips[k + b->n_layers] = act4(m, B, C, h, w);
    }
}

static void down_run(unet_model *m, int i) {
    unet_net *n = m->net;
    unet_block *b = &n->down[i];
    int k = down_first_skip(n, i);
    const tensor *cur = &n->fw.down_in[i];
    for (int j = 0; j < b->n_layers; j++) {
        tensor *o = &n->fw.skips[k + j];
        if (b->has_attn) {
            b->sv.rout[j] = act_like(m, o);
            unet_resnet_forward(m, &b->res[j], cur, &n->fw.semb, &b->sv.rout[j]);
            unet_transformer_forward(m, &b->attn[j], &b->sv.rout[j], &n->fw.ctx, o);
        } else {
            unet_resnet_forward(m, &b->res[j], cur, &n->fw.semb, o);
        }
        cur = o;
    }
    if (b->sampler) unet_downsample_forward(m, b->sampler, cur, &n->fw.skips[k + b->n_layers]);
}

static void mid_run(unet_model *m) {
    unet_net *n = m->net;
    unet_block *b = &n->mid;
    const tensor *x = &n->fw.skips[n->fw.n_skips - 1];
    b->sv.rout[0] = act_like(m, x), b->sv.rout[1] = act_like(m, x);
    unet_resnet_forward(m, &b->res[0], x, &n->fw.semb, &b->sv.rout[0]);
    unet_transformer_forward(m, &b->attn[0], &b->sv.rout[0], &n->fw.ctx, &b->sv.rout[1]);
    unet_resnet_forward(m, &b->res[1], &b->sv.rout[1], &n->fw.semb, &n->fw.mid_out);
}

/* diffusers passes the upsampler the size of the next skip whenever the
 * input's size is not a multiple of 2^(number of upsamplers); else x2. */
static void up_alloc(unet_model *m, int i, int forward_upsample_size) {
    unet_net *n = m->net;
    unet_block *b = &n->up[i];
    const tensor *x = &n->fw.skips[up_skip(n, i, 0)];
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3], C = m->cfg.block_out_channels[m->cfg.n_blocks - 1 - i];
    if (b->sampler) {
        const tensor *next = &n->fw.skips[up_skip(n, i + 1, 0)];
        H = forward_upsample_size ? next->shape[2] : 2 * H, W = forward_upsample_size ? next->shape[3] : 2 * W;
    }
    n->fw.up_out[i] = act4(m, B, C, H, W);
    note_boundary(n, &n->fw.up_out[i]);
}

static void up_run(unet_model *m, int i) {
    unet_net *n = m->net;
    unet_block *b = &n->up[i];
    const tensor *cur = up_input(m, i);
    tensor last;
    for (int j = 0; j < b->n_layers; j++) {
        const tensor *sk = &n->fw.skips[up_skip(n, i, j)];
        int64_t B = sk->shape[0], H = sk->shape[2], W = sk->shape[3], C = cur->shape[1];
        if (cur->shape[2] != H || cur->shape[3] != W) die("unet: up block %d: skip %lldx%lld, input %lldx%lld", i, (long long)H, (long long)W, (long long)cur->shape[2], (long long)cur->shape[3]);
        tensor *cat = &b->sv.cat[j];
        *cat = act4(m, B, C + sk->shape[1], H, W);
        op_copy_channels(cat, 0, cur, 0, C);
        op_copy_channels(cat, C, sk, 0, sk->shape[1]);
        int final = j == b->n_layers - 1 && !b->sampler;
        tensor *o = final ? &n->fw.up_out[i] : &last;
        if (!final) last = act4(m, B, b->res[j].out, H, W);
        if (b->has_attn) {
            b->sv.rout[j] = act4(m, B, b->res[j].out, H, W);
            unet_resnet_forward(m, &b->res[j], cat, &n->fw.semb, &b->sv.rout[j]);
            unet_transformer_forward(m, &b->attn[j], &b->sv.rout[j], &n->fw.ctx, o);
        } else {
            unet_resnet_forward(m, &b->res[j], cat, &n->fw.semb, o);
        }
        cur = o; /* layers keep copies of their inputs' descriptors, so `last` may be reused */
    }
    if (b->sampler) unet_upsample_forward(m, b->sampler, cur, &n->fw.up_out[i]);
}

/* ---- forward ---- */

static void check_inputs(const unet_model *m, const unet_inputs *in, const tensor *out) {
    const unet_config *c = &m->cfg;
    const tensor *s = in->sample, *e = in->encoder_hidden_states;
    if (s->ndim != 4 || s->shape[1] != c->in_channels || !in->timesteps)
        die("unet: sample must be [B, %d, H, W], with B timesteps", c->in_channels);
    if (!e || e->ndim != 3 || e->shape[0] != s->shape[0])
        die("unet: encoder_hidden_states must be [B, L, D]");
    for (int i = 0; i < c->n_blocks; i++)
        if (e->shape[2] != c->cross_attention_dim[i]) die("unet: encoder_hidden_states width %lld, the config's cross_attention_dim is %d", (long long)e->shape[2], c->cross_attention_dim[i]);
    if (out->ndim != 4 || out->shape[0] != s->shape[0] || out->shape[1] != c->out_channels || out->shape[2] != s->shape[2] || out->shape[3] != s->shape[3])
        die("unet: out must be [B, %d, H, W] like the sample", c->out_channels);
}

/* Runs a block between a mark and (unless kept) its release. */
#define RUN_BLOCK(m, keep, call)                                  \
    do {                                                          \
        arena_mark mark_ = arena_get_mark(&(m)->act);             \
        call;                                                     \
        if (!(keep) || (m)->checkpointing) arena_release(&(m)->act, mark_); \
    } while (0)

void unet_forward(unet_model *m, unet_inputs in, tensor *out, int keep) {
    const unet_config *c = &m->cfg;
    unet_net *n = m->net;
    check_inputs(m, &in, out);
    arena_reset(&m->act);
    int nb = c->n_blocks;
    int64_t B = in.sample->shape[0], H = in.sample->shape[2], W = in.sample->shape[3];
    n->B = (int)B, n->fw.ctx = *in.encoder_hidden_states, n->fw.max_boundary = 0;
    n->fw.sample = *in.sample;
    unet_time_forward(m, &in);
    if (c->center_input_sample) {
        n->fw.sample = act_like(m, in.sample);
        op_fill(&n->fw.sample, -1.0f);
        op_axpby(&n->fw.sample, 2.0f, in.sample, 1.0f, &n->fw.sample);
    }
    int n_skips = 1;
    for (int i = 0; i < nb; i++) n_skips += n->down[i].n_layers + (n->down[i].sampler != NULL);
    if (n->fw.n_skips != n_skips) n->fw.skips = xrealloc(n->fw.skips, sizeof(tensor) * (size_t)n_skips), n->fw.n_skips = n_skips;
    n->fw.skips[0] = act4(m, B, c->block_out_channels[0], H, W);
    note_boundary(n, &n->fw.skips[0]);
    op_conv2d(&n->fw.skips[0], &n->fw.sample, &n->conv_in_w->value, &n->conv_in_b->value, conv2d_same_pad(1, c->conv_in_kernel / 2));
    for (int i = 0; i < nb; i++) {
        n->fw.down_in[i] = n->fw.skips[down_first_skip(n, i) - 1];
        down_alloc(m, i);
        RUN_BLOCK(m, keep, down_run(m, i));
    }
    if (c->has_mid) {
        n->fw.mid_out = act_like(m, &n->fw.skips[n_skips - 1]);
        RUN_BLOCK(m, keep, mid_run(m));
    }
    int factor = 1 << (nb - 1), forward_upsample_size = H % factor != 0 || W % factor != 0;
    for (int i = 0; i < nb; i++) {
        up_alloc(m, i, forward_upsample_size);
        RUN_BLOCK(m, keep, up_run(m, i));
    }
    tensor *last = &n->fw.up_out[nb - 1];
    n->fw.normed = act_like(m, last);
    n->fw.norm_mean = arena_tensor(&m->act, DT_F32, 2, (int64_t[]){B, c->groups});
    n->fw.norm_rstd = arena_tensor(&m->act, DT_F32, 2, (int64_t[]){B, c->groups});
    op_group_norm(&n->fw.normed, &n->fw.norm_mean, &n->fw.norm_rstd, last, &n->norm_out_w->value, &n->norm_out_b->value, c->groups, c->norm_eps, 1);
    op_conv2d(out, &n->fw.normed, &n->conv_out_w->value, &n->conv_out_b->value, conv2d_same_pad(1, c->conv_out_kernel / 2));
    n->fw.kept = keep;
}

/* ---- backward ---- */

typedef struct bw_state {
    tensor *dskips; /* the gradient of each skip (down-path output) */
    tensor dsemb;   /* SiLU(emb)'s gradient, summed over every resnet */
    tensor *dctx;   /* NULL when not wanted */
    float *pingpong[2];
} bw_state;

static tensor in_buffer(float *buf, const tensor *like) { return tensor_view(like->backend, DT_F32, like->ndim, like->shape, buf); }

/* dh: the gradient of up_out[i]; din: of the block's input. */
static void up_backward(unet_model *m, int i, bw_state *st, const tensor *dh, tensor *din) {
    unet_net *n = m->net;
    unet_block *b = &n->up[i];
    tensor g = *dh;
    if (b->sampler) {
        tensor t = act_like(m, &b->sampler->sv.x);
        unet_upsample_backward(m, b->sampler, &g, &t);
        g = t;
    }
    for (int j = b->n_layers - 1; j >= 0; j--) {
        if (b->has_attn) {
            tensor dr = act_like(m, &b->sv.rout[j]);
            unet_transformer_backward(m, &b->attn[j], &g, &dr, st->dctx);
            g = dr;
        }
        tensor dcat = act_like(m, &b->sv.cat[j]);
        unet_resnet_backward(m, &b->res[j], &g, &dcat, &st->dsemb);
        int k = up_skip(n, i, j);
        int64_t cs = n->fw.skips[k].shape[1], cin = dcat.shape[1] - cs;
        op_copy_channels(&st->dskips[k], 0, &dcat, cin, cs);
        if (j == 0) {
            op_copy_channels(din, 0, &dcat, 0, cin);
        } else {
            g = act4(m, dcat.shape[0], cin, dcat.shape[2], dcat.shape[3]);
            op_copy_channels(&g, 0, &dcat, 0, cin);
        }
    }
}

static void mid_backward(unet_model *m, bw_state *st, const tensor *dh, tensor *din) {
    unet_block *b = &m->net->mid;
    tensor da = act_like(m, &b->sv.rout[1]), dr = act_like(m, &b->sv.rout[0]);
    unet_resnet_backward(m, &b->res[1], dh, &da, &st->dsemb);
    unet_transformer_backward(m, &b->attn[0], &da, &dr, st->dctx);
    unet_resnet_backward(m, &b->res[0], &dr, din, &st->dsemb);
}

/* dh: the gradient of the block's last output from the layers above it (its
 * skip's share is added here); din: of the block's input, without the share
 * of that input's own skip. */
static void down_backward(unet_model *m, int i, bw_state *st, const tensor *dh, tensor *din) {
    unet_net *n = m->net;
    unet_block *b = &n->down[i];
    int k = down_first_skip(n, i), L = b->n_layers, last = k + L - (b->sampler ? 0 : 1);
    add_into(&st->dskips[last], dh);
    tensor *g = &st->dskips[last];
    if (b->sampler) {
        tensor t = act_like(m, &n->fw.skips[k + L - 1]);
        unet_downsample_backward(m, b->sampler, g, &t);
        g = &st->dskips[k + L - 1];
        add_into(g, &t);
    }
    for (int j = L - 1; j >= 0; j--) {
        tensor dr, *gg = g;
        if (b->has_attn) {
            dr = act_like(m, &b->sv.rout[j]);
            unet_transformer_backward(m, &b->attn[j], g, &dr, st->dctx);
            gg = &dr;
        }
        if (j == 0) {
            unet_resnet_backward(m, &b->res[j], gg, din, &st->dsemb);
        } else {
            tensor t = act_like(m, &n->fw.skips[k + j - 1]);
            unet_resnet_backward(m, &b->res[j], gg, &t, &st->dsemb);
            g = &st->dskips[k + j - 1];
            add_into(g, &t);
        }
    }
}

/* Runs a block's backward between a mark and its release, after running its
 * forward again when checkpointing. */
#define BACKWARD_BLOCK(m, recompute, call)                 \
    do {                                                   \
        arena_mark mark_ = arena_get_mark(&(m)->act);      \
        if ((m)->checkpointing) recompute;                 \
        call;                                              \
        arena_release(&(m)->act, mark_);                   \
    } while (0)

void unet_backward(unet_model *m, const tensor *dout, tensor *dsample, tensor *dctx) {
    const unet_config *c = &m->cfg;
    unet_net *n = m->net;
    if (!n->fw.kept) die("unet_backward: the forward did not keep its activations (keep_for_backward)");
    int nb = c->n_blocks;
    int64_t B = n->B;
    bw_state st = {.dctx = dctx};
    st.dskips = xmalloc(sizeof(tensor) * (size_t)n->fw.n_skips);
    for (int k = 0; k < n->fw.n_skips; k++) st.dskips[k] = act_like(m, &n->fw.skips[k]);
    st.dsemb = act_like(m, &n->fw.semb);
    op_fill(&st.dsemb, 0.0f);
    if (dctx) op_fill(dctx, 0.0f);
    for (int p = 0; p < 2; p++) st.pingpong[p] = arena_alloc(&m->act, sizeof(float) * (size_t)n->fw.max_boundary);
    int cur = 0;
    /* the head: conv_out(SiLU(conv_norm_out(x))) */
    tensor *top = &n->fw.up_out[nb - 1], dh = in_buffer(st.pingpong[cur], top);
    {
        arena_mark mark = arena_get_mark(&m->act);
        tensor dnormed = act_like(m, &n->fw.normed);
        op_conv2d_backward(&dnormed, G(n->conv_out_w), G(n->conv_out_b), &n->fw.normed, &n->conv_out_w->value, dout,
                           conv2d_same_pad(1, c->conv_out_kernel / 2));
        op_group_norm_backward(&dh, G(n->norm_out_w), G(n->norm_out_b), top, &n->fw.norm_mean, &n->fw.norm_rstd, &n->norm_out_w->value,
                               &n->norm_out_b->value, &dnormed, c->groups, 1);
        arena_release(&m->act, mark);
    }
    for (int i = nb - 1; i >= 0; i--, cur ^= 1) {
        tensor din = in_buffer(st.pingpong[cur ^ 1], up_input(m, i));
        BACKWARD_BLOCK(m, up_run(m, i), up_backward(m, i, &st, &dh, &din));
        dh = din;
    }
    if (c->has_mid) {
        tensor din = in_buffer(st.pingpong[cur ^ 1], &n->fw.skips[n->fw.n_skips - 1]);
        BACKWARD_BLOCK(m, mid_run(m), mid_backward(m, &st, &dh, &din));
        dh = din, cur ^= 1;
    }
    for (int i = nb - 1; i >= 0; i--, cur ^= 1) {
        tensor din = in_buffer(st.pingpong[cur ^ 1], &n->fw.down_in[i]);
        BACKWARD_BLOCK(m, down_run(m, i), down_backward(m, i, &st, &dh, &din));
        dh = din;
    }
    /* conv_in: its output is skip 0 */
    add_into(&st.dskips[0], &dh);
    op_conv2d_backward(dsample, G(n->conv_in_w), G(n->conv_in_b), &n->fw.sample, &n->conv_in_w->value, &st.dskips[0],
                       conv2d_same_pad(1, c->conv_in_kernel / 2));
    if (dsample && c->center_input_sample) op_axpby(dsample, 2.0f, dsample, 0, NULL);
    unet_time_backward(m, &st.dsemb);
    free(st.dskips);
    (void)B;
}
