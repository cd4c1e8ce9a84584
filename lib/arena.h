/* arena.h - bump allocation of activation tensors on a backend.
 *
 * A model's forward (and backward) pass takes its activations from an arena
 * and resets it afterwards, so a steady-state loop allocates nothing: the
 * arena keeps the blocks it grew to during the first pass. */
#ifndef LCM_ARENA_H
#define LCM_ARENA_H

#include <stddef.h>

#include "tensor.h"

struct backend;

typedef struct arena_block {
    void *base;
    size_t size, used;
} arena_block;

typedef struct arena {
    const struct backend *backend;
    arena_block *blocks;
    int n_blocks, cur;
    size_t min_block;
    size_t peak, in_use;
} arena;

typedef struct arena_mark {
    int block;
    size_t used, in_use;
} arena_mark;

void arena_init(arena *a, const struct backend *be, size_t min_block);
void arena_free(arena *a);
/* A tensor view into the arena (uninitialised data, 256-byte aligned). */
tensor arena_tensor(arena *a, dtype_id t, int ndim, const int64_t *shape);
tensor arena_tensor4(arena *a, dtype_id t, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
void *arena_alloc(arena *a, size_t bytes);
/* Everything allocated after a mark is released by arena_release(mark). */
arena_mark arena_get_mark(const arena *a);
void arena_release(arena *a, arena_mark m);
void arena_reset(arena *a);

#endif
