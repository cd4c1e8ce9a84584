/* wds_shuffle.h - webdataset's shuffle(bufsize, initial) as a push filter
 * (data-reference.md §6).
 *
 * webdataset pulls: for each upstream sample it appends it, pulls one more
 * while the buffer is below bufsize, and once it holds `initial` items emits
 * buf[k] (k = randint(0, len-1), the last item moves into slot k). Pushing
 * samples one at a time keeps the same sequence of buffer states and random
 * draws, so with the same generator the output order is webdataset's. */
#ifndef LCM_WDS_SHUFFLE_H
#define LCM_WDS_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#include "pyrandom.h"

typedef struct wds_item {
    uint8_t *data; /* owned */
    size_t len;
} wds_item;

/* Receives each item leaving the buffer; it takes ownership of item.data. */
typedef void (*wds_emit_fn)(void *ctx, wds_item item);

typedef struct wds_shuffle {
    wds_item *buf;
    size_t n, bufsize, initial;
    int awaiting_extra; /* the next push is the "one more" pull */
    pyrandom *rng;
    wds_emit_fn emit;
    void *ctx;
} wds_shuffle;

/* bufsize <= 1 passes items straight through (webdataset does the same). */
void wds_shuffle_init(wds_shuffle *s, size_t bufsize, size_t initial, pyrandom *rng, wds_emit_fn emit, void *ctx);
void wds_shuffle_push(wds_shuffle *s, wds_item item);
/* Upstream ended: emits the rest in shuffled order; the buffer is then empty. */
void wds_shuffle_drain(wds_shuffle *s);
/* Frees buffered items without emitting them. */
void wds_shuffle_free(wds_shuffle *s);

#endif
