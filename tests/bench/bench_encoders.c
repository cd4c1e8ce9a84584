/* bench_encoders - times CLIP-L text encoding and the SD VAE encoder on the
 * CPU backend (models with real sizes and random weights, from
 * scripts/reference/golden_full.py). Prints one JSON line; tests/bench/
 * run-encoders runs PyTorch on the same models and inputs beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "backend.h"
#include "clip_text.h"
#include "util.h"
#include "vae.h"

static double best_of(int reps, void (*fn)(void *), void *ctx) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t = now_seconds();
        fn(ctx);
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
    if (argc < 4) die_usage("usage: bench_encoders MODELS_DIR TEXT_BATCH IMAGE_SIZE");
    const char *dir = argv[1];
    int batch = atoi(argv[2]), size = atoi(argv[3]);
    char err[LCM_ERRLEN], *te = path_join(dir, "text_encoder"), *vd = path_join(dir, "vae");
    text_case tc = {.batch = batch};
    if (clip_text_load(&tc.m, te, NULL, backend_cpu(), err)) die("%s", err);
    tc.ids = xmalloc(sizeof(int64_t) * (size_t)batch * 77);
    for (int i = 0; i < batch * 77; i++) tc.ids[i] = (i % 77 == 0) ? 49406 : (i % 77 < 20 ? 320 + (i * 7919) % 40000 : 49407);
    tc.out = tensor_new(NULL, DT_F32, 3, (int64_t[]){batch, 77, tc.m.cfg.hidden_size});
    run_text(&tc); /* warm-up: the arena grows once */
    double t_text = best_of(5, run_text, &tc);
    clip_text_free(&tc.m);

    vae_case vc;
    if (vae_load(&vc.m, vd, backend_cpu(), err)) die("%s", err);
    vc.x = tensor_new4(NULL, DT_F32, 1, 3, size, size);
    float *px = vc.x->data;
    for (int64_t i = 0; i < tensor_numel(vc.x); i++) px[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    int f = vae_factor(&vc.m);
    vc.moments = tensor_new4(NULL, DT_F32, 1, 2 * vc.m.cfg.latent_channels, size / f, size / f);
    run_vae(&vc);
    double t_vae = best_of(3, run_vae, &vc);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"text_s\": %.4f, \"vae_s\": %.4f, \"peak_rss_mb\": %.0f}\n", t_text, t_vae, ru.ru_maxrss / 1024.0);
    vae_free(&vc.m);
    free(te), free(vd), free(tc.ids);
    return 0;
}
