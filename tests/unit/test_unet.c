/* UNet2DConditionModel: forward and backward against the reference
 * harness's goldens (tests/fixtures/unet/<config>, made with diffusers on the
 * same weights and inputs), finite-difference checks of each layer's
 * backward on a tiny random model, gradient checkpointing, config quirks
 * and saving. Golden configs that are absent are skipped. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops.h"
#include "rng.h"
#include "safetensors.h"
#include "test.h"
#include "golden.h"
#include "unet.h"
#include "unet_layers.h"
#include "util.h"

#define TOL_OUT 1e-4  /* max relative error of outputs */
#define TOL_GRAD 1e-3 /* of gradients */

static const char *top(void) {
    const char *t = getenv("LCM_TOP");
    return t && *t ? t : ".";
}

static int verbose(void) { return getenv("LCM_TEST_VERBOSE") != NULL; }

/* The same, or NULL where the golden lacks it. */
static tensor *golden_tensor_opt(st_file *f, const char *name) { return st_find(f, name) ? golden_tensor(f, name) : NULL; }

static double rel_err(const tensor *got, const tensor *want) {
    CHECK(tensor_numel(got) == tensor_numel(want));
    return max_rel_err(got->data, want->data, (size_t)tensor_numel(want), 1e-6);
}

static void fixture_path(char *buf, size_t n, const char *config) { snprintf(buf, n, "%s/tests/fixtures/unet/%s", top(), config); }

/* ---- goldens ---- */

/* A host tensor moved to be (NULL stays NULL): the host copy is freed. */
static tensor *on(const backend *be, tensor *host) {
    if (!host) return NULL;
    tensor *t = tensor_clone(host, be, DT_F32);
    tensor_free(host);
    return t;
}

/* The error of a tensor on any backend against a host golden. */
static double rel_err_any(const tensor *got, const tensor *want) {
    tensor *h = tensor_clone(got, backend_cpu(), DT_F32);
    double e = rel_err(h, want);
    tensor_free(h);
    return e;
}

/* The goldens run on $LCM_BACKEND (make test BACKEND=cuda puts the whole UNet,
 * forward and backward, on the GPU), with the same tolerances. */
static void check_golden(const char *config, int checkpointing) {
    char dir[1024], path[1100], err[LCM_ERRLEN];
    const backend *be = backend_default();
    fixture_path(dir, sizeof dir, config);
    unet_model m;
    CHECKF(unet_load(&m, dir, be, 1, err) == 0, "%s", err);
    m.checkpointing = checkpointing;
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    st_file *f = st_open(path, err);
    CHECKF(f, "%s", err);
    tensor *ts = golden_tensor(f, "timestep"); /* timesteps are host floats */
    tensor *sample = on(be, golden_tensor_opt(f, "sample")), *ehs = on(be, golden_tensor_opt(f, "encoder_hidden_states"));
    tensor *cond = on(be, golden_tensor_opt(f, "timestep_cond"));
    tensor *text = on(be, golden_tensor_opt(f, "text_embeds")), *ids = on(be, golden_tensor_opt(f, "time_ids"));
    tensor *want = golden_tensor(f, "out.sample"), *dout = on(be, golden_tensor_opt(f, "grad_output"));
    tensor *out = tensor_new(be, DT_F32, 4, want->shape), *dsample = tensor_new(be, DT_F32, 4, sample->shape);
    tensor *dehs = tensor_new(be, DT_F32, 3, ehs->shape);
    unet_inputs in = {.sample = sample, .timesteps = ts->data, .encoder_hidden_states = ehs, .timestep_cond = cond, .text_embeds = text, .time_ids = ids};
    unet_forward(&m, in, out, 1);
    double e = rel_err_any(out, want);
    printf("# %s%s out.sample max rel err %.3g (%s)\n", config, checkpointing ? " (checkpointing)" : "", e, be->name);
    CHECKF(e <= TOL_OUT, "%s: out.sample max rel err %.3g", config, e);
    unet_backward(&m, dout, dsample, dehs);
    const char *names[2] = {"grad.sample", "grad.encoder_hidden_states"};
    tensor *got[2] = {dsample, dehs};
    for (int i = 0; i < 2; i++) {
        tensor *w = golden_tensor(f, names[i]);
        e = rel_err_any(got[i], w);
        printf("# %s %s max rel err %.3g\n", config, names[i], e);
        CHECKF(e <= TOL_GRAD, "%s: %s max rel err %.3g", config, names[i], e);
        tensor_free(w);
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.ps.n; i++) {
        param *p = m.ps.p[i];
        snprintf(path, sizeof path, "grad.%s", p->name);
        tensor *w = golden_tensor(f, path);
        e = rel_err_any(&p->grad, w);
        if (verbose()) printf("# %s grad.%s max rel err %.3g\n", config, p->name, e);
        if (e > worst) worst = e, worst_name = p->name;
        tensor_free(w);
    }
    printf("# %s worst of %d parameter gradients: grad.%s max rel err %.3g\n", config, m.ps.n, worst_name, worst);
    CHECKF(worst <= TOL_GRAD, "%s: grad.%s max rel err %.3g", config, worst_name, worst);
    tensor *all[] = {sample, ehs, ts, cond, text, ids, want, dout, out, dsample, dehs};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    st_close(f);
    unet_free(&m);
}

TEST(golden_sd15) { check_golden("sd15", 0); }
TEST(golden_sd2) { check_golden("sd2", 0); }
TEST(golden_sdxl) { check_golden("sdxl", 0); }
TEST(golden_lcm) { check_golden("lcm", 0); }
TEST(golden_sd15_checkpointing) { check_golden("sd15", 1); }

/* ---- a tiny random model ---- */

static const char *tiny_json(int scale_shift, int text_time) {
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": [8, 16], \"layers_per_block\": 1,"
             " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
             " \"attention_head_dim\": 2, \"norm_num_groups\": 4, \"cross_attention_dim\": 6, \"in_channels\": 3, \"out_channels\": 2,"
             " \"time_cond_proj_dim\": 5, \"resnet_time_scale_shift\": \"%s\", \"only_cross_attention\": [true, false],"
             " \"use_linear_projection\": %s, \"transformer_layers_per_block\": [2, 1], \"mid_block_scale_factor\": 2"
             "%s}",
             scale_shift ? "scale_shift" : "default", scale_shift ? "true" : "false",
             text_time ? ", \"addition_embed_type\": \"text_time\", \"addition_time_embed_dim\": 2, \"projection_class_embeddings_input_dim\": 16" : "");
    return buf;
}

static void tiny_model(unet_model *m, int scale_shift, int text_time, uint64_t seed) {
    char err[LCM_ERRLEN];
    cJSON *root = cJSON_Parse(tiny_json(scale_shift, text_time));
    CHECK(root);
    unet_config c;
    CHECKF(unet_config_parse(&c, root, "tiny", err) == 0, "%s", err);
    cJSON_Delete(root);
    CHECKF(unet_from_config(m, &c, backend_cpu(), 1, seed, err) == 0, "%s", err);
    unet_config_free(&c);
    /* non-trivial norms: PyTorch's init makes them 1 and 0 */
    rng r;
    rng_seed(&r, seed, 7);
    for (int i = 0; i < m->ps.n; i++) {
        param *p = m->ps.p[i];
        if (p->value.ndim != 1) continue;
        float *v = p->value.data;
        for (int64_t k = 0; k < tensor_numel(&p->value); k++) v[k] += 0.2f * rng_normal(&r);
    }
}

static tensor *random_tensor(int ndim, const int64_t *shape, uint64_t seed, float scale) {
    tensor *t = tensor_new(NULL, DT_F32, ndim, shape);
    rng r;
    rng_seed(&r, seed, 1);
    float *v = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++) v[i] = scale * rng_normal(&r);
    return t;
}

/* ---- finite differences of one layer ---- */

typedef struct fd_case {
    unet_model *m;
    void *layer;
    tensor *x, *aux;   /* the input, and a shared input (SiLU(emb) or ctx), or NULL */
    tensor *dx, *daux; /* their gradients */
    int y_ndim;
    int64_t y_shape[4];
    void (*forward)(struct fd_case *c, tensor *y);
    void (*backward)(struct fd_case *c, const tensor *dy);
} fd_case;

static double fd_loss(fd_case *c, const tensor *r) {
    arena_reset(&c->m->act);
    tensor y = arena_tensor(&c->m->act, DT_F32, c->y_ndim, c->y_shape);
    c->forward(c, &y);
    const float *a = y.data, *b = r->data;
    double s = 0;
    for (int64_t i = 0; i < tensor_numel(r); i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares k entries of grad with central differences of the loss in value. */
static void fd_entries(fd_case *c, const tensor *r, const char *what, tensor *value, const tensor *grad, uint64_t seed) {
    const float eps = 1e-2f;
    float *v = value->data;
    const float *g = grad->data;
    int64_t n = tensor_numel(value);
    double scale = 0.05;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(g[i]));
    rng rr;
    rng_seed(&rr, seed, 3);
    double worst = 0;
    for (int k = 0; k < 8; k++) {
        int64_t i = (int64_t)rng_below(&rr, (uint64_t)n);
        float orig = v[i];
        v[i] = orig + eps;
        double lp = fd_loss(c, r);
        v[i] = orig - eps;
        double lm = fd_loss(c, r);
        v[i] = orig;
        double num = (lp - lm) / (2.0 * eps), e = fabs(num - g[i]) / scale;
        worst = fmax(worst, e);
        CHECKF(e < 2e-2, "%s[%lld]: backward %.6g, finite difference %.6g", what, (long long)i, g[i], num);
    }
    if (verbose()) printf("# fd %s worst rel err %.3g\n", what, worst);
}

/* Runs forward and backward once, then checks the input, the shared input and
 * each named parameter of the model against finite differences. */
static void fd_check(fd_case *c, const char *const *param_names, int n_params) {
    unet_model *m = c->m;
    int64_t yn = shape_numel(c->y_ndim, c->y_shape);
    tensor *r = random_tensor(c->y_ndim, c->y_shape, (uint64_t)yn, 1.0f);
    arena_reset(&m->act);
    tensor y = arena_tensor(&m->act, DT_F32, c->y_ndim, c->y_shape);
    c->forward(c, &y);
    params_zero_grad(&m->ps);
    if (c->daux) op_fill(c->daux, 0.0f);
    c->backward(c, r);
    if (c->x) fd_entries(c, r, "input", c->x, c->dx, 1);
    if (c->aux) fd_entries(c, r, "shared input", c->aux, c->daux, 2);
    for (int i = 0; i < n_params; i++) {
        param *p = params_find(&m->ps, param_names[i]);
        CHECKF(p, "no parameter %s", param_names[i]);
        fd_entries(c, r, p->name, &p->value, &p->grad, 10 + (uint64_t)i);
    }
    tensor_free(r);
}

static void resnet_fw(fd_case *c, tensor *y) { unet_resnet_forward(c->m, c->layer, c->x, c->aux, y); }
static void resnet_bw(fd_case *c, const tensor *dy) { unet_resnet_backward(c->m, c->layer, dy, c->dx, c->daux); }

static void check_resnet(int scale_shift) {
    unet_model m;
    tiny_model(&m, scale_shift, 0, 11);
    /* up block 1 resnet 0: 16 + 8 -> 8 channels, with a 1x1 shortcut; the mid resnet scales its output */
    unet_resnet *rs[2] = {&m.net->up[1].res[0], &m.net->mid.res[1]};
    const char *names[2][4] = {{"up_blocks.1.resnets.0.conv1.weight", "up_blocks.1.resnets.0.norm2.weight", "up_blocks.1.resnets.0.time_emb_proj.bias",
                                "up_blocks.1.resnets.0.conv_shortcut.weight"},
                               {"mid_block.resnets.1.norm1.bias", "mid_block.resnets.1.conv2.bias", "mid_block.resnets.1.time_emb_proj.weight",
                                "mid_block.resnets.1.norm2.bias"}};
    for (int k = 0; k < 2; k++) {
        unet_resnet *r = rs[k];
        int64_t xs[4] = {2, r->in, 3, 5}, es[2] = {2, m.cfg.time_embed_dim};
        fd_case c = {.m = &m, .layer = r, .y_ndim = 4, .y_shape = {2, r->out, 3, 5}, .forward = resnet_fw, .backward = resnet_bw};
        c.x = random_tensor(4, xs, 5, 1.0f), c.dx = tensor_new(NULL, DT_F32, 4, xs);
        c.aux = random_tensor(2, es, 6, 1.0f), c.daux = tensor_new(NULL, DT_F32, 2, es);
        fd_check(&c, names[k], 4);
        tensor_free(c.x), tensor_free(c.dx), tensor_free(c.aux), tensor_free(c.daux);
    }
    unet_free(&m);
}

TEST(fd_resnet_default) { check_resnet(0); }
TEST(fd_resnet_scale_shift) { check_resnet(1); }

static void transformer_fw(fd_case *c, tensor *y) { unet_transformer_forward(c->m, c->layer, c->x, c->aux, y); }
static void transformer_bw(fd_case *c, const tensor *dy) { unet_transformer_backward(c->m, c->layer, dy, c->dx, c->daux); }

/* down block 0: two BasicTransformerBlocks, attn1 only-cross; the mid block's: self-attention */
static void check_transformer(int linear_projection) {
    unet_model m;
    tiny_model(&m, linear_projection, 0, 12);
    unet_transformer *ts[2] = {&m.net->down[0].attn[0], &m.net->mid.attn[0]};
    const char *names[2][6] = {{"down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight",
                                "down_blocks.0.attentions.0.transformer_blocks.1.attn2.to_q.weight", "down_blocks.0.attentions.0.transformer_blocks.1.ff.net.0.proj.weight",
                                "down_blocks.0.attentions.0.transformer_blocks.0.norm3.weight", "down_blocks.0.attentions.0.norm.bias"},
                               {"mid_block.attentions.0.transformer_blocks.0.attn1.to_v.weight", "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0.bias",
                                "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight",
                                "mid_block.attentions.0.transformer_blocks.0.norm1.bias", "mid_block.attentions.0.proj_out.weight"}};
    for (int k = 0; k < 2; k++) {
        unet_transformer *t = ts[k];
        int64_t xs[4] = {2, t->channels, 3, 4}, cs[3] = {2, 5, m.cfg.cross_attention_dim[0]};
        fd_case c = {.m = &m, .layer = t, .y_ndim = 4, .y_shape = {2, t->channels, 3, 4}, .forward = transformer_fw, .backward = transformer_bw};
        c.x = random_tensor(4, xs, 7, 1.0f), c.dx = tensor_new(NULL, DT_F32, 4, xs);
        c.aux = random_tensor(3, cs, 8, 1.0f), c.daux = tensor_new(NULL, DT_F32, 3, cs);
        fd_check(&c, names[k], 6);
        tensor_free(c.x), tensor_free(c.dx), tensor_free(c.aux), tensor_free(c.daux);
    }
    unet_free(&m);
}

TEST(fd_transformer_conv_projection) { check_transformer(0); }
TEST(fd_transformer_linear_projection) { check_transformer(1); }

static void down_fw(fd_case *c, tensor *y) { unet_downsample_forward(c->m, c->layer, c->x, y); }
static void down_bw(fd_case *c, const tensor *dy) { unet_downsample_backward(c->m, c->layer, dy, c->dx); }
static void up_fw(fd_case *c, tensor *y) { unet_upsample_forward(c->m, c->layer, c->x, y); }
static void up_bw(fd_case *c, const tensor *dy) { unet_upsample_backward(c->m, c->layer, dy, c->dx); }

TEST(fd_samplers) {
    unet_model m;
    tiny_model(&m, 0, 0, 13);
    int64_t xs[4] = {2, 8, 5, 7};
    const char *dn[2] = {"down_blocks.0.downsamplers.0.conv.weight", "down_blocks.0.downsamplers.0.conv.bias"};
    fd_case c = {.m = &m, .layer = m.net->down[0].sampler, .y_ndim = 4, .y_shape = {2, 8, 3, 4}, .forward = down_fw, .backward = down_bw};
    c.x = random_tensor(4, xs, 9, 1.0f), c.dx = tensor_new(NULL, DT_F32, 4, xs);
    fd_check(&c, dn, 2);
    tensor_free(c.x), tensor_free(c.dx);
    /* upsampling to an odd size (the skip's), as diffusers does for odd inputs */
    int64_t us[4] = {2, 16, 3, 4};
    const char *up[2] = {"up_blocks.0.upsamplers.0.conv.weight", "up_blocks.0.upsamplers.0.conv.bias"};
    fd_case u = {.m = &m, .layer = m.net->up[0].sampler, .y_ndim = 4, .y_shape = {2, 16, 5, 7}, .forward = up_fw, .backward = up_bw};
    u.x = random_tensor(4, us, 10, 1.0f), u.dx = tensor_new(NULL, DT_F32, 4, us);
    fd_check(&u, up, 2);
    tensor_free(u.x), tensor_free(u.dx);
    unet_free(&m);
}

/* The time embedding: its output is SiLU(emb), read by every resnet. */
typedef struct time_inputs {
    unet_inputs in;
} time_inputs;
static void time_fw(fd_case *c, tensor *y) {
    unet_time_forward(c->m, &((time_inputs *)c->layer)->in);
    op_axpby(y, 1.0f, &c->m->net->fw.semb, 0, NULL);
}
static void time_bw(fd_case *c, const tensor *dy) { unet_time_backward(c->m, dy); }

TEST(fd_time_embedding) {
    unet_model m;
    tiny_model(&m, 0, 1, 14);
    int64_t ss[4] = {2, 3, 4, 4}, cs[2] = {2, 5}, te[2] = {2, 4}, ti[2] = {2, 6};
    float steps[2] = {999, 17};
    tensor *sample = random_tensor(4, ss, 1, 1.0f), *cond = random_tensor(2, cs, 2, 1.0f), *text = random_tensor(2, te, 3, 1.0f);
    tensor *ids = random_tensor(2, ti, 4, 300.0f);
    time_inputs t = {{.sample = sample, .timesteps = steps, .timestep_cond = cond, .text_embeds = text, .time_ids = ids}};
    const char *names[6] = {"time_embedding.linear_1.weight", "time_embedding.linear_2.bias", "time_embedding.cond_proj.weight",
                            "add_embedding.linear_1.weight", "add_embedding.linear_2.weight", "add_embedding.linear_1.bias"};
    fd_case c = {.m = &m, .layer = &t, .y_ndim = 2, .y_shape = {2, m.cfg.time_embed_dim}, .forward = time_fw, .backward = time_bw};
    fd_check(&c, names, 6);
    tensor_free(sample), tensor_free(cond), tensor_free(text), tensor_free(ids);
    unet_free(&m);
}

/* ---- the whole net on the tiny model ---- */

typedef struct run_result {
    float *out, *grads, *dsample, *dctx;
} run_result;

static run_result run_tiny(unet_model *m, int checkpointing) {
    int64_t ss[4] = {2, 3, 5, 7}, cs[3] = {2, 4, 6}, ks[2] = {2, 5};
    tensor *sample = random_tensor(4, ss, 21, 1.0f), *ctx = random_tensor(3, cs, 22, 1.0f), *cond = random_tensor(2, ks, 23, 1.0f);
    int64_t os[4] = {2, 2, 5, 7};
    tensor *dout = random_tensor(4, os, 24, 1.0f), *out = tensor_new(NULL, DT_F32, 4, os);
    tensor *dsample = tensor_new(NULL, DT_F32, 4, ss), *dctx = tensor_new(NULL, DT_F32, 3, cs);
    float steps[2] = {250, 3};
    m->checkpointing = checkpointing;
    params_zero_grad(&m->ps);
    unet_inputs in = {.sample = sample, .timesteps = steps, .encoder_hidden_states = ctx, .timestep_cond = cond};
    unet_forward(m, in, out, 1);
    unet_backward(m, dout, dsample, dctx);
    run_result r = {xmalloc(tensor_nbytes(out)), xmalloc(sizeof(float) * m->ps.total), xmalloc(tensor_nbytes(dsample)), xmalloc(tensor_nbytes(dctx))};
    memcpy(r.out, out->data, tensor_nbytes(out));
    memcpy(r.grads, m->ps.grad, sizeof(float) * m->ps.total);
    memcpy(r.dsample, dsample->data, tensor_nbytes(dsample));
    memcpy(r.dctx, dctx->data, tensor_nbytes(dctx));
    tensor *all[] = {sample, ctx, cond, dout, out, dsample, dctx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    return r;
}

static void free_result(run_result *r) { free(r->out), free(r->grads), free(r->dsample), free(r->dctx); }

/* Checkpointing recomputes each block's forward: the same ops on the same
 * inputs, so the gradients are the same bits. */
TEST(checkpointing_gives_identical_gradients) {
    for (int ss = 0; ss < 2; ss++) {
        unet_model m;
        tiny_model(&m, ss, 0, 31);
        run_result a = run_tiny(&m, 0), b = run_tiny(&m, 1);
        size_t peak_plain = m.act.peak;
        CHECK(!memcmp(a.out, b.out, sizeof(float) * 2 * 2 * 5 * 7));
        CHECK(!memcmp(a.grads, b.grads, sizeof(float) * m.ps.total));
        CHECK(!memcmp(a.dsample, b.dsample, sizeof(float) * 2 * 3 * 5 * 7));
        CHECK(!memcmp(a.dctx, b.dctx, sizeof(float) * 2 * 4 * 6));
        double gnorm = 0;
        for (size_t i = 0; i < m.ps.total; i++) gnorm += (double)a.grads[i] * a.grads[i];
        CHECK(gnorm > 0);
        (void)peak_plain;
        free_result(&a), free_result(&b);
        unet_free(&m);
    }
}

/* A second pass with the same shapes allocates nothing new. */
TEST(steady_state_allocates_nothing) {
    unet_model m;
    tiny_model(&m, 0, 0, 32);
    run_result a = run_tiny(&m, 0);
    int blocks = m.act.n_blocks;
    run_result b = run_tiny(&m, 0);
    CHECK(m.act.n_blocks == blocks);
    CHECK(!memcmp(a.grads, b.grads, sizeof(float) * m.ps.total));
    free_result(&a), free_result(&b);
    unet_free(&m);
}

/* The whole net's input gradients against finite differences. */
TEST(fd_whole_net_inputs) {
    unet_model m;
    tiny_model(&m, 1, 0, 33);
    run_result a = run_tiny(&m, 0);
    int64_t ss[4] = {2, 3, 5, 7}, cs[3] = {2, 4, 6}, ks[2] = {2, 5}, os[4] = {2, 2, 5, 7};
    tensor *sample = random_tensor(4, ss, 21, 1.0f), *ctx = random_tensor(3, cs, 22, 1.0f), *cond = random_tensor(2, ks, 23, 1.0f);
    tensor *dout = random_tensor(4, os, 24, 1.0f), *out = tensor_new(NULL, DT_F32, 4, os);
    float steps[2] = {250, 3};
    unet_inputs in = {.sample = sample, .timesteps = steps, .encoder_hidden_states = ctx, .timestep_cond = cond};
    tensor *xs[2] = {sample, ctx};
    const float *gs[2] = {a.dsample, a.dctx};
    const float eps = 1e-2f;
    for (int t = 0; t < 2; t++) {
        float *v = xs[t]->data;
        double scale = 0.05;
        for (int64_t i = 0; i < tensor_numel(xs[t]); i++) scale = fmax(scale, fabs(gs[t][i]));
        for (int64_t i = 0; i < tensor_numel(xs[t]); i += 7) {
            double l[2];
            float orig = v[i];
            for (int s = 0; s < 2; s++) {
                v[i] = orig + (s ? -eps : eps);
                unet_forward(&m, in, out, 0);
                l[s] = 0;
                for (int64_t k = 0; k < tensor_numel(out); k++) l[s] += (double)((float *)out->data)[k] * ((float *)dout->data)[k];
            }
            v[i] = orig;
            double num = (l[0] - l[1]) / (2.0 * eps);
            CHECKF(fabs(num - gs[t][i]) / scale < 2e-2, "%s[%lld]: backward %.6g, finite difference %.6g", t ? "ctx" : "sample", (long long)i, gs[t][i], num);
        }
    }
    tensor *all[] = {sample, ctx, cond, dout, out};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    free_result(&a);
    unet_free(&m);
}

/* ---- configs ---- */

static int parse(const char *json, unet_config *c, char *err) {
    cJSON *root = cJSON_Parse(json);
    CHECK(root);
    int rc = unet_config_parse(c, root, "cfg", err);
    cJSON_Delete(root);
    return rc;
}

TEST(config_quirks) {
    unet_config c;
    char err[LCM_ERRLEN];
    /* SD 1.x: attention_head_dim is the head count */
    CHECKF(parse("{\"block_out_channels\": [320, 640], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
                 " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"attention_head_dim\": 8, \"cross_attention_dim\": 768}", &c, err) == 0, "%s", err);
    CHECK(c.heads[0] == 8 && c.heads[1] == 8 && c.time_embed_dim == 1280 && c.groups == 32 && c.has_mid && !c.scale_shift);
    unet_config_free(&c);
    /* SD 2.x: per block, reversed for the up blocks; num_attention_heads wins where given */
    CHECK(parse("{\"block_out_channels\": [8, 16], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
                " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"attention_head_dim\": [2, 4], \"norm_num_groups\": 4,"
                " \"transformer_layers_per_block\": [1, 3], \"reverse_transformer_layers_per_block\": [2, 5]}", &c, err) == 0);
    CHECK(c.heads[0] == 2 && c.heads[1] == 4 && c.transformer_layers[1] == 3 && c.up_transformer_layers[1] == 5);
    CHECK(unet_config_set_int(&c, "num_attention_heads", 1, err) == 0);
    CHECK(c.heads[0] == 1 && c.heads[1] == 1);
    CHECK(unet_config_set_int(&c, "time_cond_proj_dim", 256, err) == 0 && c.time_cond_proj_dim == 256);
    unet_config_free(&c);
    /* unsupported options name their key */
    const char *bad[][2] = {{"\"class_embed_type\": \"timestep\"", "class_embed_type"}, {"\"attention_type\": \"gated\"", "attention_type"},
                            {"\"addition_embed_type\": \"text\"", "addition_embed_type"}, {"\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type"},
                            {"\"down_block_types\": [\"AttnDownBlock2D\", \"DownBlock2D\"]", "down_block_types"},
                            {"\"time_embedding_type\": \"fourier\"", "time_embedding_type"}, {"\"encoder_hid_dim\": 7", "encoder_hid_dim"},
                            {"\"act_fn\": \"gelu\"", "act_fn"}, {"\"attention_head_dim\": 3", "attention_head_dim"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[512];
        /* the bad entry first: a repeated key's first value is the one read */
        snprintf(json, sizeof json, "{%s, \"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"],"
                                    " \"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"]}", bad[i][0]);
        CHECKF(parse(json, &c, err) != 0, "%s accepted", bad[i][0]);
        CHECKF(strstr(err, bad[i][1]), "error \"%s\" does not name %s", err, bad[i][1]);
    }
}

/* The tiny-sd UNet (SD 1.5-shaped) loads from its pipeline folder. */
TEST(load_pipeline_folder) {
    char path[1024], err[LCM_ERRLEN];
    snprintf(path, sizeof path, "%s/tests/fixtures/tiny-sd", top());
    unet_model m;
    CHECKF(unet_load(&m, path, backend_cpu(), 0, err) == 0, "%s", err);
    CHECK(m.ps.grad == NULL && m.net->down[0].attn[0].blocks[0].attn1.heads == 2 && m.net->down[0].attn[0].blocks[0].attn1.dim_head == 8);
    unet_free(&m);
    snprintf(path, sizeof path, "%s/tests/fixtures/nonexistent", top());
    CHECK(unet_load(&m, path, backend_cpu(), 0, err) != 0 && strstr(err, "nonexistent"));
}

/* A student from a teacher: new cond_proj, every other weight copied; saved
 * and loaded back bit for bit, config included. */
TEST(student_save_and_reload) {
    char err[LCM_ERRLEN], dir[] = "/tmp/test_unet_XXXXXX";
    CHECK(mkdtemp(dir));
    unet_model teacher, student, back;
    tiny_model(&teacher, 0, 0, 41);
    unet_config c;
    CHECK(unet_config_parse(&c, teacher.cfg.json, "teacher", err) == 0);
    CHECK(unet_config_set_int(&c, "time_cond_proj_dim", 7, err) == 0);
    CHECKF(unet_from_config(&student, &c, backend_cpu(), 0, 5, err) == 0, "%s", err);
    unet_config_free(&c);
    const char *missing[4];
    CHECK(unet_copy_params(&student, &teacher, missing, 4) == 1 && !strcmp(missing[0], "time_embedding.cond_proj.weight"));
    char out[1100];
    snprintf(out, sizeof out, "%s/unet", dir);
    CHECKF(unet_save(&student, out, err) == 0, "%s", err);
    CHECKF(unet_save(&student, out, err) == 0, "%s", err); /* over an existing folder */
    CHECKF(unet_load(&back, out, backend_cpu(), 0, err) == 0, "%s", err);
    CHECK(back.cfg.time_cond_proj_dim == 7 && back.ps.n == student.ps.n && back.ps.total == student.ps.total);
    for (int i = 0; i < back.ps.n; i++) { /* (not the padding between parameters) */
        const param *a = back.ps.p[i], *b = params_find(&student.ps, a->name);
        CHECKF(b && !memcmp(a->value.data, b->value.data, tensor_nbytes(&a->value)), "%s differs", a->name);
    }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(back.cfg.json, "_class_name");
    CHECK(cJSON_IsString(cls) && !strcmp(cls->valuestring, "UNet2DConditionModel"));
    snprintf(out, sizeof out, "%s/unet.tmp", dir);
    CHECK(!path_exists(out));
    unet_free(&teacher), unet_free(&student), unet_free(&back);
    rm_rf(dir);
}

static int have_fixture(const char *config) {
    char dir[1024], path[1100];
    fixture_path(dir, sizeof dir, config);
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    return path_exists(path);
}

#define RUN_GOLDEN(name, config)                                         \
    do {                                                                 \
        if (have_fixture(config)) RUN(name);                             \
        else SKIP(name, "fixture tests/fixtures/unet/" config " absent"); \
    } while (0)

int main(void) {
    RUN_GOLDEN(golden_sd15, "sd15");
    RUN_GOLDEN(golden_sd2, "sd2");
    RUN_GOLDEN(golden_sdxl, "sdxl");
    RUN_GOLDEN(golden_lcm, "lcm");
    RUN_GOLDEN(golden_sd15_checkpointing, "sd15");
    RUN(fd_resnet_default);
    RUN(fd_resnet_scale_shift);
    RUN(fd_transformer_conv_projection);
    RUN(fd_transformer_linear_projection);
    RUN(fd_samplers);
    RUN(fd_time_embedding);
    RUN(fd_whole_net_inputs);
    RUN(checkpointing_gives_identical_gradients);
    RUN(steady_state_allocates_nothing);
    RUN(config_quirks);
    RUN(load_pipeline_folder);
    RUN(student_save_and_reload);
    TEST_EXIT();
}
