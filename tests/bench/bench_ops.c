/* bench_ops - times single CPU ops at the shapes of the SD VAE, the SD UNet
 * and CLIP-L: attention, conv2d, norms, activations, linear. Prints one JSON
 * line per case ({"op": name, "s": best wall seconds, "cpu_s": best CPU
 * seconds}); tests/bench/bench_ops.py
 * times PyTorch on the same cases and tests/bench/run-ops puts them side by
 * side. Arguments: case names to run (all when none). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ops.h"
#include "util.h"

typedef struct bench_case {
    const char *name;
    void (*run)(void *);
    void *ctx;
} bench_case;

static tensor *filled(int ndim, const int64_t *shape, unsigned seed) {
    tensor *t = tensor_new(NULL, DT_F32, ndim, shape);
    float *p = t->data;
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    return t;
}
#define T(seed, ...) filled(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (int64_t[]){__VA_ARGS__}, seed)

/* ---- attention: q, k, v, out [B, L, H d] ---- */
typedef struct attn_case {
    tensor *q, *k, *v, *o, *lse, *dq, *dk, *dv, *dout;
    attention_params p;
} attn_case;

static attn_case *attn_new(int b, int l, int heads, int d, int backward) {
    attn_case *c = xcalloc(1, sizeof *c);
    c->q = T(1, b, l, heads * d), c->k = T(2, b, l, heads * d), c->v = T(3, b, l, heads * d);
    c->o = T(4, b, l, heads * d);
    c->p = (attention_params){.heads = heads, .scale = 1.0f / sqrtf((float)d), .causal = 0};
    if (backward) {
        c->lse = T(5, b, heads, l), c->dout = T(6, b, l, heads * d);
        c->dq = T(7, b, l, heads * d), c->dk = T(8, b, l, heads * d), c->dv = T(9, b, l, heads * d);
    }
    return c;
}

static void attn_fwd(void *p) {
    attn_case *c = p;
    op_attention(c->o, c->lse, c->q, c->k, c->v, c->p);
}

static void attn_fwd_bwd(void *p) {
    attn_case *c = p;
    op_attention(c->o, c->lse, c->q, c->k, c->v, c->p);
    op_attention_backward(c->dq, c->dk, c->dv, c->q, c->k, c->v, c->o, c->lse, c->dout, c->p);
}

/* ---- conv2d 3x3 pad 1 (or 1x1), stride 1 ---- */
typedef struct conv_case {
    tensor *x, *w, *b, *y, *dx, *dw, *db;
    conv2d_params p;
} conv_case;

static conv_case *conv_new(int n, int c, int k, int hw, int ks, int backward) {
    conv_case *cc = xcalloc(1, sizeof *cc);
    cc->x = T(1, n, c, hw, hw), cc->w = T(2, k, c, ks, ks), cc->b = T(3, k), cc->y = T(4, n, k, hw, hw);
    float *w = cc->w->data;
    for (int64_t i = 0; i < tensor_numel(cc->w); i++) w[i] *= 0.05f;
    cc->p = conv2d_same_pad(1, ks / 2);
    if (backward) cc->dx = T(5, n, c, hw, hw), cc->dw = T(6, k, c, ks, ks), cc->db = T(7, k);
    return cc;
}

static void conv_fwd(void *p) {
    conv_case *c = p;
    op_conv2d(c->y, c->x, c->w, c->b, c->p);
}

static void conv_fwd_bwd(void *p) {
    conv_case *c = p;
    op_conv2d(c->y, c->x, c->w, c->b, c->p);
    op_conv2d_backward(c->dx, c->dw, c->db, c->x, c->w, c->y, c->p);
}

/* ---- group norm (+ SiLU), layer norm, activations, linear ---- */
typedef struct norm_case {
    tensor *x, *y, *g, *b, *mean, *rstd;
    int groups;
} norm_case;

static norm_case *gn_new(int n, int c, int hw) {
    norm_case *nc = xcalloc(1, sizeof *nc);
    nc->x = T(1, n, c, hw, hw), nc->y = T(2, n, c, hw, hw), nc->g = T(3, c), nc->b = T(4, c);
    nc->groups = 32, nc->mean = T(5, n, 32), nc->rstd = T(6, n, 32);
    return nc;
}

static void gn_silu(void *p) {
    norm_case *c = p;
    op_group_norm(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->groups, 1e-6f, 1);
}

static norm_case *ln_new(int rows, int d) {
    norm_case *nc = xcalloc(1, sizeof *nc);
    nc->x = T(1, rows, d), nc->y = T(2, rows, d), nc->g = T(3, d), nc->b = T(4, d);
    nc->mean = T(5, rows), nc->rstd = T(6, rows);
    return nc;
}

static void layer_norm(void *p) {
    norm_case *c = p;
    op_layer_norm(c->y, c->mean, c->rstd, c->x, c->g, c->b, 1e-5f);
}

typedef struct act_case {
    tensor *x, *y;
    activation act;
} act_case;

static act_case *act_new(activation act, int64_t n) {
    act_case *a = xcalloc(1, sizeof *a);
    a->x = T(1, n), a->y = T(2, n), a->act = act;
    float *x = a->x->data;
    for (int64_t i = 0; i < n; i++) x[i] *= 4.0f;
    return a;
}

static void act_run(void *p) {
    act_case *a = p;
    op_activation(a->y, a->x, a->act);
}

static act_case *geglu_new(int rows, int d) {
    act_case *a = xcalloc(1, sizeof *a);
    a->x = T(1, rows, 2 * d), a->y = T(2, rows, d);
    return a;
}

static void geglu_run(void *p) {
    act_case *a = p;
    op_geglu(a->y, a->x);
}

typedef struct linear_case {
    tensor *x, *w, *b, *y;
} linear_case;

static linear_case *linear_new(int rows, int in, int out) {
    linear_case *l = xcalloc(1, sizeof *l);
    l->x = T(1, rows, in), l->w = T(2, out, in), l->b = T(3, out), l->y = T(4, rows, out);
    return l;
}

static void linear_run(void *p) {
    linear_case *l = p;
    op_linear(l->y, l->x, l->w, l->b);
}

/* Builds only the cases asked for: the big ones take hundreds of MB. */
static int wanted(const char *name, int argc, char **argv) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best wall time and best CPU time (all threads) of `reps` runs: on a shared
 * machine the CPU time shows the work done when the wall time shows mostly
 * the wait for a core. */
static void time_case(const char *name, void (*run)(void *), void *ctx, int reps) {
    run(ctx); /* warm-up: workspaces grow once */
    double best = 1e30, best_cpu = 1e30;
    for (int i = 0; i < reps; i++) {
        double t = now_seconds(), c = cpu_seconds();
        run(ctx);
        t = now_seconds() - t, c = cpu_seconds() - c;
        best = t < best ? t : best;
        best_cpu = c < best_cpu ? c : best_cpu;
    }
    printf("{\"op\": \"%s\", \"s\": %.5f, \"cpu_s\": %.5f}\n", name, best, best_cpu);
    fflush(stdout);
}

#define CASE(name, reps, run, make)                                                                                    \
    if (wanted(name, argc, argv)) time_case(name, run, make, reps)

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    CASE("attn_unet64_fwd", 3, attn_fwd, attn_new(2, 4096, 8, 40, 0));
    CASE("attn_unet64_fwdbwd", 2, attn_fwd_bwd, attn_new(2, 4096, 8, 40, 1));
    CASE("attn_unet32_fwd", 3, attn_fwd, attn_new(2, 1024, 8, 80, 0));
    CASE("attn_vae64_fwd", 3, attn_fwd, attn_new(1, 4096, 1, 512, 0));
    CASE("conv_vae128x512", 2, conv_fwd, conv_new(1, 128, 128, 512, 3, 0));
    CASE("conv_vae256x256", 2, conv_fwd, conv_new(1, 256, 256, 256, 3, 0));
    CASE("conv_vae512x128", 2, conv_fwd, conv_new(1, 512, 512, 128, 3, 0));
    CASE("conv_vae512x64", 3, conv_fwd, conv_new(1, 512, 512, 64, 3, 0));
    CASE("conv_unet320x64", 3, conv_fwd, conv_new(2, 320, 320, 64, 3, 0));
    CASE("conv_unet640x32", 3, conv_fwd, conv_new(2, 640, 640, 32, 3, 0));
    CASE("conv_unet1280x16", 3, conv_fwd, conv_new(2, 1280, 1280, 16, 3, 0));
    CASE("conv1x1_unet320x64", 3, conv_fwd, conv_new(2, 320, 320, 64, 1, 0));
    CASE("conv_unet320x64_fwdbwd", 2, conv_fwd_bwd, conv_new(2, 320, 320, 64, 3, 1));
    CASE("conv_unet1280x16_fwdbwd", 2, conv_fwd_bwd, conv_new(2, 1280, 1280, 16, 3, 1));
    CASE("gn_silu_vae128x512", 3, gn_silu, gn_new(1, 128, 512));
    CASE("gn_silu_unet320x64", 5, gn_silu, gn_new(2, 320, 64));
    CASE("layer_norm_unet", 5, layer_norm, ln_new(8192, 320));
    CASE("layer_norm_clip", 5, layer_norm, ln_new(616, 768));
    CASE("silu_16M", 3, act_run, act_new(ACT_SILU, 16 << 20));
    CASE("gelu_16M", 3, act_run, act_new(ACT_GELU, 16 << 20));
    CASE("quick_gelu_clip", 5, act_run, act_new(ACT_QUICK_GELU, 616 * 3072));
    CASE("geglu_unet", 3, geglu_run, geglu_new(8192, 1280));
    CASE("linear_clip_fc1", 5, linear_run, linear_new(616, 768, 3072));
    CASE("linear_unet_qkv", 5, linear_run, linear_new(8192, 320, 320));
    return 0;
}
