/* shape.c - the shape arithmetic of tensor.h. Apart from tensor.c, which
 * needs the backends, so that the frame library links without them (and a
 * program like wds-cat without cuBLAS). */
#include <stdio.h>

#include "tensor.h"

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

char *shape_str(char *buf, int ndim, const int64_t *shape) {
    int n = sprintf(buf, "[");
    for (int i = 0; i < ndim && n < 100; i++) n += sprintf(buf + n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    sprintf(buf + n, "]");
    return buf;
}
