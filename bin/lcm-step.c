/* lcm-step - latent consistency distillation: the teacher/student/target
 * training loop of train_lcm_distill_sd_wds.py over precomputed latents. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "checkpoint.h"
#include "cli.h"
#include "dist.h"
#include "json.h"
#include "lcd.h"
#include "optim.h"
#include "train_data.h"
#include "text_embed.h"
#include "unet.h"
#include "unet_lora.h"
#include "util.h"
#include "validation.h"

/* ---- options ---- */

typedef enum { T_STR, T_INT, T_FLOAT, T_FLAG, T_IGNORED_ARG, T_IGNORED_FLAG } opt_type;

typedef struct options {
    const char *teacher, *init_student, *uncond_embeds, *output_dir, *resume, *shards, *lr_scheduler, *loss_type;
    const char *mixed_precision, *backend_name, *vae_path, *init_lora, *validation_prompts;
    long long seed, checkpointing_steps, checkpoints_total_limit, train_batch_size, max_train_steps, lr_warmup_steps;
    long long gradient_accumulation_steps, num_ddim_timesteps, time_cond_proj_dim, shuffle_buffer_size, max_nonfinite_steps;
    long long resolution, lora_rank, validation_steps, validation_images;
    double lora_alpha, lora_dropout;
    double learning_rate, adam_beta1, adam_beta2, adam_weight_decay, adam_epsilon, max_grad_norm, w_min, w_max, huber_c;
    double timestep_scaling_factor, ema_decay;
    int gradient_checkpointing, use_8bit_adam, progress, push_to_hub, use_fix_crop_and_size, lora;
} options;

static options opt = {
    .output_dir = "lcm-xl-distilled", .lr_scheduler = "constant", .loss_type = "l2", .mixed_precision = "no",
    .checkpointing_steps = 500, .train_batch_size = 16, .max_train_steps = -1, .lr_warmup_steps = 500,
    .gradient_accumulation_steps = 1, .num_ddim_timesteps = 50, .time_cond_proj_dim = 256, .max_nonfinite_steps = 10,
    .validation_steps = 200, .validation_images = 4,
    .learning_rate = 1e-4, .adam_beta1 = 0.9, .adam_beta2 = 0.999, .adam_weight_decay = 1e-2, .adam_epsilon = 1e-8,
    .max_grad_norm = 1.0, .w_min = NAN, .resolution = 1024, .lora_rank = 64, .lora_alpha = 64, .w_max = 15.0, .huber_c = 0.001, .timestep_scaling_factor = 10.0, .ema_decay = 0.95,
};

typedef struct opt_def {
    const char *name;
    opt_type type;
    void *dst;
} opt_def;

/* Every option of the reference script, with its meaning and default, plus
 * ours; the ones that have no meaning here are accepted and ignored (see the
 * man page). Each is also accepted spelled with dashes. */
static const opt_def defs[] = {
    {"pretrained_teacher_model", T_STR, &opt.teacher},
    {"init_student", T_STR, &opt.init_student},
    {"uncond_embeds", T_STR, &opt.uncond_embeds},
    {"output_dir", T_STR, &opt.output_dir},
    {"seed", T_INT, &opt.seed},
    {"checkpointing_steps", T_INT, &opt.checkpointing_steps},
    {"checkpoints_total_limit", T_INT, &opt.checkpoints_total_limit},
    {"resume_from_checkpoint", T_STR, &opt.resume},
    {"train_shards_path_or_url", T_STR, &opt.shards},
    {"shuffle_buffer_size", T_INT, &opt.shuffle_buffer_size},
    {"train_batch_size", T_INT, &opt.train_batch_size},
    {"max_train_steps", T_INT, &opt.max_train_steps},
    {"learning_rate", T_FLOAT, &opt.learning_rate},
    {"lr_scheduler", T_STR, &opt.lr_scheduler},
    {"lr_warmup_steps", T_INT, &opt.lr_warmup_steps},
    {"gradient_accumulation_steps", T_INT, &opt.gradient_accumulation_steps},
    {"use_8bit_adam", T_FLAG, &opt.use_8bit_adam},
    {"adam_beta1", T_FLOAT, &opt.adam_beta1},
    {"adam_beta2", T_FLOAT, &opt.adam_beta2},
    {"adam_weight_decay", T_FLOAT, &opt.adam_weight_decay},
    {"adam_epsilon", T_FLOAT, &opt.adam_epsilon},
    {"max_grad_norm", T_FLOAT, &opt.max_grad_norm},
    {"w_min", T_FLOAT, &opt.w_min},
    {"resolution", T_INT, &opt.resolution},
    {"use_fix_crop_and_size", T_FLAG, &opt.use_fix_crop_and_size},
    {"lora", T_FLAG, &opt.lora},
    {"lora_rank", T_INT, &opt.lora_rank},
    {"lora_alpha", T_FLOAT, &opt.lora_alpha},
    {"lora_dropout", T_FLOAT, &opt.lora_dropout},
    {"init_lora", T_STR, &opt.init_lora},
    {"w_max", T_FLOAT, &opt.w_max},
    {"num_ddim_timesteps", T_INT, &opt.num_ddim_timesteps},
    {"loss_type", T_STR, &opt.loss_type},
    {"huber_c", T_FLOAT, &opt.huber_c},
    {"unet_time_cond_proj_dim", T_INT, &opt.time_cond_proj_dim},
    {"timestep_scaling_factor", T_FLOAT, &opt.timestep_scaling_factor},
    {"ema_decay", T_FLOAT, &opt.ema_decay},
    {"mixed_precision", T_STR, &opt.mixed_precision},
    {"gradient_checkpointing", T_FLAG, &opt.gradient_checkpointing},
    {"max_nonfinite_steps", T_INT, &opt.max_nonfinite_steps},
    {"pretrained_vae_model_name_or_path", T_STR, &opt.vae_path},
    {"push_to_hub", T_FLAG, &opt.push_to_hub},
    {"backend", T_STR, &opt.backend_name},
    {"progress", T_FLAG, &opt.progress},
    {"validation_steps", T_INT, &opt.validation_steps},
    {"validation_prompts", T_STR, &opt.validation_prompts},
    {"validation_images_per_prompt", T_INT, &opt.validation_images},
    /* the reference's, without a meaning here */
    {"teacher_revision", T_IGNORED_ARG, NULL}, {"revision", T_IGNORED_ARG, NULL}, {"cache_dir", T_IGNORED_ARG, NULL},
    {"logging_dir", T_IGNORED_ARG, NULL}, {"report_to", T_IGNORED_ARG, NULL},
    {"interpolation_type", T_IGNORED_ARG, NULL}, {"center_crop", T_IGNORED_FLAG, NULL}, {"random_flip", T_IGNORED_FLAG, NULL},
    {"dataloader_num_workers", T_IGNORED_ARG, NULL}, {"num_train_epochs", T_IGNORED_ARG, NULL},
    {"max_train_samples", T_IGNORED_ARG, NULL}, {"scale_lr", T_IGNORED_FLAG, NULL},
    {"proportion_empty_prompts", T_IGNORED_ARG, NULL}, {"vae_encode_batch_size", T_IGNORED_ARG, NULL},
    {"allow_tf32", T_IGNORED_FLAG, NULL}, {"cast_teacher_unet", T_IGNORED_FLAG, NULL},
    {"enable_xformers_memory_efficient_attention", T_IGNORED_FLAG, NULL}, {"local_rank", T_IGNORED_ARG, NULL},
    {"hub_token", T_IGNORED_ARG, NULL}, {"hub_model_id", T_IGNORED_ARG, NULL},
    {"tracker_project_name", T_IGNORED_ARG, NULL},
};
#define N_DEFS ((int)(sizeof defs / sizeof *defs))

static const char usage[] =
    "Usage: lcm-step --pretrained_teacher_model DIR [OPTION]... [< FRAMES]\n"
    "Distill the teacher into a latent consistency model (the training loop of\n"
    "diffusers' train_lcm_distill_sd_wds.py) from frames with `latent_moments` (or\n"
    "`latent`) and `prompt_embeds`, read from stdin or --train_shards_path_or_url.\n"
    "Writes OUTPUT_DIR/unet (the student), OUTPUT_DIR/unet_target (its EMA),\n"
    "checkpoint-N/ every --checkpointing_steps, and train_log.jsonl.\n"
    "\n"
    "Every option of the reference script is accepted, with its default (see\n"
    "lcm-step(1)), spelled with underscores or dashes, as --opt=VALUE or --opt VALUE:\n"
    "  --output_dir DIR (lcm-xl-distilled)     --seed N (0)\n"
    "  --train_batch_size N (16)               --max_train_steps N (until the input ends)\n"
    "  --gradient_accumulation_steps N (1)     --learning_rate X (1e-4)\n"
    "  --lr_scheduler NAME (constant)          --lr_warmup_steps N (500)\n"
    "  --adam_beta1/2, --adam_weight_decay, --adam_epsilon (0.9, 0.999, 1e-2, 1e-8)\n"
    "  --max_grad_norm X (1.0)                 --loss_type l2|huber (l2), --huber_c X (0.001)\n"
    "  --w_min X (5; SDXL 3), --w_max X (15)   --num_ddim_timesteps N (50)\n"
    "  --timestep_scaling_factor X (10)        --ema_decay X (0.95)\n"
    "  --unet_time_cond_proj_dim N (256)       --gradient_checkpointing\n"
    "  --checkpointing_steps N (500)           --checkpoints_total_limit N\n"
    "  --validation_steps N (200; 0: none)     --validation_prompts FILE (the reference's 4)\n"
    "  --resume_from_checkpoint latest|PATH    --mixed_precision no\n"
    "  --train_shards_path_or_url SPEC         frame files, brace ranges, `::` lists\n"
    "SDXL (a teacher UNet with addition_embed_type text_time; records need\n"
    "`pooled_prompt_embeds`, `original_size` and `crop_coords`):\n"
    "  --resolution N (1024)                   the target size in time_ids\n"
    "  --use_fix_crop_and_size                 time_ids from (N, N) and (0, 0)\n"
    "LCM-LoRA (train_lcm_distill_lora_sd_wds.py), selected by any of these:\n"
    "  --lora                                  train LoRA adapters of the teacher\n"
    "  --lora_rank N (64), --lora_alpha X (64) rank and alpha (scale alpha/rank)\n"
    "  --init_lora FILE                        start from these adapters\n"
    "  writes OUTPUT_DIR/pytorch_lora_weights.safetensors instead of unet/, unet_target/\n"
    "Ours:\n"
    "  --init_student DIR        start from this UNet (with time_cond_proj_dim)\n"
    "  --uncond_embeds FILE      the unconditional prompt_embeds (a frame file)\n"
    "  --shuffle_buffer_size N   records in the shuffle buffer (0: input order)\n"
    "  --max_nonfinite_steps N   stop after N non-finite losses in a row (10)\n"
    "  --validation_images_per_prompt N   images per prompt in validation grids (4)\n"
    "  --backend NAME            cpu (default, or $LCM_BACKEND) or cuda\n"
    "  --progress                progress on stderr even when it is not a terminal\n"
    "  --help, --version\n"
    "Data-parallel: mpirun -np N lcm-step ... (each rank reads its share).\n";

static void parse_args(int argc, char **argv) {
    struct option *lo = xcalloc((size_t)(2 * N_DEFS + 3), sizeof *lo);
    char **dashed = xcalloc((size_t)N_DEFS, sizeof(char *));
    int n = 0;
    for (int i = 0; i < N_DEFS; i++) {
        int has_arg = defs[i].type == T_FLAG || defs[i].type == T_IGNORED_FLAG ? no_argument : required_argument;
        lo[n++] = (struct option){defs[i].name, has_arg, 0, i};
        dashed[i] = xstrdup(defs[i].name);
        for (char *c = dashed[i]; *c; c++) if (*c == '_') *c = '-';
        if (strcmp(dashed[i], defs[i].name)) lo[n++] = (struct option){dashed[i], has_arg, 0, i};
    }
    lo[n++] = (struct option){"help", no_argument, 0, 1000};
    lo[n++] = (struct option){"version", no_argument, 0, 1001};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 1000) cli_help(usage);
        if (c == 1001) cli_version();
        if (c < 0 || c >= N_DEFS) die_usage("unknown option");
        const opt_def *d = &defs[c];
        switch (d->type) {
        case T_STR: *(const char **)d->dst = optarg; break;
        case T_INT: *(long long *)d->dst = cli_int(d->name, optarg, -1, INT64_MAX / 2); break;
        case T_FLOAT: *(double *)d->dst = cli_double(d->name, optarg, -1e30, 1e30); break;
        case T_FLAG: *(int *)d->dst = 1; break;
        default: break;
        }
        /* any LoRA option selects the LCM-LoRA script */
        if (!strncmp(d->name, "lora", 4) || !strcmp(d->name, "init_lora")) opt.lora = 1;
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!opt.teacher) die_usage("--pretrained_teacher_model DIR is required");
    if (opt.train_batch_size < 1 || opt.gradient_accumulation_steps < 1) die_usage("--train_batch_size and --gradient_accumulation_steps must be at least 1");
    if (strcmp(opt.loss_type, "l2") && strcmp(opt.loss_type, "huber")) die_usage("--loss_type: '%s' is not l2 or huber", opt.loss_type);
    lr_kind k;
    if (lr_kind_parse(opt.lr_scheduler, &k)) die_usage("--lr_scheduler: '%s' is not supported", opt.lr_scheduler);
    if (strcmp(opt.mixed_precision, "no")) die_usage("--mixed_precision %s: only 'no' (float32) is supported so far", opt.mixed_precision);
    if (opt.use_8bit_adam) die_usage("--use_8bit_adam is not supported yet");
    if (opt.push_to_hub) die_usage("--push_to_hub: nothing leaves this machine; upload OUTPUT_DIR yourself");
    if (opt.vae_path) die_usage("--pretrained_vae_model_name_or_path: latents come precomputed; use it with vae-encode --model");
    if (opt.lora && opt.init_student) die_usage("--init_student: a LoRA student is the teacher plus adapters (use --init_lora)");
    if (opt.lora && opt.lora_rank < 1) die_usage("--lora_rank must be at least 1");
    if (opt.lora_dropout != 0) die_usage("--lora_dropout: only 0 (the reference's default) is supported");
    if (!isnan(opt.w_min) && opt.w_max < opt.w_min) die_usage("--w_max must not be below --w_min");
    for (int i = 0; i < N_DEFS; i++) free(dashed[i]);
    free(dashed), free(lo);
}

/* ---- setup ---- */

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

static float vae_scaling_factor(const char *teacher) {
    char *p = path_join(teacher, "vae/config.json");
    json_cfg c;
    char err[LCM_ERRLEN];
    float f = 0.18215f;
    if (path_exists(p) && json_cfg_load(&c, p, err) == 0) {
        f = (float)cfg_float(&c, "scaling_factor", 0.18215);
        json_cfg_free(&c);
    }
    free(p);
    return f;
}

/* The unconditional embedding: from --uncond_embeds, else the teacher's
 * text encoder on "" (as the reference computes it once before the loop). */
static float *uncond_embedding(int *len, int *dim) {
    char err[LCM_ERRLEN];
    *len = *dim = 0;
    if (opt.uncond_embeds) {
        frame_reader *r = frame_reader_open(opt.uncond_embeds, err);
        if (!r) die("%s", err);
        frame f;
        frame_init(&f);
        if (frame_read(r, &f) != 1) die("%s: no record: %s", opt.uncond_embeds, frame_reader_error(r));
        const frame_value *v = frame_get(&f, "prompt_embeds");
        if (!v || v->kind != FV_TENSOR || v->v.tensor.ndim != 2) die("%s: record 0 has no prompt_embeds [L, D]", opt.uncond_embeds);
        *len = (int)v->v.tensor.shape[0], *dim = (int)v->v.tensor.shape[1];
        float *u = xmalloc(sizeof(float) * (size_t)(*len * *dim));
        tensor t = tensor_view(NULL, DT_F32, 2, v->v.tensor.shape, u);
        if (frame_tensor_copy(v, &t, err)) die("%s: %s", opt.uncond_embeds, err);
        frame_free(&f);
        frame_reader_close(r);
        return u;
    }
    static const char *const empty[1] = {""};
    float *u = text_embed(opt.teacher, 0, empty, 1, len, dim, NULL, NULL, err);
    if (!u) die("%s (or give --uncond_embeds)", err);
    return u;
}

/* LoRA: the student is the teacher's weights (frozen) plus adapters; the
 * target is the student itself, so there is no target model. */
static void load_lora_student(unet_model *student, unet_lora *lora, const backend *be) {
    char err[LCM_ERRLEN];
    if (unet_load(student, opt.teacher, be, 0, err)) die("%s", err);
    if (unet_lora_create(lora, student, (int)opt.lora_rank, (float)opt.lora_alpha, 1, (uint64_t)opt.seed, err)) die("%s", err);
    if (opt.init_lora && unet_lora_load(lora, opt.init_lora, err)) die("%s", err);
    student->lora = lora;
    student->checkpointing = opt.gradient_checkpointing;
}

static void load_models(unet_model *teacher, unet_model *student, unet_model *target, unet_lora *lora, const backend *be) {
    char err[LCM_ERRLEN];
    if (unet_load(teacher, opt.teacher, be, 0, err)) die("%s", err);
    if (opt.lora) {
        load_lora_student(student, lora, be);
        return;
    }
    if (opt.init_student) {
        if (unet_load(student, opt.init_student, be, 1, err)) die("%s", err);
        if (student->cfg.time_cond_proj_dim <= 0) die("%s: the student has no time_cond_proj_dim", opt.init_student);
    } else {
        /* the teacher with a fresh w-embedding input, as the reference builds it */
        unet_config cfg = teacher->cfg;
        cfg.json = cJSON_Duplicate(teacher->cfg.json, 1);
        if (teacher->cfg.time_cond_proj_dim <= 0 && unet_config_set_int(&cfg, "time_cond_proj_dim", opt.time_cond_proj_dim, err)) die("%s", err);
        if (unet_from_config(student, &cfg, be, 1, (uint64_t)opt.seed, err)) die("%s", err);
        unet_config_free(&cfg);
        unet_copy_params(student, teacher, NULL, 0);
    }
    if (unet_from_config(target, &student->cfg, be, 0, (uint64_t)opt.seed, err)) die("%s", err);
    unet_copy_params(target, student, NULL, 0);
    student->checkpointing = opt.gradient_checkpointing;
}

/* ---- the loop ---- */

typedef struct run {
    dist d;
    const backend *be;
    unet_model teacher, student, target;
    unet_lora lora; /* LoRA mode: the student's adapters */
    lcd_trainer tr;
    adamw_state adam;
    lr_schedule lrs;
    train_source *src;
    lcd_batch batch;
    frame *recs;
    int64_t step;
    uint64_t consumed; /* records this rank has taken from its source */
    FILE *log;
    int progress;
    validation val;
    int validating;
} run;

static char *state_json(const run *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "global_step", (double)r->step);
    cJSON_AddNumberToObject(o, "records_consumed", (double)r->consumed);
    cJSON_AddNumberToObject(o, "world", r->d.world);
    cJSON_AddNumberToObject(o, "train_batch_size", (double)opt.train_batch_size);
    cJSON_AddNumberToObject(o, "seed", (double)opt.seed);
    cJSON_AddStringToObject(o, "lcm_tools_version", LCM_VERSION);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static void save_checkpoint(run *r) {
    if (r->d.rank == 0) {
        char err[LCM_ERRLEN], *js = state_json(r);
        if (checkpoint_save(opt.output_dir, r->step, &r->student, &r->target, &r->adam, js, (int)opt.checkpoints_total_limit, err)) die("%s", err);
        free(js);
    }
    dist_barrier(&r->d);
}

static void resume(run *r) {
    char dir[4096], err[LCM_ERRLEN];
    if (!strcmp(opt.resume, "latest")) {
        if (!checkpoint_latest(opt.output_dir, dir, sizeof dir)) {
            if (r->d.rank == 0) warn("no checkpoint in %s: starting a new run", opt.output_dir);
            return;
        }
    } else {
        /* as the reference: the basename, looked up inside output_dir */
        const char *base = strrchr(opt.resume, '/');
        snprintf(dir, sizeof dir, "%s/%s", opt.output_dir, base ? base + 1 : opt.resume);
    }
    char *js;
    if (checkpoint_load(dir, &r->student, &r->target, &r->adam, &js, err)) die("%s", err);
    cJSON *o = cJSON_Parse(js);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "global_step"), *rec = cJSON_GetObjectItemCaseSensitive(o, "records_consumed");
    if (!cJSON_IsNumber(step) || !cJSON_IsNumber(rec)) die("%s/state.json: global_step or records_consumed missing", dir);
    r->step = (int64_t)step->valuedouble;
    uint64_t skip = (uint64_t)rec->valuedouble;
    cJSON_Delete(o);
    free(js);
    /* the same input replays to the same place: draws are keyed by record */
    frame f;
    frame_init(&f);
    uint64_t gi;
    for (uint64_t i = 0; i < skip; i++)
        if (train_source_next(r->src, &f, &gi, err) != 1) die("resuming %s: the input ends before the %llu records consumed", dir, (unsigned long long)skip);
    frame_free(&f);
    r->consumed = skip;
    if (r->d.rank == 0) warn("resumed from %s at step %lld", dir, (long long)r->step);
}

/* The next micro-batch of this rank: 1, or 0 when the input ends first. */
static int next_batch(run *r) {
    char err[LCM_ERRLEN];
    for (int s = 0; s < opt.train_batch_size; s++) {
        uint64_t gi;
        int rc = train_source_next(r->src, &r->recs[s], &gi, err);
        if (rc < 0) die("%s", err);
        if (rc == 0) return 0;
        r->consumed++;
        if (!r->batch.B && lcd_batch_alloc(&r->batch, (int)opt.train_batch_size, &r->recs[s], err)) die("%s", err);
        if (lcd_batch_fill(&r->batch, s, &r->recs[s], gi, &r->tr.cfg, err)) die("%s", err);
    }
    return 1;
}

static void log_step(run *r, double loss, double lr, double norm, double elapsed, int64_t samples) {
    if (r->d.rank) return;
    fprintf(r->log, "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"samples\": %lld, \"seconds\": %.3f}\n",
            (long long)r->step, loss, lr, norm, (long long)samples, elapsed);
    fflush(r->log);
    if (r->progress) {
        double rate = samples / (elapsed + 1e-9);
        long long left = opt.max_train_steps > 0 ? opt.max_train_steps - r->step : -1;
        fprintf(stderr, "\rlcm-step: step %lld%s loss %.5f lr %.3g %.2f samples/s", (long long)r->step, "", loss, lr, rate);
        if (left >= 0) fprintf(stderr, " ETA %.0fs ", left * opt.train_batch_size * opt.gradient_accumulation_steps * r->d.world / (rate + 1e-9));
    }
}

/* Rank 0 writes OUTPUT_DIR/validation/step-N.png (the others wait). */
static void validate(run *r) {
    if (r->d.rank == 0) {
        char err[LCM_ERRLEN], dir[4096], png[4200];
        snprintf(dir, sizeof dir, "%s/validation", opt.output_dir);
        snprintf(png, sizeof png, "%s/step-%lld.png", dir, (long long)r->step);
        if (mkdir_p(dir, err) || validation_run(&r->val, &r->student, opt.lora ? NULL : &r->target, png, err)) die("validation: %s", err);
    }
    dist_barrier(&r->d);
}

static void setup_validation(run *r) {
    if (opt.validation_steps <= 0) return;
    char err[LCM_ERRLEN];
    if (validation_init(&r->val, opt.teacher, opt.validation_prompts, (int)opt.validation_images, &r->student, opt.lora != 0,
                        (uint64_t)opt.seed, r->be, err)) {
        if (opt.validation_prompts) die("validation: %s", err);
        if (r->d.rank == 0) warn("no validation images: %s", err);
        return;
    }
    r->validating = 1;
}

static void average_gradients(run *r) {
    if (r->d.world == 1) return;
    params *ps = lcd_trained_params(&r->tr);
    if (ps->backend == backend_cpu()) {
        dist_average(&r->d, ps->grad, ps->total);
        return;
    }
    float *host = xmalloc(ps->total * 4);
    tensor g = params_grads(ps);
    tensor_to_host(&g, host);
    dist_average(&r->d, host, ps->total);
    tensor_from_host(&g, host);
    free(host);
}

static int train(run *r) {
    int nonfinite = 0, accum = (int)opt.gradient_accumulation_steps;
    double started = now_seconds();
    int64_t samples = 0, per_step = opt.train_batch_size * accum * r->d.world;
    while (opt.max_train_steps < 0 || r->step < opt.max_train_steps) {
        double loss = 0;
        int ended = 0;
        for (int m = 0; m < accum && !ended; m++) {
            ended = !next_batch(r);
            if (!ended) loss = lcd_micro_step(&r->tr, &r->batch, 1.0f / (float)accum, NULL);
        }
        if (dist_any(&r->d, ended)) break;
        average_gradients(r);
        loss = dist_sum(&r->d, loss) / r->d.world;
        if (!isfinite(loss)) {
            params_zero_grad(lcd_trained_params(&r->tr));
            warn("step %lld: loss is %g: step skipped", (long long)r->step + 1, loss);
            if (++nonfinite >= opt.max_nonfinite_steps) {
                save_checkpoint(r);
                die("%d non-finite losses in a row: stopped; checkpoint-%lld holds the last good state", nonfinite, (long long)r->step);
            }
            continue;
        }
        nonfinite = 0;
        double lr = lr_at(&r->lrs, r->step);
        double norm = lcd_apply_update(&r->tr, &r->adam, (float)lr, (float)opt.max_grad_norm, (float)opt.ema_decay);
        r->step++;
        samples += per_step;
        log_step(r, loss, lr, norm, now_seconds() - started, samples);
        if (opt.checkpointing_steps > 0 && r->step % opt.checkpointing_steps == 0) save_checkpoint(r);
        if (r->validating && r->step % opt.validation_steps == 0) validate(r);
        if (dist_any(&r->d, stop_requested != 0)) {
            if (r->progress) fputc('\n', stderr);
            if (!opt.checkpointing_steps || r->step % opt.checkpointing_steps) save_checkpoint(r);
            if (r->d.rank == 0) warn("stopped by a signal at step %lld; checkpoint-%lld written", (long long)r->step, (long long)r->step);
            return 1;
        }
    }
    if (r->progress) fputc('\n', stderr);
    if (opt.max_train_steps > 0 && r->step < opt.max_train_steps && r->d.rank == 0)
        warn("the input ended at step %lld of %lld", (long long)r->step, opt.max_train_steps);
    return 0;
}

static void save_final(run *r) {
    if (r->d.rank) return;
    char err[LCM_ERRLEN], *p;
    if (opt.lora) {
        p = path_join(opt.output_dir, UNET_LORA_FILE);
        if (unet_lora_save(&r->lora, p, err)) die("%s", err);
        free(p);
        return;
    }
    p = path_join(opt.output_dir, "unet");
    if (unet_save(&r->student, p, err)) die("%s", err);
    free(p);
    p = path_join(opt.output_dir, "unet_target");
    if (unet_save(&r->target, p, err)) die("%s", err);
    free(p);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    run r = {0};
    dist_init(&r.d, &argc, &argv);
    parse_args(argc, argv);
    char err[LCM_ERRLEN];
    r.be = cli_backend(opt.backend_name);
    if (mkdir_p(opt.output_dir, err)) die("%s", err);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    load_models(&r.teacher, &r.student, &r.target, &r.lora, r.be);
    int sdxl = r.teacher.cfg.text_time;
    /* the SDXL script's default guidance range is [3, 15] */
    if (isnan(opt.w_min)) opt.w_min = sdxl ? 3.0 : 5.0;
    if (opt.w_max < opt.w_min) die_usage("--w_max must not be below --w_min");
    if (sdxl && opt.uncond_embeds) die_usage("--uncond_embeds: an SDXL teacher's unconditional embeddings are zeros");
    if (!sdxl && opt.use_fix_crop_and_size) die_usage("--use_fix_crop_and_size: only for an SDXL teacher (addition_embed_type text_time)");
    noise_schedule ns;
    char *sched_path = path_join(opt.teacher, "scheduler/scheduler_config.json");
    if (schedule_from_config(&ns, sched_path, err)) die("%s", err);
    free(sched_path);
    lcd_config cfg = {.num_ddim_timesteps = (int)opt.num_ddim_timesteps, .w_min = (float)opt.w_min, .w_max = (float)opt.w_max,
                      .timestep_scaling = (float)opt.timestep_scaling_factor, .loss = strcmp(opt.loss_type, "huber") ? LOSS_MSE : LOSS_PSEUDO_HUBER,
                      .huber_c = (float)opt.huber_c, .scaling_factor = vae_scaling_factor(opt.teacher), .seed = (uint64_t)opt.seed,
                      .sdxl = sdxl, .use_fix_crop_and_size = opt.use_fix_crop_and_size, .resolution = (int)opt.resolution};
    r.tr = (lcd_trainer){.teacher = &r.teacher, .student = &r.student, .target = &r.target};
    if (lcd_init(&r.tr, &cfg, &ns, err)) die_usage("%s", err);
    /* SDXL's unconditional embeddings are zeros: no text encoder needed */
    if (!cfg.sdxl) r.tr.uncond = uncond_embedding(&r.tr.uncond_len, &r.tr.uncond_dim);
    adamw_init(&r.adam, lcd_trained_params(&r.tr), (float)opt.adam_beta1, (float)opt.adam_beta2, (float)opt.adam_epsilon, (float)opt.adam_weight_decay);
    lr_kind_parse(opt.lr_scheduler, &r.lrs.kind);
    r.lrs.base_lr = opt.learning_rate, r.lrs.warmup_steps = opt.lr_warmup_steps, r.lrs.total_steps = opt.max_train_steps > 0 ? opt.max_train_steps : 0;
    r.src = train_source_open(opt.shards, r.d.rank, r.d.world, (size_t)opt.shuffle_buffer_size, (uint64_t)opt.seed, err);
    if (!r.src) die("%s", err);
    r.recs = xcalloc((size_t)opt.train_batch_size, sizeof(frame));
    if (opt.resume) resume(&r);
    if (r.d.rank == 0) {
        char *p = path_join(opt.output_dir, "train_log.jsonl");
        if (!(r.log = fopen(p, opt.resume ? "a" : "w"))) die("%s: %s", p, strerror(errno));
        free(p);
        r.progress = progress_wanted(opt.progress);
    }

    if (r.d.rank == 0) setup_validation(&r);
    r.validating = dist_any(&r.d, r.validating);
    int stopped = train(&r);
    if (!stopped) save_final(&r);
    if (r.log) fclose(r.log);
    for (int i = 0; i < opt.train_batch_size; i++) frame_free(&r.recs[i]);
    free(r.recs), free(r.tr.uncond);
    lcd_batch_free(&r.batch);
    if (r.d.rank == 0 && r.validating) validation_free(&r.val);
    lcd_free(&r.tr);
    adamw_free(&r.adam);
    train_source_close(r.src);
    unet_free(&r.teacher), unet_free(&r.student);
    if (opt.lora) unet_lora_free(&r.lora);
    else unet_free(&r.target);
    dist_finalize(&r.d);
    return EXIT_OK;
}
