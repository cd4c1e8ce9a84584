/* sampler.c - see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tensor.h"
#include "util.h"

int sampler_init(sampler *s, unet_model *unet, vae_model *vae, const noise_schedule *ns, const scheduler_extra *x,
                 const scheduler_options *o, double guidance_scale, int h, int w, char *err) {
    memset(s, 0, sizeof *s);
    const unet_config *c = &unet->cfg;
    if (c->out_channels != c->in_channels)
        return seterr(err, "the UNet's out_channels %d differ from in_channels %d (learned variance is not supported)", c->out_channels, c->in_channels);
    if (c->text_time) {
        s->pooled_dim = c->projection_class_embeddings_input_dim - 6 * c->addition_time_embed_dim;
        if (s->pooled_dim < 1) return seterr(err, "the UNet's projection_class_embeddings_input_dim %d leaves no room for a pooled embedding", c->projection_class_embeddings_input_dim);
        float f = vae ? (float)vae_factor(vae) : 8.0f, H = (float)h * f, W = (float)w * f;
        const float ids[6] = {H, W, 0, 0, H, W};
        memcpy(s->time_ids, ids, sizeof ids);
    }
    if (vae && vae->cfg.latent_channels != c->in_channels)
        return seterr(err, "the VAE has %d latent channels, the UNet %d", vae->cfg.latent_channels, c->in_channels);
    if (scheduler_init(&s->sch, ns, x, o, err)) return -1;
    s->unet = unet, s->vae = vae;
    s->guidance_scale = guidance_scale;
    s->C = c->in_channels, s->h = h, s->w = w;
    if (c->time_cond_proj_dim) {
        /* the LCM pipelines embed w = g - 1, a float32 from Python's double */
        s->w_embedding = xmalloc(sizeof(float) * (size_t)c->time_cond_proj_dim);
        guidance_embedding((float)(guidance_scale - 1.0), c->time_cond_proj_dim, s->w_embedding);
    } else {
        s->cfg = guidance_scale > 1.0;
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->w_embedding);
    s->w_embedding = NULL;
}

/* The constant UNet inputs of a run: text embeddings (unconditional rows
 * first under CFG, as diffusers concatenates them) and the w-embedding. */
static tensor *context_tensor(const sampler *s, const sample_job *jobs, int B, int L, const float *uncond) {
    int D = s->unet->cfg.cross_attention_dim[0], rows = s->cfg ? 2 * B : B;
    size_t per = (size_t)L * D;
    float *host = xmalloc(sizeof(float) * per * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        const float *src = s->cfg && r < B ? uncond : jobs[s->cfg ? r - B : r].prompt_embeds;
        memcpy(host + per * (size_t)r, src, sizeof(float) * per);
    }
    tensor *t = tensor_new(s->unet->ps.backend, DT_F32, 3, (int64_t[]){rows, L, D});
    tensor_from_host(t, host);
    free(host);
    return t;
}

static tensor *cond_tensor(const sampler *s, int rows) {
    if (!s->w_embedding) return NULL;
    int P = s->unet->cfg.time_cond_proj_dim;
    float *host = xmalloc(sizeof(float) * (size_t)P * (size_t)rows);
    for (int r = 0; r < rows; r++) memcpy(host + (size_t)P * r, s->w_embedding, sizeof(float) * (size_t)P);
    tensor *t = tensor_new(s->unet->ps.backend, DT_F32, 2, (int64_t[]){rows, P});
    tensor_from_host(t, host);
    free(host);
    return t;
}

/* SDXL's added conditioning: pooled embeddings (unconditional rows first
 * under CFG) and time_ids, or NULLs for other UNets. */
static void added_cond(const sampler *s, const sample_job *jobs, int B, tensor **text_embeds, tensor **time_ids) {
    *text_embeds = *time_ids = NULL;
    if (!s->pooled_dim) return;
    int rows = s->cfg ? 2 * B : B, P = s->pooled_dim;
    float *te = xcalloc((size_t)P * rows, sizeof(float)), *ti = xmalloc(sizeof(float) * 6 * (size_t)rows);
    for (int r = 0; r < rows; r++) {
        const float *src = s->cfg && r < B ? s->uncond_pooled : jobs[s->cfg ? r - B : r].pooled;
        if (!src && !(s->cfg && r < B)) die("sampler: an SDXL UNet needs a pooled prompt embedding per image");
        if (src) memcpy(te + (size_t)P * r, src, sizeof(float) * (size_t)P);
        memcpy(ti + 6 * (size_t)r, s->time_ids, sizeof s->time_ids);
    }
    const struct backend *be = s->unet->ps.backend;
    *text_embeds = tensor_new(be, DT_F32, 2, (int64_t[]){rows, P});
    *time_ids = tensor_new(be, DT_F32, 2, (int64_t[]){rows, 6});
    tensor_from_host(*text_embeds, te), tensor_from_host(*time_ids, ti);
    free(te), free(ti);
}

/* eps = u + g (c - u) in float32 as torch computes it, into the first B rows. */
static void guide(float *out, size_t per_image, int B, float g) {
    size_t n = per_image * (size_t)B;
    const float *u = out, *c = out + n;
    for (size_t j = 0; j < n; j++) out[j] = u[j] + g * (c[j] - u[j]);
}

void sampler_run(sampler *s, sample_job *jobs, int B, int L, const float *uncond,
                 void (*progress)(void *ctx, int step, int n), void *ctx) {
    const scheduler *sch = &s->sch;
    const struct backend *be = s->unet->ps.backend;
    int rows = s->cfg ? 2 * B : B;
    size_t per = (size_t)s->C * s->h * s->w;
    tensor *context = context_tensor(s, jobs, B, L, uncond), *cond = cond_tensor(s, rows), *text_embeds, *time_ids;
    added_cond(s, jobs, B, &text_embeds, &time_ids);
    tensor *x = tensor_new4(be, DT_F32, rows, s->C, s->h, s->w), *out = tensor_new4(be, DT_F32, rows, s->C, s->h, s->w);
    float *host_in = xmalloc(sizeof(float) * per * (size_t)rows), *host_out = xmalloc(sizeof(float) * per * (size_t)rows);
    float *noise = xmalloc(sizeof(float) * per), *ts = xmalloc(sizeof(float) * (size_t)rows);
    for (int b = 0; b < B; b++)
        for (size_t j = 0; j < per; j++) jobs[b].latent[j] *= sch->init_noise_sigma;
    for (int i = 0; i < sch->n; i++) {
        for (int b = 0; b < B; b++) {
            scheduler_scale_input(sch, i, jobs[b].latent, host_in + per * (size_t)b, per);
            if (s->cfg) memcpy(host_in + per * (size_t)(B + b), host_in + per * (size_t)b, sizeof(float) * per);
        }
        for (int r = 0; r < rows; r++) ts[r] = sch->timesteps_f[i];
        tensor_from_host(x, host_in);
        unet_inputs in = {.sample = x, .timesteps = ts, .encoder_hidden_states = context, .timestep_cond = cond,
                          .text_embeds = text_embeds, .time_ids = time_ids};
        unet_forward(s->unet, in, out, 0);
        tensor_to_host(out, host_out);
        if (s->cfg) guide(host_out, per, B, (float)s->guidance_scale);
        for (int b = 0; b < B; b++) {
            const float *z = NULL;
            if (scheduler_step_needs_noise(sch, i)) {
                if (jobs[b].step_noise) z = jobs[b].step_noise + per * (size_t)i;
                else rng_normal_fill(jobs[b].gen, noise, per), z = noise;
            }
            scheduler_step(sch, i, host_out + per * (size_t)b, jobs[b].latent, NULL, z, per);
        }
        if (progress) progress(ctx, i + 1, sch->n);
    }
    tensor_free(context), tensor_free(cond), tensor_free(x), tensor_free(out), tensor_free(text_embeds), tensor_free(time_ids);
    free(host_in), free(host_out), free(noise), free(ts);
}

void sampler_decode(sampler *s, int B, const float *latents, float *images) {
    vae_model *v = s->vae;
    const struct backend *be = v->ps.backend;
    int f = vae_factor(v);
    size_t n = (size_t)B * s->C * s->h * s->w;
    float *z = xmalloc(sizeof(float) * n);
    /* diffusers divides (latents / scaling_factor), which is not always
     * the same float as multiplying by the reciprocal */
    for (size_t j = 0; j < n; j++) z[j] = latents[j] / v->cfg.scaling_factor;
    tensor *zt = tensor_new4(be, DT_F32, B, s->C, s->h, s->w);
    tensor *img = tensor_new4(be, DT_F32, B, v->cfg.out_channels, (int64_t)s->h * f, (int64_t)s->w * f);
    tensor_from_host(zt, z);
    vae_decode(v, zt, img);
    tensor_to_host(img, images);
    tensor_free(zt), tensor_free(img);
    free(z);
}

void sampler_to_rgb8(const float *image, int H, int W, unsigned char *rgb) {
    size_t plane = (size_t)H * W;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < plane; p++) {
            float v = image[c * plane + p] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            rgb[p * 3 + c] = (unsigned char)nearbyintf(v * 255.0f);
        }
}
