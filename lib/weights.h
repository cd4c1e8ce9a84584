/* weights.h - filling a model's parameter store from a diffusers folder. */
#ifndef LCM_WEIGHTS_H
#define LCM_WEIGHTS_H

#include "modeldir.h"
#include "params.h"

/* Every registered parameter from the folder's tensors (by name, or the
 * param's alt_name), converted to f32. 0, or -1 with err naming the folder. */
int weights_load(params *ps, const model_dir *m, char *err);

/* Convenience for model builders: "<prefix>.<name>.weight" [out, in] and,
 * when bias is not NULL, "<prefix>.<name>.bias" [out]. */
param *add_linear(params *ps, const char *prefix, const char *name, int out, int in, param **bias);
/* "<prefix>.<name>.weight" and ".bias", both [dim] (norm layers). */
void add_norm(params *ps, const char *prefix, const char *name, int dim, param **w, param **b);
/* A conv: weight [out, in, k, k], bias [out] (when bias is not NULL). */
param *add_conv(params *ps, const char *prefix, const char *name, int out, int in, int k, param **bias);

#endif
