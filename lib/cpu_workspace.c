/* cpu_workspace.c - the grow-only scratch buffer of the CPU ops. */
#include <omp.h>
#include <stdlib.h>

#include "cpu_nn.h"
#include "util.h"

static _Thread_local float *buffer;
static _Thread_local size_t capacity;

float *cpu_workspace(size_t nfloats) {
    if (nfloats > capacity) {
        free(buffer);
        /* Grow by at least half again, so that slowly rising sizes do not reallocate each call. */
        size_t want = nfloats > capacity + capacity / 2 ? nfloats : capacity + capacity / 2;
        buffer = xaligned_alloc(want * sizeof(float));
        capacity = want;
    }
    return buffer;
}

int cpu_threads(void) { return omp_get_max_threads(); }
