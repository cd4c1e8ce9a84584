/* modeldir.c - see modeldir.h. */
#include "modeldir.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const base_names[] = {"diffusion_pytorch_model", "model"};
enum { NBASES = 2 };

int model_count(const model_dir *m) { return m->n; }
const st_tensor *model_at(const model_dir *m, int i) { return (i >= 0 && i < m->n) ? m->tensors[i] : NULL; }

static int by_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

const st_tensor *model_find(const model_dir *m, const char *name) {
    st_tensor key = {.name = name};
    const st_tensor *kp = &key;
    const st_tensor **hit = bsearch(&kp, m->tensors, (size_t)m->n, sizeof *m->tensors, by_tensor_name);
    return hit ? *hit : NULL;
}

void model_close(model_dir *m) {
    if (!m) return;
    for (int i = 0; i < m->nshards; i++) st_close(m->shards[i]);
    free(m->shards);
    free(m->tensors);
    json_cfg_free(&m->config);
    free(m->weights);
    free(m->dir);
    free(m);
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int is_pickle_name(const char *s) {
    return has_suffix(s, ".bin") || has_suffix(s, ".ckpt") || has_suffix(s, ".pt") || has_suffix(s, ".pth");
}

/* Calls fn on each entry name of dir (not . and ..); stops at fn's non-zero. */
static int each_entry(const char *dir, int (*fn)(const char *name, void *ctx), void *ctx) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) rc = fn(e->d_name, ctx);
    closedir(d);
    return rc;
}

static int weight_name(const char *name, void *ctx) {
    (void)ctx;
    return has_suffix(name, ".safetensors") || (has_suffix(name, ".json") && strstr(name, ".safetensors.index")) ||
           is_pickle_name(name);
}

static int pickle_name(const char *name, void *ctx) {
    if (!is_pickle_name(name)) return 0;
    snprintf(ctx, 256, "%s", name);
    return 1;
}

typedef struct { int count; char name[256]; } st_count_ctx;
static int count_safetensors(const char *name, void *ctx) {
    st_count_ctx *c = ctx;
    if (has_suffix(name, ".safetensors")) c->count++, snprintf(c->name, sizeof c->name, "%s", name);
    return 0;
}

int dir_has_weights(const char *dir) { return each_entry(dir, weight_name, NULL); }

int is_pipeline_dir(const char *dir) {
    char *p = path_join(dir, "model_index.json");
    int yes = path_exists(p);
    free(p);
    return yes;
}

/* Adds every tensor of every shard to m->tensors, sorted; names must be unique. */
static int index_tensors(model_dir *m, char *err) {
    int total = 0;
    for (int s = 0; s < m->nshards; s++) total += st_count(m->shards[s]);
    m->tensors = xmalloc(sizeof *m->tensors * (size_t)(total ? total : 1));
    for (int s = 0; s < m->nshards; s++)
        for (int i = 0; i < st_count(m->shards[s]); i++) m->tensors[m->n++] = st_at(m->shards[s], i);
    qsort(m->tensors, (size_t)m->n, sizeof *m->tensors, by_tensor_name);
    for (int i = 1; i < m->n; i++)
        if (!strcmp(m->tensors[i]->name, m->tensors[i - 1]->name))
            return seterr(err, "%s: tensor \"%s\" is in more than one shard", m->weights, m->tensors[i]->name);
    return 0;
}

static int open_shard(model_dir *m, const char *file, char *err) {
    char *path = path_join(m->dir, file);
    for (int s = 0; s < m->nshards; s++)
        if (!strcmp(st_path(m->shards[s]), path)) {
            free(path);
            return s;
        }
    st_file *f = st_open(path, err);
    free(path);
    if (!f) return -1;
    m->shards = xrealloc(m->shards, sizeof *m->shards * (size_t)(m->nshards + 1));
    m->shards[m->nshards] = f;
    return m->nshards++;
}

/* A sharded model: open every file the weight map names, and check that each
 * mapped tensor is where the map says. */
static int open_index(model_dir *m, char *err) {
    json_cfg idx;
    if (json_cfg_load(&idx, m->weights, err)) return -1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx.root, "weight_map");
    int rc = 0;
    if (!cJSON_IsObject(map)) rc = seterr(err, "%s: no \"weight_map\" object", m->weights);
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        const char *file = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!file || !*file || strchr(file, '/') || !strcmp(file, "..")) {
            rc = seterr(err, "%s: weight_map[\"%s\"]: not a file name in the folder", m->weights, e->string);
            break;
        }
        int s = open_shard(m, file, err);
        if (s < 0) rc = -1;
        else if (!st_find(m->shards[s], e->string))
            rc = seterr(err, "%s: tensor \"%s\" is mapped to %s, which does not hold it", m->weights, e->string, file);
    }
    json_cfg_free(&idx);
    return rc;
}

/* The weights file (or index) for the variant, or NULL. */
static char *find_weights(const char *dir, model_variant v, int *sharded) {
    static const char *const plain[] = {"%s.safetensors", "%s.safetensors.index.json"};
    static const char *const fp16[] = {"%s.fp16.safetensors", "%s.safetensors.index.fp16.json"};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *pat = NULL;
        if (pass == 0 && v != MODEL_VARIANT_FP16) pat = plain;
        if (pass == 1 && v != MODEL_VARIANT_PLAIN) pat = fp16;
        if (!pat) continue;
        for (int b = 0; b < NBASES; b++)
            for (int k = 0; k < 2; k++) {
                char name[128];
                snprintf(name, sizeof name, pat[k], base_names[b]);
                char *p = path_join(dir, name);
                if (path_exists(p)) {
                    *sharded = k;
                    return p;
                }
                free(p);
            }
    }
    /* A folder holding a single safetensors file of another name. */
    st_count_ctx c = {0};
    each_entry(dir, count_safetensors, &c);
    *sharded = 0;
    if (c.count == 1 && v == MODEL_VARIANT_AUTO) return path_join(dir, c.name);
    return NULL;
}

static int no_weights_error(const char *dir, model_variant v, char *err) {
    char pickle[256];
    if (each_entry(dir, pickle_name, pickle))
        return seterr(err,
                      "%s: only pickled PyTorch weights (%s), which are not read (unsafe); convert them to safetensors, "
                      "e.g. in Python: diffusers.DiffusionPipeline.from_pretrained(SRC).save_pretrained(DST, "
                      "safe_serialization=True) (or the model class's from_pretrained/save_pretrained for one model)",
                      dir, pickle);
    return seterr(err, "%s: no %ssafetensors weights (looked for diffusion_pytorch_model%s.safetensors, model%s.safetensors "
                       "and sharded *.safetensors.index%s.json)",
                  dir, v == MODEL_VARIANT_FP16 ? "fp16 " : "", v == MODEL_VARIANT_FP16 ? ".fp16" : "",
                  v == MODEL_VARIANT_FP16 ? ".fp16" : "", v == MODEL_VARIANT_FP16 ? ".fp16" : "");
}

/* The model folder that path and component name. */
static char *resolve_dir(const char *path, const char *component, char *err) {
    if (!is_dir(path)) return seterr(err, "%s: not a folder", path), NULL;
    if (component && *component && is_pipeline_dir(path)) {
        char *dir = path_join(path, component);
        if (!is_dir(dir)) {
            seterr(err, "%s: pipeline has no %s/ folder", path, component);
            free(dir);
            return NULL;
        }
        return dir;
    }
    char *cfg = path_join(path, "config.json");
    int has_cfg = path_exists(cfg);
    free(cfg);
    if (!has_cfg && is_pipeline_dir(path))
        return seterr(err, "%s: a pipeline folder; name a component (unet, vae, text_encoder, ...)", path), NULL;
    return xstrdup(path);
}

model_dir *model_open(const char *path, const char *component, model_variant v, char *err) {
    char *dir = resolve_dir(path, component, err);
    if (!dir) return NULL;
    model_dir *m = xcalloc(1, sizeof *m);
    m->dir = dir;
    char *cfg = path_join(dir, "config.json");
    int rc = json_cfg_load(&m->config, cfg, err);
    free(cfg);
    int sharded = 0;
    if (!rc && !(m->weights = find_weights(dir, v, &sharded))) rc = no_weights_error(dir, v, err);
    if (!rc && sharded) rc = open_index(m, err);
    if (!rc && !sharded) rc = open_shard(m, strrchr(m->weights, '/') + 1, err) < 0 ? -1 : 0;
    if (!rc) rc = index_tensors(m, err);
    if (rc) {
        model_close(m);
        return NULL;
    }
    return m;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct { const char *dir; char **names; int n; } comp_ctx;
static int add_component(const char *name, void *ctx) {
    comp_ctx *c = ctx;
    char *sub = path_join(c->dir, name);
    if (is_dir(sub) && dir_has_weights(sub)) {
        c->names = xrealloc(c->names, sizeof *c->names * (size_t)(c->n + 1));
        c->names[c->n++] = xstrdup(name);
    }
    free(sub);
    return 0;
}

int pipeline_components(const char *dir, char ***names, char *err) {
    if (!is_pipeline_dir(dir)) return seterr(err, "%s: no model_index.json (not a pipeline folder)", dir);
    comp_ctx c = {.dir = dir};
    each_entry(dir, add_component, &c);
    qsort(c.names, (size_t)c.n, sizeof *c.names, by_str);
    *names = c.names;
    return c.n;
}
