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

#endif
