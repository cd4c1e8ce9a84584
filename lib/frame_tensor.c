/* frame_tensor.c - a frame's tensor values as backend tensors: a view of
 * the frame's bytes, or a copy converted into a tensor on any backend. Apart
 * from frame_read.c so that the frame library links without the backends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "frame.h"
#include "util.h"

int frame_tensor_view(const frame_value *v, dtype_id want_dt, tensor *out) {
    if (v->kind != FV_TENSOR || v->v.tensor.dtype != want_dt) return -1;
    const frame_tensor *t = &v->v.tensor;
    if ((uintptr_t)t->data % dtype_size(t->dtype)) return -1;
    *out = tensor_view(NULL, t->dtype, t->ndim, t->shape, (void *)t->data);
    return 0;
}

int frame_tensor_copy(const frame_value *v, tensor *dst, char *err) {
    if (v->kind != FV_TENSOR) return seterr(err, "not a tensor");
    const frame_tensor *t = &v->v.tensor;
    int64_t n = shape_numel(t->ndim, t->shape);
    if (n != tensor_numel(dst)) {
        char a[128], b[128];
        return seterr(err, "tensor of shape %s where %s is needed", shape_str(a, t->ndim, t->shape), shape_str(b, dst->ndim, dst->shape));
    }
    /* The data may be unaligned: dtype_convert reads through memcpy-safe
     * paths only when aligned, so stage unaligned data first. */
    const void *src = t->data;
    void *staged = NULL;
    if ((uintptr_t)src % dtype_size(t->dtype)) src = staged = memcpy(xaligned_alloc(t->nbytes), t->data, t->nbytes);
    if (dst->backend == backend_cpu()) {
        dtype_convert(dst->data, dst->dtype, src, t->dtype, (size_t)n);
    } else {
        tensor host = tensor_view(NULL, t->dtype, t->ndim, t->shape, (void *)src);
        tensor_copy(dst, &host);
    }
    free(staged);
    return 0;
}
