/* train_data.c - see train_data.h. */
#include "train_data.h"

#include <stdlib.h>
#include <string.h>

#include "pyrandom.h"
#include "shardspec.h"
#include "util.h"
#include "wds_shuffle.h"

/* Shuffled items are the record's bytes behind its 8-byte global index. */
typedef struct queue {
    wds_item *v;
    size_t head, n, cap;
} queue;

struct train_source {
    strlist files;        /* empty: standard input */
    size_t next_file;
    int rank, world, by_file;
    frame_reader *r;
    uint64_t file_index, stream_index; /* for the global index */
    uint64_t handed_out;
    size_t shuffle;
    pyrandom rng;
    wds_shuffle sh;
    queue out;
    int ended;
};

static void enqueue(void *ctx, wds_item item) {
    queue *q = ctx;
    if (q->head + q->n == q->cap) {
        if (q->head) {
            memmove(q->v, q->v + q->head, sizeof(wds_item) * q->n);
            q->head = 0;
        } else {
            q->v = xrealloc(q->v, sizeof(wds_item) * (q->cap = q->cap ? 2 * q->cap : 64));
        }
    }
    q->v[q->head + q->n++] = item;
}

train_source *train_source_open(const char *spec, int rank, int world, size_t shuffle, uint64_t seed, char *err) {
    train_source *s = xcalloc(1, sizeof *s);
    s->rank = rank, s->world = world, s->shuffle = shuffle;
    if (spec && strcmp(spec, "-")) {
        if (expand_urls(spec, &s->files, err)) {
            free(s);
            return NULL;
        }
        s->by_file = world > 1 && s->files.n >= (size_t)world;
    }
    pyrandom_seed(&s->rng, seed * 1000 + (uint64_t)rank);
    if (shuffle) wds_shuffle_init(&s->sh, shuffle, shuffle < 100 ? shuffle : 100, &s->rng, enqueue, &s->out);
    return s;
}

/* Opens the next input of this rank; 0 when there is none. */
static int open_next(train_source *s, char *err) {
    if (!s->files.n) {
        if (s->next_file++) return 0;
        s->r = frame_reader_fdopen(0, "<stdin>");
        return 1;
    }
    while (s->next_file < s->files.n) {
        size_t i = s->next_file++;
        if (s->by_file && (int)(i % (size_t)s->world) != s->rank) continue;
        if (!(s->r = frame_reader_open(s->files.v[i], err))) return -1;
        s->file_index = i;
        return 1;
    }
    return 0;
}

/* Reads one record of this rank into an item; 0 at the end of all input. */
static int read_item(train_source *s, wds_item *item, char *err) {
    frame f;
    frame_init(&f);
    for (;;) {
        if (!s->r) {
            int rc = open_next(s, err);
            if (rc <= 0) return rc;
        }
        int rc = frame_read(s->r, &f);
        if (rc < 0) {
            seterr(err, "%s", frame_reader_error(s->r));
            frame_free(&f);
            return -1;
        }
        if (rc == 0) {
            frame_reader_close(s->r);
            s->r = NULL;
            continue;
        }
        uint64_t global = s->by_file ? (s->file_index << 40 | f.record) : s->stream_index++;
        if (!s->by_file && s->world > 1 && (int)(global % (uint64_t)s->world) != s->rank) continue;
        item->len = 8 + f.size;
        item->data = xmalloc(item->len);
        memcpy(item->data, &global, 8);
        memcpy(item->data + 8, f.bytes, f.size);
        frame_free(&f);
        return 1;
    }
}

int train_source_next(train_source *s, frame *out, uint64_t *global_index, char *err) {
    while (s->out.n == 0 && !s->ended) {
        wds_item item;
        int rc = read_item(s, &item, err);
        if (rc < 0) return -1;
        if (rc == 0) {
            s->ended = 1;
            if (s->shuffle) wds_shuffle_drain(&s->sh);
        } else if (s->shuffle) {
            wds_shuffle_push(&s->sh, item);
        } else {
            enqueue(&s->out, item);
        }
    }
    if (!s->out.n) return 0;
    wds_item item = s->out.v[s->out.head++];
    s->out.n--;
    memcpy(global_index, item.data, 8);
    memmove(item.data, item.data + 8, item.len - 8);
    size_t need, at;
    frame_free(out);
    /* the record parsed once already, so this cannot fail */
    if (frame_parse(out, item.data, item.len - 8, item.len, &need, err, &at) <= 0) die("train_source: %s", err);
    out->owned = item.data;
    out->record = *global_index;
    s->handed_out++;
    return 1;
}

uint64_t train_source_count(const train_source *s) { return s->handed_out; }

void train_source_close(train_source *s) {
    if (!s) return;
    if (s->r) frame_reader_close(s->r);
    if (s->shuffle) wds_shuffle_free(&s->sh);
    for (size_t i = 0; i < s->out.n; i++) free(s->out.v[s->out.head + i].data);
    free(s->out.v);
    strlist_free(&s->files);
    free(s);
}
