/* sampler.h - text-to-image sampling with a (student or teacher) UNet, a
 * scheduler (scheduler.h) and the VAE decoder, as diffusers'
 * LatentConsistencyModelPipeline and StableDiffusionPipeline run it.
 *
 * The models are the caller's (lcm-sample loads them; lcm-step samples its
 * validation images with the UNets it trains). With a UNet that has
 * time_cond_proj_dim, the guidance scale g enters as the w-embedding of
 * g - 1 (timestep_cond) and there is no classifier-free guidance; otherwise,
 * for g > 1, every step runs one UNet pass on 2B images (the unconditional
 * embedding, then the prompts) and guides eps = u + g (c - u).
 *
 * The UNet runs forward only, in its own activation arena: a trainer must
 * not call this between a forward it keeps for backward and that backward.
 *
 * An SDXL UNet (addition_embed_type text_time) also gets each image's pooled
 * prompt embedding and time_ids [H, W, 0, 0, H, W] (original size = target
 * size = the image's, crops (0, 0): StableDiffusionXLPipeline's defaults);
 * under CFG the unconditional rows get uncond_pooled (zeros when NULL).
 *
 * Every random draw belongs to one image (its own generator), or is replayed
 * from the caller's arrays, so that a batch's images do not depend on which
 * other images share it. */
#ifndef LCM_SAMPLER_H
#define LCM_SAMPLER_H

#include "rng.h"
#include "scheduler.h"
#include "unet.h"
#include "vae.h"

typedef struct sampler {
    unet_model *unet;
    vae_model *vae; /* NULL: no decoding */
    scheduler sch;
    double guidance_scale;
    int cfg;        /* real classifier-free guidance */
    int C, h, w;    /* latent shape */
    float *w_embedding; /* [time_cond_proj_dim], or NULL */
    int pooled_dim;     /* SDXL: the pooled embedding's width, else 0 */
    float time_ids[6];  /* SDXL: set by sampler_init from h, w and the VAE factor; the caller may change them */
    const float *uncond_pooled; /* SDXL under CFG: [pooled_dim], or NULL for zeros; the caller's */
} sampler;

/* h, w: the latent size. The scheduler is built from ns, x and o. 0, or -1
 * with err. */
int sampler_init(sampler *s, unet_model *unet, vae_model *vae, const noise_schedule *ns, const scheduler_extra *x,
                 const scheduler_options *o, double guidance_scale, int h, int w, char *err);
void sampler_free(sampler *s);

/* One image to sample. */
typedef struct sample_job {
    const float *prompt_embeds; /* [L, D] */
    float *latent;              /* in: the initial N(0, 1) noise [C, h, w]; out: the final latent (scaled) */
    const float *step_noise;    /* LCM: [n - 1, C, h, w] replayed noise, or NULL to draw from gen */
    const float *pooled;        /* SDXL: [pooled_dim] */
    rng *gen;
} sample_job;

/* Samples B images whose prompt embeddings have L tokens of the UNet's
 * cross_attention_dim; uncond [L, D] (the empty prompt's embedding) is
 * needed when s->cfg. progress: called after every step (may be NULL). */
void sampler_run(sampler *s, sample_job *jobs, int B, int L, const float *uncond,
                 void (*progress)(void *ctx, int step, int n), void *ctx);

/* latents [B, C, h, w] (scaled) -> images [B, 3, h f, w f]: the VAE
 * decoder's output, not clamped. */
void sampler_decode(sampler *s, int B, const float *latents, float *images);

/* diffusers' image conversion: (x / 2 + 0.5) clamped to [0, 1], x 255,
 * rounded half to even; [3, H, W] planes -> interleaved RGB [H, W, 3]. */
void sampler_to_rgb8(const float *image, int H, int W, unsigned char *rgb);

#endif
