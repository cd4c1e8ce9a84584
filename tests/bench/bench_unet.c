/* bench_unet - times the UNet on the CPU backend for tests/bench/run-unet,
 * which runs diffusers' UNet2DConditionModel beside it (not a test: nothing
 * is asserted). Prints one JSON line.
 *
 *   bench_unet MODEL MODE BATCH HEIGHT WIDTH REPS [CHECKPOINTING]
 *
 * MODE fwd: inference forward (no gradient buffer, nothing kept for a
 * backward). MODE train: forward keeping activations + backward of
 * <out, R> into the gradient buffer (loss = (out * R).sum()). Inputs are
 * random; the text context has 77 tokens. One untimed warm-up run grows the
 * activation arena; the best of REPS runs is reported, and the peak resident
 * memory from just before the warm-up (weights included, loading not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench_mem.h"
#include "rng.h"
#include "unet.h"
#include "util.h"

static tensor *noise(int ndim, const int64_t *shape, uint64_t seed) {
    tensor *t = tensor_new(NULL, DT_F32, ndim, shape);
    rng r;
    rng_seed(&r, seed, 0);
    rng_normal_fill(&r, t->data, (size_t)tensor_numel(t));
    return t;
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    if (argc < 7) die_usage("usage: bench_unet MODEL fwd|train BATCH HEIGHT WIDTH REPS [CHECKPOINTING]");
    int train = !strcmp(argv[2], "train");
    if (!train && strcmp(argv[2], "fwd")) die_usage("MODE must be fwd or train");
    int B = atoi(argv[3]), H = atoi(argv[4]), W = atoi(argv[5]), reps = atoi(argv[6]);
    char err[LCM_ERRLEN];
    unet_model m;
    if (unet_load(&m, argv[1], backend_cpu(), train, err)) die("%s", err);
    m.checkpointing = argc > 7 ? atoi(argv[7]) : 0;
    const unet_config *c = &m.cfg;
    int64_t ss[4] = {B, c->in_channels, H, W}, es[3] = {B, 77, c->cross_attention_dim[0]}, os[4] = {B, c->out_channels, H, W};
    int64_t cs[2] = {B, c->time_cond_proj_dim}, ts[2] = {B, c->projection_class_embeddings_input_dim - 6 * c->addition_time_embed_dim};
    tensor *sample = noise(4, ss, 1), *ehs = noise(3, es, 2), *dout = noise(4, os, 3), *out = tensor_new(NULL, DT_F32, 4, os);
    tensor *cond = c->time_cond_proj_dim ? noise(2, cs, 4) : NULL;
    tensor *text = c->text_time ? noise(2, ts, 5) : NULL, *ids = c->text_time ? noise(2, (int64_t[]){B, 6}, 6) : NULL;
    float *steps = xmalloc(sizeof(float) * (size_t)B);
    for (int i = 0; i < B; i++) steps[i] = (float)(781 - 37 * i);
    unet_inputs in = {.sample = sample, .timesteps = steps, .encoder_hidden_states = ehs, .timestep_cond = cond, .text_embeds = text, .time_ids = ids};
    bench_peak_reset();
    double best = 1e30;
    for (int it = 0; it <= reps; it++) {
        double t0 = now_seconds();
        unet_forward(&m, in, out, train);
        if (train) unet_backward(&m, dout, NULL, NULL);
        double t = now_seconds() - t0;
        if (it && t < best) best = t;
    }
    printf("{\"s\": %.4f, \"peak_mb\": %.0f, \"params\": %lld, \"arena_mb\": %.0f}\n", best, bench_peak_mb(), (long long)m.ps.total,
           m.act.peak / 1048576.0);
    tensor_free(sample), tensor_free(ehs), tensor_free(dout), tensor_free(out);
    if (cond) tensor_free(cond);
    if (text) tensor_free(text), tensor_free(ids);
    free(steps);
    unet_free(&m);
    return 0;
}
