/* backend.h - where tensors live and ops run.
 *
 * A backend is a table: memory management plus one function per op. The
 * public op functions (ops.h) check shapes and dtypes once, in ops.c, then
 * call the implementation of the output tensor's backend. The CPU backend is
 * the reference every other backend is tested against (tests/unit/test_ops.c,
 * the op harness). */
#ifndef LCM_BACKEND_H
#define LCM_BACKEND_H

#include <stddef.h>

#include "ops.h"
#include "tensor.h"

typedef struct backend_ops {
    void (*fill)(tensor *t, float value);
    void (*convert)(tensor *dst, const tensor *src);
    void (*axpby)(tensor *out, float a, const tensor *x, float b, const tensor *y);
    void (*mul)(tensor *out, const tensor *x, const tensor *y);
    void (*silu)(tensor *out, const tensor *x);
    void (*silu_backward)(tensor *dx, const tensor *x, const tensor *dy);
    void (*gemm)(tensor *c, const tensor *a, int trans_a, const tensor *b, int trans_b, float alpha, float beta);
    double (*sum)(const tensor *x);
    /* Neural-network ops (ops.h). Appended at the end so that a positional
     * table lacking them leaves them NULL: ops.c then names the missing op. */
    void (*linear)(tensor *y, const tensor *x, const tensor *w, const tensor *b);
    void (*linear_backward)(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy);
    void (*conv2d)(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p);
    void (*conv2d_backward)(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                            conv2d_params p);
    void (*group_norm)(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                       int groups, float eps, int silu);
    void (*group_norm_backward)(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                                const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                                int silu);
    void (*layer_norm)(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                       float eps);
    void (*layer_norm_backward)(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                                const tensor *rstd, const tensor *gamma, const tensor *dy);
    void (*activation)(tensor *y, const tensor *x, enum activation act);
    void (*activation_backward)(tensor *dx, const tensor *x, const tensor *dy, enum activation act);
    void (*geglu)(tensor *y, const tensor *x);
    void (*geglu_backward)(tensor *dx, const tensor *x, const tensor *dy);
    void (*softmax)(tensor *y, const tensor *x);
    void (*softmax_backward)(tensor *dx, const tensor *y, const tensor *dy);
    void (*attention)(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p);
    void (*attention_backward)(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                               const tensor *out, const tensor *lse, const tensor *dout, attention_params p);
    void (*upsample_nearest)(tensor *y, const tensor *x);
    void (*upsample_nearest_backward)(tensor *dx, const tensor *dy);
    void (*timestep_embedding)(tensor *emb, const tensor *t, timestep_embedding_params p);
    void (*add_broadcast)(tensor *y, const tensor *x, const tensor *v);
    void (*add_broadcast_backward)(tensor *dv, const tensor *dy);
    double (*loss)(const tensor *x, const tensor *y, loss_kind kind, float c);
    void (*loss_backward)(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss);
    void (*embedding)(tensor *y, const tensor *table, const tensor *ids);
    void (*transpose)(tensor *y, const tensor *x);
    void (*copy_channels)(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels);
    void (*scale_shift)(tensor *y, const tensor *x, const tensor *ss);
    void (*scale_shift_backward)(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy);
    void (*adamw)(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p);
    double (*sumsq)(const tensor *x);
} backend_ops;

/* The names of backend_ops' members, in order (for messages and the harness). */
extern const char *const backend_op_names[];
extern const int backend_op_count;

typedef struct backend {
    const char *name;
    /* 0 when the backend can run here; else a message in err. */
    int (*probe)(char *err);
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*synchronize)(void);
    backend_ops ops;
    /* Device memory in use, in bytes (all of the device's, as the driver
     * reports it), or NULL where there is no device (CPU). The backend's
     * buffers only grow, so after a training step this less what was in use
     * before the models were loaded is the step's peak (benchmarks). */
    size_t (*memory_in_use)(void);
} backend;

const backend *backend_cpu(void);
/* NULL where the build has no CUDA backend. */
const backend *backend_cuda(void);
/* "cpu" or "cuda"; NULL with a message in err if unknown or not usable here. */
const backend *backend_by_name(const char *name, char *err);
/* The backend named by $LCM_BACKEND (default cpu). */
const backend *backend_default(void);

/* All backends compiled in, usable or not, NULL-terminated. */
const backend *const *backend_list(void);

#endif
