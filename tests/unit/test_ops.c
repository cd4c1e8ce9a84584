/* The op harness: every op on every backend present, against the CPU
 * reference (as ggml's test-backend-ops does), plus checks of the CPU
 * reference itself against plain loops. On a machine without a GPU the CUDA
 * cases are reported as skipped; `scripts/gpu-check` runs them on one. */
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "test.h"
#include "util.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static tensor *random_tensor(const backend *be, int ndim, const int64_t *shape) {
    tensor *t = tensor_new(be, DT_F32, ndim, shape);
    float *host = xmalloc(tensor_nbytes(t));
    for (int64_t i = 0; i < tensor_numel(t); i++) host[i] = 2 * frand();
    tensor_from_host(t, host);
    free(host);
    return t;
}

static double compare(const tensor *got, const tensor *want) {
    size_t n = (size_t)tensor_numel(want);
    float *a = xmalloc(n * 4), *b = xmalloc(n * 4);
    tensor_to_host(got, a);
    tensor_to_host(want, b);
    double err = max_rel_err(a, b, n, 1e-6);
    free(a), free(b);
    return err;
}

/* One case: the op run on `be` and on the CPU with the same inputs. Shapes
 * list up to 4 dims, zero-terminated. Ops with several results write them one
 * after another into a flat output (views at offsets); the output starts at
 * 0.5 everywhere, so ops that add into gradients are checked adding. */
typedef struct op_case {
    const char *name;
    const char *ops; /* the backend ops it runs, space-separated */
    void (*run)(const backend *be, tensor **in, tensor *out);
    int n_in;
    int64_t in_shape[6][4];
    int64_t out_shape[4];
    double tol;
} op_case;

static int ndim_of(const int64_t *shape) {
    int n = 0;
    while (n < 4 && shape[n]) n++;
    return n;
}

/* The next n-dim piece of a flat output, at *offset floats. */
static tensor piece(const tensor *out, int64_t *offset, int ndim, const int64_t *shape) {
    tensor t = tensor_view(out->backend, DT_F32, ndim, shape, (float *)out->data + *offset);
    *offset += shape_numel(ndim, shape);
    return t;
}

static tensor *like(const backend *be, const tensor *t) { return tensor_new(be, DT_F32, t->ndim, t->shape); }

static void run_axpby(const backend *be, tensor **in, tensor *out) { op_axpby(out, 0.5f, in[0], -1.25f, in[1]); }
static void run_scale(const backend *be, tensor **in, tensor *out) { op_axpby(out, 3.0f, in[0], 0, NULL); }
static void run_mul(const backend *be, tensor **in, tensor *out) { op_mul(out, in[0], in[1]); }
static void run_silu(const backend *be, tensor **in, tensor *out) { op_silu(out, in[0]); }
static void run_silu_bwd(const backend *be, tensor **in, tensor *out) { op_silu_backward(out, in[0], in[1]); }
static void run_fill(const backend *be, tensor **in, tensor *out) { op_fill(out, 0.75f); }
static void run_gemm_nn(const backend *be, tensor **in, tensor *out) { op_gemm(out, in[0], 0, in[1], 0, 1.0f, 0.0f); }
static void run_gemm_tn(const backend *be, tensor **in, tensor *out) { op_gemm(out, in[0], 1, in[1], 0, 0.5f, 0.0f); }
static void run_gemm_nt_beta(const backend *be, tensor **in, tensor *out) {
    tensor_copy(out, in[2]);
    op_gemm(out, in[0], 0, in[1], 1, 1.0f, 1.0f);
}
/* f32 -> f16 -> f32 through the backend's converter. */
static void run_convert_f16(const backend *be, tensor **in, tensor *out) {
    tensor *h = tensor_new(be, DT_F16, in[0]->ndim, in[0]->shape);
    op_convert(h, in[0]);
    op_convert(out, h);
    tensor_free(h);
}
static void run_convert_bf16(const backend *be, tensor **in, tensor *out) {
    tensor *h = tensor_new(be, DT_BF16, in[0]->ndim, in[0]->shape);
    op_convert(h, in[0]);
    op_convert(out, h);
    tensor_free(h);
}

/* ---- neural-network ops ---- */

static void run_linear(const backend *be, tensor **in, tensor *out) { op_linear(out, in[0], in[1], in[2]); }
static void run_linear_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0;
    tensor dx = piece(out, &off, 2, in[0]->shape), dw = piece(out, &off, 2, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_linear_backward(&dx, &dw, &db, in[0], in[1], in[2]);
}

static const conv2d_params conv_same = {1, 1, 1, 1, 1}, conv_down = {2, 0, 0, 1, 1}, conv_point = {1, 0, 0, 0, 0};
static void run_conv_same(const backend *be, tensor **in, tensor *out) { op_conv2d(out, in[0], in[1], in[2], conv_same); }
static void run_conv_down(const backend *be, tensor **in, tensor *out) { op_conv2d(out, in[0], in[1], in[2], conv_down); }
static void run_conv_point(const backend *be, tensor **in, tensor *out) { op_conv2d(out, in[0], in[1], in[2], conv_point); }
static void conv_bwd(tensor **in, tensor *out, conv2d_params p) {
    int64_t off = 0;
    tensor dx = piece(out, &off, 4, in[0]->shape), dw = piece(out, &off, 4, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_conv2d_backward(&dx, &dw, &db, in[0], in[1], in[2], p);
}
static void run_conv_same_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, conv_same); }
static void run_conv_down_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, conv_down); }
static void run_conv_point_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, conv_point); }

enum { GN_GROUPS = 4 };
static void run_group_norm(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, stats[2] = {in[0]->shape[0], GN_GROUPS};
    tensor y = piece(out, &off, 4, in[0]->shape), m = piece(out, &off, 2, stats), r = piece(out, &off, 2, stats);
    op_group_norm(&y, &m, &r, in[0], in[1], in[2], GN_GROUPS, 1e-6f, 1);
}
static void run_group_norm_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, stats[2] = {in[0]->shape[0], GN_GROUPS};
    tensor *y = like(be, in[0]), *m = tensor_new(be, DT_F32, 2, stats), *r = tensor_new(be, DT_F32, 2, stats);
    op_group_norm(y, m, r, in[0], in[1], in[2], GN_GROUPS, 1e-5f, 1);
    tensor dx = piece(out, &off, 4, in[0]->shape), dg = piece(out, &off, 1, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_group_norm_backward(&dx, &dg, &db, in[0], m, r, in[1], in[2], in[3], GN_GROUPS, 1);
    tensor_free(y), tensor_free(m), tensor_free(r);
}

static void run_layer_norm(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, rows = tensor_numel(in[0]) / in[1]->shape[0];
    tensor y = piece(out, &off, 3, in[0]->shape), m = piece(out, &off, 1, &rows), r = piece(out, &off, 1, &rows);
    op_layer_norm(&y, &m, &r, in[0], in[1], in[2], 1e-5f);
}
static void run_layer_norm_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, rows = tensor_numel(in[0]) / in[1]->shape[0];
    tensor *y = like(be, in[0]), *m = tensor_new(be, DT_F32, 1, &rows), *r = tensor_new(be, DT_F32, 1, &rows);
    op_layer_norm(y, m, r, in[0], in[1], in[2], 1e-5f);
    tensor dx = piece(out, &off, 3, in[0]->shape), dg = piece(out, &off, 1, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_layer_norm_backward(&dx, &dg, &db, in[0], m, r, in[1], in[3]);
    tensor_free(y), tensor_free(m), tensor_free(r);
}

#define ACT_CASE(kind, fn)                                                                                       \
    static void run_##fn(const backend *be, tensor **in, tensor *out) { op_activation(out, in[0], kind); }       \
    static void run_##fn##_bwd(const backend *be, tensor **in, tensor *out) { op_activation_backward(out, in[0], in[1], kind); }
ACT_CASE(ACT_SILU, act_silu)
ACT_CASE(ACT_GELU, gelu)
ACT_CASE(ACT_GELU_TANH, gelu_tanh)
ACT_CASE(ACT_QUICK_GELU, quick_gelu)

static void run_geglu(const backend *be, tensor **in, tensor *out) { op_geglu(out, in[0]); }
static void run_geglu_bwd(const backend *be, tensor **in, tensor *out) { op_geglu_backward(out, in[0], in[1]); }
static void run_softmax(const backend *be, tensor **in, tensor *out) { op_softmax(out, in[0]); }
static void run_softmax_bwd(const backend *be, tensor **in, tensor *out) {
    tensor *y = like(be, in[0]);
    op_softmax(y, in[0]);
    op_softmax_backward(out, y, in[1]);
    tensor_free(y);
}

enum { ATT_HEADS = 3 };
static void attention(tensor **in, tensor *out, int causal) {
    int64_t off = 0, os[3] = {in[0]->shape[0], in[0]->shape[1], in[2]->shape[2]}, ls[3] = {in[0]->shape[0], ATT_HEADS, in[0]->shape[1]};
    tensor o = piece(out, &off, 3, os), lse = piece(out, &off, 3, ls);
    op_attention(&o, &lse, in[0], in[1], in[2], (attention_params){ATT_HEADS, 0.35f, causal});
}
static void run_attention(const backend *be, tensor **in, tensor *out) { attention(in, out, 0); }
static void run_attention_causal(const backend *be, tensor **in, tensor *out) { attention(in, out, 1); }
static void attention_bwd(const backend *be, tensor **in, tensor *out, int causal) {
    attention_params p = {ATT_HEADS, 0.35f, causal};
    int64_t off = 0, ls[3] = {in[0]->shape[0], ATT_HEADS, in[0]->shape[1]};
    tensor *o = like(be, in[3]), *lse = tensor_new(be, DT_F32, 3, ls);
    op_attention(o, lse, in[0], in[1], in[2], p);
    tensor dq = piece(out, &off, 3, in[0]->shape), dk = piece(out, &off, 3, in[1]->shape), dv = piece(out, &off, 3, in[2]->shape);
    op_attention_backward(&dq, &dk, &dv, in[0], in[1], in[2], o, lse, in[3], p);
    tensor_free(o), tensor_free(lse);
}
static void run_attention_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 0); }
static void run_attention_causal_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 1); }

/* ids are fixed, not random: any valid row index will do */
static void run_embedding(const backend *be, tensor **in, tensor *out) {
    int64_t ids[14] = {0, 49, 3, 3, 17, 8, 22, 1, 0, 48, 30, 31, 5, 2};
    tensor host = tensor_view(NULL, DT_I64, 1, (int64_t[]){14}, ids);
    tensor *dev = tensor_clone(&host, be, DT_I64);
    op_embedding(out, in[0], dev);
    tensor_free(dev);
}
static void run_transpose(const backend *be, tensor **in, tensor *out) { op_transpose(out, in[0]); }
static void run_upsample(const backend *be, tensor **in, tensor *out) { op_upsample_nearest(out, in[0]); }
static void run_upsample_bwd(const backend *be, tensor **in, tensor *out) { op_upsample_nearest_backward(out, in[0]); }

/* Timesteps spread over [-1000, 1000): large arguments test the float32 path. */
static void run_timestep_embedding(const backend *be, tensor **in, tensor *out) {
    tensor *t = like(be, in[0]);
    op_axpby(t, 500.0f, in[0], 0, NULL);
    op_timestep_embedding(out, t, (timestep_embedding_params){1, 1.0f, 1.0f, 10000.0f});
    tensor_free(t);
}

static void run_add_broadcast(const backend *be, tensor **in, tensor *out) { op_add_broadcast(out, in[0], in[1]); }
static void run_add_broadcast_bwd(const backend *be, tensor **in, tensor *out) { op_add_broadcast_backward(out, in[0]); }

static void run_loss(const backend *be, tensor **in, tensor *out, loss_kind kind) {
    float v = (float)op_loss(in[0], in[1], kind, 0.3f);
    tensor_from_host(out, &v);
}
static void run_mse(const backend *be, tensor **in, tensor *out) { run_loss(be, in, out, LOSS_MSE); }
static void run_huber(const backend *be, tensor **in, tensor *out) { run_loss(be, in, out, LOSS_PSEUDO_HUBER); }
static void run_mse_bwd(const backend *be, tensor **in, tensor *out) { op_loss_backward(out, in[0], in[1], LOSS_MSE, 0, 0.7f); }
static void run_huber_bwd(const backend *be, tensor **in, tensor *out) {
    op_loss_backward(out, in[0], in[1], LOSS_PSEUDO_HUBER, 0.3f, 0.7f);
}

/* Concatenation along channels (two slice copies) and a slice out of the middle. */
static void run_concat_channels(const backend *be, tensor **in, tensor *out) {
    op_copy_channels(out, 0, in[0], 0, in[0]->shape[1]);
    op_copy_channels(out, in[0]->shape[1], in[1], 0, in[1]->shape[1]);
}
static void run_slice_channels(const backend *be, tensor **in, tensor *out) { op_copy_channels(out, 0, in[0], 2, out->shape[1]); }
static void run_scale_shift(const backend *be, tensor **in, tensor *out) { op_scale_shift(out, in[0], in[1]); }
static void run_scale_shift_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0;
    tensor dx = piece(out, &off, 4, in[0]->shape), dss = piece(out, &off, 2, in[1]->shape);
    op_scale_shift_backward(&dx, &dss, in[0], in[1], in[2]);
}

/* Flat output sizes of the multi-result cases. */
#define LIN_BWD (21 * 33 + 17 * 33 + 17)
#define CONV_BWD(x, w, k) ((x) + (w) + (k))
#define ATT_OUT (2 * 77 * 18 + 2 * 3 * 77)

static const op_case cases[] = {
    {"fill", "fill", run_fill, 0, {{0}}, {37, 129}, 0},
    {"axpby", "axpby", run_axpby, 2, {{37, 129}, {37, 129}}, {37, 129}, 1e-6},
    {"scale", "axpby", run_scale, 1, {{1000, 3}}, {1000, 3}, 1e-6},
    {"mul", "mul", run_mul, 2, {{5, 77}, {5, 77}}, {5, 77}, 1e-6},
    {"silu", "silu", run_silu, 1, {{300, 301}}, {300, 301}, 1e-6},
    {"silu_backward", "silu_backward", run_silu_bwd, 2, {{64, 65}, {64, 65}}, {64, 65}, 1e-6},
    {"gemm_nn", "gemm", run_gemm_nn, 2, {{33, 70}, {70, 45}}, {33, 45}, 1e-5},
    {"gemm_tn", "gemm", run_gemm_tn, 2, {{70, 33}, {70, 45}}, {33, 45}, 1e-5},
    {"gemm_nt_beta", "gemm", run_gemm_nt_beta, 3, {{33, 70}, {45, 70}, {33, 45}}, {33, 45}, 1e-5},
    {"convert_f16", "convert", run_convert_f16, 1, {{17, 1000}}, {17, 1000}, 0},
    {"convert_bf16", "convert", run_convert_bf16, 1, {{17, 1000}}, {17, 1000}, 0},
    {"linear", "linear", run_linear, 3, {{3, 7, 33}, {17, 33}, {17}}, {3, 7, 17}, 1e-5},
    {"linear_backward", "linear_backward", run_linear_bwd, 3, {{21, 33}, {17, 33}, {21, 17}}, {LIN_BWD}, 1e-5},
    {"conv2d_3x3", "conv2d", run_conv_same, 3, {{2, 5, 9, 7}, {6, 5, 3, 3}, {6}}, {2, 6, 9, 7}, 1e-5},
    {"conv2d_down", "conv2d", run_conv_down, 3, {{2, 4, 8, 9}, {3, 4, 3, 3}, {3}}, {2, 3, 4, 4}, 1e-5},
    {"conv2d_1x1", "conv2d", run_conv_point, 3, {{2, 6, 5, 5}, {4, 6, 1, 1}, {4}}, {2, 4, 5, 5}, 1e-5},
    {"conv2d_3x3_backward", "conv2d_backward", run_conv_same_bwd, 3, {{2, 5, 9, 7}, {6, 5, 3, 3}, {2, 6, 9, 7}},
     {CONV_BWD(630, 270, 6)}, 1e-5},
    {"conv2d_down_backward", "conv2d_backward", run_conv_down_bwd, 3, {{2, 4, 8, 9}, {3, 4, 3, 3}, {2, 3, 4, 4}},
     {CONV_BWD(576, 108, 3)}, 1e-5},
    {"conv2d_1x1_backward", "conv2d_backward", run_conv_point_bwd, 3, {{2, 6, 5, 5}, {4, 6, 1, 1}, {2, 4, 5, 5}},
     {CONV_BWD(300, 24, 4)}, 1e-5},
    {"group_norm_silu", "group_norm", run_group_norm, 3, {{2, 8, 5, 3}, {8}, {8}}, {240 + 16}, 1e-5},
    {"group_norm_silu_backward", "group_norm group_norm_backward", run_group_norm_bwd, 4, {{2, 8, 5, 3}, {8}, {8}, {2, 8, 5, 3}},
     {240 + 16}, 1e-5},
    {"layer_norm", "layer_norm", run_layer_norm, 3, {{2, 7, 33}, {33}, {33}}, {462 + 28}, 1e-5},
    {"layer_norm_backward", "layer_norm layer_norm_backward", run_layer_norm_bwd, 4, {{2, 7, 33}, {33}, {33}, {2, 7, 33}},
     {462 + 66}, 1e-5},
    {"activation_silu", "activation", run_act_silu, 1, {{37, 65}}, {37, 65}, 1e-6},
    {"activation_silu_backward", "activation_backward", run_act_silu_bwd, 2, {{37, 65}, {37, 65}}, {37, 65}, 1e-6},
    {"gelu", "activation", run_gelu, 1, {{37, 65}}, {37, 65}, 1e-6},
    {"gelu_backward", "activation_backward", run_gelu_bwd, 2, {{37, 65}, {37, 65}}, {37, 65}, 1e-6},
    {"gelu_tanh", "activation", run_gelu_tanh, 1, {{37, 65}}, {37, 65}, 1e-6},
    {"gelu_tanh_backward", "activation_backward", run_gelu_tanh_bwd, 2, {{37, 65}, {37, 65}}, {37, 65}, 1e-6},
    {"quick_gelu", "activation", run_quick_gelu, 1, {{37, 65}}, {37, 65}, 1e-6},
    {"quick_gelu_backward", "activation_backward", run_quick_gelu_bwd, 2, {{37, 65}, {37, 65}}, {37, 65}, 1e-6},
    {"geglu", "geglu", run_geglu, 1, {{5, 7, 20}}, {5, 7, 10}, 1e-6},
    {"geglu_backward", "geglu_backward", run_geglu_bwd, 2, {{5, 7, 20}, {5, 7, 10}}, {5, 7, 20}, 1e-6},
    {"softmax", "softmax", run_softmax, 1, {{37, 65}}, {37, 65}, 1e-6},
    {"softmax_backward", "softmax softmax_backward", run_softmax_bwd, 2, {{37, 65}, {37, 65}}, {37, 65}, 1e-6},
    {"attention", "attention", run_attention, 3, {{2, 77, 24}, {2, 50, 24}, {2, 50, 18}}, {ATT_OUT}, 1e-5},
    {"attention_causal", "attention", run_attention_causal, 3, {{2, 77, 24}, {2, 77, 24}, {2, 77, 18}}, {ATT_OUT}, 1e-5},
    {"attention_backward", "attention attention_backward", run_attention_bwd, 4,
     {{2, 77, 24}, {2, 50, 24}, {2, 50, 18}, {2, 77, 18}}, {2 * 77 * 24 + 2 * 50 * 24 + 2 * 50 * 18}, 1e-5},
    {"attention_causal_backward", "attention attention_backward", run_attention_causal_bwd, 4,
     {{2, 77, 24}, {2, 77, 24}, {2, 77, 18}, {2, 77, 18}}, {2 * 77 * 24 * 2 + 2 * 77 * 18}, 1e-5},
    {"upsample_nearest_x2", "upsample_nearest", run_upsample, 1, {{2, 3, 5, 4}}, {2, 3, 10, 8}, 0},
    {"upsample_nearest_size", "upsample_nearest", run_upsample, 1, {{2, 3, 5, 4}}, {2, 3, 9, 7}, 0},
    {"upsample_nearest_backward", "upsample_nearest_backward", run_upsample_bwd, 1, {{2, 3, 9, 7}}, {2, 3, 5, 4}, 1e-6},
    {"timestep_embedding", "axpby timestep_embedding", run_timestep_embedding, 1, {{5}}, {5, 321}, 1e-5},
    {"add_broadcast_c", "add_broadcast", run_add_broadcast, 2, {{2, 5, 4, 3}, {5}}, {2, 5, 4, 3}, 1e-6},
    {"add_broadcast_nc", "add_broadcast", run_add_broadcast, 2, {{2, 5, 4, 3}, {2, 5}}, {2, 5, 4, 3}, 1e-6},
    {"add_broadcast_backward_c", "add_broadcast_backward", run_add_broadcast_bwd, 1, {{2, 5, 4, 3}}, {5}, 1e-6},
    {"add_broadcast_backward_nc", "add_broadcast_backward", run_add_broadcast_bwd, 1, {{2, 5, 4, 3}}, {2, 5}, 1e-6},
    {"loss_mse", "loss", run_mse, 2, {{4, 999}, {4, 999}}, {1}, 1e-6},
    {"loss_pseudo_huber", "loss", run_huber, 2, {{4, 999}, {4, 999}}, {1}, 1e-6},
    {"loss_mse_backward", "loss_backward", run_mse_bwd, 2, {{4, 999}, {4, 999}}, {4, 999}, 1e-6},
    {"loss_pseudo_huber_backward", "loss_backward", run_huber_bwd, 2, {{4, 999}, {4, 999}}, {4, 999}, 1e-6},
    {"embedding", "embedding", run_embedding, 1, {{50, 33}}, {2, 7, 33}, 0},
    {"transpose", "transpose", run_transpose, 1, {{3, 37, 70}}, {3, 70, 37}, 0},
    {"transpose_2d", "transpose", run_transpose, 1, {{65, 33}}, {33, 65}, 0},
    {"copy_channels_concat", "copy_channels", run_concat_channels, 2, {{2, 3, 5, 4}, {2, 6, 5, 4}}, {2, 9, 5, 4}, 0},
    {"copy_channels_concat_2d", "copy_channels", run_concat_channels, 2, {{3, 10}, {3, 24}}, {3, 34}, 0},
    {"copy_channels_slice", "copy_channels", run_slice_channels, 1, {{2, 9, 5, 4}}, {2, 4, 5, 4}, 0},
    {"scale_shift", "scale_shift", run_scale_shift, 2, {{2, 5, 4, 3}, {2, 10}}, {2, 5, 4, 3}, 1e-6},
    {"scale_shift_backward", "scale_shift_backward", run_scale_shift_bwd, 3, {{2, 5, 4, 3}, {2, 10}, {2, 5, 4, 3}},
     {120 + 20}, 1e-6},
};

/* Is the op named `name` in be's table? */
static int has_op(const backend *be, const char *name, size_t len) {
    const void *const *fn = (const void *const *)&be->ops;
    for (int i = 0; i < backend_op_count; i++)
        if (strlen(backend_op_names[i]) == len && !strncmp(backend_op_names[i], name, len)) return fn[i] != NULL;
    die("test_ops: case names unknown op '%.*s'", (int)len, name);
}

/* The first op of a space-separated list that be lacks, as "name" into buf; 0 when it has them all. */
static int missing_op(const backend *be, const char *ops, char *buf, size_t size) {
    for (const char *p = ops; *p;) {
        size_t len = strcspn(p, " ");
        if (!has_op(be, p, len)) return snprintf(buf, size, "%.*s", (int)len, p), 1;
        p += len + (p[len] == ' ');
    }
    return 0;
}

/* Runs every case on be and on the CPU; prints one PASS/FAIL/SKIP line each. */
static void harness(const backend *be) {
    char err[LCM_ERRLEN], op[64];
    int usable = be->probe(err) == 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const op_case *oc = &cases[c];
        char name[96];
        snprintf(name, sizeof name, "%s_%s", be->name, oc->name);
        if (!usable) {
            printf("SKIP %s: %s\n", name, err);
            continue;
        }
        if (missing_op(be, oc->ops, op, sizeof op)) {
            printf("SKIP %s: op %s not implemented on %s\n", name, op, be->name);
            continue;
        }
        tensor *in_be[6] = {0}, *in_cpu[6] = {0};
        for (int i = 0; i < oc->n_in; i++) {
            in_cpu[i] = random_tensor(backend_cpu(), ndim_of(oc->in_shape[i]), oc->in_shape[i]);
            in_be[i] = tensor_clone(in_cpu[i], be, DT_F32);
        }
        int out_ndim = ndim_of(oc->out_shape);
        tensor *out_be = tensor_new(be, DT_F32, out_ndim, oc->out_shape);
        tensor *out_cpu = tensor_new(backend_cpu(), DT_F32, out_ndim, oc->out_shape);
        op_fill(out_be, 0.5f), op_fill(out_cpu, 0.5f);
        oc->run(be, in_be, out_be);
        oc->run(backend_cpu(), in_cpu, out_cpu);
        be->synchronize();
        double e = compare(out_be, out_cpu);
        if (e <= oc->tol) printf("PASS %s (max rel err %.2g)\n", name, e);
        else printf("FAIL %s: max rel err %.3g > %.3g\n", name, e, oc->tol), test_failed_count_++;
        for (int i = 0; i < oc->n_in; i++) tensor_free(in_be[i]), tensor_free(in_cpu[i]);
        tensor_free(out_be), tensor_free(out_cpu);
    }
}

/* A backend table with a missing op would die at its first use: the CPU, the
 * reference, must have every op; any other backend's missing ops are
 * reported one SKIP line each, so the gap stays visible. */
TEST(every_backend_has_every_op) {
    for (const backend *const *b = backend_list(); *b; b++) {
        const void *const *fn = (const void *const *)&(*b)->ops;
        for (int i = 0; i < backend_op_count; i++) {
            if (fn[i]) continue;
            CHECKF(*b != backend_cpu(), "cpu: op %s missing", backend_op_names[i]);
            printf("SKIP %s_%s: not implemented on %s\n", (*b)->name, backend_op_names[i], (*b)->name);
        }
    }
}

/* The reference itself, against plain loops. */
TEST(cpu_gemm_against_loops) {
    int64_t sa[2] = {7, 5}, sb[2] = {5, 3}, sc[2] = {7, 3};
    tensor *a = random_tensor(NULL, 2, sa), *b = random_tensor(NULL, 2, sb), *c = tensor_new(NULL, DT_F32, 2, sc);
    op_gemm(c, a, 0, b, 0, 2.0f, 0.0f);
    const float *A = a->data, *B = b->data, *C = c->data;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 5; k++) s += A[i * 5 + k] * B[k * 3 + j];
            CHECK_NEAR(C[i * 3 + j], 2 * s, 1e-5);
        }
    tensor_free(a), tensor_free(b), tensor_free(c);
}

/* silu_backward is the derivative of silu: central differences. */
TEST(cpu_silu_backward_is_derivative) {
    for (float x = -6; x <= 6; x += 0.37f) {
        float xs[3] = {x - 1e-3f, x, x + 1e-3f}, ys[3], one = 1, d;
        tensor tx = tensor_view(NULL, DT_F32, 1, (int64_t[]){3}, xs), ty = tensor_view(NULL, DT_F32, 1, (int64_t[]){3}, ys);
        op_silu(&ty, &tx);
        tensor t1 = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &xs[1]);
        tensor tg = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &one), td = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &d);
        op_silu_backward(&td, &t1, &tg);
        CHECK_NEAR(d, (ys[2] - ys[0]) / (xs[2] - xs[0]), 2e-3);
    }
}

TEST(cpu_sum) {
    int64_t s[1] = {100001};
    tensor *t = tensor_new(NULL, DT_F32, 1, s);
    op_fill(t, 0.5f);
    CHECK_NEAR(op_sum(t), 50000.5, 1e-9);
    tensor_free(t);
}

/* Concatenation by slice copies, then the slices copied back out. */
TEST(cpu_copy_channels_against_loops) {
    int64_t sa[4] = {2, 3, 2, 3}, sb[4] = {2, 5, 2, 3}, sc[4] = {2, 8, 2, 3};
    tensor *a = random_tensor(NULL, 4, sa), *b = random_tensor(NULL, 4, sb), *c = tensor_new(NULL, DT_F32, 4, sc);
    tensor *back = tensor_new(NULL, DT_F32, 4, sb);
    op_copy_channels(c, 0, a, 0, 3);
    op_copy_channels(c, 3, b, 0, 5);
    op_copy_channels(back, 0, c, 3, 5);
    const float *A = a->data, *B = b->data, *C = c->data, *K = back->data;
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 8; ch++)
            for (int i = 0; i < 6; i++) {
                float want = ch < 3 ? A[(n * 3 + ch) * 6 + i] : B[(n * 5 + ch - 3) * 6 + i];
                CHECK(C[(n * 8 + ch) * 6 + i] == want);
            }
    CHECK(!memcmp(K, B, sizeof(float) * 60));
    tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(back);
}

/* scale_shift and its backward against loops: dss by the definition. */
TEST(cpu_scale_shift_against_loops) {
    int64_t sx[3] = {2, 3, 4}, ss_[2] = {2, 6};
    tensor *x = random_tensor(NULL, 3, sx), *ss = random_tensor(NULL, 2, ss_), *dy = random_tensor(NULL, 3, sx);
    tensor *y = tensor_new(NULL, DT_F32, 3, sx), *dx = tensor_new(NULL, DT_F32, 3, sx), *dss = tensor_new(NULL, DT_F32, 2, ss_);
    op_scale_shift(y, x, ss);
    op_scale_shift_backward(dx, dss, x, ss, dy);
    const float *X = x->data, *S = ss->data, *G = dy->data, *Y = y->data, *DX = dx->data, *DS = dss->data;
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++) {
            double sxg = 0, sg = 0;
            for (int i = 0; i < 4; i++) {
                int k = (n * 3 + c) * 4 + i;
                CHECK_NEAR(Y[k], X[k] * (1 + S[n * 6 + c]) + S[n * 6 + 3 + c], 1e-6);
                CHECK_NEAR(DX[k], G[k] * (1 + S[n * 6 + c]), 1e-6);
                sxg += G[k] * X[k], sg += G[k];
            }
            CHECK_NEAR(DS[n * 6 + c], sxg, 1e-5);
            CHECK_NEAR(DS[n * 6 + 3 + c], sg, 1e-5);
        }
    tensor_free(x), tensor_free(ss), tensor_free(dy), tensor_free(y), tensor_free(dx), tensor_free(dss);
}

int main(void) {
    RUN(every_backend_has_every_op);
    RUN(cpu_copy_channels_against_loops);
    RUN(cpu_scale_shift_against_loops);
    RUN(cpu_gemm_against_loops);
    RUN(cpu_silu_backward_is_derivative);
    RUN(cpu_sum);
    for (const backend *const *b = backend_list(); *b; b++) harness(*b);
    TEST_EXIT();
}
