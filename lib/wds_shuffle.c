/* wds_shuffle.c - see wds_shuffle.h. */
#include "wds_shuffle.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void wds_shuffle_init(wds_shuffle *s, size_t bufsize, size_t initial, pyrandom *rng, wds_emit_fn emit, void *ctx) {
    memset(s, 0, sizeof *s);
    s->bufsize = bufsize;
    s->initial = initial < bufsize ? initial : bufsize;
    s->rng = rng;
    s->emit = emit;
    s->ctx = ctx;
    s->buf = xmalloc(sizeof(wds_item) * (bufsize + 2));
}

static void pick(wds_shuffle *s) {
    size_t k = (size_t)pyrandom_below(s->rng, s->n);
    wds_item it = s->buf[k];
    s->buf[k] = s->buf[--s->n];
    s->emit(s->ctx, it);
}

void wds_shuffle_push(wds_shuffle *s, wds_item item) {
    if (s->bufsize <= 1) { /* a buffer of one can only give items back in order */
        s->emit(s->ctx, item);
        return;
    }
    s->buf[s->n++] = item;
    if (!s->awaiting_extra && s->n < s->bufsize) {
        s->awaiting_extra = 1;
        return;
    }
    s->awaiting_extra = 0;
    if (s->n >= s->initial) pick(s);
}

void wds_shuffle_drain(wds_shuffle *s) {
    /* The pull of "one more" met the end: the pending pick still happens. */
    if (s->awaiting_extra && s->n >= s->initial) pick(s);
    s->awaiting_extra = 0;
    while (s->n > 0) pick(s);
}

void wds_shuffle_free(wds_shuffle *s) {
    for (size_t i = 0; i < s->n; i++) free(s->buf[i].data);
    free(s->buf);
    memset(s, 0, sizeof *s);
}
