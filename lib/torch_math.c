/* torch_math.c - see torch_math.h. The algorithm: q = rint(x / ln 2); the
 * reduced argument s = x - q ln 2 with ln 2 split in two parts (Cody-Waite);
 * exp(s) by a degree-7 minimax polynomial in Horner form with fused
 * multiply-adds; then scaling by 2^q. */
#include "torch_math.h"

#include <math.h>

float torch_expf(float x) {
    if (x < -104.0f) return 0.0f;
    if (x > 104.0f) return INFINITY;
    if (isnan(x)) return x;
    float q = nearbyintf(x * 1.442695040888963407359924681001892137f);
    float s = fmaf(q, -0.693145751953125f, x);
    s = fmaf(q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    return ldexpf(u, (int)q);
}
