/* params.h - a model's parameters (and gradients) in one contiguous buffer.
 *
 * A model registers each parameter by its diffusers/transformers name while
 * it is built, then the store allocates one f32 buffer for all values (and
 * one for all gradients, when training), so that the optimizer, the EMA, the
 * all-reduce and the checkpoint writer each make one pass over memory. Each
 * param's value and grad are tensor views into those buffers. */
#ifndef LCM_PARAMS_H
#define LCM_PARAMS_H

#include <stddef.h>

#include "tensor.h"

struct backend;

typedef struct param {
    char *name;
    char *alt_name; /* an older spelling some checkpoints use, or NULL */
    tensor value, grad;
    size_t offset; /* in elements, from the start of the buffers */
} param;

typedef struct params {
    param **p;
    int n, cap;
    size_t total; /* elements */
    const struct backend *backend;
    float *data, *grad;
} params;

void params_init(params *ps);
void params_free(params *ps);
/* Registers a parameter; the returned pointer stays valid. Call before alloc. */
param *params_add(params *ps, const char *name, int ndim, const int64_t *shape);
param *params_add1(params *ps, const char *name, int64_t d0);
param *params_add2(params *ps, const char *name, int64_t d0, int64_t d1);
param *params_add4(params *ps, const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* Allocates the buffers on be; with_grad also the gradient buffer (zeroed). */
void params_alloc(params *ps, const struct backend *be, int with_grad);
param *params_find(const params *ps, const char *name);
void params_zero_grad(params *ps);

/* Where stored weights come from: a host view of the tensor named `name` in
 * any dtype; returns 0 when found, 1 when absent, -1 on error (err set). */
typedef int (*weight_lookup)(void *ctx, const char *name, tensor *view, char *err);

/* Fills every parameter from the lookup, converting to f32 and checking
 * shapes (a [O,I,1,1] conv weight also fills a [O,I] linear and back, as
 * diffusers does when use_linear_projection differs). Missing names fail. */
int params_load(params *ps, weight_lookup lookup, void *ctx, const char *source, char *err);

#endif
