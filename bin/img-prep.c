/* img-prep - decode, resize, crop and normalise the images of a frame stream
 * (man 1 img-prep).
 *
 * Reads records with raw image bytes (jpg/png/jpeg/webp) and a caption
 * (text/txt/caption) on stdin and writes records with an `image` tensor in
 * [-1, 1], the caption as `txt`, `original_size` and `crop_coords` on stdout,
 * doing what the reference's PIL + torchvision transform does.
 *
 * Threads: the main thread reads and copies each record into a slot of a
 * ring; workers transform slots in parallel; a writer thread emits them in
 * input order. Each sample's random numbers come from its own generator
 * seeded by (seed, record index), so output is the same for any --threads. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "frame.h"
#include "img_decode.h"
#include "img_prep.h"
#include "img_resize.h"
#include "utf8_valid.h"
#include "util.h"

static const char *const image_keys[] = {"jpg", "png", "jpeg", "webp", NULL};
static const char *const caption_keys[] = {"text", "txt", "caption", NULL};

typedef struct options {
    int resolution;
    resample_filter filter;
    int center_crop, random_flip;
    uint64_t seed;
    dtype_id dtype;
    int threads;
    int fast_decode;
    int progress;
    int filter_size, filter_watermark; /* which json rules are on */
    double min_size, max_pwatermark;
} options;

/* ---- skip reasons and the summary ---- */

typedef enum outcome { OK, SKIP_FILTERED, SKIP_NO_IMAGE, SKIP_NO_CAPTION, SKIP_BAD_CAPTION, SKIP_BAD_IMAGE, N_OUTCOMES } outcome;
static const char *const outcome_names[N_OUTCOMES] = {"written", "filtered out", "no image", "no caption",
                                                      "caption not UTF-8", "undecodable image"};

/* ---- a record copied out of the reader's buffer ---- */

typedef struct entry_copy {
    size_t key_off, key_len;
    size_t raw_off, raw_len;
    int is_bytes;            /* a string or binary value: val_* is valid */
    size_t val_off, val_len; /* the payload inside raw */
} entry_copy;

enum { SLOT_EMPTY, SLOT_READY, SLOT_DONE };

typedef struct slot {
    int state;
    uint64_t record;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    entry_copy *e;
    int n, cap;
    /* results */
    outcome result;
    char why[LCM_ERRLEN];
    void *tensor;
    size_t tensor_cap;
    int32_t original_size[2], crop_coords[2];
    int caption_entry;
} slot;

static void slot_copy_record(slot *s, const frame *f) {
    s->record = f->record;
    s->arena_len = 0;
    s->n = 0;
    size_t need = 0;
    for (int i = 0; i < f->n; i++) need += f->entries[i].key_len + f->entries[i].value.raw_len;
    if (need > s->arena_cap) s->arena = xrealloc(s->arena, s->arena_cap = need);
    if (f->n > s->cap) s->e = xrealloc(s->e, sizeof(entry_copy) * (size_t)(s->cap = f->n));
    for (int i = 0; i < f->n; i++) {
        const frame_entry *fe = &f->entries[i];
        entry_copy *c = &s->e[s->n++];
        c->key_off = s->arena_len, c->key_len = fe->key_len;
        memcpy(s->arena + s->arena_len, fe->key, fe->key_len);
        s->arena_len += fe->key_len;
        c->raw_off = s->arena_len, c->raw_len = fe->value.raw_len;
        memcpy(s->arena + s->arena_len, fe->value.raw, fe->value.raw_len);
        s->arena_len += fe->value.raw_len;
        c->is_bytes = fe->value.kind == FV_STR || fe->value.kind == FV_BIN;
        if (c->is_bytes) {
            c->val_off = c->raw_off + (size_t)((const uint8_t *)fe->value.v.bytes.ptr - fe->value.raw);
            c->val_len = fe->value.v.bytes.len;
        }
    }
}

static int slot_find(const slot *s, const char *key) {
    size_t len = strlen(key);
    for (int i = 0; i < s->n; i++)
        if (s->e[i].key_len == len && !memcmp(s->arena + s->e[i].key_off, key, len)) return i;
    return -1;
}

static int slot_find_first(const slot *s, const char *const *keys) {
    for (; *keys; keys++) {
        int i = slot_find(s, *keys);
        if (i >= 0) return i;
    }
    return -1;
}

static const uint8_t *slot_value(const slot *s, int i, size_t *len) {
    *len = s->e[i].val_len;
    return s->arena + s->e[i].val_off;
}

/* ---- the SDXL json filter (WebdatasetFilter) ---- */

/* Python's `x.get(k, 0.0) or 0.0` / `x.get(k, 0)` as a number; -1 where the
 * comparison would raise (the reference then drops the sample). */
static int json_number(const cJSON *obj, const char *key, int none_is_zero, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return *out = 0, 0;
    if (cJSON_IsNumber(v)) return *out = v->valuedouble, 0;
    if (cJSON_IsBool(v)) return *out = cJSON_IsTrue(v) ? 1 : 0, 0;
    if (cJSON_IsNull(v) && none_is_zero) return *out = 0, 0;
    return -1;
}

static int passes_json_filter(const options *o, const slot *s) {
    int i = slot_find(s, "json");
    if (i < 0 || !s->e[i].is_bytes) return 0;
    size_t len;
    const uint8_t *text = slot_value(s, i, &len);
    cJSON *j = cJSON_ParseWithLength((const char *)text, len);
    int keep = j && cJSON_IsObject(j);
    double w, h, pw;
    if (keep && o->filter_size)
        keep = json_number(j, "width", 1, &w) == 0 && w >= o->min_size && json_number(j, "height", 0, &h) == 0 &&
               h >= o->min_size;
    if (keep && o->filter_watermark) keep = json_number(j, "pwatermark", 1, &pw) == 0 && pw <= o->max_pwatermark;
    cJSON_Delete(j);
    return keep;
}

/* ---- the transform of one sample ---- */

/* A worker's images, kept from sample to sample so that the loop allocates
 * only when an image is larger than every one before it. */
typedef struct worker_images {
    rgb_image decoded, mid, resized;
} worker_images;

/* The resized size (tw x th) and the crop of a w x h image; -1 where the
 * resized image would be too large. */
static int plan_sample(const options *o, uint64_t record, int w, int h, int *tw, int *th, crop_plan *plan) {
    if (resize_target(w, h, o->resolution, tw, th) || (long long)*tw * *th > IMG_MAX_PIXELS) return -1;
    sample_rng rng;
    sample_rng_init(&rng, o->seed, record);
    *plan = plan_crop(*tw, *th, o->resolution, o->center_crop, o->random_flip, &rng);
    return 0;
}

typedef struct sample_ref {
    const options *o;
    uint64_t record;
} sample_ref;

/* img_decode's region callback: the pixels that resizing to the crop reads. */
static void crop_source_box(void *ctx, int w, int h, int box[4]) {
    const sample_ref *ref = ctx;
    int tw, th, res = ref->o->resolution;
    crop_plan plan;
    if (plan_sample(ref->o, ref->record, w, h, &tw, &th, &plan) == 0)
        img_resize_source_box(w, h, tw, th, plan.left, plan.top, res, res, ref->o->filter, box);
}

static outcome transform_image(const options *o, slot *s, const uint8_t *bytes, size_t len, worker_images *im) {
    sample_ref ref = {o, s->record};
    img_decode_opts dopt = {.fast_min_short = o->fast_decode ? o->resolution : 0,
                            .region = crop_source_box,
                            .region_ctx = &ref};
    int stored_w, stored_h, tw, th;
    crop_plan plan;
    if (img_decode(bytes, len, &dopt, &im->decoded, &stored_w, &stored_h, s->why)) return SKIP_BAD_IMAGE;
    if (plan_sample(o, s->record, stored_w, stored_h, &tw, &th, &plan)) {
        seterr(s->why, "%dx%d image would resize to %s%dx%d, too large", stored_w, stored_h,
               tw == INT_MAX || th == INT_MAX ? "over " : "", tw, th);
        return SKIP_BAD_IMAGE;
    }
    /* Only the crop is resampled: the same pixels as resizing whole, then cropping. */
    img_resize_region(&im->decoded, tw, th, plan.left, plan.top, o->resolution, o->resolution, o->filter, &im->mid,
                      &im->resized);

    size_t need = (size_t)3 * (size_t)o->resolution * (size_t)o->resolution * dtype_size(o->dtype);
    if (need > s->tensor_cap) {
        free(s->tensor);
        s->tensor = xaligned_alloc(s->tensor_cap = need);
    }
    crop_plan whole = {0, 0, plan.flip};
    crop_to_tensor(&im->resized, &whole, o->resolution, o->dtype, s->tensor);
    s->original_size[0] = stored_h, s->original_size[1] = stored_w;
    /* A flipped crop is reported where it lies in the flipped image. */
    s->crop_coords[0] = plan.top;
    s->crop_coords[1] = plan.flip ? tw - o->resolution - plan.left : plan.left;
    return OK;
}

static outcome process(const options *o, slot *s, worker_images *im) {
    s->why[0] = 0;
    if ((o->filter_size || o->filter_watermark) && !passes_json_filter(o, s)) return SKIP_FILTERED;
    int img = slot_find_first(s, image_keys);
    if (img < 0) return seterr(s->why, "no image (none of jpg, png, jpeg, webp)"), SKIP_NO_IMAGE;
    int cap = slot_find_first(s, caption_keys);
    if (cap < 0) return seterr(s->why, "no caption (none of text, txt, caption)"), SKIP_NO_CAPTION;
    s->caption_entry = cap;
    size_t len;
    const uint8_t *bytes;
    if (!s->e[cap].is_bytes) return seterr(s->why, "caption is not a string"), SKIP_BAD_CAPTION;
    bytes = slot_value(s, cap, &len);
    long bad = utf8_invalid_at((const char *)bytes, len);
    if (bad >= 0) return seterr(s->why, "caption is not valid UTF-8 (byte %ld)", bad), SKIP_BAD_CAPTION;
    if (!s->e[img].is_bytes) return seterr(s->why, "image value is not bytes"), SKIP_BAD_IMAGE;
    bytes = slot_value(s, img, &len);
    return transform_image(o, s, bytes, len, im);
}

/* ---- the pipeline ---- */

typedef struct pipeline {
    const options *opt;
    slot *slots;
    int nslots;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint64_t next_in, next_take, next_out; /* record counters */
    int input_done;
    frame_writer *w;
    uint64_t counts[N_OUTCOMES];
    int progress;
    double last_progress;
} pipeline;

static void *worker_main(void *arg) {
    pipeline *p = arg;
    worker_images im;
    memset(&im, 0, sizeof im);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->next_take == p->next_in && !p->input_done) pthread_cond_wait(&p->changed, &p->lock);
        if (p->next_take == p->next_in) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        slot *s = &p->slots[p->next_take++ % (uint64_t)p->nslots];
        pthread_mutex_unlock(&p->lock);
        s->result = process(p->opt, s, &im);
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    rgb_image_free(&im.decoded), rgb_image_free(&im.mid), rgb_image_free(&im.resized);
    return NULL;
}

static int is_dropped_key(const slot *s, int i) {
    const char *k = (const char *)s->arena + s->e[i].key_off;
    size_t len = s->e[i].key_len;
    for (const char *const *d = image_keys; *d; d++)
        if (strlen(*d) == len && !memcmp(k, *d, len)) return 1;
    return i == s->caption_entry;
}

static void emit_slot(pipeline *p, slot *s, frame_out *o) {
    const options *opt = p->opt;
    frame_out_reset(o);
    for (int i = 0; i < s->n; i++)
        if (!is_dropped_key(s, i))
            fo_raw(o, (const char *)s->arena + s->e[i].key_off, s->e[i].key_len, s->arena + s->e[i].raw_off,
                   s->e[i].raw_len);
    int64_t shape[3] = {3, opt->resolution, opt->resolution}, pair[1] = {2};
    size_t cap_len;
    const uint8_t *cap = slot_value(s, s->caption_entry, &cap_len);
    fo_tensor(o, "image", opt->dtype, 3, shape, s->tensor);
    fo_str(o, "txt", (const char *)cap, cap_len);
    fo_tensor(o, "original_size", DT_I32, 1, pair, s->original_size);
    fo_tensor(o, "crop_coords", DT_I32, 1, pair, s->crop_coords);
    frame_emit(p->w, o);
}

static void warn_skip(const slot *s) {
    int k = slot_find(s, "__key__");
    if (k >= 0 && s->e[k].is_bytes) {
        size_t len;
        const uint8_t *key = slot_value(s, k, &len);
        warn("record %llu (__key__ %.*s): skipped: %s", (unsigned long long)s->record, (int)(len > 200 ? 200 : len),
             (const char *)key, s->why);
    } else {
        warn("record %llu (no __key__): skipped: %s", (unsigned long long)s->record, s->why);
    }
}

static void *writer_main(void *arg) {
    pipeline *p = arg;
    frame_out *o = frame_out_new();
    for (;;) {
        pthread_mutex_lock(&p->lock);
        slot *s = &p->slots[p->next_out % (uint64_t)p->nslots];
        while (!(p->next_out < p->next_in && s->state == SLOT_DONE) && !(p->input_done && p->next_out == p->next_in))
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->next_out == p->next_in) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        pthread_mutex_unlock(&p->lock);
        p->counts[s->result]++;
        if (s->result == OK) emit_slot(p, s, o);
        else if (s->result != SKIP_FILTERED) warn_skip(s);
        if (p->progress && now_seconds() - p->last_progress >= 1.0) {
            p->last_progress = now_seconds();
            fprintf(stderr, "\rimg-prep: %llu records", (unsigned long long)p->next_out + 1);
        }
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_EMPTY;
        p->next_out++;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    frame_out_free(o);
    return NULL;
}

/* Reads every record into the ring; returns the reader's error or NULL. */
static char *feed(pipeline *p, frame_reader *r) {
    frame f;
    frame_init(&f);
    char *error = NULL;
    for (;;) {
        int rc = frame_read(r, &f);
        if (rc < 0) error = xstrdup(frame_reader_error(r));
        if (rc <= 0) break;
        pthread_mutex_lock(&p->lock);
        slot *s = &p->slots[p->next_in % (uint64_t)p->nslots];
        while (s->state != SLOT_EMPTY) pthread_cond_wait(&p->changed, &p->lock);
        pthread_mutex_unlock(&p->lock);
        slot_copy_record(s, &f);
        pthread_mutex_lock(&p->lock);
        s->state = SLOT_READY;
        p->next_in++;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&p->lock);
    p->input_done = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    frame_free(&f);
    return error;
}

static void print_summary(const pipeline *p) {
    uint64_t read = 0, skipped = 0;
    for (int i = 0; i < N_OUTCOMES; i++) read += p->counts[i];
    skipped = read - p->counts[OK];
    char detail[512] = "";
    size_t at = 0;
    for (int i = 1; i < N_OUTCOMES; i++)
        if (p->counts[i])
            at += (size_t)snprintf(detail + at, sizeof detail - at, "%s%s %llu", at ? ", " : " (", outcome_names[i],
                                   (unsigned long long)p->counts[i]);
    if (at) snprintf(detail + at, sizeof detail - at, ")");
    if (p->progress) fputc('\n', stderr);
    warn("read %llu, wrote %llu, skipped %llu%s", (unsigned long long)read, (unsigned long long)p->counts[OK],
         (unsigned long long)skipped, detail);
}

/* Each record carries a 3 MB tensor at 512 x 512 in f32: a 1 MiB pipe (the
 * default limit for unprivileged users) instead of 64 KiB takes 16 times fewer
 * wake-ups of this process and its neighbours. Not a pipe, or not allowed:
 * nothing changes. */
static void widen_pipe(int fd) {
#ifdef F_SETPIPE_SZ
    int old = fcntl(fd, F_GETPIPE_SZ);
    if (old > 0 && old < (1 << 20)) (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#endif
}

static void run(const options *opt) {
    widen_pipe(0), widen_pipe(1);
    pipeline p;
    memset(&p, 0, sizeof p);
    p.opt = opt;
    p.nslots = 2 * opt->threads + 2;
    p.slots = xcalloc((size_t)p.nslots, sizeof(slot));
    p.progress = progress_wanted(opt->progress);
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.changed, NULL);
    frame_reader *r = frame_reader_fdopen(0, "<stdin>");
    p.w = frame_writer_fdopen(1, "<stdout>");
    pthread_t writer, *workers = xmalloc(sizeof(pthread_t) * (size_t)opt->threads);
    if (pthread_create(&writer, NULL, writer_main, &p)) die("cannot start a thread");
    for (int i = 0; i < opt->threads; i++)
        if (pthread_create(&workers[i], NULL, worker_main, &p)) die("cannot start a thread");
    char *error = feed(&p, r);
    for (int i = 0; i < opt->threads; i++) pthread_join(workers[i], NULL);
    pthread_join(writer, NULL);
    frame_writer_finish(p.w);
    print_summary(&p);
    if (error) die("%s", error);
    frame_reader_close(r);
    for (int i = 0; i < p.nslots; i++) free(p.slots[i].arena), free(p.slots[i].e), free(p.slots[i].tensor);
    free(p.slots);
    free(workers);
}

/* ---- command line ---- */

static void usage(FILE *to) {
    fprintf(to,
            "Usage: img-prep [OPTION]... < frames > frames\n"
            "Decode the jpg/png/jpeg/webp image of each record, resize its shorter side to\n"
            "--resolution, crop a square and normalise it to [-1, 1], as the LCM training\n"
            "script's PIL + torchvision transform does. Output keys: image, txt,\n"
            "original_size, crop_coords, plus every input key except the raw image and\n"
            "the caption source.\n"
            "\n"
            "  --resolution N            output side in pixels (default 512)\n"
            "  --interpolation_type F    bilinear (default), bicubic, lanczos, box, hamming,\n"
            "                            nearest\n"
            "  --center_crop             crop the centre instead of a random square\n"
            "  --random_flip             mirror horizontally with probability 1/2\n"
            "  --seed N                  seed of the per-sample generators (default 0)\n"
            "  --dtype f32|f16           dtype of the image tensor (default f32)\n"
            "  --min_size N              keep only samples whose json width and height are >= N\n"
            "  --max_pwatermark P        keep only samples whose json pwatermark is <= P\n"
            "  --threads N               worker threads (default: all cores)\n"
            "  --fast-decode             let libjpeg decode JPEGs at 1/2, 1/4 or 1/8 scale\n"
            "                            (faster, no longer identical to PIL)\n"
            "  --progress                report progress on stderr\n"
            "  --help, --version\n"
            "Options are also accepted with dashes (--center-crop) and as --opt=value.\n");
}

enum {
    OPT_RESOLUTION = 256, OPT_INTERP, OPT_CENTER, OPT_FLIP, OPT_SEED, OPT_DTYPE, OPT_MIN_SIZE, OPT_MAX_PWM,
    OPT_THREADS, OPT_FAST, OPT_PROGRESS, OPT_HELP, OPT_VERSION
};

static const struct option long_options[] = {
    {"resolution", required_argument, 0, OPT_RESOLUTION},
    {"interpolation_type", required_argument, 0, OPT_INTERP},
    {"interpolation-type", required_argument, 0, OPT_INTERP},
    {"center_crop", no_argument, 0, OPT_CENTER},
    {"center-crop", no_argument, 0, OPT_CENTER},
    {"random_flip", no_argument, 0, OPT_FLIP},
    {"random-flip", no_argument, 0, OPT_FLIP},
    {"seed", required_argument, 0, OPT_SEED},
    {"dtype", required_argument, 0, OPT_DTYPE},
    {"min_size", required_argument, 0, OPT_MIN_SIZE},
    {"min-size", required_argument, 0, OPT_MIN_SIZE},
    {"max_pwatermark", required_argument, 0, OPT_MAX_PWM},
    {"max-pwatermark", required_argument, 0, OPT_MAX_PWM},
    {"threads", required_argument, 0, OPT_THREADS},
    {"fast-decode", no_argument, 0, OPT_FAST},
    {"fast_decode", no_argument, 0, OPT_FAST},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"help", no_argument, 0, OPT_HELP},
    {"version", no_argument, 0, OPT_VERSION},
    {0, 0, 0, 0},
};

static long long parse_int(const char *opt, const char *s, long long lo, long long hi) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) die_usage("--%s: expected an integer in [%lld, %lld], got '%s'", opt, lo, hi, s);
    return v;
}

static double parse_double(const char *opt, const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v != v) die_usage("--%s: expected a number, got '%s'", opt, s);
    return v;
}

static void parse_args(int argc, char **argv, options *o) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (options){.resolution = 512, .filter = RESAMPLE_BILINEAR, .dtype = DT_F32, .threads = cores > 0 ? (int)cores : 1};
    int c;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_RESOLUTION: o->resolution = (int)parse_int("resolution", optarg, 1, 16384); break;
        case OPT_INTERP: {
            int f = resample_filter_parse(optarg);
            if (f < 0) die_usage("--interpolation_type: unknown filter '%s' (bilinear, bicubic, lanczos, box, hamming, nearest)", optarg);
            o->filter = (resample_filter)f;
            break;
        }
        case OPT_CENTER: o->center_crop = 1; break;
        case OPT_FLIP: o->random_flip = 1; break;
        case OPT_SEED: o->seed = (uint64_t)parse_int("seed", optarg, 0, INT64_MAX); break;
        case OPT_DTYPE:
            if (!strcmp(optarg, "f32")) o->dtype = DT_F32;
            else if (!strcmp(optarg, "f16")) o->dtype = DT_F16;
            else die_usage("--dtype: expected f32 or f16, got '%s'", optarg);
            break;
        case OPT_MIN_SIZE: o->filter_size = 1, o->min_size = parse_double("min_size", optarg); break;
        case OPT_MAX_PWM: o->filter_watermark = 1, o->max_pwatermark = parse_double("max_pwatermark", optarg); break;
        case OPT_THREADS: o->threads = (int)parse_int("threads", optarg, 1, 1024); break;
        case OPT_FAST: o->fast_decode = 1; break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_HELP: usage(stdout); exit(EXIT_OK);
        case OPT_VERSION: printf("img-prep lcm-tools %s\n", LCM_VERSION); exit(EXIT_OK);
        default: usage(stderr); exit(EXIT_USAGE);
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s' (frames come on stdin)", argv[optind]);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    options opt;
    parse_args(argc, argv, &opt);
    run(&opt);
    return EXIT_OK;
}
