/* CUDA-specific op cases beyond the op harness (test_ops.c): shapes that
 * reach the paths small cases miss (many row chunks in the column
 * reductions, head dims up to 256, causal attention with Lq != Lk, attention
 * over 2000-2500 tokens, wide softmax rows, asymmetric conv padding other
 * than the VAE's, the conv plan cache, down-sampling nearest resize, channel
 * slices and scale/shift as the UNet calls them, in place) and NULL
 * gradients. Each runs the op on CUDA and on the CPU reference with the same
 * inputs and compares, with the harness's tolerances. Without a usable CUDA
 * device (or in a CUDA=0 build) every case is reported as skipped. */
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "test.h"
#include "util.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

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

static int ndim_of(const int64_t *shape) {
    int n = 0;
    while (n < 4 && shape[n]) n++;
    return n;
}

/* The next piece of a flat output, at *offset floats. */
static tensor piece(const tensor *out, int64_t *offset, int ndim, const int64_t *shape) {
    tensor t = tensor_view(out->backend, DT_F32, ndim, shape, (float *)out->data + *offset);
    *offset += shape_numel(ndim, shape);
    return t;
}

static tensor *like(const backend *be, const tensor *t) { return tensor_new(be, DT_F32, t->ndim, t->shape); }

typedef struct cuda_case {
    const char *name;
    void (*run)(const backend *be, tensor **in, tensor *out);
    int n_in;
    int64_t in_shape[5][4];
    int64_t out_shape[4];
    double tol;
} cuda_case;

/* ---- linear ---- */
static void run_linear_nobias(const backend *be, tensor **in, tensor *out) { op_linear(out, in[0], in[1], NULL); }
static void run_linear_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0;
    tensor dx = piece(out, &off, 2, in[0]->shape), dw = piece(out, &off, 2, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_linear_backward(&dx, &dw, &db, in[0], in[1], in[2]);
}
static void run_linear_bwd_dw_only(const backend *be, tensor **in, tensor *out) {
    op_linear_backward(NULL, out, NULL, in[0], in[1], in[2]);
}

/* ---- conv2d ---- */
static const conv2d_params same = {1, 1, 1, 1, 1}, down = {2, 0, 0, 1, 1}, odd_pad = {1, 1, 0, 0, 2};
static void conv_fwd(tensor **in, tensor *out, conv2d_params p) { op_conv2d(out, in[0], in[1], in[2], p); }
static void conv_bwd(tensor **in, tensor *out, conv2d_params p) {
    int64_t off = 0;
    tensor dx = piece(out, &off, 4, in[0]->shape), dw = piece(out, &off, 4, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_conv2d_backward(&dx, &dw, &db, in[0], in[1], in[2], p);
}
static void run_conv_same(const backend *be, tensor **in, tensor *out) { conv_fwd(in, out, same); }
static void run_conv_same_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, same); }
static void run_conv_down(const backend *be, tensor **in, tensor *out) { conv_fwd(in, out, down); }
static void run_conv_down_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, down); }
static void run_conv_odd(const backend *be, tensor **in, tensor *out) { conv_fwd(in, out, odd_pad); }
static void run_conv_odd_bwd(const backend *be, tensor **in, tensor *out) { conv_bwd(in, out, odd_pad); }
static void run_conv_dx_only(const backend *be, tensor **in, tensor *out) {
    op_conv2d_backward(out, NULL, NULL, in[0], in[1], in[2], same);
}
/* A, then B (another shape, another plan), then A again into out: the cached plan gives the same answer. */
static void run_conv_cache(const backend *be, tensor **in, tensor *out) {
    op_conv2d(out, in[0], in[1], in[2], same);
    int64_t ys[4] = {in[0]->shape[0], in[1]->shape[0], in[0]->shape[2] / 2 + 1, in[0]->shape[3] / 2 + 1};
    tensor *other = tensor_new(be, DT_F32, 4, ys);
    op_conv2d(other, in[0], in[1], NULL, conv2d_same_pad(2, 1));
    tensor_free(other);
    op_fill(out, 0);
    op_conv2d(out, in[0], in[1], in[2], same);
}

/* ---- norms ---- */
enum { GN_GROUPS = 32 };
static void run_group_norm_plain(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, stats[2] = {in[0]->shape[0], GN_GROUPS};
    tensor y = piece(out, &off, 4, in[0]->shape), m = piece(out, &off, 2, stats), r = piece(out, &off, 2, stats);
    op_group_norm(&y, &m, &r, in[0], in[1], in[2], GN_GROUPS, 1e-5f, 0);
}
static void run_group_norm_silu_bwd(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, stats[2] = {in[0]->shape[0], GN_GROUPS};
    tensor *y = like(be, in[0]), *m = tensor_new(be, DT_F32, 2, stats), *r = tensor_new(be, DT_F32, 2, stats);
    op_group_norm(y, m, r, in[0], in[1], in[2], GN_GROUPS, 1e-6f, 1);
    tensor dx = piece(out, &off, 4, in[0]->shape), dg = piece(out, &off, 1, in[1]->shape), db = piece(out, &off, 1, in[1]->shape);
    op_group_norm_backward(&dx, &dg, &db, in[0], m, r, in[1], in[2], in[3], GN_GROUPS, 1);
    tensor_free(y), tensor_free(m), tensor_free(r);
}
/* No affine parameters in the forward; the gradients of a unit gamma are still asked for. */
static void run_layer_norm_bwd_rows(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, d = in[0]->shape[1], rows = in[0]->shape[0];
    tensor *y = like(be, in[0]), *m = tensor_new(be, DT_F32, 1, &rows), *r = tensor_new(be, DT_F32, 1, &rows);
    op_layer_norm(y, m, r, in[0], NULL, NULL, 1e-5f);
    tensor dx = piece(out, &off, 2, in[0]->shape), dg = piece(out, &off, 1, &d), db = piece(out, &off, 1, &d);
    op_layer_norm_backward(&dx, &dg, &db, in[0], m, r, NULL, in[1]);
    tensor_free(y), tensor_free(m), tensor_free(r);
}

/* ---- softmax ---- */
static void run_softmax(const backend *be, tensor **in, tensor *out) { op_softmax(out, in[0]); }
static void run_softmax_bwd(const backend *be, tensor **in, tensor *out) {
    tensor *y = like(be, in[0]);
    op_softmax(y, in[0]);
    op_softmax_backward(out, y, in[1]);
    tensor_free(y);
}

/* ---- attention: heads and causality per case, scale 1/sqrt(d) ---- */
static attention_params att_params(const tensor *q, int heads, int causal) {
    attention_params p = {heads, 1.0f / sqrtf((float)(q->shape[2] / heads)), causal};
    return p;
}
static void attention_fwd(tensor **in, tensor *out, int heads, int causal) {
    int64_t off = 0, os[3] = {in[0]->shape[0], in[0]->shape[1], in[2]->shape[2]}, ls[3] = {in[0]->shape[0], heads, in[0]->shape[1]};
    tensor o = piece(out, &off, 3, os), lse = piece(out, &off, 3, ls);
    op_attention(&o, &lse, in[0], in[1], in[2], att_params(in[0], heads, causal));
}
/* which: 7 all of dq, dk, dv; 1 dq only; 4 dv only. */
static void attention_bwd(const backend *be, tensor **in, tensor *out, int heads, int causal, int which) {
    attention_params p = att_params(in[0], heads, causal);
    int64_t off = 0, ls[3] = {in[0]->shape[0], heads, in[0]->shape[1]};
    tensor *o = like(be, in[3]), *lse = tensor_new(be, DT_F32, 3, ls);
    op_attention(o, lse, in[0], in[1], in[2], p);
    tensor dq = piece(out, &off, 3, in[0]->shape), dk = piece(out, &off, 3, in[1]->shape), dv = piece(out, &off, 3, in[2]->shape);
    op_attention_backward(which & 1 ? &dq : NULL, which & 2 ? &dk : NULL, which & 4 ? &dv : NULL, in[0], in[1], in[2], o, lse,
                          in[3], p);
    tensor_free(o), tensor_free(lse);
}
static void run_att_d64(const backend *be, tensor **in, tensor *out) { attention_fwd(in, out, 2, 0); }
static void run_att_d40_causal(const backend *be, tensor **in, tensor *out) { attention_fwd(in, out, 2, 1); }
static void run_att_d256(const backend *be, tensor **in, tensor *out) { attention_fwd(in, out, 1, 0); }
static void run_att_d64_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 2, 0, 7); }
static void run_att_d256_causal_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 1, 1, 7); }
static void run_att_dq_only(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 2, 1, 1); }
static void run_att_dv_only(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 2, 0, 4); }
/* 8 heads over Lk near 2000: many key tiles and query tiles; for the
 * cuBLAS-strip attention of commit c630f8f (16 Mi scores a strip), more than
 * one query strip, the last one partial. */
static void run_att_strips(const backend *be, tensor **in, tensor *out) { attention_fwd(in, out, 8, 0); }
static void run_att_strips_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 8, 0, 7); }
static void run_att_strips_causal_bwd(const backend *be, tensor **in, tensor *out) { attention_bwd(be, in, out, 8, 1, 7); }

/* ---- the rest ---- */
static void run_upsample(const backend *be, tensor **in, tensor *out) { op_upsample_nearest(out, in[0]); }
static void run_upsample_bwd(const backend *be, tensor **in, tensor *out) { op_upsample_nearest_backward(out, in[0]); }
static void run_loss(const backend *be, tensor **in, tensor *out, loss_kind kind) {
    float v = (float)op_loss(in[0], in[1], kind, 0.05f);
    tensor_from_host(out, &v);
}
static void run_mse(const backend *be, tensor **in, tensor *out) { run_loss(be, in, out, LOSS_MSE); }
static void run_huber(const backend *be, tensor **in, tensor *out) { run_loss(be, in, out, LOSS_PSEUDO_HUBER); }
static void run_add_broadcast_bwd(const backend *be, tensor **in, tensor *out) { op_add_broadcast_backward(out, in[0]); }
static void run_add_broadcast_inplace(const backend *be, tensor **in, tensor *out) {
    tensor_copy(out, in[0]);
    op_add_broadcast(out, out, in[1]);
}
static void run_timestep_plain(const backend *be, tensor **in, tensor *out) {
    tensor *t = like(be, in[0]);
    op_axpby(t, 500.0f, in[0], 0, NULL);
    op_timestep_embedding(out, t, (timestep_embedding_params){0, 0.0f, 1.0f, 10000.0f});
    tensor_free(t);
}

/* ---- channel slices and scale/shift, as the UNet uses them ---- */
static void run_concat_wide(const backend *be, tensor **in, tensor *out) {
    op_copy_channels(out, 0, in[0], 0, in[0]->shape[1]);
    op_copy_channels(out, in[0]->shape[1], in[1], 0, in[1]->shape[1]);
}
/* The backward of a concatenation: both slices copied back out, one after the other. */
static void run_split(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0, a[4] = {in[0]->shape[0], 7, in[0]->shape[2], in[0]->shape[3]};
    int64_t b[4] = {a[0], in[0]->shape[1] - 7, a[2], a[3]};
    tensor ta = piece(out, &off, 4, a), tb = piece(out, &off, 4, b);
    op_copy_channels(&ta, 0, in[0], 0, 7);
    op_copy_channels(&tb, 0, in[0], 7, b[1]);
}
static void run_scale_shift_big(const backend *be, tensor **in, tensor *out) { op_scale_shift(out, in[0], in[1]); }
static void run_scale_shift_in_place(const backend *be, tensor **in, tensor *out) {
    tensor_copy(out, in[0]);
    op_scale_shift(out, out, in[1]);
}
/* As unet_resnet_backward calls it: dx is dy (in place), dss written. */
static void run_scale_shift_bwd_in_place(const backend *be, tensor **in, tensor *out) {
    int64_t off = 0;
    tensor g = piece(out, &off, 4, in[0]->shape), dss = piece(out, &off, 2, in[1]->shape);
    tensor_copy(&g, in[2]);
    op_scale_shift_backward(&g, &dss, in[0], in[1], &g);
}
static void run_scale_shift_bwd_dss_only(const backend *be, tensor **in, tensor *out) {
    op_scale_shift_backward(NULL, out, in[0], in[1], in[2]);
}
static void run_scale_shift_bwd_dx_only(const backend *be, tensor **in, tensor *out) {
    op_scale_shift_backward(out, NULL, in[0], in[1], in[2]);
}

#define ATT_FWD(b, lq, dvc, h) ((b) * (lq) * (dvc) + (b) * (h) * (lq))

static const cuda_case cases[] = {
    {"linear_nobias_many_rows", run_linear_nobias, 2, {{1500, 70}, {90, 70}}, {1500, 90}, 1e-5},
    {"linear_backward_many_rows", run_linear_bwd, 3, {{1500, 70}, {90, 70}, {1500, 90}}, {1500 * 70 + 90 * 70 + 90}, 1e-5},
    {"linear_backward_dw_only", run_linear_bwd_dw_only, 3, {{600, 70}, {90, 70}, {600, 90}}, {90, 70}, 1e-5},
    {"conv2d_same_32ch", run_conv_same, 3, {{2, 32, 33, 31}, {16, 32, 3, 3}, {16}}, {2, 16, 33, 31}, 1e-5},
    {"conv2d_same_32ch_backward", run_conv_same_bwd, 3, {{2, 32, 33, 31}, {16, 32, 3, 3}, {2, 16, 33, 31}},
     {2 * 32 * 33 * 31 + 16 * 32 * 9 + 16}, 1e-5},
    {"conv2d_down_odd", run_conv_down, 3, {{1, 8, 17, 15}, {8, 8, 3, 3}, {8}}, {1, 8, 8, 7}, 1e-5},
    {"conv2d_down_odd_backward", run_conv_down_bwd, 3, {{1, 8, 17, 15}, {8, 8, 3, 3}, {1, 8, 8, 7}},
     {8 * 17 * 15 + 8 * 8 * 9 + 8}, 1e-5},
    {"conv2d_asym_pad", run_conv_odd, 3, {{2, 3, 6, 5}, {4, 3, 3, 3}, {4}}, {2, 4, 5, 5}, 1e-5},
    {"conv2d_asym_pad_backward", run_conv_odd_bwd, 3, {{2, 3, 6, 5}, {4, 3, 3, 3}, {2, 4, 5, 5}}, {2 * 3 * 30 + 4 * 27 + 4}, 1e-5},
    {"conv2d_backward_dx_only", run_conv_dx_only, 3, {{2, 5, 9, 7}, {6, 5, 3, 3}, {2, 6, 9, 7}}, {2, 5, 9, 7}, 1e-5},
    {"conv2d_plan_cache", run_conv_cache, 3, {{2, 5, 9, 7}, {6, 5, 3, 3}, {6}}, {2, 6, 9, 7}, 1e-5},
    {"group_norm_32_groups", run_group_norm_plain, 3, {{2, 64, 32, 32}, {64}, {64}}, {2 * 64 * 1024 + 2 * 2 * 32}, 1e-5},
    {"group_norm_silu_32_groups_backward", run_group_norm_silu_bwd, 4, {{2, 64, 16, 16}, {64}, {64}, {2, 64, 16, 16}},
     {2 * 64 * 256 + 2 * 64}, 1e-5},
    {"layer_norm_backward_many_rows", run_layer_norm_bwd_rows, 2, {{1300, 77}, {1300, 77}}, {1300 * 77 + 2 * 77}, 1e-5},
    {"softmax_wide", run_softmax, 1, {{3, 5000}}, {3, 5000}, 1e-6},
    {"softmax_wide_backward", run_softmax_bwd, 2, {{3, 5000}, {3, 5000}}, {3, 5000}, 1e-6},
    {"attention_d64", run_att_d64, 3, {{2, 300, 128}, {2, 257, 128}, {2, 257, 128}}, {ATT_FWD(2, 300, 128, 2)}, 1e-5},
    {"attention_d40_causal", run_att_d40_causal, 3, {{1, 150, 80}, {1, 150, 80}, {1, 150, 80}}, {ATT_FWD(1, 150, 80, 2)}, 1e-5},
    {"attention_d256", run_att_d256, 3, {{1, 70, 256}, {1, 90, 256}, {1, 90, 256}}, {ATT_FWD(1, 70, 256, 1)}, 1e-5},
    {"attention_d64_backward", run_att_d64_bwd, 4, {{2, 100, 128}, {2, 77, 128}, {2, 77, 128}, {2, 100, 128}},
     {2 * 100 * 128 + 2 * 2 * 77 * 128}, 1e-5},
    {"attention_d256_causal_backward", run_att_d256_causal_bwd, 4, {{1, 50, 256}, {1, 70, 256}, {1, 70, 256}, {1, 50, 256}},
     {50 * 256 + 2 * 70 * 256}, 1e-5},
    {"attention_backward_dq_only", run_att_dq_only, 4, {{2, 40, 32}, {2, 40, 32}, {2, 40, 32}, {2, 40, 32}}, {3 * 2 * 40 * 32}, 1e-5},
    {"attention_backward_dv_only", run_att_dv_only, 4, {{2, 40, 32}, {2, 33, 32}, {2, 33, 32}, {2, 40, 32}},
     {2 * 40 * 32 + 2 * 2 * 33 * 32}, 1e-5},
    /* cuBLAS strips (commit c630f8f): 838 rows (3: the last 323), 911 (3: the last 278), 1049 (3 per
     * batch element: causal, keys up to 1049 in the first, all 1999 after) */
    {"attention_strips_lq_lt_lk", run_att_strips, 3, {{1, 1999, 64}, {1, 2500, 64}, {1, 2500, 96}}, {ATT_FWD(1, 1999, 96, 8)},
     1e-5},
    {"attention_strips_backward", run_att_strips_bwd, 4, {{1, 2100, 64}, {1, 2300, 64}, {1, 2300, 96}, {1, 2100, 96}},
     {2100 * 64 + 2300 * 64 + 2300 * 96}, 1e-5},
    {"attention_strips_causal_backward", run_att_strips_causal_bwd, 4,
     {{2, 2500, 64}, {2, 1999, 64}, {2, 1999, 96}, {2, 2500, 96}}, {2 * 2500 * 64 + 2 * 1999 * 64 + 2 * 1999 * 96}, 1e-5},
    {"upsample_nearest_shrink", run_upsample, 1, {{2, 3, 9, 7}}, {2, 3, 4, 3}, 0},
    {"upsample_nearest_shrink_backward", run_upsample_bwd, 1, {{2, 3, 4, 3}}, {2, 3, 9, 7}, 1e-6},
    {"upsample_nearest_x3", run_upsample, 1, {{1, 2, 5, 4}}, {1, 2, 15, 13}, 0},
    {"upsample_nearest_x3_backward", run_upsample_bwd, 1, {{1, 2, 15, 13}}, {1, 2, 5, 4}, 1e-6},
    {"loss_mse_1m", run_mse, 2, {{1024, 1000}, {1024, 1000}}, {1}, 1e-6},
    {"loss_pseudo_huber_1m", run_huber, 2, {{1024, 1000}, {1024, 1000}}, {1}, 1e-6},
    {"add_broadcast_backward_rows", run_add_broadcast_bwd, 1, {{1300, 70}}, {70}, 1e-6},
    {"add_broadcast_backward_per_row", run_add_broadcast_bwd, 1, {{1300, 70}}, {1300, 70}, 1e-6},
    {"add_broadcast_in_place", run_add_broadcast_inplace, 2, {{2, 5, 4, 3}, {2, 5}}, {2, 5, 4, 3}, 1e-6},
    {"copy_channels_concat_wide", run_concat_wide, 2, {{2, 40, 17, 9}, {2, 24, 17, 9}}, {2, 64, 17, 9}, 0},
    {"copy_channels_split", run_split, 1, {{3, 20, 11, 13}}, {3 * 20 * 11 * 13}, 0},
    {"scale_shift_many_planes", run_scale_shift_big, 2, {{2, 320, 16, 16}, {2, 640}}, {2, 320, 16, 16}, 1e-6},
    {"scale_shift_in_place", run_scale_shift_in_place, 2, {{2, 5, 4, 3}, {2, 10}}, {2, 5, 4, 3}, 1e-6},
    {"scale_shift_backward_in_place", run_scale_shift_bwd_in_place, 3, {{2, 64, 33, 31}, {2, 128}, {2, 64, 33, 31}},
     {2 * 64 * 33 * 31 + 2 * 128}, 1e-6},
    {"scale_shift_backward_dss_only", run_scale_shift_bwd_dss_only, 3, {{2, 6, 8, 8}, {2, 12}, {2, 6, 8, 8}}, {2, 12}, 1e-6},
    {"scale_shift_backward_dx_only", run_scale_shift_bwd_dx_only, 3, {{2, 6, 8, 8}, {2, 12}, {2, 6, 8, 8}}, {2, 6, 8, 8}, 1e-6},
    {"timestep_embedding_even_unflipped", run_timestep_plain, 1, {{7}}, {7, 320}, 1e-5},
};

static double compare(const tensor *got, const tensor *want) {
    size_t n = (size_t)tensor_numel(want);
    float *a = xmalloc(n * 4), *b = xmalloc(n * 4);
    tensor_to_host(got, a);
    tensor_to_host(want, b);
    double err = max_rel_err(a, b, n, 1e-6);
    free(a), free(b);
    return err;
}

static void run_case(const backend *be, const cuda_case *oc) {
    tensor *in_be[5] = {0}, *in_cpu[5] = {0};
    for (int i = 0; i < oc->n_in; i++) {
        in_cpu[i] = random_tensor(backend_cpu(), ndim_of(oc->in_shape[i]), oc->in_shape[i]);
        in_be[i] = tensor_clone(in_cpu[i], be, DT_F32);
    }
    int nd = ndim_of(oc->out_shape);
    tensor *out_be = tensor_new(be, DT_F32, nd, oc->out_shape), *out_cpu = tensor_new(backend_cpu(), DT_F32, nd, oc->out_shape);
    op_fill(out_be, 0.5f), op_fill(out_cpu, 0.5f); /* gradients that add must add onto this */
    oc->run(be, in_be, out_be);
    oc->run(backend_cpu(), in_cpu, out_cpu);
    be->synchronize();
    double e = compare(out_be, out_cpu);
    if (e <= oc->tol) printf("PASS cuda_%s (max rel err %.2g)\n", oc->name, e);
    else printf("FAIL cuda_%s: max rel err %.3g > %.3g\n", oc->name, e, oc->tol), test_failed_count_++;
    for (int i = 0; i < oc->n_in; i++) tensor_free(in_be[i]), tensor_free(in_cpu[i]);
    tensor_free(out_be), tensor_free(out_cpu);
}

static char probe_msg[LCM_ERRLEN];

/* On success the probe describes the device it found: "cuda: NAME (sm_XY, N GiB)". */
TEST(cuda_probe_describes_device) {
    CHECKF(!strncmp(probe_msg, "cuda: ", 6) && strlen(probe_msg) > 6, "probe message \"%s\"", probe_msg);
    printf("# %s\n", probe_msg);
}

int main(void) {
    const backend *be = backend_cuda();
    const char *why = !be ? "this build has no CUDA backend" : be->probe(probe_msg) ? probe_msg : NULL;
    if (why) {
        printf("SKIP cuda_probe_describes_device: %s\n", why);
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) printf("SKIP cuda_%s: %s\n", cases[c].name, why);
        TEST_EXIT();
    }
    RUN(cuda_probe_describes_device);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) run_case(be, &cases[c]);
    TEST_EXIT();
}
