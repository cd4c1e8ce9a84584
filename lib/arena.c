/* arena.c - see arena.h. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

#define ALIGN 256

void arena_init(arena *a, const backend *be, size_t min_block) {
    memset(a, 0, sizeof *a);
    a->backend = be ? be : backend_cpu();
    a->min_block = min_block ? min_block : (size_t)64 << 20;
}

void arena_free(arena *a) {
    for (int i = 0; i < a->n_blocks; i++) a->backend->free(a->blocks[i].base);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(arena *a, size_t bytes) {
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (!bytes) bytes = ALIGN;
    /* The current block, or the next one that is large enough; a new block
     * only when none is (the first pass through a model). */
    while (a->cur < a->n_blocks) {
        arena_block *b = &a->blocks[a->cur];
        if (b->size - b->used >= bytes) {
            void *p = (char *)b->base + b->used;
            b->used += bytes;
            a->in_use += bytes;
            if (a->in_use > a->peak) a->peak = a->in_use;
            return p;
        }
        if (a->cur + 1 == a->n_blocks) break;
        a->blocks[++a->cur].used = 0;
    }
    size_t size = bytes > a->min_block ? bytes : a->min_block;
    a->blocks = xrealloc(a->blocks, sizeof(arena_block) * (size_t)(a->n_blocks + 1));
    a->blocks[a->n_blocks] = (arena_block){.base = a->backend->alloc(size), .size = size, .used = 0};
    a->cur = a->n_blocks++;
    return arena_alloc(a, bytes);
}

tensor arena_tensor(arena *a, dtype_id t, int ndim, const int64_t *shape) {
    tensor x = tensor_view(a->backend, t, ndim, shape, NULL);
    x.data = arena_alloc(a, tensor_nbytes(&x));
    return x;
}

tensor arena_tensor4(arena *a, dtype_id t, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return arena_tensor(a, t, 4, shape);
}

arena_mark arena_get_mark(const arena *a) {
    arena_mark m = {a->cur, a->n_blocks ? a->blocks[a->cur].used : 0, a->in_use};
    return m;
}

void arena_release(arena *a, arena_mark m) {
    if (!a->n_blocks) return;
    a->cur = m.block;
    a->blocks[m.block].used = m.used;
    a->in_use = m.in_use;
}

void arena_reset(arena *a) {
    arena_release(a, (arena_mark){0, 0, 0});
}
