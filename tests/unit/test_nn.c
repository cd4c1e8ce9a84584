/* The neural-network ops of the CPU backend: every forward against plain
 * loops (computed in double), every backward against central differences of
 * L = sum(y * r) for a random r, taken in double over the f32 forward, for
 * every input and parameter. Shapes are small, odd and non-square, batch 2.
 * Parameter gradients start from random values, so that the checks also
 * prove they are added to (+=), and input gradients start from garbage, so
 * that they prove those are overwritten. */
#include <math.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "util.h"

/* Central differences in f32 carry rounding noise of about 1e-7 |L| / h and
 * a truncation error of h^2 f''' / 6; with h = 1e-2 and these sizes both stay
 * near 1e-4 of the largest gradient. */
#define FD_STEP 1e-2
#define FD_TOL 2e-3
/* Forwards against double loops: a few f32 roundings per output. */
#define FWD_TOL 1e-5

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

/* Everything a test allocates is kept here and released after it, pass or fail. */
static tensor *owned_tensors[256];
static void *owned_blocks[64];
static int n_owned_tensors, n_owned_blocks;

static tensor *own(tensor *t) {
    if (n_owned_tensors == 256) die("test_nn: too many tensors in one test");
    return owned_tensors[n_owned_tensors++] = t;
}

static void *own_block(void *p) {
    if (n_owned_blocks == 64) die("test_nn: too many blocks in one test");
    return owned_blocks[n_owned_blocks++] = p;
}

static void release_all(void) {
    while (n_owned_tensors) tensor_free(owned_tensors[--n_owned_tensors]);
    while (n_owned_blocks) free(owned_blocks[--n_owned_blocks]);
}

#define RUN_AND_RELEASE(name) \
    do {                      \
        RUN(name);            \
        release_all();        \
    } while (0)

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static tensor *random_tensor(int ndim, const int64_t *shape, float scale) {
    tensor *t = own(tensor_new(NULL, DT_F32, ndim, shape));
    float *p = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++) p[i] = scale * frand();
    return t;
}
#define RT(scale, ...) random_tensor((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, scale)

static tensor *zeros_like(const tensor *t) {
    tensor *z = own(tensor_new(NULL, DT_F32, t->ndim, t->shape));
    op_fill(z, 0);
    return z;
}

static tensor *filled_like(const tensor *t, float v) {
    tensor *z = own(tensor_new(NULL, DT_F32, t->ndim, t->shape));
    op_fill(z, v);
    return z;
}

static float *F(const tensor *t) { return t->data; }

static double dot(const tensor *a, const tensor *b) {
    double s = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) s += (double)F(a)[i] * F(b)[i];
    return s;
}

/* A parameter gradient that starts from random values; grad_added() gives what the backward added. */
typedef struct acc_grad {
    tensor *g, *start;
} acc_grad;

static acc_grad acc_grad_for(const tensor *param) {
    acc_grad a = {own(tensor_new(NULL, DT_F32, param->ndim, param->shape)), NULL};
    for (int64_t i = 0; i < tensor_numel(a.g); i++) F(a.g)[i] = frand();
    a.start = own(tensor_clone(a.g, NULL, DT_F32));
    return a;
}

static tensor *grad_added(acc_grad *a) {
    op_axpby(a->g, 1.0f, a->g, -1.0f, a->start);
    return a->g;
}

/* Max |numeric - analytic| over t's elements, relative to the largest analytic value. */
static double fd_error(void (*forward)(void *), void *ctx, const tensor *out, const tensor *r, tensor *t, const tensor *grad) {
    double worst = 0, scale = 1e-2;
    float *p = F(t);
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        float keep = p[i], up = (float)(keep + FD_STEP), down = (float)(keep - FD_STEP);
        p[i] = up;
        forward(ctx);
        double lp = dot(out, r);
        p[i] = down;
        forward(ctx);
        double lm = dot(out, r);
        p[i] = keep;
        double numeric = (lp - lm) / ((double)up - down);
        worst = fmax(worst, fabs(numeric - F(grad)[i]));
        scale = fmax(scale, fabs(F(grad)[i]));
    }
    forward(ctx);
    return worst / scale;
}

#define CHECK_GRAD(name, fwd, ctx, out, r, t, grad)                                                          \
    do {                                                                                                     \
        double e_ = fd_error(fwd, ctx, out, r, t, grad);                                                     \
        CHECKF(e_ <= FD_TOL, "%s: gradient of %s off by %.3g (relative)", name, #t, e_);                     \
    } while (0)

/* max |a - b| / max(|b|, 1) with b in double. */
static double max_err_vs(const float *a, const double *b, int64_t n) {
    double worst = 0, scale = 1;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst / scale;
}

static double *dalloc(int64_t n) { return own_block(xcalloc((size_t)n, sizeof(double))); }

/* ---------------- linear ---------------- */

typedef struct linear_ctx {
    tensor *y, *x, *w, *b;
} linear_ctx;

static void linear_fwd(void *c) {
    linear_ctx *l = c;
    op_linear(l->y, l->x, l->w, l->b);
}

TEST(linear) {
    linear_ctx l = {NULL, RT(1, 2, 3, 5), RT(1, 4, 5), RT(1, 4)};
    l.y = RT(1, 2, 3, 4);
    linear_fwd(&l);
    double *want = dalloc(24);
    for (int r = 0; r < 6; r++)
        for (int o = 0; o < 4; o++) {
            want[r * 4 + o] = F(l.b)[o];
            for (int i = 0; i < 5; i++) want[r * 4 + o] += (double)F(l.x)[r * 5 + i] * F(l.w)[o * 5 + i];
        }
    CHECK(max_err_vs(F(l.y), want, 24) < FWD_TOL);
    tensor *r = RT(1, 2, 3, 4), *dx = filled_like(l.x, 7);
    acc_grad dw = acc_grad_for(l.w), db = acc_grad_for(l.b);
    op_linear_backward(dx, dw.g, db.g, l.x, l.w, r);
    CHECK_GRAD("linear", linear_fwd, &l, l.y, r, l.x, dx);
    CHECK_GRAD("linear", linear_fwd, &l, l.y, r, l.w, grad_added(&dw));
    CHECK_GRAD("linear", linear_fwd, &l, l.y, r, l.b, grad_added(&db));
    /* Without bias. */
    for (int i = 0; i < 24; i++) want[i] -= F(l.b)[i % 4];
    l.b = NULL;
    linear_fwd(&l);
    CHECK(max_err_vs(F(l.y), want, 24) < FWD_TOL);
}

/* ---------------- conv2d ---------------- */

/* The direct seven-loop convolution, in double. */
static double *naive_conv(const tensor *x, const tensor *w, const tensor *b, conv2d_params p, int64_t ys[4]) {
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], K = w->shape[0], R = w->shape[2],
            S = w->shape[3];
    int64_t P = (H + p.pad_top + p.pad_bottom - R) / p.stride + 1, Q = (W + p.pad_left + p.pad_right - S) / p.stride + 1;
    ys[0] = N, ys[1] = K, ys[2] = P, ys[3] = Q;
    double *y = dalloc(N * K * P * Q);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t oh = 0; oh < P; oh++)
                for (int64_t ow = 0; ow < Q; ow++) {
                    double acc = b ? F(b)[k] : 0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t r = 0; r < R; r++)
                            for (int64_t s = 0; s < S; s++) {
                                int64_t ih = oh * p.stride - p.pad_top + r, iw = ow * p.stride - p.pad_left + s;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += (double)F(x)[((n * C + c) * H + ih) * W + iw] * F(w)[((k * C + c) * R + r) * S + s];
                            }
                    y[((n * K + k) * P + oh) * Q + ow] = acc;
                }
    return y;
}

typedef struct conv_ctx {
    tensor *y, *x, *w, *b;
    conv2d_params p;
} conv_ctx;

static void conv_fwd(void *c) {
    conv_ctx *k = c;
    op_conv2d(k->y, k->x, k->w, k->b, k->p);
}

static void check_conv(const char *name, tensor *x, tensor *w, int with_bias, conv2d_params p) {
    conv_ctx k = {NULL, x, w, with_bias ? RT(1, w->shape[0]) : NULL, p};
    int64_t ys[4];
    double *want = naive_conv(x, w, k.b, p, ys);
    k.y = own(tensor_new(NULL, DT_F32, 4, ys));
    conv_fwd(&k);
    double e = max_err_vs(F(k.y), want, tensor_numel(k.y));
    CHECKF(e < FWD_TOL, "%s: forward off by %.3g", name, e);
    tensor *r = random_tensor(4, ys, 1), *dx = filled_like(x, 7);
    acc_grad dw = acc_grad_for(w), db = with_bias ? acc_grad_for(k.b) : (acc_grad){0};
    op_conv2d_backward(dx, dw.g, db.g, x, w, r, p);
    CHECK_GRAD(name, conv_fwd, &k, k.y, r, k.x, dx);
    CHECK_GRAD(name, conv_fwd, &k, k.y, r, k.w, grad_added(&dw));
    if (with_bias) CHECK_GRAD(name, conv_fwd, &k, k.y, r, k.b, grad_added(&db));
}

TEST(conv2d_3x3_pad1) { check_conv("3x3 pad 1", RT(1, 2, 3, 7, 6), RT(1, 4, 3, 3, 3), 1, conv2d_same_pad(1, 1)); }
TEST(conv2d_3x3_stride2_odd) { check_conv("3x3 stride 2", RT(1, 2, 3, 7, 5), RT(1, 4, 3, 3, 3), 1, conv2d_same_pad(2, 1)); }
TEST(conv2d_vae_downsample_pad) {
    check_conv("pad (0, 0, 1, 1) stride 2", RT(1, 2, 2, 6, 7), RT(1, 3, 2, 3, 3), 1, (conv2d_params){2, 0, 0, 1, 1});
}
TEST(conv2d_1x1) { check_conv("1x1", RT(1, 2, 5, 4, 3), RT(1, 3, 5, 1, 1), 1, conv2d_same_pad(1, 0)); }
TEST(conv2d_1x1_no_bias) { check_conv("1x1 no bias", RT(1, 2, 5, 4, 3), RT(1, 3, 5, 1, 1), 0, conv2d_same_pad(1, 0)); }
TEST(conv2d_2x3_uneven_pad) {
    check_conv("2x3 uneven pad", RT(1, 2, 3, 5, 4), RT(1, 2, 3, 2, 3), 0, (conv2d_params){1, 1, 0, 0, 2});
}
TEST(conv2d_stride3_big_pad) { check_conv("stride 3 pad 2", RT(1, 2, 2, 8, 7), RT(1, 3, 2, 3, 3), 1, conv2d_same_pad(3, 2)); }

/* An image large enough that the unfolding runs in several bands: forward and
 * backward against the loops (the backward against its direct formulas). */
TEST(conv2d_banded_large) {
    tensor *x = RT(1, 1, 64, 130, 128), *w = RT(0.1f, 2, 64, 3, 3), *b = RT(1, 2);
    conv2d_params p = conv2d_same_pad(1, 1);
    int64_t ys[4];
    double *want = naive_conv(x, w, b, p, ys);
    tensor *y = own(tensor_new(NULL, DT_F32, 4, ys));
    op_conv2d(y, x, w, b, p);
    double e = max_err_vs(F(y), want, tensor_numel(y));
    CHECKF(e < FWD_TOL, "forward off by %.3g", e);
    tensor *r = random_tensor(4, ys, 1), *dx = filled_like(x, 7), *dw = zeros_like(w);
    op_conv2d_backward(dx, dw, NULL, x, w, r, p);
    int64_t C = 64, H = 130, W = 128;
    double *dw_want = dalloc(tensor_numel(w)), *dx_want = dalloc(tensor_numel(x));
    for (int64_t k = 0; k < 2; k++)
        for (int64_t oh = 0; oh < H; oh++)
            for (int64_t ow = 0; ow < W; ow++) {
                double g = F(r)[(k * H + oh) * W + ow];
                for (int64_t c = 0; c < C; c++)
                    for (int64_t rr = 0; rr < 3; rr++)
                        for (int64_t s = 0; s < 3; s++) {
                            int64_t ih = oh - 1 + rr, iw = ow - 1 + s;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            dw_want[((k * C + c) * 3 + rr) * 3 + s] += g * F(x)[(c * H + ih) * W + iw];
                            dx_want[(c * H + ih) * W + iw] += g * F(w)[((k * C + c) * 3 + rr) * 3 + s];
                        }
            }
    double ew = max_err_vs(F(dw), dw_want, tensor_numel(w)), ex = max_err_vs(F(dx), dx_want, tensor_numel(x));
    /* dW sums 16640 products per element: f32 GEMM error grows with that length. */
    CHECKF(ew < 1e-4 && ex < FWD_TOL, "backward off: dw %.3g, dx %.3g", ew, ex);
}

/* ---------------- group norm ---------------- */

typedef struct gn_ctx {
    tensor *y, *mean, *rstd, *x, *gamma, *beta;
    int groups, silu;
    float eps;
} gn_ctx;

static void gn_fwd(void *c) {
    gn_ctx *g = c;
    op_group_norm(g->y, g->mean, g->rstd, g->x, g->gamma, g->beta, g->groups, g->eps, g->silu);
}

static void check_group_norm(const char *name, int silu, int affine) {
    int64_t N = 2, C = 6, H = 5, W = 3, G = 3;
    gn_ctx g = {NULL, RT(1, N, G), RT(1, N, G), RT(1, N, C, H, W), affine ? RT(1, C) : NULL, affine ? RT(1, C) : NULL, (int)G, silu, 1e-5f};
    for (int64_t i = 0; i < tensor_numel(g.x); i++) F(g.x)[i] = 2 * F(g.x)[i] + 0.5f; /* a mean far from 0 */
    g.y = zeros_like(g.x);
    gn_fwd(&g);
    int64_t per = C / G * H * W;
    double *want = dalloc(tensor_numel(g.x));
    for (int64_t ng = 0; ng < N * G; ng++) {
        const float *xs = F(g.x) + ng * per;
        double m = 0, v = 0;
        for (int64_t i = 0; i < per; i++) m += xs[i];
        m /= per;
        for (int64_t i = 0; i < per; i++) v += (xs[i] - m) * (xs[i] - m);
        v /= per;
        CHECK_NEAR(F(g.mean)[ng], m, 1e-6);
        CHECK_NEAR(F(g.rstd)[ng], 1 / sqrt(v + 1e-5), 1e-5);
        for (int64_t i = 0; i < per; i++) {
            int64_t c = ng % G * (C / G) + i / (H * W);
            double o = (xs[i] - m) / sqrt(v + 1e-5) * (affine ? F(g.gamma)[c] : 1) + (affine ? F(g.beta)[c] : 0);
            want[ng * per + i] = silu ? o / (1 + exp(-o)) : o;
        }
    }
    double e = max_err_vs(F(g.y), want, tensor_numel(g.x));
    CHECKF(e < FWD_TOL, "%s: forward off by %.3g", name, e);
    tensor *r = RT(1, N, C, H, W), *dx = filled_like(g.x, 7);
    acc_grad dg = affine ? acc_grad_for(g.gamma) : (acc_grad){0}, db = affine ? acc_grad_for(g.beta) : (acc_grad){0};
    op_group_norm_backward(dx, dg.g, db.g, g.x, g.mean, g.rstd, g.gamma, g.beta, r, g.groups, silu);
    CHECK_GRAD(name, gn_fwd, &g, g.y, r, g.x, dx);
    if (affine) {
        CHECK_GRAD(name, gn_fwd, &g, g.y, r, g.gamma, grad_added(&dg));
        CHECK_GRAD(name, gn_fwd, &g, g.y, r, g.beta, grad_added(&db));
    }
}

TEST(group_norm) { check_group_norm("group_norm", 0, 1); }
TEST(group_norm_silu) { check_group_norm("group_norm+silu", 1, 1); }
TEST(group_norm_no_affine) { check_group_norm("group_norm no affine", 0, 0); }

/* ---------------- layer norm ---------------- */

typedef struct ln_ctx {
    tensor *y, *mean, *rstd, *x, *gamma, *beta;
} ln_ctx;

static void ln_fwd(void *c) {
    ln_ctx *l = c;
    op_layer_norm(l->y, l->mean, l->rstd, l->x, l->gamma, l->beta, 1e-5f);
}

TEST(layer_norm) {
    ln_ctx l = {NULL, RT(1, 6), RT(1, 6), RT(2, 2, 3, 7), RT(1, 7), RT(1, 7)};
    l.y = zeros_like(l.x);
    ln_fwd(&l);
    double want[42];
    for (int r = 0; r < 6; r++) {
        const float *xs = F(l.x) + r * 7;
        double m = 0, v = 0;
        for (int j = 0; j < 7; j++) m += xs[j] / 7.0;
        for (int j = 0; j < 7; j++) v += (xs[j] - m) * (xs[j] - m) / 7.0;
        for (int j = 0; j < 7; j++) want[r * 7 + j] = (xs[j] - m) / sqrt(v + 1e-5) * F(l.gamma)[j] + F(l.beta)[j];
    }
    CHECK(max_err_vs(F(l.y), want, 42) < FWD_TOL);
    tensor *r = RT(1, 2, 3, 7), *dx = filled_like(l.x, 7);
    acc_grad dg = acc_grad_for(l.gamma), db = acc_grad_for(l.beta);
    op_layer_norm_backward(dx, dg.g, db.g, l.x, l.mean, l.rstd, l.gamma, r);
    CHECK_GRAD("layer_norm", ln_fwd, &l, l.y, r, l.x, dx);
    CHECK_GRAD("layer_norm", ln_fwd, &l, l.y, r, l.gamma, grad_added(&dg));
    CHECK_GRAD("layer_norm", ln_fwd, &l, l.y, r, l.beta, grad_added(&db));
}

/* ---------------- activations, GEGLU, softmax ---------------- */

static double act_ref(double x, activation a) {
    switch (a) {
    case ACT_SILU: return x / (1 + exp(-x));
    case ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case ACT_QUICK_GELU: return x / (1 + exp(-1.702 * x));
    }
    return NAN;
}

typedef struct act_ctx {
    tensor *y, *x;
    activation a;
} act_ctx;

static void act_fwd(void *c) {
    act_ctx *k = c;
    op_activation(k->y, k->x, k->a);
}

TEST(activations) {
    static const char *names[] = {"silu", "gelu", "gelu_tanh", "quick_gelu"};
    for (int a = ACT_SILU; a <= ACT_QUICK_GELU; a++) {
        act_ctx k = {NULL, RT(4, 2, 3, 5), (activation)a};
        k.y = zeros_like(k.x);
        act_fwd(&k);
        double want[30];
        for (int i = 0; i < 30; i++) want[i] = act_ref(F(k.x)[i], k.a);
        CHECKF(max_err_vs(F(k.y), want, 30) < FWD_TOL, "%s forward", names[a]);
        tensor *r = RT(1, 2, 3, 5), *dx = filled_like(k.x, 7);
        op_activation_backward(dx, k.x, r, k.a);
        CHECK_GRAD(names[a], act_fwd, &k, k.y, r, k.x, dx);
    }
}

typedef struct unary_ctx {
    tensor *y, *x;
} unary_ctx;

static void geglu_fwd(void *c) {
    unary_ctx *k = c;
    op_geglu(k->y, k->x);
}

TEST(geglu) {
    unary_ctx k = {RT(1, 2, 3, 4), RT(3, 2, 3, 8)};
    geglu_fwd(&k);
    double want[24];
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 4; j++) want[r * 4 + j] = F(k.x)[r * 8 + j] * act_ref(F(k.x)[r * 8 + 4 + j], ACT_GELU);
    CHECK(max_err_vs(F(k.y), want, 24) < FWD_TOL);
    tensor *r = RT(1, 2, 3, 4), *dx = filled_like(k.x, 7);
    op_geglu_backward(dx, k.x, r);
    CHECK_GRAD("geglu", geglu_fwd, &k, k.y, r, k.x, dx);
}

static void softmax_fwd(void *c) {
    unary_ctx *k = c;
    op_softmax(k->y, k->x);
}

TEST(softmax) {
    unary_ctx k = {RT(1, 2, 3, 5), RT(3, 2, 3, 5)};
    softmax_fwd(&k);
    double want[30];
    for (int r = 0; r < 6; r++) {
        double s = 0;
        for (int j = 0; j < 5; j++) s += exp(F(k.x)[r * 5 + j]);
        for (int j = 0; j < 5; j++) want[r * 5 + j] = exp(F(k.x)[r * 5 + j]) / s;
    }
    CHECK(max_err_vs(F(k.y), want, 30) < FWD_TOL);
    tensor *r = RT(1, 2, 3, 5), *dx = filled_like(k.x, 7);
    op_softmax_backward(dx, k.y, r);
    CHECK_GRAD("softmax", softmax_fwd, &k, k.y, r, k.x, dx);
}

/* ---------------- attention ---------------- */

/* softmax(Q K^T scale + mask) V per batch and head, and its backward, in double. */
typedef struct naive_attn {
    double *out, *lse, *dq, *dk, *dv;
} naive_attn;

static naive_attn naive_attention(const tensor *q, const tensor *k, const tensor *v, const tensor *dout, attention_params p) {
    int64_t B = q->shape[0], Lq = q->shape[1], Lk = k->shape[1], H = p.heads, d = q->shape[2] / H, dv = v->shape[2] / H;
    naive_attn a = {dalloc(B * Lq * H * dv), dalloc(B * H * Lq), dalloc(tensor_numel(q)), dalloc(tensor_numel(k)),
                    dalloc(tensor_numel(v))};
    double *P = dalloc(Lq * Lk), *dP = dalloc(Lq * Lk);
#define QI(b, i, h, t) F(q)[((b) * Lq + (i)) * H * d + (h) * d + (t)]
#define KI(b, j, h, t) F(k)[((b) * Lk + (j)) * H * d + (h) * d + (t)]
#define VI(b, j, h, t) F(v)[((b) * Lk + (j)) * H * dv + (h) * dv + (t)]
#define OI(b, i, h, t) (((b) * Lq + (i)) * H * dv + (h) * dv + (t))
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < Lq; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    double s = 0;
                    for (int64_t t = 0; t < d; t++) s += (double)QI(b, i, h, t) * KI(b, j, h, t);
                    P[i * Lk + j] = p.causal && j > i ? -INFINITY : s * p.scale;
                    mx = fmax(mx, P[i * Lk + j]);
                }
                for (int64_t j = 0; j < Lk; j++) sum += P[i * Lk + j] = exp(P[i * Lk + j] - mx);
                for (int64_t j = 0; j < Lk; j++) P[i * Lk + j] /= sum;
                a.lse[(b * H + h) * Lq + i] = mx + log(sum);
                for (int64_t t = 0; t < dv; t++)
                    for (int64_t j = 0; j < Lk; j++) a.out[OI(b, i, h, t)] += P[i * Lk + j] * VI(b, j, h, t);
            }
            if (!dout) continue;
            for (int64_t i = 0; i < Lq; i++) {
                double rowdot = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    double s = 0;
                    for (int64_t t = 0; t < dv; t++) s += (double)F(dout)[OI(b, i, h, t)] * VI(b, j, h, t);
                    dP[i * Lk + j] = s;
                    rowdot += s * P[i * Lk + j];
                }
                for (int64_t j = 0; j < Lk; j++) {
                    double ds = P[i * Lk + j] * (dP[i * Lk + j] - rowdot) * p.scale;
                    for (int64_t t = 0; t < dv; t++)
                        a.dv[((b * Lk + j) * H + h) * dv + t] += P[i * Lk + j] * F(dout)[OI(b, i, h, t)];
                    for (int64_t t = 0; t < d; t++) {
                        a.dq[((b * Lq + i) * H + h) * d + t] += ds * KI(b, j, h, t);
                        a.dk[((b * Lk + j) * H + h) * d + t] += ds * QI(b, i, h, t);
                    }
                }
            }
        }
    return a;
}

typedef struct attn_ctx {
    tensor *out, *lse, *q, *k, *v;
    attention_params p;
} attn_ctx;

static void attn_fwd(void *c) {
    attn_ctx *a = c;
    op_attention(a->out, a->lse, a->q, a->k, a->v, a->p);
}

static attn_ctx make_attention(int64_t B, int64_t Lq, int64_t Lk, int H, int64_t d, int64_t dv, int causal) {
    attn_ctx a = {RT(1, B, Lq, H * dv), RT(1, B, H, Lq), RT(1.5f, B, Lq, H * d), RT(1.5f, B, Lk, H * d), RT(1, B, Lk, H * dv),
                  {H, 1.0f / sqrtf((float)d), causal}};
    return a;
}

static void check_attention(const char *name, attn_ctx a, int with_fd) {
    tensor *r = RT(1, a.out->shape[0], a.out->shape[1], a.out->shape[2]);
    attn_fwd(&a);
    naive_attn want = naive_attention(a.q, a.k, a.v, r, a.p);
    double eo = max_err_vs(F(a.out), want.out, tensor_numel(a.out)), el = max_err_vs(F(a.lse), want.lse, tensor_numel(a.lse));
    CHECKF(eo < FWD_TOL && el < FWD_TOL, "%s: out off by %.3g, lse by %.3g", name, eo, el);
    tensor *dq = filled_like(a.q, 7), *dk = filled_like(a.k, 7), *dv = filled_like(a.v, 7);
    op_attention_backward(dq, dk, dv, a.q, a.k, a.v, a.out, a.lse, r, a.p);
    double eq = max_err_vs(F(dq), want.dq, tensor_numel(dq)), ek = max_err_vs(F(dk), want.dk, tensor_numel(dk)),
           ev = max_err_vs(F(dv), want.dv, tensor_numel(dv));
    CHECKF(eq < FWD_TOL && ek < FWD_TOL && ev < FWD_TOL, "%s: backward against loops off: dq %.3g dk %.3g dv %.3g", name, eq,
           ek, ev);
    if (with_fd) {
        CHECK_GRAD(name, attn_fwd, &a, a.out, r, a.q, dq);
        CHECK_GRAD(name, attn_fwd, &a, a.out, r, a.k, dk);
        CHECK_GRAD(name, attn_fwd, &a, a.out, r, a.v, dv);
    }
}

TEST(attention_small) { check_attention("attention", make_attention(2, 5, 7, 3, 4, 3, 0), 1); }
TEST(attention_causal_small) { check_attention("causal attention", make_attention(2, 6, 6, 2, 5, 5, 1), 1); }
/* Several query and key blocks, ragged at the ends. */
TEST(attention_blocked) { check_attention("blocked attention", make_attention(2, 77, 150, 2, 8, 6, 0), 0); }
TEST(attention_causal_blocked) { check_attention("blocked causal attention", make_attention(2, 77, 77, 3, 8, 8, 1), 0); }

/* ---------------- upsample ---------------- */

static void upsample_fwd(void *c) {
    unary_ctx *k = c;
    op_upsample_nearest(k->y, k->x);
}

static void check_upsample(const char *name, int64_t h, int64_t w, int64_t oh, int64_t ow) {
    unary_ctx k = {RT(1, 2, 3, oh, ow), RT(1, 2, 3, h, w)};
    upsample_fwd(&k);
    for (int64_t pl = 0; pl < 6; pl++)
        for (int64_t r = 0; r < oh; r++)
            for (int64_t c = 0; c < ow; c++) {
                int64_t sr = (int64_t)floor((double)r * h / oh), sc = (int64_t)floor((double)c * w / ow);
                CHECKF(F(k.y)[(pl * oh + r) * ow + c] == F(k.x)[(pl * h + sr) * w + sc], "%s: (%lld, %lld)", name, (long long)r,
                       (long long)c);
            }
    tensor *r = RT(1, 2, 3, oh, ow), *dx = filled_like(k.x, 7);
    op_upsample_nearest_backward(dx, r);
    CHECK_GRAD(name, upsample_fwd, &k, k.y, r, k.x, dx);
}

TEST(upsample_nearest_x2) { check_upsample("x2", 4, 5, 8, 10); }
TEST(upsample_nearest_to_size) { check_upsample("to size", 3, 5, 7, 9); }

/* ---------------- timestep embedding ---------------- */

/* lcd-reference.md section 9: the UNet's time_proj (320, flip_sin_to_cos, shift 0). */
TEST(timestep_embedding_golden) {
    float ts[3] = {0, 19, 999}, out[3 * 320];
    tensor t = tensor_view(NULL, DT_F32, 1, (int64_t[]){3}, ts), e = tensor_view(NULL, DT_F32, 2, (int64_t[]){3, 320}, out);
    op_timestep_embedding(&e, &t, (timestep_embedding_params){1, 0, 1, 10000});
    for (int j = 0; j < 160; j++) CHECK(out[j] == 1.0f && out[160 + j] == 0.0f);
    static const double first19[4] = {0.9887046, 0.6118498, -0.3381876, -0.9614568};
    static const double first999[4] = {0.9996498, 0.8026775, -0.2780621, 0.1768028};
    double sum19 = 0, sum999 = 0;
    for (int j = 0; j < 4; j++) {
        CHECK_NEAR(out[320 + j], first19[j], 1e-7);
        CHECK_NEAR(out[640 + j], first999[j], 1e-7);
    }
    for (int j = 0; j < 320; j++) sum19 += out[320 + j], sum999 += out[640 + j];
    CHECK_NEAR(sum19, 125.407089, 1e-5);
    CHECK_NEAR(sum999, 57.183121, 1e-5);
}

/* The other settings against the formula in double, at a small t where float rounding barely matters. */
TEST(timestep_embedding_options) {
    float ts[2] = {0.5f, 3.0f}, out[2 * 7];
    tensor t = tensor_view(NULL, DT_F32, 1, (int64_t[]){2}, ts), e = tensor_view(NULL, DT_F32, 2, (int64_t[]){2, 7}, out);
    op_timestep_embedding(&e, &t, (timestep_embedding_params){0, 1, 2.0f, 100});
    for (int b = 0; b < 2; b++) {
        for (int j = 0; j < 3; j++) {
            double arg = 2.0 * ts[b] * exp(-log(100.0) * j / (3 - 1));
            CHECK_NEAR(out[b * 7 + j], sin(arg), 1e-5);
            CHECK_NEAR(out[b * 7 + 3 + j], cos(arg), 1e-5);
        }
        CHECK(out[b * 7 + 6] == 0);
    }
}

/* ---------------- broadcast add ---------------- */

typedef struct bc_ctx {
    tensor *y, *x, *v;
} bc_ctx;

static void bc_fwd(void *c) {
    bc_ctx *k = c;
    op_add_broadcast(k->y, k->x, k->v);
}

static void check_broadcast(const char *name, int per_image) {
    bc_ctx k = {RT(1, 2, 3, 4, 5), RT(1, 2, 3, 4, 5), per_image ? RT(1, 2, 3) : RT(1, 3)};
    bc_fwd(&k);
    for (int64_t i = 0; i < 120; i++) {
        int64_t n = i / 60, c = i / 20 % 3;
        CHECK(F(k.y)[i] == F(k.x)[i] + F(k.v)[per_image ? n * 3 + c : c]);
    }
    tensor *r = RT(1, 2, 3, 4, 5);
    acc_grad dv = acc_grad_for(k.v);
    op_add_broadcast_backward(dv.g, r);
    CHECK_GRAD(name, bc_fwd, &k, k.y, r, k.v, grad_added(&dv));
    /* In place: y = x. */
    tensor *x2 = own(tensor_clone(k.x, NULL, DT_F32));
    op_add_broadcast(x2, x2, k.v);
    for (int64_t i = 0; i < 120; i++) CHECK(F(x2)[i] == F(k.y)[i]);
}

TEST(add_broadcast_channel) { check_broadcast("add [C]", 0); }
TEST(add_broadcast_image_channel) { check_broadcast("add [N, C]", 1); }

/* ---------------- losses ---------------- */

typedef struct loss_ctx {
    tensor *out, *x, *y;
    loss_kind kind;
    float c;
} loss_ctx;

static void loss_fwd(void *p) {
    loss_ctx *l = p;
    F(l->out)[0] = (float)op_loss(l->x, l->y, l->kind, l->c);
}

static void check_loss(const char *name, loss_kind kind, float c) {
    loss_ctx l = {RT(1, 1), RT(1, 2, 3, 5, 3), RT(1, 2, 3, 5, 3), kind, c};
    double want = 0;
    for (int i = 0; i < 90; i++) {
        double e = (double)F(l.x)[i] - F(l.y)[i];
        want += kind == LOSS_MSE ? e * e : sqrt(e * e + (double)c * c) - c;
    }
    CHECK_NEAR(op_loss(l.x, l.y, kind, c), want / 90, 1e-7);
    float one = 1;
    tensor r = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &one);
    tensor *dx = filled_like(l.x, 7);
    op_loss_backward(dx, l.x, l.y, kind, c, 1.0f);
    CHECK_GRAD(name, loss_fwd, &l, l.out, &r, l.x, dx);
    /* dloss scales the gradient. */
    tensor *dx3 = filled_like(l.x, 7);
    op_loss_backward(dx3, l.x, l.y, kind, c, 3.0f);
    for (int i = 0; i < 90; i++) CHECK_NEAR(F(dx3)[i], 3 * F(dx)[i], 1e-7);
}

TEST(loss_mse) { check_loss("mse", LOSS_MSE, 0); }
TEST(loss_pseudo_huber) { check_loss("pseudo-huber", LOSS_PSEUDO_HUBER, 0.1f); }

int main(void) {
    RUN_AND_RELEASE(linear);
    RUN_AND_RELEASE(conv2d_3x3_pad1);
    RUN_AND_RELEASE(conv2d_3x3_stride2_odd);
    RUN_AND_RELEASE(conv2d_vae_downsample_pad);
    RUN_AND_RELEASE(conv2d_1x1);
    RUN_AND_RELEASE(conv2d_1x1_no_bias);
    RUN_AND_RELEASE(conv2d_2x3_uneven_pad);
    RUN_AND_RELEASE(conv2d_stride3_big_pad);
    RUN_AND_RELEASE(conv2d_banded_large);
    RUN_AND_RELEASE(group_norm);
    RUN_AND_RELEASE(group_norm_silu);
    RUN_AND_RELEASE(group_norm_no_affine);
    RUN_AND_RELEASE(layer_norm);
    RUN_AND_RELEASE(activations);
    RUN_AND_RELEASE(geglu);
    RUN_AND_RELEASE(softmax);
    RUN_AND_RELEASE(attention_small);
    RUN_AND_RELEASE(attention_causal_small);
    RUN_AND_RELEASE(attention_blocked);
    RUN_AND_RELEASE(attention_causal_blocked);
    RUN_AND_RELEASE(upsample_nearest_x2);
    RUN_AND_RELEASE(upsample_nearest_to_size);
    RUN_AND_RELEASE(timestep_embedding_golden);
    RUN_AND_RELEASE(timestep_embedding_options);
    RUN_AND_RELEASE(add_broadcast_channel);
    RUN_AND_RELEASE(add_broadcast_image_channel);
    RUN_AND_RELEASE(loss_mse);
    RUN_AND_RELEASE(loss_pseudo_huber);
    TEST_EXIT();
}
