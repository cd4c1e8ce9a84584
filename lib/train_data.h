/* train_data.h - the record stream of lcm-step: standard input or frame
 * files (webdataset-style shard specs: brace ranges, `::` lists), each rank's
 * share of it, through an optional seeded shuffle buffer.
 *
 * Sharding: with at least as many files as ranks, file i goes to rank
 * i mod world; otherwise record i of the concatenated stream goes to rank
 * i mod world, so that two ranks at batch 1 see what one rank at batch 2
 * sees. Every record carries a global index (its position in the stream, or
 * file << 40 | position in the file) that keys its random draws. */
#ifndef LCM_TRAIN_DATA_H
#define LCM_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

typedef struct train_source train_source;

/* spec NULL or "-": standard input. shuffle 0 keeps the input order. */
train_source *train_source_open(const char *spec, int rank, int world, size_t shuffle, uint64_t seed, char *err);
/* 1: out holds the next record (owning its bytes); 0: the end; -1: error. */
int train_source_next(train_source *s, frame *out, uint64_t *global_index, char *err);
/* Records handed out so far. */
uint64_t train_source_count(const train_source *s);
void train_source_close(train_source *s);

#endif
