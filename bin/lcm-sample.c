/* lcm-sample - text-to-image sampling with an LCM student (or its teacher):
 * prompts in, PNG files, a grid, JSON sidecars and/or frames out. The
 * sampling itself is lib/sampler.c; this file is the command line, the
 * prompt sources and the outputs. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "cli.h"
#include "frame.h"
#include "json.h"
#include "png_write.h"
#include "prompt_encoder.h"
#include "sampler.h"
#include "unet_lora.h"
#include "util.h"

static const char usage[] =
    "Usage: lcm-sample --pretrained_model DIR [OPTION]... --prompt TEXT...\n"
    "       lcm-sample --pretrained_model DIR [OPTION]... --prompt_file FILE\n"
    "       lcm-sample --pretrained_model DIR [OPTION]... < FRAMES\n"
    "Sample images from text with a Stable Diffusion (or SDXL) pipeline folder, by default\n"
    "with the LCM scheduler when the UNet is an LCM student (time_cond_proj_dim), else DDIM.\n"
    "\n"
    "Model:\n"
    "  --pretrained_model DIR      pipeline folder: unet/ vae/ text_encoder/ tokenizer/ scheduler/\n"
    "  --unet DIR                  use this UNet instead (e.g. OUTPUT_DIR/unet_target)\n"
    "  --lora FILE                 LoRA adapters for the UNet (pytorch_lora_weights.safetensors,\n"
    "                              diffusers or kohya layout); the scheduler defaults to lcm\n"
    "  --lora_scale S              the adapters' strength (default 1), times alpha/rank\n"
    "  --backend NAME              cpu (default, or $LCM_BACKEND) or cuda\n"
    "Prompts (else frames on stdin: prompt_embeds [+ pooled_prompt_embeds] or txt;\n"
    "replay keys noise, step_noise):\n"
    "  --prompt TEXT               a prompt; repeatable\n"
    "  --prompt_file FILE          one prompt per line\n"
    "Sampling:\n"
    "  --scheduler lcm|ddim|euler  default lcm for an LCM UNet, else ddim\n"
    "  --num_inference_steps N     default 4 (lcm) or 50 (ddim, euler)\n"
    "  --timesteps T1,T2,...       custom descending timesteps (lcm, euler)\n"
    "  --original_inference_steps K  the LCM's training grid (default: the config's, 50)\n"
    "  --strength S                lcm: use the first S of the grid (default 1)\n"
    "  --guidance_scale G          default 8.5 (lcm) or 7.5 (ddim, euler); 5 for SDXL\n"
    "  --height H, --width W       pixels (default: the UNet's sample_size x the VAE factor)\n"
    "  --seed N                    default 0; image k draws from stream (N, k)\n"
    "  --num_images_per_prompt N   default 1\n"
    "  --batch N                   images per UNet pass (default 4)\n"
    "Output:\n"
    "  --output PATTERN            PNG file names, one %d for the image index\n"
    "                              (default out-%04d.png; with --frames only if given)\n"
    "  --grid CxR                  also write a grid of the first C x R images\n"
    "  --grid_output FILE          the grid's file (default grid.png)\n"
    "  --frames                    write one record per image to stdout: latent, image, ...\n"
    "  --progress                  report progress on stderr even when it is not a terminal\n"
    "  --help, --version\n"
    "\n"
    "Each PNG gets a JSON sidecar (same name, .json) with every parameter and the seed.\n"
    "Exit status: 0 ok, 1 error, 2 usage.\n";

#define MAX_STEPS 1000

typedef struct options {
    const char *model, *unet_dir, *lora, *prompt_file, *output, *grid_output;
    double lora_scale;
    const char **prompts;
    int n_prompts;
    int kind_set;
    sampler_kind kind;
    int steps, timesteps[MAX_STEPS], n_timesteps, original_steps;
    double guidance, strength;
    int height, width, num_images, batch, frames, progress;
    unsigned long long seed;
    int grid_cols, grid_rows;
    const backend *be;
} options;

/* ---- command line ---- */

/* "%04d"-style: exactly one integer conversion, %% allowed. */
static int check_pattern(const char *p) {
    int convs = 0;
    for (const char *s = p; *s; s++) {
        if (*s != '%') continue;
        if (s[1] == '%') {
            s++;
            continue;
        }
        s++;
        while (*s == '0') s++;
        while (isdigit((unsigned char)*s)) s++;
        if (*s != 'd') return -1;
        convs++;
    }
    return convs == 1 ? 0 : -1;
}

static char *format_index(const char *pattern, long long k) {
    /* the pattern was checked: one %d with an optional width, which gets
     * its own snprintf with a long long */
    strbuf b = {0};
    for (const char *s = pattern; *s; s++) {
        if (*s != '%') {
            sb_putc(&b, *s);
            continue;
        }
        if (s[1] == '%') {
            sb_putc(&b, '%'), s++;
            continue;
        }
        const char *start = s++;
        while (isdigit((unsigned char)*s)) s++;
        char spec[32], num[64];
        snprintf(spec, sizeof spec, "%.*slld", (int)(s - start), start);
        snprintf(num, sizeof num, spec, k);
        sb_puts(&b, num);
    }
    return b.p ? b.p : xstrdup("");
}

static int parse_timesteps(const char *s, int *out) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 100000 || n == MAX_STEPS) return -1;
        out[n++] = (int)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        } else if (*p) {
            return -1;
        }
    }
    return n;
}

enum {
    O_MODEL = 256, O_UNET, O_PROMPT, O_PROMPT_FILE, O_SCHED, O_STEPS, O_TIMESTEPS, O_ORIG, O_STRENGTH, O_GUIDANCE,
    O_HEIGHT, O_WIDTH, O_SEED, O_NIMG, O_BATCH, O_OUTPUT, O_GRID, O_GRID_OUT, O_FRAMES, O_BACKEND, O_PROGRESS,
    O_HELP, O_VERSION, O_LORA, O_LORA_SCALE
};

static const struct option base_opts[] = {
    {"pretrained_model", required_argument, 0, O_MODEL},
    {"pretrained_model_name_or_path", required_argument, 0, O_MODEL},
    {"pretrained_teacher_model", required_argument, 0, O_MODEL},
    {"unet", required_argument, 0, O_UNET},
    {"lora", required_argument, 0, O_LORA},
    {"lora_scale", required_argument, 0, O_LORA_SCALE},
    {"prompt", required_argument, 0, O_PROMPT},
    {"prompt_file", required_argument, 0, O_PROMPT_FILE},
    {"scheduler", required_argument, 0, O_SCHED},
    {"num_inference_steps", required_argument, 0, O_STEPS},
    {"timesteps", required_argument, 0, O_TIMESTEPS},
    {"original_inference_steps", required_argument, 0, O_ORIG},
    {"strength", required_argument, 0, O_STRENGTH},
    {"guidance_scale", required_argument, 0, O_GUIDANCE},
    {"height", required_argument, 0, O_HEIGHT},
    {"width", required_argument, 0, O_WIDTH},
    {"seed", required_argument, 0, O_SEED},
    {"num_images_per_prompt", required_argument, 0, O_NIMG},
    {"batch", required_argument, 0, O_BATCH},
    {"output", required_argument, 0, O_OUTPUT},
    {"grid", required_argument, 0, O_GRID},
    {"grid_output", required_argument, 0, O_GRID_OUT},
    {"frames", no_argument, 0, O_FRAMES},
    {"backend", required_argument, 0, O_BACKEND},
    {"progress", no_argument, 0, O_PROGRESS},
    {"help", no_argument, 0, O_HELP},
    {"version", no_argument, 0, O_VERSION},
};

/* The options under their reference names and with dashes for underscores. */
static struct option *long_options(void) {
    size_t n = sizeof base_opts / sizeof base_opts[0];
    struct option *o = xcalloc(2 * n + 1, sizeof *o);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        o[k++] = base_opts[i];
        if (!strchr(base_opts[i].name, '_')) continue;
        char *dashed = xstrdup(base_opts[i].name);
        for (char *c = dashed; *c; c++)
            if (*c == '_') *c = '-';
        o[k] = base_opts[i];
        o[k++].name = dashed;
    }
    return o;
}

static void parse_grid(options *o, const char *v) {
    char x;
    int cols, rows, used;
    if (sscanf(v, "%d%c%d%n", &cols, &x, &rows, &used) != 3 || (x != 'x' && x != 'X') || v[used] || cols < 1 ||
        rows < 1 || cols > 1024 || rows > 1024)
        die_usage("--grid: '%s' is not COLSxROWS (e.g. 4x2)", v);
    o->grid_cols = cols, o->grid_rows = rows;
}

static options parse_args(int argc, char **argv) {
    options o = {.original_steps = 0, .lora_scale = 1.0, .guidance = NAN, .strength = 1.0, .num_images = 1, .batch = 4,
                 .grid_output = "grid.png"};
    o.prompts = xcalloc((size_t)argc, sizeof(char *));
    struct option *longopts = long_options();
    const char *backend_name = NULL, *ts = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o.model = optarg; break;
        case O_UNET: o.unet_dir = optarg; break;
        case O_LORA: o.lora = optarg; break;
        case O_LORA_SCALE: o.lora_scale = cli_double("lora_scale", optarg, -1000.0, 1000.0); break;
        case O_PROMPT: o.prompts[o.n_prompts++] = optarg; break;
        case O_PROMPT_FILE: o.prompt_file = optarg; break;
        case O_SCHED: {
            static const char *const names[] = {"lcm", "ddim", "euler", NULL};
            o.kind = (sampler_kind)cli_choice("scheduler", optarg, names);
            o.kind_set = 1;
            break;
        }
        case O_STEPS: o.steps = (int)cli_int("num_inference_steps", optarg, 1, MAX_STEPS); break;
        case O_TIMESTEPS: ts = optarg; break;
        case O_ORIG: o.original_steps = (int)cli_int("original_inference_steps", optarg, 1, 4096); break;
        case O_STRENGTH: o.strength = cli_double("strength", optarg, 1e-6, 1.0); break;
        case O_GUIDANCE: o.guidance = cli_double("guidance_scale", optarg, 0.0, 1000.0); break;
        case O_HEIGHT: o.height = (int)cli_int("height", optarg, 1, 16384); break;
        case O_WIDTH: o.width = (int)cli_int("width", optarg, 1, 16384); break;
        case O_SEED: o.seed = (unsigned long long)cli_int("seed", optarg, 0, INT64_MAX); break;
        case O_NIMG: o.num_images = (int)cli_int("num_images_per_prompt", optarg, 1, 100000); break;
        case O_BATCH: o.batch = (int)cli_int("batch", optarg, 1, 4096); break;
        case O_OUTPUT: o.output = optarg; break;
        case O_GRID: parse_grid(&o, optarg); break;
        case O_GRID_OUT: o.grid_output = optarg; break;
        case O_FRAMES: o.frames = 1; break;
        case O_BACKEND: backend_name = optarg; break;
        case O_PROGRESS: o.progress = 1; break;
        case O_HELP: cli_help(usage);
        case O_VERSION: cli_version();
        default:
            if (optopt) die_usage("option '%s' needs a value", argv[optind - 1]);
            die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    for (struct option *lo = longopts; lo->name; lo++)
        if (strchr(lo->name, '-')) free((char *)lo->name); /* the dashed copies */
    free(longopts);
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o.model) die_usage("--pretrained_model DIR is required");
    if (o.lora_scale != 1.0 && !o.lora) die_usage("--lora_scale needs --lora");
    if (o.n_prompts && o.prompt_file) die_usage("--prompt and --prompt_file exclude each other");
    if (ts) {
        o.n_timesteps = parse_timesteps(ts, o.timesteps);
        if (o.n_timesteps < 1) die_usage("--timesteps: '%s' is not a comma-separated list of timesteps", ts);
        if (o.steps && o.steps != o.n_timesteps) die_usage("--num_inference_steps %d disagrees with the %d --timesteps", o.steps, o.n_timesteps);
    }
    if (o.output && check_pattern(o.output)) die_usage("--output: '%s' needs exactly one %%d (e.g. out-%%04d.png)", o.output);
    o.be = cli_backend(backend_name);
    return o;
}

/* ---- models ---- */

typedef struct run {
    options opt;
    unet_model unet;
    unet_lora lora; /* with --lora */
    vae_model vae;
    noise_schedule ns;
    scheduler_extra extra;
    sampler smp;
    prompt_encoder te;
    int te_loaded;
    float *uncond; /* [L, D], under CFG */
    float *uncond_pooled; /* SDXL under CFG: [P] */
    int sdxl, zero_uncond; /* SDXL pipeline; its unconditional embeddings are zeros (force_zeros_for_empty_prompt) */
    int C, h, w, H, W, D, P;
    int pngs;      /* write PNG files + sidecars */
    const char *pattern;
    unsigned char *grid;
    frame_writer *out;
    frame_out *fo;
    long long images, skipped;
    int progress;
    double started;
} run;

/* The pipeline's text encoder(s), loaded when a caption or CFG first needs them. */
static void load_text_encoder(run *r) {
    if (r->te_loaded) return;
    char err[LCM_ERRLEN];
    prompt_encoder *t = &r->te;
    if (prompt_encoder_load(t, r->opt.model, r->sdxl, r->opt.be, err)) die("%s", err);
    if (t->D != r->D) die("%s: the text encoder width %d is not the UNet's cross_attention_dim %d", r->opt.model, t->D, r->D);
    if (r->sdxl && t->P != r->P)
        die("%s: text_encoder_2's projection_dim %d is not the UNet's pooled width %d", r->opt.model, t->P, r->P);
    r->te_loaded = 1;
}

/* One caption's embedding into out [L, D] and, for SDXL, pooled [P]. */
static void encode_text(run *r, const char *text, size_t len, float *out, float *pooled, uint64_t record) {
    load_text_encoder(r);
    char err[LCM_ERRLEN];
    if (prompt_encoder_encode(&r->te, text, len, out, pooled, err)) die("record %llu: %s", (unsigned long long)record, err);
}

/* StableDiffusionXLPipeline's force_zeros_for_empty_prompt (model_index.json;
 * the pipeline's default is true). */
static int force_zeros(const char *model) {
    char err[LCM_ERRLEN], *path = path_join(model, "model_index.json");
    json_cfg c;
    int zeros = 1;
    if (!json_cfg_load(&c, path, err)) {
        zeros = cfg_bool(&c, "force_zeros_for_empty_prompt", 1);
        if (c.failed) die("%s", c.err);
        json_cfg_free(&c);
    }
    free(path);
    return zeros;
}

/* sample_size of the UNet config: an int, or [height, width]. */
static void default_size(run *r) {
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(r->unet.cfg.json, "sample_size");
    int sh = 64, sw = 64;
    if (cJSON_IsNumber(ss)) sh = sw = ss->valueint;
    else if (cJSON_IsArray(ss) && cJSON_GetArraySize(ss) == 2) sh = cJSON_GetArrayItem(ss, 0)->valueint, sw = cJSON_GetArrayItem(ss, 1)->valueint;
    int f = vae_factor(&r->vae);
    if (!r->opt.height) r->opt.height = sh * f;
    if (!r->opt.width) r->opt.width = sw * f;
    if (r->opt.height % f || r->opt.width % f)
        die_usage("--height %d and --width %d must be multiples of the VAE factor %d", r->opt.height, r->opt.width, f);
    r->H = r->opt.height, r->W = r->opt.width, r->h = r->H / f, r->w = r->W / f;
}

static void load_models(run *r) {
    options *o = &r->opt;
    char err[LCM_ERRLEN];
    if (!is_dir(o->model)) die("%s: not a directory", o->model);
    if (unet_load(&r->unet, o->unet_dir ? o->unet_dir : o->model, o->be, 0, err)) die("%s", err);
    if (o->lora) {
        if (unet_lora_open(&r->lora, &r->unet, o->lora, (float)o->lora_scale, err)) die("%s", err);
        r->unet.lora = &r->lora;
    }
    if (vae_load(&r->vae, o->model, o->be, err)) die("%s", err);
    char *sched_dir = path_join(o->model, "scheduler"), *cfg = path_join(sched_dir, "scheduler_config.json");
    if (schedule_from_config(&r->ns, cfg, err) || scheduler_extra_read(&r->extra, cfg, err)) die("%s", err);
    free(sched_dir), free(cfg);
    int lcm_unet = r->unet.cfg.time_cond_proj_dim > 0;
    if (!o->kind_set) o->kind = lcm_unet || o->lora ? SAMPLER_LCM : SAMPLER_DDIM;
    if (o->kind == SAMPLER_LCM && !lcm_unet && !o->lora)
        warn("the UNet has no time_cond_proj_dim: LCM steps with a model that was not distilled");
    if (!o->steps) o->steps = o->n_timesteps ? o->n_timesteps : o->kind == SAMPLER_LCM ? 4 : 50;
    r->sdxl = r->unet.cfg.text_time;
    /* StableDiffusionXLPipeline's default 5; LatentConsistencyModelPipeline's 8.5; StableDiffusionPipeline's 7.5 */
    if (isnan(o->guidance)) o->guidance = r->sdxl ? 5.0 : o->kind == SAMPLER_LCM ? 8.5 : 7.5;
    r->C = r->unet.cfg.in_channels, r->D = r->unet.cfg.cross_attention_dim[0];
    if (r->sdxl) r->P = r->unet.cfg.projection_class_embeddings_input_dim - 6 * r->unet.cfg.addition_time_embed_dim;
    default_size(r);
    scheduler_options so = {.kind = o->kind, .num_inference_steps = o->steps,
                            .timesteps = o->n_timesteps ? o->timesteps : NULL, .n_timesteps = o->n_timesteps,
                            .original_inference_steps = o->original_steps, .strength = (float)o->strength};
    static scheduler check; /* option errors are usage errors; the model's are not */
    if (scheduler_init(&check, &r->ns, &r->extra, &so, err)) die_usage("%s", err);
    if (sampler_init(&r->smp, &r->unet, &r->vae, &r->ns, &r->extra, &so, o->guidance, r->h, r->w, err)) die("%s", err);
    if (r->smp.cfg && r->sdxl && force_zeros(o->model)) {
        r->zero_uncond = 1; /* zeros of the prompts' length: allocated per batch */
    } else if (r->smp.cfg) {
        load_text_encoder(r);
        r->uncond = xmalloc(sizeof(float) * (size_t)r->te.L * r->D);
        if (r->sdxl) r->uncond_pooled = xmalloc(sizeof(float) * (size_t)r->P);
        encode_text(r, "", 0, r->uncond, r->uncond_pooled, 0);
    }
    r->smp.uncond_pooled = r->uncond_pooled;
}

/* ---- images waiting for a batch ---- */

typedef struct item {
    frame rec;          /* the source record (copy) */
    int sub;            /* image of this record, 0..num_images_per_prompt-1 */
    long long index;    /* image index k: file name and generator stream */
    float *embeds;      /* [L, D] */
    float *pooled;      /* SDXL: [P] */
    int L, embeds_given;
    float *latent;      /* [C, h, w] */
    float *step_noise;  /* [>= n-1, C, h, w] or NULL */
    int noise_replayed;
    rng gen;
} item;

static void item_free(item *it) {
    frame_free(&it->rec);
    free(it->embeds), free(it->pooled), free(it->latent), free(it->step_noise);
    memset(it, 0, sizeof *it);
}

/* A tensor value converted to f32 with the expected element count, or -1. */
static int tensor_f32(const frame *f, const char *key, const int64_t *want_shape, int want_ndim, float **out,
                      char *why, size_t why_len) {
    const frame_value *v = frame_get(f, key);
    if (!v) return 0;
    char shape[128], want[128], err[LCM_ERRLEN];
    if (v->kind != FV_TENSOR) return snprintf(why, why_len, "%s is not a tensor", key), -1;
    const frame_tensor *t = &v->v.tensor;
    int ok = t->ndim == want_ndim;
    for (int d = 0; ok && d < want_ndim; d++) ok = want_shape[d] < 0 || t->shape[d] == want_shape[d];
    if (!ok)
        return snprintf(why, why_len, "%s has shape %s, expected %s", key, shape_str(shape, t->ndim, t->shape),
                        shape_str(want, want_ndim, want_shape)),
               -1;
    int64_t n = shape_numel(t->ndim, t->shape);
    float *data = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    tensor dst = tensor_view(NULL, DT_F32, 1, (int64_t[]){n}, data);
    if (frame_tensor_copy(v, &dst, err)) {
        free(data);
        return snprintf(why, why_len, "%s: %s", key, err), -1;
    }
    *out = data;
    return 1;
}

/* Fills an item from its record; -1 with why when the record is unusable. */
static int item_prepare(run *r, item *it, char *why, size_t why_len) {
    const frame *f = &it->rec;
    int per = r->C * r->h * r->w, n = r->smp.sch.n;
    rng_seed(&it->gen, r->opt.seed, (uint64_t)it->index);
    it->latent = xmalloc(sizeof(float) * (size_t)per);
    /* the initial draw is made even when replayed, so the step noise that
     * follows comes from the same place of the stream either way */
    rng_normal_fill(&it->gen, it->latent, (size_t)per);
    int rc = tensor_f32(f, "prompt_embeds", (int64_t[]){-1, r->D}, 2, &it->embeds, why, why_len);
    if (rc < 0) return -1;
    if (rc > 0) {
        it->L = (int)frame_get(f, "prompt_embeds")->v.tensor.shape[0];
        it->embeds_given = 1;
        if (r->sdxl && (rc = tensor_f32(f, "pooled_prompt_embeds", (int64_t[]){r->P}, 1, &it->pooled, why, why_len)) <= 0)
            return rc < 0 ? -1 : (snprintf(why, why_len, "prompt_embeds without pooled_prompt_embeds (an SDXL UNet needs both)"), -1);
    } else {
        size_t len;
        const char *txt = frame_get_bytes(f, "txt", &len);
        if (!txt) return snprintf(why, why_len, "no prompt_embeds and no txt"), -1;
        load_text_encoder(r);
        it->L = r->te.L;
        it->embeds = xmalloc(sizeof(float) * (size_t)it->L * r->D);
        if (r->sdxl) it->pooled = xmalloc(sizeof(float) * (size_t)r->P);
        encode_text(r, txt, len, it->embeds, it->pooled, f->record);
    }
    if (it->L < 1) return snprintf(why, why_len, "prompt_embeds has no tokens"), -1;
    if (r->smp.cfg && !r->zero_uncond && it->L != r->te.L)
        return snprintf(why, why_len, "prompt_embeds has %d tokens, the unconditional embedding %d", it->L, r->te.L), -1;
    float *noise = NULL;
    if ((rc = tensor_f32(f, "noise", (int64_t[]){r->C, r->h, r->w}, 3, &noise, why, why_len)) < 0) return -1;
    if (noise) {
        memcpy(it->latent, noise, sizeof(float) * (size_t)per);
        free(noise);
        it->noise_replayed = 1;
    }
    if (r->smp.sch.kind == SAMPLER_LCM && n > 1 &&
        (rc = tensor_f32(f, "step_noise", (int64_t[]){-1, r->C, r->h, r->w}, 4, &it->step_noise, why, why_len)) != 0) {
        if (rc < 0) return -1;
        int64_t have = frame_get(f, "step_noise")->v.tensor.shape[0];
        if (have < n - 1) return snprintf(why, why_len, "step_noise has %lld steps, %d needed", (long long)have, n - 1), -1;
    }
    if ((it->noise_replayed || it->step_noise) && r->opt.num_images > 1)
        return snprintf(why, why_len, "replayed noise with --num_images_per_prompt %d would repeat one image", r->opt.num_images), -1;
    return 0;
}

/* ---- outputs ---- */

static char *sidecar_path(const char *png) {
    size_t n = strlen(png);
    char *p = xmalloc(n + 6);
    if (n > 4 && !strcasecmp(png + n - 4, ".png")) snprintf(p, n + 6, "%.*s.json", (int)(n - 4), png);
    else snprintf(p, n + 6, "%s.json", png);
    return p;
}

static void json_key(strbuf *b, const char *k) {
    sb_json_str(b, k, strlen(k));
    sb_putc(b, ':');
}

static void item_key(const item *it, int num_images, strbuf *b) {
    size_t len;
    const char *k = frame_get_bytes(&it->rec, "__key__", &len);
    if (k) sb_put(b, k, len);
    else sb_printf(b, "%06llu", (unsigned long long)it->rec.record);
    if (num_images > 1) sb_printf(b, "_%d", it->sub);
}

/* Every parameter of one image, as one JSON object. */
static char *describe(const run *r, const item *it, const char *png) {
    const options *o = &r->opt;
    const scheduler *s = &r->smp.sch;
    strbuf b = {0}, key = {0};
    item_key(it, o->num_images, &key);
    sb_putc(&b, '{');
    json_key(&b, "file"), png ? sb_json_str(&b, png, strlen(png)) : sb_puts(&b, "null");
    sb_putc(&b, ','), json_key(&b, "__key__"), sb_json_str(&b, key.p, key.n);
    size_t len;
    const char *txt = frame_get_bytes(&it->rec, "txt", &len);
    sb_putc(&b, ','), json_key(&b, "prompt"), txt ? sb_json_str(&b, txt, len) : sb_puts(&b, "null");
    sb_printf(&b, ",\"image_index\":%lld,\"record\":%llu,\"image_of_prompt\":%d", it->index,
              (unsigned long long)it->rec.record, it->sub);
    sb_printf(&b, ",\"seed\":%llu,\"generator_stream\":%lld", o->seed, it->index);
    sb_putc(&b, ','), json_key(&b, "pretrained_model"), sb_json_str(&b, o->model, strlen(o->model));
    sb_putc(&b, ','), json_key(&b, "unet"), o->unet_dir ? sb_json_str(&b, o->unet_dir, strlen(o->unet_dir)) : sb_puts(&b, "null");
    sb_putc(&b, ','), json_key(&b, "lora"), o->lora ? sb_json_str(&b, o->lora, strlen(o->lora)) : sb_puts(&b, "null");
    if (o->lora) {
        sb_puts(&b, ",\"lora_scale\":"), sb_json_num(&b, o->lora_scale);
        sb_printf(&b, ",\"lora_rank\":%d,\"lora_alpha\":", r->lora.rank), sb_json_num(&b, r->lora.alpha);
        sb_puts(&b, ",\"lora_effective_scale\":"), sb_json_num(&b, r->lora.scale);
    }
    sb_printf(&b, ",\"scheduler\":\"%s\",\"num_inference_steps\":%d,\"timesteps\":[", sampler_kind_name(s->kind), s->n);
    for (int i = 0; i < s->n; i++) {
        if (i) sb_putc(&b, ',');
        sb_json_num(&b, s->timesteps_f[i]);
    }
    sb_puts(&b, "],\"guidance_scale\":"), sb_json_num(&b, o->guidance);
    sb_printf(&b, ",\"classifier_free_guidance\":%s", r->smp.cfg ? "true" : "false");
    if (r->sdxl) {
        sb_puts(&b, ",\"sdxl\":true,\"time_ids\":[");
        for (int i = 0; i < 6; i++) sb_printf(&b, "%s%g", i ? "," : "", r->smp.time_ids[i]);
        sb_printf(&b, "],\"negative_embeddings\":\"%s\"", !r->smp.cfg ? "none" : r->zero_uncond ? "zeros" : "empty prompt");
    }
    if (s->kind == SAMPLER_LCM) {
        sb_printf(&b, ",\"original_inference_steps\":%d,\"strength\":", o->original_steps ? o->original_steps : r->extra.original_inference_steps);
        sb_json_num(&b, o->strength);
        sb_puts(&b, ",\"timestep_scaling\":"), sb_json_num(&b, s->timestep_scaling);
    }
    sb_printf(&b, ",\"height\":%d,\"width\":%d,\"num_images_per_prompt\":%d", r->H, r->W, o->num_images);
    sb_printf(&b, ",\"prompt_embeds\":\"%s\",\"noise\":\"%s\",\"step_noise\":\"%s\"", it->embeds_given ? "given" : "encoded",
              it->noise_replayed ? "replayed" : "generator", it->step_noise ? "replayed" : "generator");
    sb_puts(&b, ",\"version\":\"" LCM_VERSION "\"}");
    sb_free(&key);
    return b.p;
}

static void write_text_file(const char *path, const char *text) {
    char err[LCM_ERRLEN];
    atomic_file af;
    if (atomic_open(&af, path, err)) die("%s", err);
    fputs(text, af.f);
    fputc('\n', af.f);
    if (atomic_commit(&af, err)) die("%s", err);
}

static void write_png(const run *r, const item *it, const unsigned char *rgb) {
    char err[LCM_ERRLEN];
    char *png = format_index(r->pattern, it->index), *json = describe(r, it, png);
    const char *text[] = {"parameters", json};
    if (png_write_rgb(png, rgb, r->W, r->H, text, 1, err)) die("%s", err);
    char *side = sidecar_path(png);
    write_text_file(side, json);
    free(png), free(json), free(side);
}

static void grid_put(run *r, long long k, const unsigned char *rgb) {
    long long cells = (long long)r->opt.grid_cols * r->opt.grid_rows;
    if (!r->grid || k >= cells) return;
    int col = (int)(k % r->opt.grid_cols), row = (int)(k / r->opt.grid_cols);
    size_t stride = (size_t)r->W * r->opt.grid_cols * 3;
    for (int y = 0; y < r->H; y++)
        memcpy(r->grid + (size_t)(row * r->H + y) * stride + (size_t)col * r->W * 3, rgb + (size_t)y * r->W * 3, (size_t)r->W * 3);
}

static void emit_frame(run *r, const item *it, const float *latent, const float *image) {
    static const char *const drop[] = {"prompt_embeds", "pooled_prompt_embeds", "noise", "step_noise", "latent", "image", "__key__", NULL};
    frame_out_reset(r->fo);
    fo_pass(r->fo, &it->rec, drop);
    strbuf key = {0};
    item_key(it, r->opt.num_images, &key);
    fo_str(r->fo, "__key__", key.p, key.n);
    fo_tensor(r->fo, "latent", DT_F32, 3, (int64_t[]){r->C, r->h, r->w}, latent);
    fo_tensor(r->fo, "image", DT_F32, 3, (int64_t[]){3, r->H, r->W}, image);
    fo_int(r->fo, "seed", (int64_t)r->opt.seed);
    fo_int(r->fo, "image_index", it->index);
    frame_emit(r->out, r->fo);
    sb_free(&key);
}

static void on_step(void *ctx, int step, int n) {
    run *r = ctx;
    if (r->progress)
        fprintf(stderr, "\rlcm-sample: %lld images done, step %d/%d, %.1f s", r->images, step, n, now_seconds() - r->started);
}

/* Samples, decodes and writes the pending items (all of one token length). */
static void flush(run *r, item *items, int n) {
    if (!n) return;
    int per = r->C * r->h * r->w;
    size_t img_per = (size_t)3 * r->H * r->W;
    float *latents = xmalloc(sizeof(float) * (size_t)per * n), *images = xmalloc(sizeof(float) * img_per * n);
    unsigned char *rgb = xmalloc(img_per);
    sample_job *jobs = xcalloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++)
        jobs[i] = (sample_job){.prompt_embeds = items[i].embeds, .latent = items[i].latent,
                               .step_noise = items[i].step_noise, .pooled = items[i].pooled, .gen = &items[i].gen};
    float *zeros = r->zero_uncond ? xcalloc((size_t)items[0].L * r->D, sizeof(float)) : NULL;
    sampler_run(&r->smp, jobs, n, items[0].L, zeros ? zeros : r->uncond, on_step, r);
    free(zeros);
    for (int i = 0; i < n; i++) memcpy(latents + (size_t)per * i, items[i].latent, sizeof(float) * (size_t)per);
    sampler_decode(&r->smp, n, latents, images);
    for (int i = 0; i < n; i++) {
        const float *img = images + img_per * i;
        sampler_to_rgb8(img, r->H, r->W, rgb);
        if (r->pngs) write_png(r, &items[i], rgb);
        grid_put(r, items[i].index, rgb);
        if (r->out) emit_frame(r, &items[i], latents + (size_t)per * i, img);
        item_free(&items[i]);
    }
    r->images += n;
    free(latents), free(images), free(rgb), free(jobs);
}

/* ---- prompt sources ---- */

typedef struct batcher {
    run *r;
    item *items;
    int n;
    long long next_index;
} batcher;

static void add_record(batcher *bt, const frame *f) {
    run *r = bt->r;
    for (int j = 0; j < r->opt.num_images; j++) {
        item *it = &bt->items[bt->n];
        memset(it, 0, sizeof *it);
        frame_copy(&it->rec, f);
        it->sub = j, it->index = bt->next_index;
        char why[LCM_ERRLEN + 128];
        if (item_prepare(r, it, why, sizeof why)) {
            warn("record %llu (byte %llu): %s; skipped", (unsigned long long)f->record, (unsigned long long)f->offset, why);
            item_free(it);
            r->skipped++;
            return;
        }
        bt->next_index++;
        if (bt->n && it->L != bt->items[0].L) {
            /* a batch shares one token length: flush what came before */
            item moved = *it;
            flush(r, bt->items, bt->n);
            bt->items[0] = moved;
            bt->n = 1;
        } else {
            bt->n++;
        }
        if (bt->n == r->opt.batch) {
            flush(r, bt->items, bt->n);
            bt->n = 0;
        }
    }
}

static void add_prompt(batcher *bt, const char *text, size_t len, uint64_t index) {
    frame_out *fo = frame_out_new();
    char key[32];
    snprintf(key, sizeof key, "%06llu", (unsigned long long)index);
    fo_str(fo, "__key__", key, strlen(key));
    fo_str(fo, "txt", text, len);
    frame f;
    frame_init(&f);
    frame_from_out(&f, fo);
    f.record = index;
    add_record(bt, &f);
    frame_free(&f);
    frame_out_free(fo);
}

static void read_prompt_file(batcher *bt, const char *path) {
    char err[LCM_ERRLEN], *data;
    size_t len;
    if (read_file(path, &data, &len, err)) die("%s", err);
    uint64_t k = 0;
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - data) : len, stop = end;
        if (stop > start && data[stop - 1] == '\r') stop--;
        add_prompt(bt, data + start, stop - start, k++);
        start = end + 1;
    }
    free(data);
    if (!k) die("%s: no prompts", path);
}

static void read_frames(batcher *bt) {
    frame_reader *in = frame_reader_fdopen(0, "<stdin>");
    frame f;
    frame_init(&f);
    int rc;
    while ((rc = frame_read(in, &f)) == 1) add_record(bt, &f);
    if (rc < 0) die("%s", frame_reader_error(in));
    frame_free(&f);
    frame_reader_close(in);
}

static void write_grid(run *r) {
    char err[LCM_ERRLEN];
    long long cells = (long long)r->opt.grid_cols * r->opt.grid_rows;
    if (r->images < cells) warn("%lld images for a %dx%d grid: the rest stays black", r->images, r->opt.grid_cols, r->opt.grid_rows);
    if (r->images > cells) warn("%lld images for a %dx%d grid: only the first %lld are in it", r->images, r->opt.grid_cols, r->opt.grid_rows, cells);
    if (png_write_rgb(r->opt.grid_output, r->grid, r->W * r->opt.grid_cols, r->H * r->opt.grid_rows, NULL, 0, err)) die("%s", err);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    run r = {.opt = parse_args(argc, argv)};
    options *o = &r.opt;
    r.pngs = !o->frames || o->output;
    r.pattern = o->output ? o->output : "out-%04d.png";
    load_models(&r);
    if (o->grid_cols) r.grid = xcalloc((size_t)r.W * o->grid_cols * r.H * o->grid_rows, 3);
    if (o->frames) r.out = frame_writer_fdopen(1, "<stdout>"), r.fo = frame_out_new();
    r.progress = progress_wanted(o->progress);
    r.started = now_seconds();
    batcher bt = {.r = &r, .items = xcalloc((size_t)o->batch, sizeof(item))};
    if (o->n_prompts)
        for (int i = 0; i < o->n_prompts; i++) add_prompt(&bt, o->prompts[i], strlen(o->prompts[i]), (uint64_t)i);
    else if (o->prompt_file)
        read_prompt_file(&bt, o->prompt_file);
    else
        read_frames(&bt);
    flush(&r, bt.items, bt.n);
    if (r.progress) fputc('\n', stderr);
    if (r.grid) write_grid(&r);
    if (r.out) frame_writer_finish(r.out), frame_out_free(r.fo);
    if (r.skipped) warn("%lld images sampled, %lld records skipped", r.images, r.skipped);
    if (!r.images) die("no images sampled");
    sampler_free(&r.smp);
    unet_free(&r.unet), vae_free(&r.vae);
    if (o->lora) unet_lora_free(&r.lora);
    if (r.te_loaded) prompt_encoder_free(&r.te);
    free(r.uncond), free(r.uncond_pooled), free(r.grid), free(bt.items), free(o->prompts);
    return EXIT_OK;
}
