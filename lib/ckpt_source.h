/* ckpt_source.h - one view over everything ckpt-tool reads.
 *
 * A source is a safetensors file, a model folder, a pipeline folder (tensor
 * names prefixed with their component: "unet/conv_in.weight"), or a frame
 * stream ("-" is standard input). It is read as a sequence of records: a
 * checkpoint is one record (number -1) holding all its tensors; a stream has
 * one record per frame, holding the frame's tensors. */
#ifndef LCM_CKPT_SOURCE_H
#define LCM_CKPT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "tensor.h"

typedef enum ckpt_kind { CK_SAFETENSORS, CK_MODEL, CK_PIPELINE, CK_FRAMES } ckpt_kind;

typedef struct ckpt_item {
    const char *name;
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    const void *data; /* host memory; possibly unaligned */
    size_t nbytes;
} ckpt_item;

typedef struct ckpt_record {
    int64_t number;     /* -1 for a checkpoint */
    uint64_t offset;    /* frames: byte offset of the record */
    int n;              /* tensors, sorted by name */
    ckpt_item *items;
    const frame *frame; /* frames: the whole record; else NULL */
} ckpt_record;

typedef struct ckpt_source ckpt_source;

ckpt_source *ckpt_open(const char *path, char *err);
void ckpt_close(ckpt_source *s);
ckpt_kind ckpt_kind_of(const ckpt_source *s);
const char *ckpt_name(const ckpt_source *s);
/* 1 with *rec (valid until the next call), 0 at the end, -1 with err. */
int ckpt_next(ckpt_source *s, const ckpt_record **rec, char *err);
/* A record's item by name (binary search); NULL if absent. */
const ckpt_item *ckpt_find(const ckpt_record *r, const char *name);

/* Summary statistics of a tensor, computed in double. NaN and infinities
 * are counted and left out of min, max, mean and std. */
typedef struct tensor_stats {
    double min, max, mean, std;
    uint64_t count, finite, nan, inf;
} tensor_stats;
void item_stats(const ckpt_item *it, tensor_stats *st);

#endif
