/* ops.c - argument checks shared by every backend, then dispatch. */
#include "ops.h"

#include <stddef.h>

#include "backend.h"
#include "op_profile.h"
#include "util.h"

/* An op a backend lacks is a clear death naming op and backend, not a call through NULL. */
static void missing_op(const char *op, const backend *be) __attribute__((noreturn));
static void missing_op(const char *op, const backend *be) { die("op %s is not implemented on the %s backend", op, be->name); }
/* Index of op `name` in backend_ops (and backend_op_names): every member is one function pointer. */
#define OP_INDEX(name) ((int)(offsetof(backend_ops, name) / sizeof(void (*)(void))))

/* Calls op `name` of t's backend with the parenthesised args, assigning its
 * value with `assign` ("r =", or nothing); under LCM_PROFILE=1 the call is
 * timed between two synchronizations of the backend (op_profile.c). */
#define OP_RUN(t, name, args, assign)                                       \
    do {                                                                    \
        const backend *be_ = (t)->backend;                                  \
        if (!be_->ops.name) missing_op(#name, be_);                         \
        if (op_profile_on()) {                                              \
            double start_ = op_profile_begin(be_);                          \
            assign be_->ops.name args;                                      \
            op_profile_end(be_, OP_INDEX(name), start_);                    \
        } else {                                                            \
            assign be_->ops.name args;                                      \
        }                                                                   \
    } while (0)
#define OP_CALL(t, name, args) OP_RUN(t, name, args, )

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
    OP_CALL(t, fill, (t, value));
}

void op_convert(tensor *dst, const tensor *src) {
    if (tensor_numel(dst) != tensor_numel(src)) die("convert: %lld elements into %lld", (long long)tensor_numel(src), (long long)tensor_numel(dst));
    need_same_backend("convert", dst, src);
    OP_CALL(dst, convert, (dst, src));
}

void op_axpby(tensor *out, float a, const tensor *x, float b, const tensor *y) {
    check_elementwise("axpby", out, x, y);
    OP_CALL(out, axpby, (out, a, x, b, y));
}

void op_mul(tensor *out, const tensor *x, const tensor *y) {
    check_elementwise("mul", out, x, y);
    OP_CALL(out, mul, (out, x, y));
}

void op_silu(tensor *out, const tensor *x) {
    check_elementwise("silu", out, x, NULL);
    OP_CALL(out, silu, (out, x));
}

void op_silu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    check_elementwise("silu_backward", dx, x, dy);
    OP_CALL(dx, silu_backward, (dx, x, dy));
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
    OP_CALL(c, gemm, (c, a, trans_a, b, trans_b, alpha, beta));
}

double op_sum(const tensor *x) {
    need_f32("sum", x);
    double r;
    OP_RUN(x, sum, (x), r =);
    return r;
}

/* ---- Neural-network ops: shape checks, then dispatch. ---- */

static void need_ndim(const char *op, const char *what, const tensor *t, int lo, int hi) {
    if (t && (t->ndim < lo || t->ndim > hi)) die("%s: %s has %d dimensions (%d to %d expected)", op, what, t->ndim, lo, hi);
}

/* t must have exactly the given shape (t NULL: nothing to check). */
static void need_shape(const char *op, const char *what, const tensor *t, int ndim, const int64_t *shape) {
    if (!t) return;
    need_f32(op, t);
    char sa[128], sb[128];
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) die("%s: %s is %s, %s expected", op, what, shape_str(sa, t->ndim, t->shape), shape_str(sb, ndim, shape));
}

static void need_vector(const char *op, const char *what, const tensor *t, int64_t n) { need_shape(op, what, t, 1, &n); }

/* The backend of the first non-NULL tensor; the others must share it. */
static const tensor *first_of(const char *op, const tensor *const *ts, int n) {
    const tensor *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) continue;
        if (!first) first = ts[i];
        else need_same_backend(op, first, ts[i]);
    }
    return first;
}
#define FIRST_OF(op, ...) first_of(op, (const tensor *const[]){__VA_ARGS__}, \
                                   (int)(sizeof((const tensor *const[]){__VA_ARGS__}) / sizeof(const tensor *)))

/* Elements per row of the last dim, and how many rows. */
static int64_t rows_of(const tensor *t) { return t->ndim ? tensor_numel(t) / t->shape[t->ndim - 1] : 1; }
static int64_t last_dim(const tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

/* y has x's shape with the last dim replaced by n. */
static void need_rows_like(const char *op, const char *what, const tensor *y, const tensor *x, int64_t n) {
    if (!y) return;
    int64_t shape[TENSOR_MAXDIM];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = n;
    need_shape(op, what, y, x->ndim, shape);
}

static void check_linear(const char *op, const tensor *x, const tensor *w, const tensor *b) {
    need_f32(op, x), need_f32(op, w);
    need_ndim(op, "x", x, 1, TENSOR_MAXDIM);
    need_ndim(op, "weight", w, 2, 2);
    if (last_dim(x) != w->shape[1]) die("%s: x has %lld features, weight takes %lld", op, (long long)last_dim(x), (long long)w->shape[1]);
    need_vector(op, "bias", b, w->shape[0]);
}

void op_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    check_linear("linear", x, w, b);
    need_rows_like("linear", "y", y, x, w->shape[0]);
    FIRST_OF("linear", y, x, w, b);
    OP_CALL(y, linear, (y, x, w, b));
}

void op_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy) {
    if (!dy) die("linear_backward: dy is needed");
    check_linear("linear_backward", x, w, db);
    need_rows_like("linear_backward", "dy", dy, x, w->shape[0]);
    need_shape("linear_backward", "dx", dx, x->ndim, x->shape);
    need_shape("linear_backward", "dweight", dw, w->ndim, w->shape);
    const tensor *t = FIRST_OF("linear_backward", dy, x, w, dx, dw, db);
    if (dx || dw || db) OP_CALL(t, linear_backward, (dx, dw, db, x, w, dy));
}

conv2d_params conv2d_same_pad(int stride, int pad) { return (conv2d_params){stride, pad, pad, pad, pad}; }

/* Checks x, w, b and p; returns the output shape in y_shape. */
static void check_conv2d(const char *op, const tensor *x, const tensor *w, const tensor *b, conv2d_params p, int64_t y_shape[4]) {
    char sa[128], sb[128];
    need_ndim(op, "x", x, 4, 4), need_ndim(op, "weight", w, 4, 4);
    need_f32(op, x), need_f32(op, w);
    if (x->shape[1] != w->shape[1])
        die("%s: x %s has %lld channels, weight %s takes %lld", op, shape_str(sa, 4, x->shape), (long long)x->shape[1],
            shape_str(sb, 4, w->shape), (long long)w->shape[1]);
    if (p.stride < 1 || p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0)
        die("%s: stride %d and padding (%d, %d, %d, %d) are not valid", op, p.stride, p.pad_top, p.pad_left, p.pad_bottom,
            p.pad_right);
    int64_t hp = x->shape[2] + p.pad_top + p.pad_bottom, wp = x->shape[3] + p.pad_left + p.pad_right;
    if (hp < w->shape[2] || wp < w->shape[3])
        die("%s: kernel %s larger than the padded input %s", op, shape_str(sa, 4, w->shape), shape_str(sb, 4, x->shape));
    need_vector(op, "bias", b, w->shape[0]);
    y_shape[0] = x->shape[0], y_shape[1] = w->shape[0];
    y_shape[2] = (hp - w->shape[2]) / p.stride + 1, y_shape[3] = (wp - w->shape[3]) / p.stride + 1;
}

void op_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p) {
    int64_t ys[4];
    check_conv2d("conv2d", x, w, b, p, ys);
    need_shape("conv2d", "y", y, 4, ys);
    FIRST_OF("conv2d", y, x, w, b);
    OP_CALL(y, conv2d, (y, x, w, b, p));
}

void op_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                        conv2d_params p) {
    int64_t ys[4];
    if (!dy) die("conv2d_backward: dy is needed");
    check_conv2d("conv2d_backward", x, w, db, p, ys);
    need_shape("conv2d_backward", "dy", dy, 4, ys);
    need_shape("conv2d_backward", "dx", dx, 4, x->shape);
    need_shape("conv2d_backward", "dweight", dw, 4, w->shape);
    const tensor *t = FIRST_OF("conv2d_backward", dy, x, w, dx, dw, db);
    if (dx || dw || db) OP_CALL(t, conv2d_backward, (dx, dw, db, x, w, dy, p));
}

static void check_group_norm(const char *op, const tensor *x, const tensor *mean, const tensor *rstd, const tensor *gamma,
                             const tensor *beta, int groups) {
    need_f32(op, x);
    need_ndim(op, "x", x, 2, TENSOR_MAXDIM);
    if (groups < 1 || x->shape[1] % groups) die("%s: %lld channels in %d groups", op, (long long)x->shape[1], groups);
    int64_t stat_shape[2] = {x->shape[0], groups};
    need_shape(op, "mean", mean, 2, stat_shape), need_shape(op, "rstd", rstd, 2, stat_shape);
    need_vector(op, "gamma", gamma, x->shape[1]), need_vector(op, "beta", beta, x->shape[1]);
}

void op_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                   int groups, float eps, int silu) {
    check_group_norm("group_norm", x, mean, rstd, gamma, beta, groups);
    if (!mean || !rstd) die("group_norm: mean and rstd are needed");
    need_shape("group_norm", "y", y, x->ndim, x->shape);
    FIRST_OF("group_norm", y, x, mean, rstd, gamma, beta);
    OP_CALL(y, group_norm, (y, mean, rstd, x, gamma, beta, groups, eps, silu));
}

void op_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                            const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                            int silu) {
    const char *op = "group_norm_backward";
    check_group_norm(op, x, mean, rstd, gamma, beta, groups);
    if (!mean || !rstd || !dy) die("%s: mean, rstd and dy are needed", op);
    need_shape(op, "dy", dy, x->ndim, x->shape), need_shape(op, "dx", dx, x->ndim, x->shape);
    need_vector(op, "dgamma", dgamma, x->shape[1]), need_vector(op, "dbeta", dbeta, x->shape[1]);
    const tensor *t = FIRST_OF(op, dy, x, mean, rstd, gamma, beta, dx, dgamma, dbeta);
    if (dx || dgamma || dbeta) OP_CALL(t, group_norm_backward, (dx, dgamma, dbeta, x, mean, rstd, gamma, beta, dy, groups, silu));
}

static void check_layer_norm(const char *op, const tensor *x, const tensor *mean, const tensor *rstd, const tensor *gamma,
                             const tensor *beta) {
    need_f32(op, x);
    need_ndim(op, "x", x, 1, TENSOR_MAXDIM);
    if (!mean || !rstd) die("%s: mean and rstd are needed", op);
    need_vector(op, "mean", mean, rows_of(x)), need_vector(op, "rstd", rstd, rows_of(x));
    need_vector(op, "gamma", gamma, last_dim(x)), need_vector(op, "beta", beta, last_dim(x));
}

void op_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                   float eps) {
    check_layer_norm("layer_norm", x, mean, rstd, gamma, beta);
    need_shape("layer_norm", "y", y, x->ndim, x->shape);
    FIRST_OF("layer_norm", y, x, mean, rstd, gamma, beta);
    OP_CALL(y, layer_norm, (y, mean, rstd, x, gamma, beta, eps));
}

void op_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                            const tensor *rstd, const tensor *gamma, const tensor *dy) {
    const char *op = "layer_norm_backward";
    check_layer_norm(op, x, mean, rstd, gamma, NULL);
    if (!dy) die("%s: dy is needed", op);
    need_shape(op, "dy", dy, x->ndim, x->shape), need_shape(op, "dx", dx, x->ndim, x->shape);
    need_vector(op, "dgamma", dgamma, last_dim(x)), need_vector(op, "dbeta", dbeta, last_dim(x));
    const tensor *t = FIRST_OF(op, dy, x, mean, rstd, gamma, dx, dgamma, dbeta);
    if (dx || dgamma || dbeta) OP_CALL(t, layer_norm_backward, (dx, dgamma, dbeta, x, mean, rstd, gamma, dy));
}

static void need_activation(const char *op, activation act) {
    if (act < ACT_SILU || act > ACT_QUICK_GELU) die("%s: unknown activation %d", op, (int)act);
}

void op_activation(tensor *y, const tensor *x, activation act) {
    need_activation("activation", act);
    check_elementwise("activation", y, x, NULL);
    OP_CALL(y, activation, (y, x, act));
}

void op_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act) {
    need_activation("activation_backward", act);
    check_elementwise("activation_backward", dx, x, dy);
    OP_CALL(dx, activation_backward, (dx, x, dy, act));
}

static void check_geglu(const char *op, const tensor *x, const tensor *y) {
    need_f32(op, x);
    need_ndim(op, "x", x, 1, TENSOR_MAXDIM);
    if (last_dim(x) % 2) die("%s: last dim %lld is odd", op, (long long)last_dim(x));
    need_rows_like(op, "output", y, x, last_dim(x) / 2);
    need_same_backend(op, x, y);
}

void op_geglu(tensor *y, const tensor *x) {
    check_geglu("geglu", x, y);
    OP_CALL(y, geglu, (y, x));
}

void op_geglu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    check_geglu("geglu_backward", x, dy);
    check_elementwise("geglu_backward", dx, x, NULL);
    OP_CALL(dx, geglu_backward, (dx, x, dy));
}

void op_softmax(tensor *y, const tensor *x) {
    check_elementwise("softmax", y, x, NULL);
    OP_CALL(y, softmax, (y, x));
}

void op_softmax_backward(tensor *dx, const tensor *y, const tensor *dy) {
    check_elementwise("softmax_backward", dx, y, dy);
    OP_CALL(dx, softmax_backward, (dx, y, dy));
}

/* q [B, Lq, H d], k [B, Lk, H d], v [B, Lk, H dv]; out-shaped tensors [B, Lq, H dv]. */
static void check_attention(const char *op, const tensor *q, const tensor *k, const tensor *v, const tensor *out,
                            const tensor *lse, attention_params p) {
    char sq[128], sk[128], sv[128];
    need_f32(op, q), need_f32(op, k), need_f32(op, v);
    need_ndim(op, "q", q, 3, 3), need_ndim(op, "k", k, 3, 3), need_ndim(op, "v", v, 3, 3);
    if (p.heads < 1 || q->shape[2] % p.heads || v->shape[2] % p.heads || k->shape[0] != q->shape[0] ||
        v->shape[0] != q->shape[0] || k->shape[1] != v->shape[1] || k->shape[2] != q->shape[2] || q->shape[1] < 1 || k->shape[1] < 1)
        die("%s: q %s, k %s, v %s do not fit %d heads", op, shape_str(sq, 3, q->shape), shape_str(sk, 3, k->shape),
            shape_str(sv, 3, v->shape), p.heads);
    int64_t os[3] = {q->shape[0], q->shape[1], v->shape[2]}, ls[3] = {q->shape[0], p.heads, q->shape[1]};
    need_shape(op, "out", out, 3, os);
    need_shape(op, "lse", lse, 3, ls);
}

void op_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p) {
    check_attention("attention", q, k, v, out, lse, p);
    FIRST_OF("attention", out, lse, q, k, v);
    OP_CALL(out, attention, (out, lse, q, k, v, p));
}

void op_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                           const tensor *out, const tensor *lse, const tensor *dout, attention_params p) {
    const char *op = "attention_backward";
    if (!out || !lse || !dout) die("%s: out, lse and dout are needed", op);
    check_attention(op, q, k, v, out, lse, p);
    need_shape(op, "dout", dout, 3, out->shape);
    need_shape(op, "dq", dq, 3, q->shape), need_shape(op, "dk", dk, 3, k->shape), need_shape(op, "dv", dv, 3, v->shape);
    const tensor *t = FIRST_OF(op, dout, q, k, v, out, lse, dq, dk, dv);
    if (dq || dk || dv) OP_CALL(t, attention_backward, (dq, dk, dv, q, k, v, out, lse, dout, p));
}

static void check_upsample(const char *op, const tensor *small, const tensor *big) {
    char sa[128], sb[128];
    need_f32(op, small), need_f32(op, big);
    need_ndim(op, "input", small, 4, 4), need_ndim(op, "output", big, 4, 4);
    need_same_backend(op, small, big);
    if (small->shape[0] != big->shape[0] || small->shape[1] != big->shape[1] || big->shape[2] < 1 || big->shape[3] < 1)
        die("%s: %s cannot be resized to %s", op, shape_str(sa, 4, small->shape), shape_str(sb, 4, big->shape));
}

void op_upsample_nearest(tensor *y, const tensor *x) {
    check_upsample("upsample_nearest", x, y);
    OP_CALL(y, upsample_nearest, (y, x));
}

void op_upsample_nearest_backward(tensor *dx, const tensor *dy) {
    check_upsample("upsample_nearest_backward", dx, dy);
    OP_CALL(dx, upsample_nearest_backward, (dx, dy));
}

void op_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p) {
    need_f32("timestep_embedding", t), need_f32("timestep_embedding", emb);
    need_ndim("timestep_embedding", "t", t, 1, 1), need_ndim("timestep_embedding", "emb", emb, 2, 2);
    need_same_backend("timestep_embedding", emb, t);
    if (emb->shape[0] != t->shape[0] || emb->shape[1] < 2)
        die("timestep_embedding: %lld timesteps into [%lld, %lld]", (long long)t->shape[0], (long long)emb->shape[0],
            (long long)emb->shape[1]);
    if (emb->shape[1] / 2 == p.downscale_freq_shift) die("timestep_embedding: downscale_freq_shift equals half the dim");
    OP_CALL(emb, timestep_embedding, (emb, t, p));
}

/* v is [C] or [N, C] for x [N, C, ...]. */
static void check_broadcast(const char *op, const tensor *x, const tensor *v) {
    char sx[128], sv[128];
    need_f32(op, x), need_f32(op, v);
    need_ndim(op, "x", x, 2, TENSOR_MAXDIM);
    need_same_backend(op, x, v);
    int ok = (v->ndim == 1 && v->shape[0] == x->shape[1]) ||
             (v->ndim == 2 && v->shape[0] == x->shape[0] && v->shape[1] == x->shape[1]);
    if (!ok) die("%s: %s does not broadcast over %s (channels in dim 1)", op, shape_str(sv, v->ndim, v->shape), shape_str(sx, x->ndim, x->shape));
}

void op_add_broadcast(tensor *y, const tensor *x, const tensor *v) {
    check_broadcast("add_broadcast", x, v);
    check_elementwise("add_broadcast", y, x, NULL);
    OP_CALL(y, add_broadcast, (y, x, v));
}

void op_add_broadcast_backward(tensor *dv, const tensor *dy) {
    check_broadcast("add_broadcast_backward", dy, dv);
    OP_CALL(dv, add_broadcast_backward, (dv, dy));
}

static void need_loss(const char *op, loss_kind kind) {
    if (kind != LOSS_MSE && kind != LOSS_PSEUDO_HUBER) die("%s: unknown loss %d", op, (int)kind);
}

double op_loss(const tensor *x, const tensor *y, loss_kind kind, float c) {
    need_loss("loss", kind);
    check_elementwise("loss", x, y, NULL);
    double r;
    OP_RUN(x, loss, (x, y, kind, c), r =);
    return r;
}

void op_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss) {
    need_loss("loss_backward", kind);
    check_elementwise("loss_backward", dx, x, y);
    OP_CALL(dx, loss_backward, (dx, x, y, kind, c, dloss));
}

void op_embedding(tensor *y, const tensor *table, const tensor *ids) {
    need_f32("embedding", y), need_f32("embedding", table);
    need_same_backend("embedding", y, table), need_same_backend("embedding", y, ids);
    if (ids->dtype != DT_I64) die("embedding: ids are %s, not i64", dtype_name(ids->dtype));
    if (table->ndim != 2) die("embedding: the table must be 2-D");
    int64_t D = table->shape[1];
    if (y->shape[y->ndim - 1] != D || tensor_numel(y) != tensor_numel(ids) * D) die("embedding: output does not match ids x %lld", (long long)D);
    OP_CALL(y, embedding, (y, table, ids));
}

void op_transpose(tensor *y, const tensor *x) {
    need_f32("transpose", y), need_f32("transpose", x);
    need_same_backend("transpose", y, x);
    int64_t b = x->ndim == 3 ? x->shape[0] : 1;
    if (x->ndim < 2 || x->ndim > 3 || y->ndim != x->ndim) die("transpose: 2-D or 3-D tensors needed");
    int64_t m = x->shape[x->ndim - 2], n = x->shape[x->ndim - 1];
    if (y->shape[y->ndim - 2] != n || y->shape[y->ndim - 1] != m || (x->ndim == 3 && y->shape[0] != b))
        die("transpose: shapes do not match");
    OP_CALL(y, transpose, (y, x));
}

/* Elements per channel of an [N, C, ...] tensor (1 for [N, C]). */
static int64_t per_channel(const tensor *t) { return tensor_numel(t) / (t->shape[0] * t->shape[1]); }

void op_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels) {
    const char *op = "copy_channels";
    char sa[128], sb[128];
    need_f32(op, dst), need_f32(op, src);
    need_ndim(op, "dst", dst, 2, TENSOR_MAXDIM), need_ndim(op, "src", src, 2, TENSOR_MAXDIM);
    need_same_backend(op, dst, src);
    if (dst->shape[0] != src->shape[0] || per_channel(dst) != per_channel(src) || channels < 0 || dst_c0 < 0 ||
        src_c0 < 0 || dst_c0 + channels > dst->shape[1] || src_c0 + channels > src->shape[1])
        die("%s: channels [%lld, %lld) of %s do not fit channels [%lld, %lld) of %s", op, (long long)src_c0,
            (long long)(src_c0 + channels), shape_str(sa, src->ndim, src->shape), (long long)dst_c0,
            (long long)(dst_c0 + channels), shape_str(sb, dst->ndim, dst->shape));
    if (channels) OP_CALL(dst, copy_channels, (dst, dst_c0, src, src_c0, channels));
}

static void check_scale_shift(const char *op, const tensor *x, const tensor *ss) {
    char sx[128], sv[128];
    need_f32(op, x), need_f32(op, ss);
    need_ndim(op, "x", x, 2, TENSOR_MAXDIM);
    need_same_backend(op, x, ss);
    if (ss->ndim != 2 || ss->shape[0] != x->shape[0] || ss->shape[1] != 2 * x->shape[1])
        die("%s: %s is not the [N, 2C] scale and shift of %s", op, shape_str(sv, ss->ndim, ss->shape), shape_str(sx, x->ndim, x->shape));
}

void op_scale_shift(tensor *y, const tensor *x, const tensor *ss) {
    check_scale_shift("scale_shift", x, ss);
    check_elementwise("scale_shift", y, x, NULL);
    OP_CALL(y, scale_shift, (y, x, ss));
}

void op_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy) {
    check_scale_shift("scale_shift_backward", x, ss);
    check_elementwise("scale_shift_backward", dy, x, dx);
    need_shape("scale_shift_backward", "dss", dss, 2, ss->shape);
    if (dx || dss) OP_CALL(dy, scale_shift_backward, (dx, dss, x, ss, dy));
}

void op_adamw(tensor *param, const tensor *grad, tensor *m, tensor *v, adamw_params p) {
    check_elementwise("adamw", param, grad, m);
    check_elementwise("adamw", param, v, NULL);
    if (p.step < 1) die("adamw: step %lld (steps count from 1)", (long long)p.step);
    OP_CALL(param, adamw, (param, grad, m, v, p));
}

double op_sumsq(const tensor *x) {
    need_f32("sumsq", x);
    double r;
    OP_RUN(x, sumsq, (x), r =);
    return r;
}
