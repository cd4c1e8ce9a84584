/* ops.h - operations on tensors, dispatched to the output's backend.
 *
 * Every op checks its arguments (shapes, dtypes, same backend) and dies with a
 * message naming the op on a mismatch: a mismatch is a programming error. */
#ifndef LCM_OPS_H
#define LCM_OPS_H

#include "tensor.h"

void op_fill(tensor *t, float value);
/* dst = src converted to dst's dtype (same backend, same element count). */
void op_convert(tensor *dst, const tensor *src);
/* out = a*x + b*y (f32); y may be NULL for out = a*x. out may alias x or y. */
void op_axpby(tensor *out, float a, const tensor *x, float b, const tensor *y);
/* out = x * y elementwise (f32). */
void op_mul(tensor *out, const tensor *x, const tensor *y);
/* out = x * sigmoid(x) and its backward: dx = dy * silu'(x). */
void op_silu(tensor *out, const tensor *x);
void op_silu_backward(tensor *dx, const tensor *x, const tensor *dy);
/* c = alpha * op(a) op(b) + beta * c for 2-D f32 tensors; op transposes when
 * trans_* is set (a is [k, m] then, b is [n, k]). */
void op_gemm(tensor *c, const tensor *a, int trans_a, const tensor *b, int trans_b, float alpha, float beta);
/* Sum of all elements, accumulated in double. */
double op_sum(const tensor *x);

/* ---- Neural-network ops (f32). Images are NCHW, sequences [tokens, channels]
 * row-major (any leading dims fold into the token count). Backward ops WRITE
 * the input gradient (=) and ADD parameter gradients (+=) into the tensors
 * given, since the models keep all gradients in one flat buffer. Any gradient
 * argument may be NULL when that gradient is not wanted; so may bias/affine
 * parameters where the layer has none. */

/* y[..., out] = x[..., in] W^T + b, W [out, in] as PyTorch stores it, b [out]. */
void op_linear(tensor *y, const tensor *x, const tensor *w, const tensor *b);
void op_linear_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy);

/* Zero padding per side, so that the VAE encoder's (0, 1, 0, 1) pad fits too. */
typedef struct conv2d_params {
    int stride;
    int pad_top, pad_left, pad_bottom, pad_right;
} conv2d_params;
/* The common symmetric case. */
conv2d_params conv2d_same_pad(int stride, int pad);
/* x [N, C, H, W], w [K, C, R, S], b [K], y [N, K, P, Q] with
 * P = (H + pad_top + pad_bottom - R) / stride + 1 (Q likewise). */
void op_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p);
void op_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                        conv2d_params p);

/* x [N, C, ...] in `groups` groups of C/groups channels; gamma, beta [C];
 * mean, rstd [N, groups] are written for the backward. With silu set the
 * output is silu(group_norm(x)) (the common pair, fused). */
void op_group_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                   int groups, float eps, int silu);
void op_group_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                            const tensor *rstd, const tensor *gamma, const tensor *beta, const tensor *dy, int groups,
                            int silu);

/* Over the last dim D: x [..., D], gamma, beta [D], mean, rstd [numel / D]. */
void op_layer_norm(tensor *y, tensor *mean, tensor *rstd, const tensor *x, const tensor *gamma, const tensor *beta,
                   float eps);
void op_layer_norm_backward(tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *x, const tensor *mean,
                            const tensor *rstd, const tensor *gamma, const tensor *dy);

typedef enum activation {
    ACT_SILU,       /* x sigmoid(x) */
    ACT_GELU,       /* x Phi(x), exact (erf) */
    ACT_GELU_TANH,  /* the tanh approximation of GELU */
    ACT_QUICK_GELU, /* x sigmoid(1.702 x), CLIP's */
} activation;
void op_activation(tensor *y, const tensor *x, activation act);
void op_activation_backward(tensor *dx, const tensor *x, const tensor *dy, activation act);
/* x [..., 2D] -> y [..., D]: value, gate = x.chunk(2, -1); y = value * gelu(gate) (diffusers' GEGLU). */
void op_geglu(tensor *y, const tensor *x);
void op_geglu_backward(tensor *dx, const tensor *x, const tensor *dy);

/* Softmax over the last dim; the backward takes the forward's output y. */
void op_softmax(tensor *y, const tensor *x);
void op_softmax_backward(tensor *dx, const tensor *y, const tensor *dy);

/* out = softmax(Q K^T scale [+ causal mask]) V per batch and head, with the
 * heads interleaved in the channels as the projections leave them:
 * q [B, Lq, H d], k [B, Lk, H d], v [B, Lk, H dv], out [B, Lq, H dv]. A
 * [B, H, L, d] tensor is the case H = 1 with B H batches. Blocked, with an
 * online softmax: the whole score matrix never exists. lse [B, H, Lq] gets
 * the log-sum-exp of each query row for the backward (NULL if none follows).
 * causal: query i sees keys j <= i. */
typedef struct attention_params {
    int heads;
    float scale;
    int causal;
} attention_params;
void op_attention(tensor *out, tensor *lse, const tensor *q, const tensor *k, const tensor *v, attention_params p);
/* Recomputes the scores tile by tile from q, k and lse (FlashAttention-2). */
void op_attention_backward(tensor *dq, tensor *dk, tensor *dv, const tensor *q, const tensor *k, const tensor *v,
                           const tensor *out, const tensor *lse, const tensor *dout, attention_params p);

/* Nearest-neighbour resize of x [N, C, H, W] to y's [N, C, OH, OW] (PyTorch's
 * "nearest": exactly x2 when OH = 2H, else floor(o * (float)in / out)). */
void op_upsample_nearest(tensor *y, const tensor *x);
void op_upsample_nearest_backward(tensor *dx, const tensor *dy);

/* diffusers' get_timestep_embedding in float32: t [B] -> emb [B, dim]. */
typedef struct timestep_embedding_params {
    int flip_sin_to_cos;
    float downscale_freq_shift;
    float scale;
    float max_period;
} timestep_embedding_params;
void op_timestep_embedding(tensor *emb, const tensor *t, timestep_embedding_params p);

/* y[n, c, ...] = x[n, c, ...] + v[c] (v [C]) or + v[n, c] (v [N, C]); y may be x.
 * The backward of a broadcast is a reduction: dv += dy summed over the
 * broadcast dims (dx is dy itself). */
void op_add_broadcast(tensor *y, const tensor *x, const tensor *v);
void op_add_broadcast_backward(tensor *dv, const tensor *dy);

/* Mean over all elements of (x - y)^2, or of sqrt((x - y)^2 + c^2) - c. */
typedef enum loss_kind { LOSS_MSE, LOSS_PSEUDO_HUBER } loss_kind;
double op_loss(const tensor *x, const tensor *y, loss_kind kind, float c);
/* dx = dloss * d(loss)/dx. */
void op_loss_backward(tensor *dx, const tensor *x, const tensor *y, loss_kind kind, float c, float dloss);

/* Rows of a table: y[i, :] = table[ids[i], :]; ids i64 [n], table [V, D],
 * y [n, D] (any leading dims fold into n). Ids are checked on the host by
 * the caller (they come from a tokenizer). */
void op_embedding(tensor *y, const tensor *table, const tensor *ids);

/* Swaps the last two dims: x [B, M, N] -> y [B, N, M] (a 2-D x is B = 1).
 * NCHW <-> [B, HW, C] for attention; it is its own backward. */
void op_transpose(tensor *y, const tensor *x);

/* dst[n, dst_c0 + c, ...] = src[n, src_c0 + c, ...] for c < channels, where
 * dst and src share dim 0 and the product of the dims after dim 1 (a [N, C]
 * tensor has one element per channel). Concatenation along channels is two
 * such copies into slices of a preallocated tensor; its backward, the slice
 * copied out again. */
void op_copy_channels(tensor *dst, int64_t dst_c0, const tensor *src, int64_t src_c0, int64_t channels);

/* diffusers' "scale_shift" time conditioning: x [N, C, ...], ss [N, 2C]
 * (scale, shift = ss.chunk(2, 1)); y = x (1 + scale[n, c]) + shift[n, c].
 * The backward writes dx = dy (1 + scale) and dss = (sum dy x, sum dy) over
 * the positions. y may be x. */
void op_scale_shift(tensor *y, const tensor *x, const tensor *ss);
void op_scale_shift_backward(tensor *dx, tensor *dss, const tensor *x, const tensor *ss, const tensor *dy);

#endif
