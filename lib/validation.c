/* validation.c - see validation.h. */
#include "validation.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "png_write.h"
#include "text_embed.h"
#include "util.h"

const char *const validation_default_prompts[4] = {
    ("portrait photo of a girl, photograph, highly detailed face, depth of field, moody light, golden hour, style by Dan "
     "Winters, Russell James, Steve McCurry, centered, extremely detailed, Nikon D850, award winning photography"),
    "Self-portrait oil painting, a beautiful cyborg with golden hair, 8k",
    "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
    "A photo of beautiful mountain with realistic sunset and blue lake, highly detailed, masterpiece",
};

/* One prompt per non-empty line. */
static char **read_prompts(const char *path, int *n, char *err) {
    char *text;
    if (read_file(path, &text, NULL, err)) return NULL;
    char **v = NULL, *save = NULL;
    *n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line) continue;
        v = xrealloc(v, sizeof(char *) * (size_t)(*n + 1));
        v[(*n)++] = xstrdup(line);
    }
    free(text);
    if (!*n) seterr(err, "%s: no prompts", path);
    return v;
}

int validation_init(validation *v, const char *teacher, const char *prompts_file, int per_prompt, const unet_model *unet,
                    int lora, uint64_t seed, const backend *be, char *err) {
    memset(v, 0, sizeof *v);
    char **owned = NULL;
    const char *const *prompts = validation_default_prompts;
    int n = 4;
    if (prompts_file) {
        if (!(owned = read_prompts(prompts_file, &n, err)) || !n) return -1;
        prompts = (const char *const *)owned;
    }
    int sdxl = unet->cfg.text_time;
    v->guidance = sdxl ? (lora ? 0.0 : 5.0) : (lora ? 1.0 : 7.5);
    v->embeds = text_embed(teacher, sdxl, prompts, n, &v->L, &v->D, sdxl ? &v->pooled : NULL, &v->P, err);
    for (int i = 0; owned && i < n; i++) free(owned[i]);
    free(owned);
    if (!v->embeds) return -1;
    char *cfg = path_join(teacher, "scheduler/scheduler_config.json");
    int rc = schedule_from_config(&v->ns, cfg, err) || scheduler_extra_read(&v->extra, cfg, err) ? -1 : 0;
    free(cfg);
    if (rc || vae_load(&v->vae, teacher, be, err)) return -1;
    v->n_prompts = n, v->per_prompt = per_prompt, v->seed = seed;
    /* the latent size of the UNet's config, as the pipelines default to it */
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(unet->cfg.json, "sample_size");
    v->h = v->w = cJSON_IsNumber(ss) && ss->valueint > 0 ? ss->valueint : 64;
    return 0;
}

int validation_run(validation *v, unet_model *online, unet_model *target, const char *png, char *err) {
    int f = vae_factor(&v->vae), H = v->h * f, W = v->w * f, C = online->cfg.in_channels;
    int per = v->per_prompt, models = target ? 2 : 1, rows = models * v->n_prompts;
    size_t lat = (size_t)C * v->h * v->w;
    unsigned char *grid = xcalloc((size_t)rows * H * per * W * 3, 1), *rgb = xmalloc((size_t)H * W * 3);
    float *latents = xmalloc(sizeof(float) * lat * (size_t)per), *images = xmalloc(sizeof(float) * (size_t)(3 * H * W * per));
    sample_job *jobs = xcalloc((size_t)per, sizeof *jobs);
    rng *gens = xcalloc((size_t)per, sizeof *gens);
    scheduler_options so = {.kind = SAMPLER_LCM, .num_inference_steps = 4, .strength = 1.0f};
    int rc = 0;
    for (int m = 0; m < models && !rc; m++) {
        sampler s;
        if (sampler_init(&s, m ? target : online, &v->vae, &v->ns, &v->extra, &so, v->guidance, v->h, v->w, err)) {
            rc = -1;
            break;
        }
        for (int p = 0; p < v->n_prompts; p++) {
            for (int i = 0; i < per; i++) {
                rng_seed(&gens[i], v->seed, (uint64_t)(p * per + i)); /* the same noise for both models */
                rng_normal_fill(&gens[i], latents + i * lat, lat);
                jobs[i] = (sample_job){.prompt_embeds = v->embeds + (size_t)p * v->L * v->D, .latent = latents + i * lat,
                                       .pooled = v->pooled ? v->pooled + (size_t)p * v->P : NULL, .gen = &gens[i]};
            }
            sampler_run(&s, jobs, per, v->L, NULL, NULL, NULL);
            sampler_decode(&s, per, latents, images);
            for (int i = 0; i < per; i++) {
                sampler_to_rgb8(images + (size_t)i * 3 * H * W, H, W, rgb);
                int row = m * v->n_prompts + p;
                for (int y = 0; y < H; y++)
                    memcpy(grid + ((size_t)(row * H + y) * per * W + (size_t)i * W) * 3, rgb + (size_t)y * W * 3, (size_t)W * 3);
            }
        }
        sampler_free(&s);
    }
    if (!rc) {
        char comment[200];
        snprintf(comment, sizeof comment, "lcm-step validation: rows = %s, one per prompt; 4 LCM steps, guidance %.1f",
                 target ? "online then target" : "the student with its adapters", v->guidance);
        const char *text[2] = {"Comment", comment};
        rc = png_write_rgb(png, grid, per * W, rows * H, text, 1, err);
    }
    free(grid), free(rgb), free(latents), free(images), free(jobs), free(gens);
    return rc;
}

void validation_free(validation *v) {
    free(v->embeds), free(v->pooled);
    if (v->vae.ps.n) vae_free(&v->vae);
    memset(v, 0, sizeof *v);
}
