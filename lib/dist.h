/* dist.h - data-parallel training across processes. Under mpirun (or srun
 * with Open MPI's PMI) each rank is a process; outside them the program is
 * rank 0 of 1 and never touches MPI, so a plain run needs no launcher. */
#ifndef LCM_DIST_H
#define LCM_DIST_H

#include <stddef.h>

typedef struct dist {
    int rank, world;
    int mpi; /* MPI was initialised */
} dist;

/* Initialises MPI when the environment says a launcher started us. */
void dist_init(dist *d, int *argc, char ***argv);
void dist_finalize(dist *d);
/* In-place sum across ranks of n floats (host memory), then / world. */
void dist_average(const dist *d, float *x, size_t n);
/* Sum of one double across ranks. */
double dist_sum(const dist *d, double x);
/* Every rank agrees on a flag: 1 if any rank set it. */
int dist_any(const dist *d, int flag);
void dist_barrier(const dist *d);

#endif
