/* unet.h - diffusers' UNet2DConditionModel, forward and backward.
 *
 * The configurations of SD 1.x, 2.x, SDXL and LCM students: down blocks
 * CrossAttnDownBlock2D / DownBlock2D, mid block UNetMidBlock2DCrossAttn (or
 * none), up blocks CrossAttnUpBlock2D / UpBlock2D, Transformer2DModel with
 * BasicTransformerBlocks (self-attention, cross-attention, GEGLU feed-forward),
 * "default" or "scale_shift" resnets, an optional LCM guidance embedding
 * (time_cond_proj_dim) and SDXL's "text_time" added conditioning.
 *
 * Parameters live in one flat buffer (params.h) under their diffusers names;
 * activations come from the model's arena (arena.h), so that a steady-state
 * training loop allocates nothing. The backward ADDS parameter gradients into
 * the flat gradient buffer. Every computation is f32. */
#ifndef LCM_UNET_H
#define LCM_UNET_H

#include <stdint.h>

#include "arena.h"
#include "params.h"

struct backend;
struct cJSON;

#define UNET_MAX_BLOCKS 8

typedef struct unet_config {
    int in_channels, out_channels;
    int n_blocks, block_out_channels[UNET_MAX_BLOCKS];
    int down_cross[UNET_MAX_BLOCKS]; /* CrossAttnDownBlock2D (1) or DownBlock2D (0) */
    int up_cross[UNET_MAX_BLOCKS];   /* up block i (deepest first): CrossAttnUpBlock2D (1) or UpBlock2D */
    int has_mid;                     /* UNetMidBlock2DCrossAttn, or no mid block */
    int layers_per_block[UNET_MAX_BLOCKS];
    int transformer_layers[UNET_MAX_BLOCKS];    /* per down block; the mid block uses the last */
    int up_transformer_layers[UNET_MAX_BLOCKS]; /* per up block (reverse_transformer_layers_per_block) */
    int heads[UNET_MAX_BLOCKS];                 /* attention heads per down block (see unet_config.c) */
    int cross_attention_dim[UNET_MAX_BLOCKS];
    int only_cross_attention[UNET_MAX_BLOCKS];
    int use_linear_projection, upcast_attention, scale_shift, center_input_sample;
    int groups;
    float norm_eps, mid_block_scale_factor;
    int downsample_padding, conv_in_kernel, conv_out_kernel;
    int flip_sin_to_cos;
    float freq_shift;
    int time_embed_dim, time_cond_proj_dim;
    int text_time; /* addition_embed_type "text_time" (SDXL) */
    int addition_time_embed_dim, projection_class_embeddings_input_dim;
    struct cJSON *json; /* the whole config, kept to write it back (owned) */
} unet_config;

/* Parses a config.json object (a copy of root is kept). name is for messages.
 * Unsupported options fail with a message naming the key. 0, or -1 with err. */
int unet_config_parse(unet_config *c, const struct cJSON *root, const char *name, char *err);
/* Sets an integer key (value < 0: null), e.g. time_cond_proj_dim for a
 * student, and parses the config again. 0, or -1 with err. */
int unet_config_set_int(unet_config *c, const char *key, long long value, char *err);
void unet_config_free(unet_config *c);

typedef struct unet_inputs {
    const tensor *sample;                /* [B, in_channels, H, W] */
    const float *timesteps;              /* host, [B] */
    const tensor *encoder_hidden_states; /* [B, L, cross_attention_dim] */
    const tensor *timestep_cond;         /* [B, time_cond_proj_dim], or NULL when the config has none */
    const tensor *text_embeds;           /* SDXL: [B, P - 6 addition_time_embed_dim], else NULL */
    const tensor *time_ids;              /* SDXL: [B, 6], else NULL */
} unet_inputs;

struct unet_net; /* layers and saved activations (unet_layers.h) */

typedef struct unet_model {
    unet_config cfg;
    params ps;
    arena act;
    int checkpointing; /* the forward keeps block inputs only; the backward recomputes each block */
    struct unet_net *net;
    struct unet_lora *lora; /* adapters applied in the forward and backward (unet_lora.h), or NULL; not owned */
} unet_model;

/* path: a UNet folder, or a pipeline folder (its unet/). train: allocate the
 * gradient buffer. 0, or -1 with err. */
int unet_load(unet_model *m, const char *path, const struct backend *be, int train, char *err);
/* A fresh model for cfg (copied), parameters initialised as PyTorch does
 * (uniform +-1/sqrt(fan_in) for weights and biases, norms 1 and 0) from seed. */
int unet_from_config(unet_model *m, const unet_config *cfg, const struct backend *be, int train, uint64_t seed, char *err);
/* Copies every parameter of src that dst has under the same name and shape;
 * returns how many of dst's parameters src lacked (their names into
 * missing[0..max) when given). */
int unet_copy_params(unet_model *dst, const unet_model *src, const char **missing, int max);
void unet_free(unet_model *m);

/* out [B, out_channels, H, W]. With keep_for_backward, the activations the
 * backward needs stay in the arena until the next forward. */
void unet_forward(unet_model *m, unet_inputs in, tensor *out, int keep_for_backward);
/* After unet_forward(.., 1): adds the parameter gradients of <dout, out> into
 * the gradient buffer; writes the input gradients that are not NULL. */
void unet_backward(unet_model *m, const tensor *dout, tensor *dsample, tensor *dencoder_hidden_states);

/* Writes dir/config.json and dir/diffusion_pytorch_model.safetensors (f32)
 * that diffusers loads: built in "dir.tmp", then renamed over dir. */
int unet_save(const unet_model *m, const char *dir, char *err);

#endif
