/* params.c - see params.h. */
#include "params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

void params_init(params *ps) { memset(ps, 0, sizeof *ps); }

void params_free(params *ps) {
    for (int i = 0; i < ps->n; i++) {
        free(ps->p[i]->name);
        free(ps->p[i]->alt_name);
        free(ps->p[i]);
    }
    free(ps->p);
    if (ps->backend) {
        ps->backend->free(ps->data);
        if (ps->grad) ps->backend->free(ps->grad);
    }
    memset(ps, 0, sizeof *ps);
}

param *params_add(params *ps, const char *name, int ndim, const int64_t *shape) {
    if (ps->data) die("params_add(%s): parameters already allocated", name);
    if (ps->n == ps->cap) ps->p = xrealloc(ps->p, sizeof(param *) * (size_t)(ps->cap = ps->cap ? 2 * ps->cap : 256));
    param *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->value = tensor_view(NULL, DT_F32, ndim, shape, NULL);
    p->grad = p->value;
    /* Keep every parameter 16-element aligned so vector loops and GPU
     * kernels can assume aligned rows. */
    p->offset = ps->total;
    ps->total += ((size_t)tensor_numel(&p->value) + 15) / 16 * 16;
    ps->p[ps->n++] = p;
    return p;
}

param *params_add1(params *ps, const char *name, int64_t d0) { return params_add(ps, name, 1, &d0); }

param *params_add2(params *ps, const char *name, int64_t d0, int64_t d1) {
    int64_t s[2] = {d0, d1};
    return params_add(ps, name, 2, s);
}

param *params_add4(params *ps, const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t s[4] = {d0, d1, d2, d3};
    return params_add(ps, name, 4, s);
}

void params_alloc(params *ps, const backend *be, int with_grad) {
    ps->backend = be ? be : backend_cpu();
    size_t bytes = (ps->total ? ps->total : 16) * sizeof(float);
    ps->data = ps->backend->alloc(bytes);
    if (with_grad) ps->grad = ps->backend->alloc(bytes);
    for (int i = 0; i < ps->n; i++) {
        param *p = ps->p[i];
        p->value.backend = p->grad.backend = ps->backend;
        p->value.data = ps->data + p->offset;
        p->grad.data = with_grad ? ps->grad + p->offset : NULL;
    }
    if (with_grad) params_zero_grad(ps);
}

void params_zero_grad(params *ps) {
    if (!ps->grad) return;
    tensor all = tensor_view(ps->backend, DT_F32, 1, (int64_t[]){(int64_t)ps->total}, ps->grad);
    op_fill(&all, 0.0f);
}

param *params_find(const params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i]->name, name)) return ps->p[i];
    return NULL;
}

/* Same elements, possibly different trailing 1s: [O,I] vs [O,I,1,1]. */
static int shapes_compatible(const tensor *a, const tensor *b) {
    if (tensor_same_shape(a, b)) return 1;
    if (tensor_numel(a) != tensor_numel(b) || a->ndim < 2 || b->ndim < 2) return 0;
    if (a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return 0;
    for (int i = 2; i < a->ndim; i++) if (a->shape[i] != 1) return 0;
    for (int i = 2; i < b->ndim; i++) if (b->shape[i] != 1) return 0;
    return 1;
}

int params_load(params *ps, weight_lookup lookup, void *ctx, const char *source, char *err) {
    for (int i = 0; i < ps->n; i++) {
        param *p = ps->p[i];
        tensor stored;
        int rc = lookup(ctx, p->name, &stored, err);
        if (rc == 1 && p->alt_name) rc = lookup(ctx, p->alt_name, &stored, err);
        if (rc < 0) return -1;
        if (rc == 1) return seterr(err, "%s: no tensor '%s'", source, p->name);
        if (!shapes_compatible(&stored, &p->value)) {
            char a[128], b[128];
            return seterr(err, "%s: tensor '%s' has shape %s, the config needs %s", source, p->name,
                          shape_str(a, stored.ndim, stored.shape), shape_str(b, p->value.ndim, p->value.shape));
        }
        if (!dtype_is_float(stored.dtype)) return seterr(err, "%s: tensor '%s' is %s, not floating point", source, p->name, dtype_name(stored.dtype));
        /* safetensors does not align tensors: stage an unaligned one. */
        void *staged = NULL;
        if ((uintptr_t)stored.data % dtype_size(stored.dtype))
            stored.data = staged = memcpy(xaligned_alloc(tensor_nbytes(&stored)), stored.data, tensor_nbytes(&stored));
        tensor_copy(&p->value, &stored);
        free(staged);
    }
    return 0;
}
