/* op_profile.c - the LCM_PROFILE=1 per-op time profile (op_profile.h).
 *
 * Wall time between two synchronizations, so that an asynchronous backend's
 * queued work is charged to the op that queued it; the synchronizations
 * themselves slow a CUDA run down, so the totals are for comparing ops, not
 * for the speed of an unprofiled run. Ops are called from one thread. */
#include "op_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { MAX_BACKENDS = 4, MAX_OPS = 64 };

int op_profile_state_ = -1;

static struct {
    const backend *be[MAX_BACKENDS];
    double seconds[MAX_BACKENDS][MAX_OPS];
    long long calls[MAX_BACKENDS][MAX_OPS];
} prof;

typedef struct prof_row {
    const char *backend, *op;
    long long calls;
    double seconds;
} prof_row;

static int by_time_desc(const void *a, const void *b) {
    double x = ((const prof_row *)a)->seconds, y = ((const prof_row *)b)->seconds;
    return (x < y) - (x > y);
}

static void print_profile(void) {
    prof_row rows[MAX_BACKENDS * MAX_OPS];
    int n = 0;
    double total = 0;
    long long calls = 0;
    for (int b = 0; b < MAX_BACKENDS && prof.be[b]; b++)
        for (int o = 0; o < backend_op_count; o++)
            if (prof.calls[b][o]) {
                rows[n++] = (prof_row){prof.be[b]->name, backend_op_names[o], prof.calls[b][o], prof.seconds[b][o]};
                total += prof.seconds[b][o], calls += prof.calls[b][o];
            }
    qsort(rows, (size_t)n, sizeof *rows, by_time_desc);
    fprintf(stderr, "op profile (LCM_PROFILE=1): %lld op calls, %.3f ms in all, each timed between two synchronizations\n",
            calls, total * 1e3);
    fprintf(stderr, "%-28s %-8s %10s %12s %7s\n", "op", "backend", "calls", "total ms", "%");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%-28s %-8s %10lld %12.3f %7.2f\n", rows[i].op, rows[i].backend, rows[i].calls, rows[i].seconds * 1e3,
                total > 0 ? 100 * rows[i].seconds / total : 0.0);
}

int op_profile_init(void) {
    const char *v = getenv("LCM_PROFILE");
    op_profile_state_ = v && !strcmp(v, "1");
    if (op_profile_state_) {
        if (backend_op_count > MAX_OPS) die("op profile: %d ops, room for %d", backend_op_count, MAX_OPS);
        atexit(print_profile);
    }
    return op_profile_state_;
}

double op_profile_begin(const backend *be) {
    be->synchronize();
    return now_seconds();
}

/* The slot of be, given at its first call. */
static int backend_slot(const backend *be) {
    int b = 0;
    while (b < MAX_BACKENDS && prof.be[b] && prof.be[b] != be) b++;
    if (b == MAX_BACKENDS) die("op profile: more than %d backends", MAX_BACKENDS);
    prof.be[b] = be;
    return b;
}

void op_profile_end(const backend *be, int op, double start) {
    be->synchronize();
    double t = now_seconds() - start;
    int b = backend_slot(be);
    prof.seconds[b][op] += t;
    prof.calls[b][op]++;
}
