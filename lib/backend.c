/* backend.c - backend registry and selection. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const backend_op_names[] = {
    "fill", "convert", "axpby", "mul", "silu", "silu_backward", "gemm", "sum",
    "linear", "linear_backward", "conv2d", "conv2d_backward", "group_norm", "group_norm_backward",
    "layer_norm", "layer_norm_backward", "activation", "activation_backward", "geglu", "geglu_backward",
    "softmax", "softmax_backward", "attention", "attention_backward", "upsample_nearest",
    "upsample_nearest_backward", "timestep_embedding", "add_broadcast", "add_broadcast_backward", "loss",
    "loss_backward", "embedding", "transpose", "copy_channels", "scale_shift", "scale_shift_backward",
};
const int backend_op_count = (int)(sizeof backend_op_names / sizeof *backend_op_names);
/* Every member of backend_ops is one function pointer and has one name here. */
_Static_assert(sizeof backend_op_names / sizeof *backend_op_names == sizeof(backend_ops) / sizeof(void (*)(void)),
               "backend_op_names must name every member of backend_ops");

const backend *const *backend_list(void) {
    static const backend *list[3];
    if (!list[0]) {
        int n = 0;
        list[n++] = backend_cpu();
        if (backend_cuda()) list[n++] = backend_cuda();
        list[n] = NULL;
    }
    return list;
}

const backend *backend_by_name(const char *name, char *err) {
    for (const backend *const *b = backend_list(); *b; b++) {
        if (strcmp((*b)->name, name)) continue;
        if ((*b)->probe(err)) return NULL;
        return *b;
    }
    if (!strcmp(name, "cuda")) seterr(err, "this build has no CUDA backend (rebuild where nvcc is found, without CUDA=0)");
    else seterr(err, "unknown backend '%s' (cpu%s)", name, backend_cuda() ? ", cuda" : "");
    return NULL;
}

const backend *backend_default(void) {
    static const backend *chosen;
    if (!chosen) {
        const char *name = getenv("LCM_BACKEND");
        char err[LCM_ERRLEN];
        chosen = backend_by_name(name && *name ? name : "cpu", err);
        if (!chosen) die("LCM_BACKEND: %s", err);
    }
    return chosen;
}

#ifndef LCM_CUDA
const backend *backend_cuda(void) { return NULL; }
#endif
