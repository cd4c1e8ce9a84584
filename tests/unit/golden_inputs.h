/* golden_inputs.h - the inputs of the LCD goldens: the reference run's
 * records, read two at a time into one micro-batch, each record filled with
 * its index in the stream (the key of its noise and timestep draws). Include
 * after test.h. */
#ifndef LCM_TEST_GOLDEN_INPUTS_H
#define LCM_TEST_GOLDEN_INPUTS_H

#include <string.h>

#include "frame.h"
#include "lcd.h"
#include "util.h"

typedef struct golden_inputs {
    frame_reader *r;
    frame recs[2];
    lcd_batch batch;
    uint64_t index; /* of the next record */
} golden_inputs;

static inline void golden_inputs_open(golden_inputs *in, const char *path) {
    char err[LCM_ERRLEN];
    memset(in, 0, sizeof *in);
    in->r = frame_reader_open(path, err);
    CHECKF(in->r, "%s", err);
    frame_init(&in->recs[0]), frame_init(&in->recs[1]);
}

/* The next two records as in->batch (allocated at the first call). */
static inline lcd_batch *golden_inputs_next(golden_inputs *in, const lcd_config *cfg) {
    char err[LCM_ERRLEN];
    frame f;
    frame_init(&f);
    for (int s = 0; s < 2; s++) {
        CHECKF(frame_read(in->r, &f) == 1, "input ends early: %s", frame_reader_error(in->r));
        frame_copy(&in->recs[s], &f);
    }
    frame_free(&f);
    if (!in->batch.B) CHECKF(lcd_batch_alloc(&in->batch, 2, &in->recs[0], err) == 0, "%s", err);
    for (int s = 0; s < 2; s++)
        CHECKF(lcd_batch_fill(&in->batch, s, &in->recs[s], in->index++, cfg, err) == 0, "%s", err);
    return &in->batch;
}

static inline void golden_inputs_close(golden_inputs *in) {
    frame_free(&in->recs[0]), frame_free(&in->recs[1]);
    frame_reader_close(in->r);
    lcd_batch_free(&in->batch);
}

#endif
