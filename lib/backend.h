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
} backend_ops;

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
