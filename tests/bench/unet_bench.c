/* unet_bench - times the UNet's forward and forward + backward on the CPU
 * backend (not a test: timings go to stdout, nothing is asserted).
 *
 *   unet_bench MODEL [BATCH [HEIGHT [WIDTH [ITERS [CHECKPOINTING]]]]]
 *
 * MODEL is a UNet or pipeline folder. Inputs are random; the encoder hidden
 * states have 77 tokens. The first iteration (arena growth) is not timed. */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
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
    if (argc < 2) die_usage("usage: unet_bench MODEL [BATCH [HEIGHT [WIDTH [ITERS [CHECKPOINTING]]]]]");
    int B = argc > 2 ? atoi(argv[2]) : 1, H = argc > 3 ? atoi(argv[3]) : 32, W = argc > 4 ? atoi(argv[4]) : H;
    int iters = argc > 5 ? atoi(argv[5]) : 3;
    char err[LCM_ERRLEN];
    unet_model m;
    if (unet_load(&m, argv[1], backend_cpu(), 1, err)) die("%s", err);
    m.checkpointing = argc > 6 ? atoi(argv[6]) : 0;
    const unet_config *c = &m.cfg;
    int64_t ss[4] = {B, c->in_channels, H, W}, es[3] = {B, 77, c->cross_attention_dim[0]}, os[4] = {B, c->out_channels, H, W};
    int64_t cs[2] = {B, c->time_cond_proj_dim}, ts[2] = {B, c->projection_class_embeddings_input_dim - 6 * c->addition_time_embed_dim}, is[2] = {B, 6};
    tensor *sample = noise(4, ss, 1), *ehs = noise(3, es, 2), *dout = noise(4, os, 3), *out = tensor_new(NULL, DT_F32, 4, os);
    tensor *dsample = tensor_new(NULL, DT_F32, 4, ss), *cond = c->time_cond_proj_dim ? noise(2, cs, 4) : NULL;
    tensor *text = c->text_time ? noise(2, ts, 5) : NULL, *ids = c->text_time ? noise(2, is, 6) : NULL;
    float *steps = xmalloc(sizeof(float) * (size_t)B);
    for (int i = 0; i < B; i++) steps[i] = (float)(999 - 37 * i % 1000);
    unet_inputs in = {.sample = sample, .timesteps = steps, .encoder_hidden_states = ehs, .timestep_cond = cond, .text_embeds = text, .time_ids = ids};
    double fw = 0, fb = 0;
    for (int it = 0; it <= iters; it++) {
        double t0 = now_seconds();
        unet_forward(&m, in, out, 0);
        double t1 = now_seconds();
        unet_forward(&m, in, out, 1);
        unet_backward(&m, dout, dsample, NULL);
        double t2 = now_seconds();
        if (it) fw += t1 - t0, fb += t2 - t1;
    }
    printf("unet_bench %s: %d params, B %d, %dx%d, checkpointing %d: forward %.1f ms, forward+backward %.1f ms, arena peak %.1f MiB\n",
           argv[1], (int)m.ps.total, B, H, W, m.checkpointing, 1e3 * fw / iters, 1e3 * fb / iters, m.act.peak / 1048576.0);
    return 0;
}
