/* op_profile.h - a per-op time profile, on when LCM_PROFILE=1.
 *
 * ops.c times every dispatched op call between two synchronizations of its
 * backend and adds it to a total per (backend, op); at exit a table sorted by
 * total time goes to stderr. Unset, the cost is one test of a cached flag per
 * op call. */
#ifndef LCM_OP_PROFILE_H
#define LCM_OP_PROFILE_H

#include "backend.h"

/* -1 until $LCM_PROFILE has been read, then 0 or 1. */
extern int op_profile_state_;
int op_profile_init(void);

/* Is the profile on? Reads $LCM_PROFILE on first use. */
static inline int op_profile_on(void) { return op_profile_state_ < 0 ? op_profile_init() : op_profile_state_; }

/* Synchronizes be and returns the start time of an op call. */
double op_profile_begin(const backend *be);
/* Synchronizes be and adds the call's time to op (an index into backend_op_names). */
void op_profile_end(const backend *be, int op, double start);

#endif
