/* vae-encode - adds the VAE posterior (latent_moments, or a sampled latent)
 * to every record that carries an image. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "frame.h"
#include "rng.h"
#include "util.h"
#include "vae.h"

static const char usage[] =
    "Usage: vae-encode --model DIR [OPTION]... < FRAMES > FRAMES\n"
    "Encode each record's `image` [3,H,W] with the VAE of DIR (a pipeline folder or a\n"
    "VAE folder) and add `latent_moments` [2C,h,w] (mean then logvar, unscaled).\n"
    "\n"
    "  --model DIR          the model (required)\n"
    "  --batch N            records encoded together (default 8)\n"
    "  --sample             write `latent` = (mean + std * noise) * scaling_factor\n"
    "                       instead of latent_moments\n"
    "  --seed N             seed of the --sample noise (default 0); a record's\n"
    "                       `posterior_noise` replaces the draw\n"
    "  --keep-image         keep `image` in the output (dropped by default)\n"
    "  --dtype T            f32 (default), f16 or bf16 for the written tensor\n"
    "  --backend NAME       cpu (default, or $LCM_BACKEND) or cuda\n"
    "  --progress           report progress on stderr even when it is not a terminal\n"
    "  --help, --version\n"
    "\n"
    "Records without an image pass through unchanged. Exit status: 0 ok, 1 error, 2 usage.\n";

typedef struct options {
    const char *model;
    int batch, sample, keep_image, progress;
    uint64_t seed;
    dtype_id dtype;
    const backend *be;
} options;

typedef struct state {
    options opt;
    vae_model vae;
    frame_writer *out;
    frame_out *fo;
    frame *slots; /* pending records, copied: the reader reuses its buffer */
    int pending;
    int64_t img_shape[3];
    tensor *x, *moments; /* batch buffers on the backend, sized for the current shape */
    int64_t written, passed;
    double started;
} state;

static options parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"batch", required_argument, 0, 'b'},   {"sample", no_argument, 0, 's'},
        {"seed", required_argument, 0, 'S'},  {"keep-image", no_argument, 0, 'k'},    {"keep_image", no_argument, 0, 'k'},
        {"dtype", required_argument, 0, 'd'}, {"backend", required_argument, 0, 'B'}, {"progress", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},        {"version", no_argument, 0, 'V'},       {0, 0, 0, 0}};
    options o = {.batch = 8, .dtype = DT_F32};
    const char *backend_name = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'b': o.batch = (int)cli_int("batch", optarg, 1, 4096); break;
        case 's': o.sample = 1; break;
        case 'S': o.seed = (uint64_t)cli_int("seed", optarg, 0, INT64_MAX); break;
        case 'k': o.keep_image = 1; break;
        case 'd': o.dtype = cli_float_dtype("dtype", optarg); break;
        case 'B': backend_name = optarg; break;
        case 'p': o.progress = 1; break;
        case 'h': cli_help(usage);
        case 'V': cli_version();
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o.model) die_usage("--model DIR is required");
    o.be = cli_backend(backend_name);
    return o;
}

/* (Re)allocates the batch buffers when the image size changes. */
static void ensure_buffers(state *s, const int64_t *shape) {
    if (s->x && !memcmp(shape, s->img_shape, sizeof s->img_shape)) return;
    tensor_free(s->x), tensor_free(s->moments);
    memcpy(s->img_shape, shape, sizeof s->img_shape);
    int f = vae_factor(&s->vae), B = s->opt.batch;
    if (shape[1] % f || shape[2] % f)
        die("image of %lldx%lld: height and width must be multiples of %d", (long long)shape[1], (long long)shape[2], f);
    s->x = tensor_new4(s->opt.be, DT_F32, B, shape[0], shape[1], shape[2]);
    s->moments = tensor_new4(s->opt.be, DT_F32, B, 2 * s->vae.cfg.latent_channels, shape[1] / f, shape[2] / f);
}

/* latent = (mean + exp(0.5 clamp(logvar, -30, 20)) noise) * scaling_factor, as
 * diffusers' DiagonalGaussianDistribution.sample() and the LCD script do. */
static void sample_latent(const state *s, const float *moments, const frame *f, float *latent, int64_t per) {
    const frame_value *pn = frame_get(f, "posterior_noise");
    float *noise = xmalloc((size_t)per * sizeof(float));
    if (pn) {
        tensor t = tensor_view(NULL, DT_F32, 1, (int64_t[]){per}, noise);
        char err[LCM_ERRLEN];
        if (frame_tensor_copy(pn, &t, err)) die("record %llu: posterior_noise: %s", (unsigned long long)f->record, err);
    } else {
        rng r;
        rng_seed(&r, s->opt.seed, f->record);
        rng_normal_fill(&r, noise, (size_t)per);
    }
    for (int64_t i = 0; i < per; i++) {
        float logvar = fminf(fmaxf(moments[per + i], -30.0f), 20.0f);
        latent[i] = (moments[i] + expf(0.5f * logvar) * noise[i]) * s->vae.cfg.scaling_factor;
    }
    free(noise);
}

static void flush(state *s) {
    if (!s->pending) return;
    int n = s->pending;
    tensor x = *s->x, mom = *s->moments;
    x.shape[0] = mom.shape[0] = n;
    vae_encode(&s->vae, &x, &mom);
    int64_t C2 = mom.shape[1], h = mom.shape[2], w = mom.shape[3], per = C2 * h * w;
    float *host = xmalloc((size_t)(n * per) * sizeof(float));
    tensor_to_host(&mom, host);
    void *conv = xmalloc((size_t)per * dtype_size(s->opt.dtype));
    float *latent = s->opt.sample ? xmalloc((size_t)per / 2 * sizeof(float)) : NULL;
    static const char *const drop_image[] = {"image", NULL};
    for (int i = 0; i < n; i++) {
        frame *f = &s->slots[i];
        frame_out_reset(s->fo);
        fo_pass(s->fo, f, s->opt.keep_image ? NULL : drop_image);
        if (s->opt.sample) {
            sample_latent(s, host + i * per, f, latent, per / 2);
            dtype_convert(conv, s->opt.dtype, latent, DT_F32, (size_t)per / 2);
            fo_tensor(s->fo, "latent", s->opt.dtype, 3, (int64_t[]){C2 / 2, h, w}, conv);
        } else {
            dtype_convert(conv, s->opt.dtype, host + i * per, DT_F32, (size_t)per);
            fo_tensor(s->fo, "latent_moments", s->opt.dtype, 3, (int64_t[]){C2, h, w}, conv);
        }
        frame_emit(s->out, s->fo);
    }
    s->written += n;
    s->pending = 0;
    free(host), free(conv), free(latent);
}

/* Queues a record with an image and copies its image into the batch. */
static void enqueue(state *s, const frame *f, const frame_value *img) {
    const frame_tensor *t = &img->v.tensor;
    if (t->ndim != 3 || t->shape[0] != s->vae.cfg.in_channels)
        die("record %llu at byte %llu: image must be [%d, H, W]", (unsigned long long)f->record, (unsigned long long)f->offset,
            s->vae.cfg.in_channels);
    if (s->x && memcmp(t->shape, s->img_shape, sizeof s->img_shape)) flush(s);
    ensure_buffers(s, t->shape);
    frame *copy = &s->slots[s->pending];
    frame_copy(copy, f);
    char err[LCM_ERRLEN];
    int64_t per = t->shape[0] * t->shape[1] * t->shape[2];
    tensor dst = tensor_view(s->opt.be, DT_F32, 3, t->shape, (float *)s->x->data + s->pending * per);
    if (frame_tensor_copy(frame_get(copy, "image"), &dst, err)) die("record %llu: image: %s", (unsigned long long)f->record, err);
    if (++s->pending == s->opt.batch) flush(s);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    state s = {.opt = parse_args(argc, argv)};
    char err[LCM_ERRLEN];
    if (vae_load(&s.vae, s.opt.model, s.opt.be, err)) die("%s", err);
    s.slots = xcalloc((size_t)s.opt.batch, sizeof(frame));
    s.out = frame_writer_fdopen(1, "<stdout>");
    s.fo = frame_out_new();
    s.started = now_seconds();
    frame_reader *in = frame_reader_fdopen(0, "<stdin>");
    frame f;
    frame_init(&f);
    int rc, progress = progress_wanted(s.opt.progress);
    while ((rc = frame_read(in, &f)) == 1) {
        const frame_value *img = frame_get(&f, "image");
        if (img && img->kind == FV_TENSOR) {
            enqueue(&s, &f, img);
        } else {
            flush(&s); /* keeps the input order */
            frame_out_reset(s.fo);
            fo_pass(s.fo, &f, NULL);
            frame_emit(s.out, s.fo);
            s.passed++;
        }
        if (progress && f.record % 16 == 0)
            fprintf(stderr, "\rvae-encode: %lld encoded, %.1f/s", (long long)s.written, s.written / (now_seconds() - s.started + 1e-9));
    }
    if (rc < 0) die("%s", frame_reader_error(in));
    flush(&s);
    if (progress) fputc('\n', stderr);
    frame_writer_finish(s.out);
    if (s.passed) warn("%lld records encoded, %lld without an image passed through", (long long)s.written, (long long)s.passed);
    frame_out_free(s.fo);
    frame_free(&f);
    frame_reader_close(in);
    for (int i = 0; i < s.opt.batch; i++) frame_free(&s.slots[i]);
    free(s.slots);
    tensor_free(s.x), tensor_free(s.moments);
    vae_free(&s.vae);
    return EXIT_OK;
}
