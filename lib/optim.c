/* optim.c - see optim.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "backend.h"
#include "util.h"

const char *const lr_kind_names[] = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", NULL};

int lr_kind_parse(const char *name, lr_kind *out) {
    for (int i = 0; lr_kind_names[i]; i++)
        if (!strcmp(name, lr_kind_names[i])) {
            *out = (lr_kind)i;
            return 0;
        }
    return -1;
}

static double max1(double x) { return x > 1 ? x : 1; }

double lr_at(const lr_schedule *s, int64_t step) {
    double W = (double)s->warmup_steps, S = (double)s->total_steps, t = (double)step, f;
    if (s->kind != LR_CONSTANT && t < W) return s->base_lr * t / max1(W);
    double progress = (t - W) / max1(S - W);
    switch (s->kind) {
    case LR_CONSTANT:
    case LR_CONSTANT_WITH_WARMUP: f = 1; break;
    case LR_LINEAR: f = fmax(0.0, (S - t) / max1(S - W)); break;
    case LR_COSINE: f = fmax(0.0, 0.5 * (1 + cos(M_PI * 0.5 * 2 * progress))); break;
    case LR_COSINE_WITH_RESTARTS: f = progress >= 1 ? 0 : fmax(0.0, 0.5 * (1 + cos(M_PI * fmod(progress, 1.0)))); break;
    case LR_POLYNOMIAL: {
        const double lr_end = 1e-7, lr0 = s->base_lr;
        if (t > S) f = lr_end / lr0;
        else f = ((lr0 - lr_end) * (1 - (t - W) / (S - W)) + lr_end) / lr0;
        break;
    }
    default: f = 1;
    }
    return s->base_lr * f;
}

tensor params_values(const params *ps) {
    return tensor_view(ps->backend, DT_F32, 1, (int64_t[]){(int64_t)ps->total}, ps->data);
}

float *params_values_to_host(const params *ps) {
    float *host = xmalloc(sizeof(float) * ps->total);
    tensor all = params_values(ps);
    tensor_to_host(&all, host);
    return host;
}

tensor params_grads(const params *ps) {
    return tensor_view(ps->backend, DT_F32, 1, (int64_t[]){(int64_t)ps->total}, ps->grad);
}

void adamw_init(adamw_state *o, const params *ps, float beta1, float beta2, float eps, float weight_decay) {
    memset(o, 0, sizeof *o);
    int64_t n = (int64_t)ps->total;
    o->m = tensor_view(ps->backend, DT_F32, 1, &n, ps->backend->alloc((size_t)n * 4));
    o->v = tensor_view(ps->backend, DT_F32, 1, &n, ps->backend->alloc((size_t)n * 4));
    op_fill(&o->m, 0), op_fill(&o->v, 0);
    o->hp = (adamw_params){.beta1 = beta1, .beta2 = beta2, .eps = eps, .weight_decay = weight_decay};
}

void adamw_free(adamw_state *o) {
    if (o->m.data) o->m.backend->free(o->m.data);
    if (o->v.data) o->v.backend->free(o->v.data);
    memset(o, 0, sizeof *o);
}

void adamw_step(adamw_state *o, params *ps, float lr) {
    tensor w = params_values(ps), g = params_grads(ps);
    o->hp.lr = lr;
    o->hp.step = ++o->step;
    op_adamw(&w, &g, &o->m, &o->v, o->hp);
}

double grad_norm(const params *ps) {
    tensor g = params_grads(ps);
    return sqrt(op_sumsq(&g));
}

void clip_grads(params *ps, double norm, double max_norm) {
    double coef = max_norm / (norm + 1e-6);
    if (coef > 1) coef = 1;
    tensor g = params_grads(ps);
    op_axpby(&g, (float)coef, &g, 0, NULL);
}

void ema_update(params *target, const params *src, float decay) {
    if (target->total != src->total) die("ema_update: %zu parameters against %zu", target->total, src->total);
    tensor t = params_values(target), s = params_values(src);
    op_axpby(&t, decay, &t, 1.0f - decay, &s);
}
