/* unet_lora.c - see unet_lora.h. */
#include "unet_lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "optim.h"
#include "rng.h"
#include "safetensors.h"
#include "util.h"

/* The reference's target_modules; PEFT matches a module whose path is one
 * of them or ends in "." + one of them. */
static const char *const targets[] = {"to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                                      "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"};

static int is_target(const char *path) {
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        size_t k = strlen(targets[i]);
        if (!strcmp(path, targets[i]) || (n > k && path[n - k - 1] == '.' && !strcmp(path + n - k, targets[i]))) return 1;
    }
    return 0;
}

/* The module path of a layer weight ("<path>.weight", 2-D or 4-D), or NULL. */
static char *weight_path(const param *p) {
    size_t n = strlen(p->name);
    if ((p->value.ndim != 2 && p->value.ndim != 4) || n < 8 || strcmp(p->name + n - 7, ".weight")) return NULL;
    char *path = xstrdup(p->name);
    path[n - 7] = 0;
    return path;
}

int unet_lora_create(unet_lora *l, const unet_model *m, int rank, float alpha, int with_grad, uint64_t seed, char *err) {
    memset(l, 0, sizeof *l);
    if (rank < 1) return seterr(err, "LoRA rank %d: must be at least 1", rank);
    l->rank = rank, l->alpha = alpha, l->scale = alpha / (float)rank;
    params_init(&l->ps);
    l->mods = xcalloc((size_t)m->ps.n, sizeof *l->mods);
    for (int i = 0; i < m->ps.n; i++) {
        const param *w = m->ps.p[i];
        char *path = weight_path(w);
        if (!path || !is_target(path)) {
            free(path);
            continue;
        }
        unet_lora_module *md = &l->mods[l->n++];
        md->base_offset = w->offset, md->path = path;
        char name[512];
        const int64_t *s = w->value.shape;
        snprintf(name, sizeof name, "%s.lora_A.weight", path);
        md->a = w->value.ndim == 2 ? params_add2(&l->ps, name, rank, s[1]) : params_add4(&l->ps, name, rank, s[1], s[2], s[3]);
        snprintf(name, sizeof name, "%s.lora_B.weight", path);
        md->b = w->value.ndim == 2 ? params_add2(&l->ps, name, s[0], rank) : params_add4(&l->ps, name, s[0], rank, 1, 1);
    }
    if (!l->n) {
        unet_lora_free(l);
        return seterr(err, "the UNet has no layer LoRA targets");
    }
    l->base_total = m->ps.total;
    params_alloc(&l->ps, m->ps.backend, with_grad);
    rng r;
    rng_seed(&r, seed, 0x4c6f5241); /* a stream of its own */
    float *host = xcalloc(l->ps.total, sizeof(float));
    for (int i = 0; i < l->n; i++) {
        const param *a = l->mods[i].a;
        int64_t n = tensor_numel(&a->value), fan_in = n / a->value.shape[0];
        float bound = 1.0f / sqrtf((float)fan_in);
        for (int64_t j = 0; j < n; j++) host[a->offset + (size_t)j] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    }
    tensor all = params_values(&l->ps);
    tensor_from_host(&all, host);
    free(host);
    return 0;
}

void unet_lora_free(unet_lora *l) {
    for (int i = 0; i < l->n; i++) free(l->mods[i].path);
    free(l->mods);
    params_free(&l->ps);
    memset(l, 0, sizeof *l);
}

/* An adapter tensor of the UNet: other components' (text_encoder.*,
 * kohya's lora_te*) are not ours. */
static int is_unet_lora_key(const char *name) {
    if (!strncmp(name, "lora_unet_", 10)) return strstr(name, ".lora_down.") || strstr(name, ".lora_up.");
    return (strstr(name, ".lora_A.") || strstr(name, ".lora_B.")) && strncmp(name, "text_encoder", 12) != 0 &&
           strncmp(name, "lora_te", 7) != 0;
}

static int is_down_key(const char *name) {
    return is_unet_lora_key(name) && (strstr(name, ".lora_A.") || strstr(name, ".lora_down."));
}

void unet_lora_kohya_name(const char *path, char *out, size_t size) {
    snprintf(out, size, "lora_unet_%s", path);
    for (char *c = out; *c; c++)
        if (*c == '.') *c = '_';
}

/* The tensor of adapter parameter name (<path>.lora_A.weight or
 * .lora_B.weight) in f: unet.<name>, <name>, or kohya's; key gets the name
 * looked up first (for messages). */
static const st_tensor *find_adapter(st_file *f, const char *name, char *key, size_t key_size) {
    snprintf(key, key_size, "unet.%s", name);
    const st_tensor *t = st_find(f, key);
    if (t || (t = st_find(f, name))) return t;
    const char *ab = strstr(name, ".lora_A.weight") ? ".lora_A.weight" : ".lora_B.weight";
    char path[512], kohya[600];
    snprintf(path, sizeof path, "%.*s", (int)(strlen(name) - strlen(ab)), name);
    unet_lora_kohya_name(path, kohya, sizeof kohya);
    char alt[700];
    snprintf(alt, sizeof alt, "%s.%s.weight", kohya, ab[6] == 'A' ? "lora_down" : "lora_up");
    return st_find(f, alt);
}

int unet_lora_load(unet_lora *l, const char *path, char *err) {
    st_file *f = st_open(path, err);
    if (!f) return -1;
    int found = 0, rc = 0;
    for (int i = 0; i < l->ps.n && !rc; i++) {
        param *p = l->ps.p[i];
        char key[600];
        snprintf(key, sizeof key, "unet.%s", p->name);
        const st_tensor *t = find_adapter(f, p->name, key, sizeof key);
        if (!t) {
            rc = seterr(err, "%s: no adapter %s", path, key);
            break;
        }
        int same = t->ndim == p->value.ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == p->value.shape[d];
        if (!same) {
            char a[128], b[128];
            rc = seterr(err, "%s: %s has shape %s, the UNet needs %s (rank %d)", path, key, shape_str(a, t->ndim, t->shape),
                        shape_str(b, p->value.ndim, p->value.shape), l->rank);
            break;
        }
        if (st_tensor_copy(t, &p->value, err)) rc = -1;
        found++;
    }
    if (!rc) {
        int extra = 0;
        for (int i = 0; i < st_count(f); i++) extra += is_unet_lora_key(st_at(f, i)->name);
        if (extra != found) rc = seterr(err, "%s: %d UNet adapter tensors, of which %d match this UNet's LoRA targets", path, extra, found);
    }
    st_close(f);
    return rc;
}

int unet_lora_save(const unet_lora *l, const char *path, char *err) {
    float *host = params_values_to_host(&l->ps);
    st_entry *e = xcalloc((size_t)l->ps.n, sizeof *e);
    char **names = xcalloc((size_t)l->ps.n, sizeof *names);
    for (int i = 0; i < l->ps.n; i++) {
        const param *p = l->ps.p[i];
        size_t n = strlen(p->name) + 6;
        names[i] = xmalloc(n);
        snprintf(names[i], n, "unet.%s", p->name);
        e[i] = st_entry_of(names[i], DT_F32, p->value.ndim, p->value.shape, host + p->offset);
    }
    char rank[32], alpha[32];
    snprintf(rank, sizeof rank, "%d", l->rank);
    snprintf(alpha, sizeof alpha, "%g", l->alpha);
    st_meta meta[3] = {{"format", "pt"}, {"lora_rank", rank}, {"lora_alpha", alpha}};
    int rc = st_write(path, e, l->ps.n, meta, 3, err);
    for (int i = 0; i < l->ps.n; i++) free(names[i]);
    free(names), free(e), free(host);
    return rc;
}

/* The module path of a diffusers-layout UNet adapter key, and whether it is
 * lora_A; 0 for any other key. */
static int diffusers_key(const char *name, char *path, size_t size, int *is_a) {
    if (!strncmp(name, "lora_unet_", 10) || !is_unet_lora_key(name)) return 0;
    const char *start = strncmp(name, "unet.", 5) ? name : name + 5;
    const char *a = strstr(start, ".lora_A.weight"), *b = strstr(start, ".lora_B.weight");
    const char *end = a ? a : b;
    if (!end || strlen(end) != strlen(".lora_A.weight")) return 0;
    snprintf(path, size, "%.*s", (int)(end - start), start);
    *is_a = a != NULL;
    return 1;
}

int unet_lora_to_kohya(const char *in, const char *out, int *skipped, char *err) {
    st_file *f = st_open(in, err);
    if (!f) return -1;
    int n = st_count(f), k = 0, rc = 0;
    const char *meta_alpha = st_meta_get(f, "lora_alpha");
    float given = meta_alpha ? strtof(meta_alpha, NULL) : 0;
    st_entry *e = xcalloc((size_t)n * 2 + 1, sizeof *e);
    char **names = xcalloc((size_t)n * 2 + 1, sizeof *names);
    float *alphas = xcalloc((size_t)n + 1, sizeof *alphas);
    *skipped = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        char path[512], kname[600];
        int is_a;
        if (!diffusers_key(t->name, path, sizeof path, &is_a)) {
            if (!strncmp(t->name, "lora_unet_", 10)) {
                rc = seterr(err, "%s: %s: already in kohya's layout", in, t->name);
                break;
            }
            ++*skipped;
            continue;
        }
        unet_lora_kohya_name(path, kname, sizeof kname);
        size_t len = strlen(kname) + 20;
        names[k] = xmalloc(len);
        snprintf(names[k], len, "%s.%s.weight", kname, is_a ? "lora_down" : "lora_up");
        e[k] = st_entry_of(names[k], t->dtype, t->ndim, t->shape, t->data);
        k++;
        if (!is_a) continue;
        alphas[i] = meta_alpha ? given : (float)t->shape[0];
        names[k] = xmalloc(len);
        snprintf(names[k], len, "%s.alpha", kname);
        e[k] = st_entry_of(names[k], DT_F32, 0, NULL, &alphas[i]);
        k++;
    }
    if (!rc && !k) rc = seterr(err, "%s: no UNet LoRA adapters in the diffusers layout", in);
    if (!rc) {
        char alpha[32];
        snprintf(alpha, sizeof alpha, "%g", given);
        st_meta meta[2] = {{"format", "pt"}, {"lora_alpha", alpha}};
        rc = st_write(out, e, k, meta, meta_alpha ? 2 : 1, err);
    }
    for (int i = 0; i < k; i++) free(names[i]);
    free(names), free(e), free(alphas);
    st_close(f);
    return rc;
}

/* The value of a kohya .alpha tensor (one element). */
static int alpha_value(const st_tensor *t, float *alpha, const char *path, char *err) {
    if (shape_numel(t->ndim, t->shape) != 1 || !dtype_is_float(t->dtype))
        return seterr(err, "%s: %s is not one floating-point value", path, t->name);
    double v;
    st_load_f64(t->data, t->dtype, 0, 1, &v);
    *alpha = (float)v;
    return 0;
}

static int scan_file(st_file *f, const char *path, int *rank, float *alpha, lora_alpha_source *src, char *err) {
    *rank = 0, *src = LORA_ALPHA_RANK;
    int alphas = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        size_t n = strlen(t->name);
        if (!strncmp(t->name, "lora_unet_", 10) && n > 6 && !strcmp(t->name + n - 6, ".alpha")) {
            float a = 0;
            if (alpha_value(t, &a, path, err)) return -1;
            if (alphas++ && a != *alpha) return seterr(err, "%s: adapters with different alphas (%g, %g) are not supported", path, *alpha, a);
            *alpha = a;
            continue;
        }
        if (!is_down_key(t->name)) continue;
        if (t->ndim != 2 && t->ndim != 4) return seterr(err, "%s: %s has %d dimensions, not 2 or 4", path, t->name, t->ndim);
        if (*rank && t->shape[0] != *rank)
            return seterr(err, "%s: adapters of different ranks (%d, %lld) are not supported", path, *rank, (long long)t->shape[0]);
        *rank = (int)t->shape[0];
    }
    if (*rank < 1) return seterr(err, "%s: no UNet LoRA adapters (lora_A / lora_down tensors)", path);
    const char *meta = st_meta_get(f, "lora_alpha");
    if (alphas) {
        *src = LORA_ALPHA_TENSORS;
    } else if (meta) {
        char *end;
        *alpha = strtof(meta, &end);
        if (end == meta || *end || !(*alpha == *alpha)) return seterr(err, "%s: metadata lora_alpha '%s' is not a number", path, meta);
        *src = LORA_ALPHA_METADATA;
    } else {
        *alpha = (float)*rank;
    }
    return 0;
}

int unet_lora_file_info(const char *path, int *rank, float *alpha, lora_alpha_source *src, char *err) {
    st_file *f = st_open(path, err);
    if (!f) return -1;
    int rc = scan_file(f, path, rank, alpha, src, err);
    st_close(f);
    return rc;
}

int unet_lora_open(unet_lora *l, const unet_model *m, const char *path, float lora_scale, char *err) {
    int rank;
    float alpha;
    lora_alpha_source src;
    if (unet_lora_file_info(path, &rank, &alpha, &src, err)) return -1;
    if (unet_lora_create(l, m, rank, alpha, 0, 0, err)) return -1;
    if (unet_lora_load(l, path, err)) {
        unet_lora_free(l);
        return -1;
    }
    l->scale = lora_scale * alpha / (float)rank;
    return 0;
}

void unet_lora_merge(unet_model *m, const unet_lora *l) {
    if (m->ps.total != l->base_total) die("unet: LoRA adapters made for another UNet configuration");
    if (m->lora) die("unet: merging adapters into a model that has adapters attached");
    float *w = params_values_to_host(&m->ps), *ab = params_values_to_host(&l->ps);
    int r = l->rank;
    for (int i = 0; i < l->n; i++) {
        const unet_lora_module *md = &l->mods[i];
        const float *A = ab + md->a->offset, *B = ab + md->b->offset;
        int64_t out = md->b->value.shape[0], cols = tensor_numel(&md->a->value) / r;
        float *W = w + md->base_offset;
        for (int64_t o = 0; o < out; o++)
            for (int64_t c = 0; c < cols; c++) {
                double d = 0; /* r terms: a double sum, then one rounding */
                for (int k = 0; k < r; k++) d += (double)B[o * r + k] * A[(int64_t)k * cols + c];
                W[o * cols + c] += l->scale * (float)d;
            }
    }
    tensor all = params_values(&m->ps);
    tensor_from_host(&all, w);
    free(w), free(ab);
}

/* ---- the layer hooks ---- */

/* The adapter of layer weight w of m, found by w's place in the parameter
 * buffer (so a model of the same config can borrow the adapters). */
static const unet_lora_module *adapter(const unet_model *m, const param *w) {
    const unet_lora *l = m->lora;
    if (!l || !w) return NULL;
    if (m->ps.total != l->base_total) die("unet: LoRA adapters made for another UNet configuration");
    for (int i = 0; i < l->n; i++)
        if (l->mods[i].base_offset == w->offset) return &l->mods[i];
    return NULL;
}

/* [d0, rest] views of a weight's value and gradient (a 1x1 conv as a linear). */
static tensor flat2(const tensor *t) {
    int64_t s[2] = {t->shape[0], tensor_numel(t) / t->shape[0]};
    return tensor_view(t->backend, DT_F32, 2, s, t->data);
}
static tensor *grad2(const param *p, tensor *buf) {
    if (!p->grad.data) return NULL;
    *buf = flat2(&p->grad);
    return buf;
}
static tensor *grad4(param *p) { return p->grad.data ? &p->grad : NULL; }

/* x's shape with the last dimension replaced. */
static tensor act_last(unet_model *m, const tensor *x, int64_t last) {
    int64_t s[TENSOR_MAXDIM];
    memcpy(s, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    s[x->ndim - 1] = last;
    return arena_tensor(&m->act, DT_F32, x->ndim, s);
}

void unet_lora_linear(unet_model *m, const param *w, const tensor *x, tensor *y) {
    const unet_lora_module *md = adapter(m, w);
    if (!md) return;
    arena_mark mark = arena_get_mark(&m->act);
    tensor a = flat2(&md->a->value), b = flat2(&md->b->value);
    tensor u = act_last(m, x, m->lora->rank), v = arena_tensor(&m->act, DT_F32, y->ndim, y->shape);
    op_linear(&u, x, &a, NULL);
    op_linear(&v, &u, &b, NULL);
    op_axpby(y, 1.0f, y, m->lora->scale, &v);
    arena_release(&m->act, mark);
}

void unet_lora_linear_backward(unet_model *m, const param *w, const tensor *x, const tensor *dy, tensor *dx) {
    const unet_lora_module *md = adapter(m, w);
    if (!md) return;
    arena_mark mark = arena_get_mark(&m->act);
    tensor a = flat2(&md->a->value), b = flat2(&md->b->value), ga, gb;
    tensor u = act_last(m, x, m->lora->rank), du = act_last(m, x, m->lora->rank);
    tensor dys = arena_tensor(&m->act, DT_F32, dy->ndim, dy->shape);
    op_linear(&u, x, &a, NULL);
    op_axpby(&dys, m->lora->scale, dy, 0, NULL);
    op_linear_backward(&du, grad2(md->b, &gb), NULL, &u, &b, &dys);
    tensor dxl = dx ? arena_tensor(&m->act, DT_F32, x->ndim, x->shape) : (tensor){0};
    op_linear_backward(dx ? &dxl : NULL, grad2(md->a, &ga), NULL, x, &a, &du);
    if (dx) op_axpby(dx, 1.0f, dx, 1.0f, &dxl);
    arena_release(&m->act, mark);
}

static const conv2d_params one_by_one = {1, 0, 0, 0, 0};

void unet_lora_conv(unet_model *m, const param *w, const tensor *x, tensor *y, conv2d_params p) {
    const unet_lora_module *md = adapter(m, w);
    if (!md) return;
    arena_mark mark = arena_get_mark(&m->act);
    tensor u = arena_tensor4(&m->act, DT_F32, y->shape[0], m->lora->rank, y->shape[2], y->shape[3]);
    tensor v = arena_tensor(&m->act, DT_F32, y->ndim, y->shape);
    op_conv2d(&u, x, &md->a->value, NULL, p);
    op_conv2d(&v, &u, &md->b->value, NULL, one_by_one);
    op_axpby(y, 1.0f, y, m->lora->scale, &v);
    arena_release(&m->act, mark);
}

void unet_lora_conv_backward(unet_model *m, const param *w, const tensor *x, const tensor *dy, tensor *dx, conv2d_params p) {
    const unet_lora_module *md = adapter(m, w);
    if (!md) return;
    arena_mark mark = arena_get_mark(&m->act);
    tensor u = arena_tensor4(&m->act, DT_F32, dy->shape[0], m->lora->rank, dy->shape[2], dy->shape[3]);
    tensor du = arena_tensor(&m->act, DT_F32, u.ndim, u.shape), dys = arena_tensor(&m->act, DT_F32, dy->ndim, dy->shape);
    op_conv2d(&u, x, &md->a->value, NULL, p);
    op_axpby(&dys, m->lora->scale, dy, 0, NULL);
    op_conv2d_backward(&du, grad4(md->b), NULL, &u, &md->b->value, &dys, one_by_one);
    tensor dxl = dx ? arena_tensor(&m->act, DT_F32, x->ndim, x->shape) : (tensor){0};
    op_conv2d_backward(dx ? &dxl : NULL, grad4(md->a), NULL, x, &md->a->value, &du, p);
    if (dx) op_axpby(dx, 1.0f, dx, 1.0f, &dxl);
    arena_release(&m->act, mark);
}
