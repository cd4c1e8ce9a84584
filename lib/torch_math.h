/* torch_math.h - float32 functions rounded as PyTorch's CPU kernels round them.
 *
 * PyTorch evaluates exp on float tensors with SLEEF's 1-ulp vector routine,
 * which differs from a correctly rounded expf in the last bit for about a
 * third of arguments. Where such a bit is amplified (sinusoidal embeddings:
 * the frequency is multiplied by t up to 1000 and by w x 1000), matching the
 * reference needs the same rounding. */
#ifndef LCM_TORCH_MATH_H
#define LCM_TORCH_MATH_H

/* exp(x) in float32 by SLEEF's u10 algorithm with fused multiply-adds (AVX2). */
float torch_expf(float x);

#endif
