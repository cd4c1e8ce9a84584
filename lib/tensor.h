/* tensor.h - an n-dimensional array that lives on one backend.
 *
 * A tensor is a small descriptor (dtype, shape, data pointer, backend). It
 * either owns its data (allocated by its backend) or views memory owned by
 * something else: a frame buffer, an mmap'd safetensors file, or a slice of
 * one of the large parameter/activation buffers. Row-major, contiguous. */
#ifndef LCM_TENSOR_H
#define LCM_TENSOR_H

#include <stdint.h>

#include "dtype.h"

#define TENSOR_MAXDIM 8

struct backend;

typedef struct tensor {
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    void *data;
    const struct backend *backend;
    int owns_data;
} tensor;

int64_t shape_numel(int ndim, const int64_t *shape);
int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);
int tensor_same_shape(const tensor *a, const tensor *b);
/* "[2, 4, 64, 64]" into buf (at least 128 bytes); returns buf. */
char *shape_str(char *buf, int ndim, const int64_t *shape);

/* Allocates on the backend (NULL means the CPU). Data is uninitialised. */
tensor *tensor_new(const struct backend *be, dtype_id t, int ndim, const int64_t *shape);
tensor *tensor_new4(const struct backend *be, dtype_id t, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* A descriptor for memory the caller keeps alive (host memory: CPU backend). */
tensor tensor_view(const struct backend *be, dtype_id t, int ndim, const int64_t *shape, void *data);
void tensor_free(tensor *t);

/* Copies between backends and converts dtype; shapes' element counts must match. */
void tensor_copy(tensor *dst, const tensor *src);
/* Host copies: fill from / read back to host memory of the tensor's dtype. */
void tensor_from_host(tensor *t, const void *src);
void tensor_to_host(const tensor *t, void *dst);
/* A new tensor holding src's values on another backend and/or in another dtype. */
tensor *tensor_clone(const tensor *src, const struct backend *be, dtype_id t);

#endif
