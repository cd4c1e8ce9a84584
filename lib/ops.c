/* ops.c - argument checks shared by every backend, then dispatch. */
#include "ops.h"

#include "backend.h"
#include "util.h"

static void need_same_backend(const char *op, const tensor *a, const tensor *b) {
    if (b && a->backend != b->backend) die("%s: tensors on backends %s and %s", op, a->backend->name, b->backend->name);
}

static void need_f32(const char *op, const tensor *t) {
    if (t && t->dtype != DT_F32) die("%s: %s tensor where f32 is needed", op, dtype_name(t->dtype));
}

static void need_same_shape(const char *op, const tensor *a, const tensor *b) {
    char sa[128], sb[128];
    if (b && !tensor_same_shape(a, b))
        die("%s: shapes %s and %s differ", op, shape_str(sa, a->ndim, a->shape), shape_str(sb, b->ndim, b->shape));
}

/* The common case: an elementwise f32 op with up to two inputs. */
static void check_elementwise(const char *op, const tensor *out, const tensor *x, const tensor *y) {
    need_f32(op, out), need_f32(op, x), need_f32(op, y);
    need_same_shape(op, out, x), need_same_shape(op, out, y);
    need_same_backend(op, out, x), need_same_backend(op, out, y);
}

void op_fill(tensor *t, float value) {
    need_f32("fill", t);
    t->backend->ops.fill(t, value);
}

void op_convert(tensor *dst, const tensor *src) {
    if (tensor_numel(dst) != tensor_numel(src)) die("convert: %lld elements into %lld", (long long)tensor_numel(src), (long long)tensor_numel(dst));
    need_same_backend("convert", dst, src);
    dst->backend->ops.convert(dst, src);
}

void op_axpby(tensor *out, float a, const tensor *x, float b, const tensor *y) {
    check_elementwise("axpby", out, x, y);
    out->backend->ops.axpby(out, a, x, b, y);
}

void op_mul(tensor *out, const tensor *x, const tensor *y) {
    check_elementwise("mul", out, x, y);
    out->backend->ops.mul(out, x, y);
}

void op_silu(tensor *out, const tensor *x) {
    check_elementwise("silu", out, x, NULL);
    out->backend->ops.silu(out, x);
}

void op_silu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    check_elementwise("silu_backward", dx, x, dy);
    dx->backend->ops.silu_backward(dx, x, dy);
}

void op_gemm(tensor *c, const tensor *a, int trans_a, const tensor *b, int trans_b, float alpha, float beta) {
    need_f32("gemm", c), need_f32("gemm", a), need_f32("gemm", b);
    need_same_backend("gemm", c, a), need_same_backend("gemm", c, b);
    if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2) die("gemm: 2-D tensors needed");
    int64_t m = trans_a ? a->shape[1] : a->shape[0], k = trans_a ? a->shape[0] : a->shape[1];
    int64_t kb = trans_b ? b->shape[1] : b->shape[0], n = trans_b ? b->shape[0] : b->shape[1];
    if (k != kb || c->shape[0] != m || c->shape[1] != n)
        die("gemm: [%lld x %lld] x [%lld x %lld] into [%lld x %lld]", (long long)m, (long long)k, (long long)kb,
            (long long)n, (long long)c->shape[0], (long long)c->shape[1]);
    c->backend->ops.gemm(c, a, trans_a, b, trans_b, alpha, beta);
}

double op_sum(const tensor *x) {
    need_f32("sum", x);
    return x->backend->ops.sum(x);
}
