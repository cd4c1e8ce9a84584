/* dist.c - see dist.h. */
#include "dist.h"

#include <mpi.h>
#include <stdlib.h>

#include "util.h"

static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

void dist_init(dist *d, int *argc, char ***argv) {
    d->rank = 0, d->world = 1, d->mpi = 0;
    if (!launched_by_mpi()) return;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) die("MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    d->mpi = 1;
}

void dist_finalize(dist *d) {
    if (d->mpi) MPI_Finalize();
    d->mpi = 0;
}

/* MPI counts are ints: large buffers go in chunks. */
void dist_average(const dist *d, float *x, size_t n) {
    if (d->world == 1) return;
    const size_t chunk = (size_t)1 << 28;
    for (size_t off = 0; off < n; off += chunk) {
        int count = (int)(n - off < chunk ? n - off : chunk);
        MPI_Allreduce(MPI_IN_PLACE, x + off, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    float inv = 1.0f / (float)d->world;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

double dist_sum(const dist *d, double x) {
    if (d->world == 1) return x;
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return x;
}

int dist_any(const dist *d, int flag) {
    if (d->world == 1) return flag;
    MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return flag;
}

void dist_barrier(const dist *d) {
    if (d->world > 1) MPI_Barrier(MPI_COMM_WORLD);
}
