/* frame.h - msgpack-framed records on pipes and in files (man 5 lcm-frames).
 *
 * A stream is msgpack maps back to back, one per record. The reader parses
 * one record at a time into a table of entries whose values point into its
 * buffer: strings, binaries and tensor data are not copied, and stay valid
 * until the next frame_read(). Memory is bounded by the largest record, which
 * is itself bounded (frame_reader_set_max_record). Every error names the
 * stream, the record number and the byte offset of the fault.
 *
 * The writer packs records with msgpack-c and writes whole records, so a
 * stream cut at a record boundary is always valid. */
#ifndef LCM_FRAME_H
#define LCM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "tensor.h"

#define FRAME_DEFAULT_MAX_RECORD ((size_t)1 << 31)
#define FRAME_MAX_KEYS 65536 /* keys per record; duplicates are refused */

typedef enum fv_kind {
    FV_NIL, FV_BOOL, FV_INT, FV_UINT, FV_FLOAT, FV_STR, FV_BIN, FV_TENSOR, FV_ARRAY, FV_MAP, FV_EXT
} fv_kind;

typedef struct frame_tensor {
    dtype_id dtype;
    int ndim;
    int64_t shape[TENSOR_MAXDIM];
    const uint8_t *data;
    size_t nbytes;
} frame_tensor;

typedef struct frame_value {
    fv_kind kind;
    const uint8_t *raw; /* the value's own msgpack bytes, for pass-through */
    size_t raw_len;
    union {
        int boolean;
        int64_t i;
        uint64_t u;
        double f;
        struct { const char *ptr; size_t len; } bytes; /* FV_STR, FV_BIN, FV_EXT */
        frame_tensor tensor;
        uint32_t count; /* FV_ARRAY, FV_MAP */
    } v;
} frame_value;

typedef struct frame_entry {
    const char *key;
    size_t key_len;
    frame_value value;
} frame_entry;

typedef struct frame {
    frame_entry *entries;
    int n, cap;
    uint64_t record; /* index in the stream, from 0 */
    uint64_t offset; /* byte offset of the record's first byte */
    size_t size;     /* encoded size in bytes */
    const uint8_t *bytes; /* the record's encoding (valid like its values) */
    uint8_t *owned;       /* set by frame_copy: the private copy of bytes */
} frame;

void frame_init(frame *f);
void frame_free(frame *f);
/* Makes dst a copy of src that owns its bytes, so that it outlives the
 * reader's next read (for programs that batch records). */
void frame_copy(frame *dst, const frame *src);
const frame_value *frame_get(const frame *f, const char *key);
/* A string or binary value as a NUL-free span; NULL if absent or other kind. */
const char *frame_get_bytes(const frame *f, const char *key, size_t *len);

/* Parses one record from buf[0..len). Returns the record's size, 0 when more
 * bytes are needed (*need is then a lower bound on the total), or -1 with
 * err set to "byte N: message" (N relative to buf). For the fuzzer and the
 * reader; not normally called directly. */
long long frame_parse(frame *f, const uint8_t *buf, size_t len, size_t max_record, size_t *need, char *err, size_t *err_at);

typedef struct frame_reader frame_reader;
/* "-" is standard input. NULL with a message in err if it cannot be opened. */
frame_reader *frame_reader_open(const char *path, char *err);
frame_reader *frame_reader_fdopen(int fd, const char *name);
void frame_reader_set_max_record(frame_reader *r, size_t max);
/* 1: a record is in f; 0: clean end of stream; -1: error (frame_reader_error). */
int frame_read(frame_reader *r, frame *f);
const char *frame_reader_error(const frame_reader *r);
const char *frame_reader_name(const frame_reader *r);
void frame_reader_close(frame_reader *r);

/* A tensor value as a host tensor. view: zero-copy when the dtype is the one
 * wanted and the data is aligned for it (returns 0), else -1. copy: converts
 * into dst, whose element count must match (returns -1 with err otherwise). */
int frame_tensor_view(const frame_value *v, dtype_id want, tensor *out);
int frame_tensor_copy(const frame_value *v, tensor *dst, char *err);

/* Building a record: entries reference the caller's memory until written.
 * Setting a key again replaces its earlier value. */
typedef struct frame_out frame_out;
frame_out *frame_out_new(void);
void frame_out_free(frame_out *o);
void frame_out_reset(frame_out *o);
void fo_str(frame_out *o, const char *key, const char *s, size_t len);
void fo_bin(frame_out *o, const char *key, const void *p, size_t len);
void fo_int(frame_out *o, const char *key, int64_t v);
void fo_float(frame_out *o, const char *key, double v);
void fo_tensor(frame_out *o, const char *key, dtype_id t, int ndim, const int64_t *shape, const void *data);
void fo_tensor_t(frame_out *o, const char *key, const tensor *t); /* host tensor */
void fo_raw(frame_out *o, const char *key, size_t key_len, const uint8_t *raw, size_t raw_len);
/* Copies every entry of in, except the keys listed in drop (NULL-terminated). */
void fo_pass(frame_out *o, const frame *in, const char *const *drop);
void fo_remove(frame_out *o, const char *key);
/* Packs o into a record that dst owns (as if it had been read). */
void frame_from_out(frame *dst, frame_out *o);

typedef struct frame_writer frame_writer;
frame_writer *frame_writer_fdopen(int fd, const char *name);
/* Writes to a temporary file renamed over path by frame_writer_close. */
frame_writer *frame_writer_open(const char *path, char *err);
/* 0 or -1 with frame_writer_error(); frame_writer_broken_pipe() tells a closed
 * reader apart from a real error. */
int frame_write(frame_writer *w, frame_out *o);
int frame_writer_flush(frame_writer *w);
/* Flushes, commits a file output (rename) and frees w. */
int frame_writer_close(frame_writer *w, char *err);
const char *frame_writer_error(const frame_writer *w);
int frame_writer_broken_pipe(const frame_writer *w);
/* For programs: writes, exits 0 quietly if the reader went away, dies on error. */
void frame_emit(frame_writer *w, frame_out *o);
void frame_writer_finish(frame_writer *w); /* close; exit 0 on EPIPE, die on error */

#endif
