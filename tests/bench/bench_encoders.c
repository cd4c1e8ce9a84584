/* bench_encoders - times CLIP-L text encoding and the SD VAE encoder on a
 * backend (models with real sizes and random weights, from
 * scripts/reference/golden_full.py or tests/bench/make_pipeline.py). Prints
 * one JSON line; tests/bench/run-encoders (CPU) and run-encoders-gpu run
 * PyTorch on the same models and inputs beside it.
 *
 *   bench_encoders MODELS_DIR TEXT_BATCH IMAGE_SIZE [BACKEND [IMAGE_BATCH]] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "backend.h"
#include "clip_text.h"
#include "util.h"
#include "vae.h"

static const backend *be;

static double best_of(int reps, void (*fn)(void *), void *ctx) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t = now_seconds();
        fn(ctx);
        be->synchronize();
        t = now_seconds() - t;
        if (t < best) best = t;
    }
    return best;
}

typedef struct text_case {
    clip_text_model m;
    int64_t *ids;
    int batch;
    tensor *out;
} text_case;

static void run_text(void *p) {
    text_case *c = p;
    clip_text_out o = {.last_hidden_state = c->out};
    clip_text_forward(&c->m, c->ids, c->batch, 77, o);
}

typedef struct vae_case {
    vae_model m;
    tensor *x, *moments;
} vae_case;

static void run_vae(void *p) {
    vae_case *c = p;
    vae_encode(&c->m, c->x, c->moments);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    if (argc < 4) die_usage("usage: bench_encoders MODELS_DIR TEXT_BATCH IMAGE_SIZE [BACKEND [IMAGE_BATCH]]");
    const char *dir = argv[1];
    int batch = atoi(argv[2]), size = atoi(argv[3]), images = argc > 5 ? atoi(argv[5]) : 1;
    char err[LCM_ERRLEN], *te = path_join(dir, "text_encoder"), *vd = path_join(dir, "vae");
    if (!(be = backend_by_name(argc > 4 ? argv[4] : "cpu", err))) die("%s", err);
    text_case tc = {.batch = batch};
    if (clip_text_load(&tc.m, te, NULL, be, err)) die("%s", err);
    tc.ids = xmalloc(sizeof(int64_t) * (size_t)batch * 77);
    for (int i = 0; i < batch * 77; i++) tc.ids[i] = (i % 77 == 0) ? 49406 : (i % 77 < 20 ? 320 + (i * 7919) % 40000 : 49407);
    tc.out = tensor_new(be, DT_F32, 3, (int64_t[]){batch, 77, tc.m.cfg.hidden_size});
    run_text(&tc); /* warm-up: the arena grows once */
    double t_text = best_of(5, run_text, &tc);
    tensor_free(tc.out);
    clip_text_free(&tc.m);

    vae_case vc;
    if (vae_load(&vc.m, vd, be, err)) die("%s", err);
    vc.x = tensor_new4(be, DT_F32, images, 3, size, size);
    float *px = xmalloc(sizeof(float) * (size_t)tensor_numel(vc.x));
    for (int64_t i = 0; i < tensor_numel(vc.x); i++) px[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    tensor_from_host(vc.x, px);
    free(px);
    int f = vae_factor(&vc.m);
    vc.moments = tensor_new4(be, DT_F32, images, 2 * vc.m.cfg.latent_channels, size / f, size / f);
    run_vae(&vc);
    double t_vae = best_of(3, run_vae, &vc);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"text_s\": %.4f, \"vae_s\": %.4f, \"peak_rss_mb\": %.0f}\n", t_text, t_vae, ru.ru_maxrss / 1024.0);
    tensor_free(vc.x), tensor_free(vc.moments);
    vae_free(&vc.m);
    free(te), free(vd), free(tc.ids);
    return 0;
}
