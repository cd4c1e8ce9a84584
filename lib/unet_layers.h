/* unet_layers.h - the layers of the UNet, each with an explicit forward and
 * backward (internal to unet*.c and the unit tests).
 *
 * Conventions: a forward writes its result into a tensor the caller
 * allocated, takes its own activations from m->act and records in the
 * layer's `sv` what its backward needs (views into the arena, valid until the
 * caller releases them). A backward WRITES the input gradient into a tensor
 * the caller allocated, ADDS parameter gradients into the flat buffer, and
 * ADDS the gradients of shared inputs (the SiLU'd time embedding, the encoder
 * hidden states) into accumulators given by the caller; its temporaries are
 * released before it returns. */
#ifndef LCM_UNET_LAYERS_H
#define LCM_UNET_LAYERS_H

#include "unet.h"

typedef struct unet_resnet {
    int in, out;
    float out_scale; /* the output is divided by it (mid_block_scale_factor) */
    param *norm1_w, *norm1_b, *conv1_w, *conv1_b, *temb_w, *temb_b, *norm2_w, *norm2_b, *conv2_w, *conv2_b, *short_w, *short_b;
    struct unet_resnet_sv {
        tensor x, semb, mean1, rstd1, t1, tp, c1, mean2, rstd2, n2, m2, t2;
    } sv;
} unet_resnet;

typedef struct unet_attention {
    int heads, dim_head, inner, kv_in; /* kv_in: the width keys and values are projected from */
    int cross;                         /* keys and values from the encoder hidden states */
    param *q, *k, *v, *o_w, *o_b;
    struct unet_attention_sv {
        tensor x, ctx, q, k, v, o, lse;
    } sv;
} unet_attention;

typedef struct unet_tblock {
    int dim, ff_inner;
    param *n1_w, *n1_b, *n2_w, *n2_b, *n3_w, *n3_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b;
    unet_attention attn1, attn2;
    struct unet_tblock_sv {
        tensor h, mean1, rstd1, n1, h1, mean2, rstd2, n2, h2, mean3, rstd3, n3, f1, g;
    } sv;
} unet_tblock;

typedef struct unet_transformer {
    int channels, inner, n_layers;
    param *norm_w, *norm_b, *proj_in_w, *proj_in_b, *proj_out_w, *proj_out_b;
    unet_tblock *blocks;
    struct unet_transformer_sv {
        tensor x, mean, rstd, tok, *hs; /* hs[l]: the input of block l, hs[n_layers]: the last output */
    } sv;
} unet_transformer;

/* A conv that halves (Downsample2D) or doubles (Upsample2D) the size. */
typedef struct unet_sampler {
    int channels;
    param *w, *b;
    struct unet_sampler_sv {
        tensor x, up;
    } sv;
} unet_sampler;

typedef struct unet_block {
    int n_layers, has_attn;
    unet_resnet *res;
    unet_transformer *attn; /* NULL, or n_layers */
    unet_sampler *sampler;  /* NULL when the block has none */
    struct unet_block_sv {
        tensor *cat, *rout; /* up blocks: each resnet's concatenated input; resnet outputs (when attn follows) */
    } sv;
} unet_block;

typedef struct unet_net {
    int B; /* the batch of the last forward */
    param *conv_in_w, *conv_in_b, *conv_out_w, *conv_out_b, *norm_out_w, *norm_out_b;
    param *t1_w, *t1_b, *t2_w, *t2_b, *cond_w;    /* time_embedding.linear_1/2, cond_proj */
    param *a1_w, *a1_b, *a2_w, *a2_b;             /* add_embedding.linear_1/2 (text_time) */
    unet_block down[UNET_MAX_BLOCKS], up[UNET_MAX_BLOCKS], mid;
    /* Forward state: time embedding, block outputs (skips), inputs. */
    struct {
        tensor tcond, tsum, l1, s1, emb, semb, acat, al1, as1; /* time embedding chain */
        tensor ctx, sample;
        tensor *skips; /* every down-path output, in order */
        int n_skips;
        tensor down_in[UNET_MAX_BLOCKS], mid_out, up_out[UNET_MAX_BLOCKS], norm_mean, norm_rstd, normed;
        int64_t max_boundary; /* largest block input/output, elements */
        int kept;             /* the last forward kept what the backward needs */
    } fw;
} unet_net;

/* Registration (unet_build.c). */
void unet_build(unet_model *m);
void unet_net_free(unet_net *n);

/* Layers (unet_layers.c). semb: SiLU(time embedding) [B, time_embed_dim];
 * ctx: encoder hidden states [B, L, D]. */
void unet_resnet_forward(unet_model *m, unet_resnet *r, const tensor *x, const tensor *semb, tensor *y);
void unet_resnet_backward(unet_model *m, unet_resnet *r, const tensor *dy, tensor *dx, tensor *dsemb);
void unet_transformer_forward(unet_model *m, unet_transformer *t, const tensor *x, const tensor *ctx, tensor *y);
void unet_transformer_backward(unet_model *m, unet_transformer *t, const tensor *dy, tensor *dx, tensor *dctx);
void unet_downsample_forward(unet_model *m, unet_sampler *s, const tensor *x, tensor *y);
void unet_downsample_backward(unet_model *m, unet_sampler *s, const tensor *dy, tensor *dx);
/* y's spatial size is the target (2x, or the skip's size: see unet.c). */
void unet_upsample_forward(unet_model *m, unet_sampler *s, const tensor *x, tensor *y);
void unet_upsample_backward(unet_model *m, unet_sampler *s, const tensor *dy, tensor *dx);
/* The time embedding (with cond_proj and text_time) into n->fw.emb and n->fw.semb. */
void unet_time_forward(unet_model *m, const unet_inputs *in);
/* dsemb: the gradient of SiLU(emb), summed over every resnet. */
void unet_time_backward(unet_model *m, const tensor *dsemb);

#endif
