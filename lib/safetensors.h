/* safetensors.h - reading and writing the safetensors format.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * optionally "__metadata__": {string: string}}), then the data area; offsets
 * are relative to the start of the data area.
 *
 * The reader maps the file and validates the header completely before any
 * tensor is handed out: after st_open() succeeds, every tensor's data lies
 * inside the file, has exactly the size its dtype and shape need, and no two
 * tensors overlap. Tensor data is not copied (zero-copy views into the map).
 *
 * The writer lays files out as the Python safetensors library does: the
 * metadata first, tensor names in sorted order, data in that same order,
 * header padded with spaces to a multiple of 8 bytes. It writes atomically. */
#ifndef LCM_SAFETENSORS_H
#define LCM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "tensor.h"

/* The safetensors library refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100000000)

typedef struct st_tensor {
    const char *name;
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    const void *data; /* into the map; may be unaligned for its dtype */
    size_t nbytes;
    uint64_t offset;  /* absolute byte offset of the data in the file */
} st_tensor;

typedef struct st_file st_file;

/* NULL with a one-line message in err (naming the file, and the tensor and
 * byte offset where the fault is in one). */
st_file *st_open(const char *path, char *err);
void st_close(st_file *f);
const char *st_path(const st_file *f);
uint64_t st_file_size(const st_file *f);

/* Tensors are sorted by name. */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);

/* "__metadata__" entries, sorted by key. */
int st_meta_count(const st_file *f);
void st_meta_at(const st_file *f, int i, const char **key, const char **value);
const char *st_meta_get(const st_file *f, const char *key);

/* A host tensor viewing the mapped data: 0, or -1 when the data is not
 * aligned for its dtype (use st_tensor_copy then). The map is private and
 * writable, so writing through a view changes neither the file nor other
 * readers; it lives until st_close. */
int st_tensor_view(const st_tensor *t, tensor *out);
/* Converts the tensor into dst (any backend, any dtype); element counts must
 * match, else -1 with err. */
int st_tensor_copy(const st_tensor *t, tensor *dst, char *err);
/* Loads elements [i0, i0+n) as doubles, whatever the dtype and alignment. */
void st_load_f64(const void *data, dtype_id dt, size_t i0, size_t n, double *out);

/* Writing. data holds numel elements of data_dtype; the file stores dtype
 * (st_write converts in chunks when they differ). */
typedef struct st_entry {
    const char *name;
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    const void *data;
    dtype_id data_dtype;
} st_entry;

/* An entry whose data is already in the stored dtype. */
st_entry st_entry_of(const char *name, dtype_id dtype, int ndim, const int64_t *shape, const void *data);

typedef struct st_meta {
    const char *key, *value;
} st_meta;

/* Writes path atomically (temporary name, then rename). Names must be unique
 * and not "__metadata__". 0, or -1 with err (and nothing left behind). */
int st_write(const char *path, const st_entry *entries, int n, const st_meta *meta, int nmeta, char *err);

#endif
