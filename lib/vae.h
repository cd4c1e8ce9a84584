/* vae.h - diffusers' AutoencoderKL, forward only (frozen in LCD): the
 * encoder up to the posterior moments (quant_conv's output) and the decoder
 * from post_quant_conv, for any diffusers config. */
#ifndef LCM_VAE_H
#define LCM_VAE_H

#include "arena.h"
#include "params.h"

struct backend;

#define VAE_MAX_BLOCKS 8

typedef struct vae_config {
    int in_channels, out_channels, latent_channels;
    int n_blocks, block_out_channels[VAE_MAX_BLOCKS];
    int layers_per_block, groups;
    float scaling_factor;
    int use_quant_conv, use_post_quant_conv, mid_attention;
} vae_config;

typedef struct vae_resnet {
    int in, out;
    param *norm1_w, *norm1_b, *conv1_w, *conv1_b, *norm2_w, *norm2_b, *conv2_w, *conv2_b, *short_w, *short_b;
} vae_resnet;

typedef struct vae_attention {
    int channels;
    param *norm_w, *norm_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
} vae_attention;

typedef struct vae_mid {
    vae_resnet res[2];
    vae_attention attn;
} vae_mid;

typedef struct vae_model {
    vae_config cfg;
    params ps;
    /* encoder */
    param *enc_in_w, *enc_in_b, *down_w[VAE_MAX_BLOCKS], *down_b[VAE_MAX_BLOCKS];
    vae_resnet *enc_res; /* [n_blocks][layers_per_block] */
    vae_mid enc_mid;
    param *enc_norm_w, *enc_norm_b, *enc_out_w, *enc_out_b, *quant_w, *quant_b;
    /* decoder */
    param *post_quant_w, *post_quant_b, *dec_in_w, *dec_in_b, *up_w[VAE_MAX_BLOCKS], *up_b[VAE_MAX_BLOCKS];
    vae_mid dec_mid;
    vae_resnet *dec_res; /* [n_blocks][layers_per_block + 1] */
    param *dec_norm_w, *dec_norm_b, *dec_out_w, *dec_out_b;
    arena act;
} vae_model;

/* path: a VAE folder, or a pipeline folder (its vae/). 0, or -1 with err. */
int vae_load(vae_model *m, const char *path, const struct backend *be, char *err);
void vae_free(vae_model *m);

/* x [B, in_channels, H, W] in [-1, 1] -> moments [B, 2 latent, H/f, W/f]
 * (mean then logvar, unscaled); f = 2^(n_blocks - 1). */
void vae_encode(vae_model *m, const tensor *x, tensor *moments);
/* z [B, latent, h, w] (unscaled: latent / scaling_factor) -> [B, out, h f, w f]. */
void vae_decode(vae_model *m, const tensor *z, tensor *image);
/* The spatial factor between image and latent. */
int vae_factor(const vae_model *m);

#endif
