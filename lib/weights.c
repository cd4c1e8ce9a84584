/* weights.c - see weights.h. */
#include "weights.h"

#include <stdio.h>

#include "util.h"

static int lookup(void *ctx, const char *name, tensor *view, char *err) {
    const st_tensor *t = model_find(ctx, name);
    if (!t) return 1;
    /* A plain view even when unaligned: params_load stages such data. */
    *view = tensor_view(NULL, t->dtype, t->ndim, t->shape, (void *)t->data);
    return 0;
}

int weights_load(params *ps, const model_dir *m, char *err) {
    return params_load(ps, lookup, (void *)m, m->dir, err);
}

static void name2(char *buf, size_t n, const char *prefix, const char *name, const char *leaf) {
    snprintf(buf, n, "%s%s%s.%s", prefix, *prefix ? "." : "", name, leaf);
}

param *add_linear(params *ps, const char *prefix, const char *name, int out, int in, param **bias) {
    char buf[256];
    name2(buf, sizeof buf, prefix, name, "weight");
    param *w = params_add2(ps, buf, out, in);
    if (bias) {
        name2(buf, sizeof buf, prefix, name, "bias");
        *bias = params_add1(ps, buf, out);
    }
    return w;
}

void add_norm(params *ps, const char *prefix, const char *name, int dim, param **w, param **b) {
    char buf[256];
    name2(buf, sizeof buf, prefix, name, "weight");
    *w = params_add1(ps, buf, dim);
    name2(buf, sizeof buf, prefix, name, "bias");
    *b = params_add1(ps, buf, dim);
}

param *add_conv(params *ps, const char *prefix, const char *name, int out, int in, int k, param **bias) {
    char buf[256];
    name2(buf, sizeof buf, prefix, name, "weight");
    param *w = params_add4(ps, buf, out, in, k, k);
    if (bias) {
        name2(buf, sizeof buf, prefix, name, "bias");
        *bias = params_add1(ps, buf, out);
    }
    return w;
}
