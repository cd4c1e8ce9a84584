/* unet_lora.h - LoRA adapters on a UNet, as PEFT's LoraLayer applies them:
 * y = base(x) + scale * B(A(x)), scale = alpha / rank, on the linear and conv
 * layers whose module path ends in one of the target names (the LCM-LoRA
 * scripts' list: to_q, to_k, to_v, to_out.0, proj_in, proj_out,
 * ff.net.0.proj, ff.net.2, conv1, conv2, conv_shortcut, downsamplers.0.conv,
 * upsamplers.0.conv, time_emb_proj). A linear [out, in] gets lora_A [r, in]
 * and lora_B [out, r]; a conv [out, in, kh, kw] gets lora_A [r, in, kh, kw]
 * (the base's stride and padding) and lora_B [out, r, 1, 1].
 *
 * The adapters live in their own parameter store (so that the optimizer,
 * the gradient norm and the checkpoints see only them) and are attached to a
 * unet_model through m->lora; any model of the same config may use them
 * (lcm-step lends the student's to the teacher for the no-grad target). The
 * base weights stay as they are. The
 * backward recomputes A(x) instead of keeping it. */
#ifndef LCM_UNET_LORA_H
#define LCM_UNET_LORA_H

#include "ops.h"
#include "unet.h"

/* The file name diffusers' save_lora_weights and load_lora_weights use. */
#define UNET_LORA_FILE "pytorch_lora_weights.safetensors"

typedef struct unet_lora_module {
    size_t base_offset; /* the base layer weight's place in the parameter buffer: the same in every model of a config */
    param *a, *b;      /* lora_A.weight, lora_B.weight */
    char *path;        /* the module path, e.g. down_blocks.0.resnets.0.conv1 */
} unet_lora_module;

typedef struct unet_lora {
    int rank;
    float alpha, scale;
    params ps; /* names <module path>.lora_A.weight / .lora_B.weight */
    unet_lora_module *mods;
    int n;
    size_t base_total; /* the base model's parameter count, to refuse a model of another config */
} unet_lora;

/* Adapters for every target layer of m (not attached yet); with_grad: a
 * gradient buffer for training. lora_A is drawn as PEFT does (kaiming
 * uniform, a = sqrt(5): U(+-1/sqrt(fan_in))) from seed, lora_B is zero.
 * 0, or -1 with err. */
int unet_lora_create(unet_lora *l, const unet_model *m, int rank, float alpha, int with_grad, uint64_t seed, char *err);
void unet_lora_free(unet_lora *l);
/* Reads adapters saved in the diffusers layout (keys unet.<path>.lora_A.weight
 * / .lora_B.weight, as save_lora_weights writes them; a file without the
 * "unet." prefix is accepted too). Every adapter must be present with its
 * shape, and the file must hold no other UNet adapter. 0, or -1 with err. */
int unet_lora_load(unet_lora *l, const char *path, char *err);
/* Writes them in that layout (f32, atomically). 0, or -1 with err. */
int unet_lora_save(const unet_lora *l, const char *path, char *err);

/* kohya's name of a module path (sd-scripts networks/lora.py, which
 * stable-diffusion.cpp and A1111 read): "lora_unet_" + the path with every
 * "." replaced by "_". The adapters are <name>.lora_down.weight (lora_A),
 * <name>.lora_up.weight (lora_B) and <name>.alpha (a 0-d f32). */
void unet_lora_kohya_name(const char *path, char *out, size_t size);
/* Rewrites a diffusers-layout LoRA file (unet.<path>.lora_A.weight /
 * .lora_B.weight, any float dtype, kept) in kohya's layout, atomically, with
 * <name>.alpha = the metadata's lora_alpha where the file has one (ours),
 * else the module's rank (the scale 1 diffusers gives such a file). Other
 * tensors (text encoder adapters) are left out; their count goes to
 * *skipped. 0, or -1 with err. */
int unet_lora_to_kohya(const char *in, const char *out, int *skipped, char *err);

/* What a LoRA file says of its adapters: the rank (lora_A's first dimension;
 * every adapter must have the same) and alpha. Where alpha comes from:
 * kohya's .alpha tensors (all equal), else our "lora_alpha" metadata (which
 * lcm-step writes), else the rank (scale 1: what diffusers 0.30.3's
 * load_lora_weights does with a diffusers-layout file, whose metadata it
 * does not read). 0, or -1 with err. */
typedef enum { LORA_ALPHA_RANK, LORA_ALPHA_METADATA, LORA_ALPHA_TENSORS } lora_alpha_source;
int unet_lora_file_info(const char *path, int *rank, float *alpha, lora_alpha_source *src, char *err);
/* Adapters for m from a LoRA file (diffusers or kohya layout), not
 * attached, with scale = lora_scale * alpha / rank (alpha as
 * unet_lora_file_info finds it). 0, or -1 with err. */
int unet_lora_open(unet_lora *l, const unet_model *m, const char *path, float lora_scale, char *err);
/* Bakes the adapters into m's weights: W += scale * (B @ A), a conv's
 * B [out, r, 1, 1] @ A [r, in, kh, kw] as a [out, in*kh*kw] product (PEFT's
 * merge). m must be of the adapters' config and must not have them attached. */
void unet_lora_merge(unet_model *m, const unet_lora *l);

/* The layer hooks of unet_layers.c: they do nothing when the model has no
 * adapter on w. Forward: y += scale * B(A(x)). Backward: adds the adapters'
 * gradients and, when dx is given, their share of the input gradient into dx.
 * A 1x1 conv may be run as a linear on channel-last tokens (proj_in/out). */
void unet_lora_linear(unet_model *m, const param *w, const tensor *x, tensor *y);
void unet_lora_linear_backward(unet_model *m, const param *w, const tensor *x, const tensor *dy, tensor *dx);
void unet_lora_conv(unet_model *m, const param *w, const tensor *x, tensor *y, conv2d_params p);
void unet_lora_conv_backward(unet_model *m, const param *w, const tensor *x, const tensor *dy, tensor *dx, conv2d_params p);

#endif
