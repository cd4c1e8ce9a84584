/* ckpt_source.c - see ckpt_source.h. */
#include "ckpt_source.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "modeldir.h"
#include "safetensors.h"
#include "util.h"

struct ckpt_source {
    ckpt_kind kind;
    char *name;
    st_file *file;           /* CK_SAFETENSORS */
    model_dir **models;      /* CK_MODEL (1), CK_PIPELINE (one per component) */
    int nmodels;
    char **comps;            /* CK_PIPELINE: component names */
    int ncomps;
    frame_reader *reader;    /* CK_FRAMES */
    frame frame;
    ckpt_record rec;
    char **names;            /* owned item names */
    int nnames, done;
};

ckpt_kind ckpt_kind_of(const ckpt_source *s) { return s->kind; }
const char *ckpt_name(const ckpt_source *s) { return s->name; }

static int by_item_name(const void *a, const void *b) {
    return strcmp(((const ckpt_item *)a)->name, ((const ckpt_item *)b)->name);
}

const ckpt_item *ckpt_find(const ckpt_record *r, const char *name) {
    ckpt_item key = {.name = name};
    return bsearch(&key, r->items, (size_t)r->n, sizeof *r->items, by_item_name);
}

static void free_names(ckpt_source *s) {
    for (int i = 0; i < s->nnames; i++) free(s->names[i]);
    s->nnames = 0;
}

static char *own_name(ckpt_source *s, char *name) {
    s->names = xrealloc(s->names, sizeof *s->names * (size_t)(s->nnames + 1));
    return s->names[s->nnames++] = name;
}

static void add_item(ckpt_source *s, const char *name, dtype_id dt, int ndim, const int64_t *shape, const void *data,
                     size_t nbytes) {
    ckpt_record *r = &s->rec;
    r->items = xrealloc(r->items, sizeof *r->items * (size_t)(r->n + 1));
    ckpt_item *it = &r->items[r->n++];
    it->name = name;
    it->dtype = dt;
    it->ndim = ndim;
    memcpy(it->shape, shape, sizeof *shape * (size_t)ndim);
    it->data = data;
    it->nbytes = nbytes;
}

static void add_st(ckpt_source *s, const st_tensor *t, const char *prefix) {
    const char *name = t->name;
    if (prefix) {
        char *full = xmalloc(strlen(prefix) + strlen(t->name) + 2);
        sprintf(full, "%s/%s", prefix, t->name);
        name = own_name(s, full);
    }
    add_item(s, name, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
}

/* The whole checkpoint as one record. */
static void build_checkpoint_record(ckpt_source *s, char **components) {
    s->rec.number = -1;
    if (s->file)
        for (int i = 0; i < st_count(s->file); i++) add_st(s, st_at(s->file, i), NULL);
    for (int m = 0; m < s->nmodels; m++)
        for (int i = 0; i < model_count(s->models[m]); i++)
            add_st(s, model_at(s->models[m], i), components ? components[m] : NULL);
    if (s->rec.n > 1) qsort(s->rec.items, (size_t)s->rec.n, sizeof *s->rec.items, by_item_name);
}

/* A file is safetensors by its name, or by its first bytes: a plausible
 * header size followed by '{' (a msgpack stream starts with a map byte). */
static int looks_like_safetensors(const char *path) {
    size_t n = strlen(path);
    if (n >= 12 && !strcmp(path + n - 12, ".safetensors")) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[9];
    struct stat sb;
    int yes = fstat(fileno(f), &sb) == 0 && fread(b, 1, 9, f) == 9;
    fclose(f);
    if (!yes) return 0;
    uint64_t hs = 0;
    for (int i = 7; i >= 0; i--) hs = (hs << 8) | b[i];
    return b[8] == '{' && hs + 8 <= (uint64_t)sb.st_size;
}

static int open_folder(ckpt_source *s, const char *path, char *err) {
    char *cfg = path_join(path, "config.json");
    int pipeline = is_pipeline_dir(path) && !path_exists(cfg);
    free(cfg);
    if (!pipeline) {
        s->kind = CK_MODEL;
        s->models = xmalloc(sizeof *s->models);
        if (!(s->models[0] = model_open(path, NULL, MODEL_VARIANT_AUTO, err))) return -1;
        s->nmodels = 1;
        build_checkpoint_record(s, NULL);
        return 0;
    }
    s->kind = CK_PIPELINE;
    int n = pipeline_components(path, &s->comps, err);
    if (n < 0) return -1;
    s->ncomps = n;
    s->models = xcalloc((size_t)(n ? n : 1), sizeof *s->models);
    for (int i = 0; i < n; i++) {
        if (!(s->models[i] = model_open(path, s->comps[i], MODEL_VARIANT_AUTO, err))) return -1;
        s->nmodels++;
    }
    build_checkpoint_record(s, s->comps);
    return 0;
}

ckpt_source *ckpt_open(const char *path, char *err) {
    ckpt_source *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(path);
    frame_init(&s->frame);
    int rc = 0;
    if (!strcmp(path, "-")) {
        s->kind = CK_FRAMES;
        s->reader = frame_reader_fdopen(0, "<stdin>");
    } else if (is_dir(path)) {
        rc = open_folder(s, path, err);
    } else if (!path_exists(path)) {
        rc = seterr(err, "%s: %s", path, strerror(ENOENT));
    } else if (looks_like_safetensors(path)) {
        s->kind = CK_SAFETENSORS;
        if (!(s->file = st_open(path, err))) rc = -1;
        else build_checkpoint_record(s, NULL);
    } else {
        s->kind = CK_FRAMES;
        if (!(s->reader = frame_reader_open(path, err))) rc = -1;
    }
    if (rc) {
        ckpt_close(s);
        return NULL;
    }
    return s;
}

void ckpt_close(ckpt_source *s) {
    if (!s) return;
    st_close(s->file);
    for (int i = 0; i < s->nmodels; i++) model_close(s->models[i]);
    free(s->models);
    for (int i = 0; i < s->ncomps; i++) free(s->comps[i]);
    free(s->comps);
    if (s->reader) frame_reader_close(s->reader);
    frame_free(&s->frame);
    free_names(s);
    free(s->names);
    free(s->rec.items);
    free(s->name);
    free(s);
}

/* The frame's tensors as items; keys are copied to be NUL-terminated. */
static void build_frame_record(ckpt_source *s) {
    s->rec.n = 0;
    s->rec.number = (int64_t)s->frame.record;
    s->rec.offset = s->frame.offset;
    s->rec.frame = &s->frame;
    free_names(s);
    for (int i = 0; i < s->frame.n; i++) {
        const frame_entry *e = &s->frame.entries[i];
        if (e->value.kind != FV_TENSOR) continue;
        char *key = xmalloc(e->key_len + 1);
        memcpy(key, e->key, e->key_len);
        key[e->key_len] = 0;
        const frame_tensor *t = &e->value.v.tensor;
        add_item(s, own_name(s, key), t->dtype, t->ndim, t->shape, t->data, t->nbytes);
    }
    if (s->rec.n > 1) qsort(s->rec.items, (size_t)s->rec.n, sizeof *s->rec.items, by_item_name);
}

int ckpt_next(ckpt_source *s, const ckpt_record **rec, char *err) {
    if (s->kind != CK_FRAMES) {
        if (s->done) return 0;
        s->done = 1;
        *rec = &s->rec;
        return 1;
    }
    int rc = frame_read(s->reader, &s->frame);
    if (rc < 0) return seterr(err, "%s", frame_reader_error(s->reader));
    if (rc == 0) return 0;
    build_frame_record(s);
    *rec = &s->rec;
    return 1;
}

void item_stats(const ckpt_item *it, tensor_stats *st) {
    enum { CHUNK = 4096 };
    static _Thread_local double buf[CHUNK];
    memset(st, 0, sizeof *st);
    st->min = INFINITY;
    st->max = -INFINITY;
    st->count = (uint64_t)shape_numel(it->ndim, it->shape);
    double mean = 0, m2 = 0; /* Welford: stable for large tensors */
    for (uint64_t i = 0; i < st->count; i += CHUNK) {
        size_t k = st->count - i < CHUNK ? (size_t)(st->count - i) : CHUNK;
        st_load_f64(it->data, it->dtype, (size_t)i, k, buf);
        for (size_t j = 0; j < k; j++) {
            double v = buf[j];
            if (isnan(v)) { st->nan++; continue; }
            if (isinf(v)) { st->inf++; continue; }
            st->finite++;
            if (v < st->min) st->min = v;
            if (v > st->max) st->max = v;
            double d = v - mean;
            mean += d / (double)st->finite;
            m2 += d * (v - mean);
        }
    }
    if (!st->finite) st->min = st->max = NAN;
    st->mean = st->finite ? mean : NAN;
    st->std = st->finite ? sqrt(m2 / (double)st->finite) : NAN;
}
