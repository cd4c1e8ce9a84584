/* The op harness: every op on every backend present, against the CPU
 * reference (as ggml's test-backend-ops does), plus checks of the CPU
 * reference itself against plain loops. On a machine without a GPU the CUDA
 * cases are reported as skipped; `scripts/gpu-check` runs them on one. */
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "util.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static tensor *random_tensor(const backend *be, int ndim, const int64_t *shape) {
    tensor *t = tensor_new(be, DT_F32, ndim, shape);
    float *host = xmalloc(tensor_nbytes(t));
    for (int64_t i = 0; i < tensor_numel(t); i++) host[i] = 2 * frand();
    tensor_from_host(t, host);
    free(host);
    return t;
}

static double compare(const tensor *got, const tensor *want) {
    size_t n = (size_t)tensor_numel(want);
    float *a = xmalloc(n * 4), *b = xmalloc(n * 4);
    tensor_to_host(got, a);
    tensor_to_host(want, b);
    double err = max_rel_err(a, b, n, 1e-6);
    free(a), free(b);
    return err;
}

/* One case: the op run on `be` and on the CPU with the same inputs. */
typedef struct op_case {
    const char *name;
    void (*run)(const backend *be, tensor **in, tensor *out);
    int n_in;
    int64_t in_shape[3][2];
    int64_t out_shape[2];
    double tol;
} op_case;

static void run_axpby(const backend *be, tensor **in, tensor *out) { op_axpby(out, 0.5f, in[0], -1.25f, in[1]); }
static void run_scale(const backend *be, tensor **in, tensor *out) { op_axpby(out, 3.0f, in[0], 0, NULL); }
static void run_mul(const backend *be, tensor **in, tensor *out) { op_mul(out, in[0], in[1]); }
static void run_silu(const backend *be, tensor **in, tensor *out) { op_silu(out, in[0]); }
static void run_silu_bwd(const backend *be, tensor **in, tensor *out) { op_silu_backward(out, in[0], in[1]); }
static void run_fill(const backend *be, tensor **in, tensor *out) { op_fill(out, 0.75f); }
static void run_gemm_nn(const backend *be, tensor **in, tensor *out) { op_gemm(out, in[0], 0, in[1], 0, 1.0f, 0.0f); }
static void run_gemm_tn(const backend *be, tensor **in, tensor *out) { op_gemm(out, in[0], 1, in[1], 0, 0.5f, 0.0f); }
static void run_gemm_nt_beta(const backend *be, tensor **in, tensor *out) {
    tensor_copy(out, in[2]);
    op_gemm(out, in[0], 0, in[1], 1, 1.0f, 1.0f);
}
/* f32 -> f16 -> f32 through the backend's converter. */
static void run_convert_f16(const backend *be, tensor **in, tensor *out) {
    tensor *h = tensor_new(be, DT_F16, in[0]->ndim, in[0]->shape);
    op_convert(h, in[0]);
    op_convert(out, h);
    tensor_free(h);
}
static void run_convert_bf16(const backend *be, tensor **in, tensor *out) {
    tensor *h = tensor_new(be, DT_BF16, in[0]->ndim, in[0]->shape);
    op_convert(h, in[0]);
    op_convert(out, h);
    tensor_free(h);
}

static const op_case cases[] = {
    {"fill", run_fill, 0, {{0}}, {37, 129}, 0},
    {"axpby", run_axpby, 2, {{37, 129}, {37, 129}}, {37, 129}, 1e-6},
    {"scale", run_scale, 1, {{1000, 3}}, {1000, 3}, 1e-6},
    {"mul", run_mul, 2, {{5, 77}, {5, 77}}, {5, 77}, 1e-6},
    {"silu", run_silu, 1, {{300, 301}}, {300, 301}, 1e-6},
    {"silu_backward", run_silu_bwd, 2, {{64, 65}, {64, 65}}, {64, 65}, 1e-6},
    {"gemm_nn", run_gemm_nn, 2, {{33, 70}, {70, 45}}, {33, 45}, 1e-5},
    {"gemm_tn", run_gemm_tn, 2, {{70, 33}, {70, 45}}, {33, 45}, 1e-5},
    {"gemm_nt_beta", run_gemm_nt_beta, 3, {{33, 70}, {45, 70}, {33, 45}}, {33, 45}, 1e-5},
    {"convert_f16", run_convert_f16, 1, {{17, 1000}}, {17, 1000}, 0},
    {"convert_bf16", run_convert_bf16, 1, {{17, 1000}}, {17, 1000}, 0},
};

/* Runs every case on be and on the CPU; prints one PASS/FAIL/SKIP line each. */
static void harness(const backend *be) {
    char err[LCM_ERRLEN];
    int usable = be->probe(err) == 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const op_case *oc = &cases[c];
        char name[96];
        snprintf(name, sizeof name, "%s_%s", be->name, oc->name);
        if (!usable) {
            printf("SKIP %s: %s\n", name, err);
            continue;
        }
        tensor *in_be[3] = {0}, *in_cpu[3] = {0};
        for (int i = 0; i < oc->n_in; i++) {
            in_cpu[i] = random_tensor(backend_cpu(), 2, oc->in_shape[i]);
            in_be[i] = tensor_clone(in_cpu[i], be, DT_F32);
        }
        tensor *out_be = tensor_new(be, DT_F32, 2, oc->out_shape);
        tensor *out_cpu = tensor_new(backend_cpu(), DT_F32, 2, oc->out_shape);
        oc->run(be, in_be, out_be);
        oc->run(backend_cpu(), in_cpu, out_cpu);
        be->synchronize();
        double e = compare(out_be, out_cpu);
        if (e <= oc->tol) printf("PASS %s (max rel err %.2g)\n", name, e);
        else printf("FAIL %s: max rel err %.3g > %.3g\n", name, e, oc->tol), test_failed_count_++;
        for (int i = 0; i < oc->n_in; i++) tensor_free(in_be[i]), tensor_free(in_cpu[i]);
        tensor_free(out_be), tensor_free(out_cpu);
    }
}

/* A backend table with a missing op would crash at its first use. */
TEST(every_backend_has_every_op) {
    for (const backend *const *b = backend_list(); *b; b++) {
        const void *const *fn = (const void *const *)&(*b)->ops;
        for (size_t i = 0; i < sizeof(backend_ops) / sizeof(void *); i++) CHECKF(fn[i] != NULL, "%s: op %zu missing", (*b)->name, i);
    }
}

/* The reference itself, against plain loops. */
TEST(cpu_gemm_against_loops) {
    int64_t sa[2] = {7, 5}, sb[2] = {5, 3}, sc[2] = {7, 3};
    tensor *a = random_tensor(NULL, 2, sa), *b = random_tensor(NULL, 2, sb), *c = tensor_new(NULL, DT_F32, 2, sc);
    op_gemm(c, a, 0, b, 0, 2.0f, 0.0f);
    const float *A = a->data, *B = b->data, *C = c->data;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 5; k++) s += A[i * 5 + k] * B[k * 3 + j];
            CHECK_NEAR(C[i * 3 + j], 2 * s, 1e-5);
        }
    tensor_free(a), tensor_free(b), tensor_free(c);
}

/* silu_backward is the derivative of silu: central differences. */
TEST(cpu_silu_backward_is_derivative) {
    for (float x = -6; x <= 6; x += 0.37f) {
        float xs[3] = {x - 1e-3f, x, x + 1e-3f}, ys[3], one = 1, d;
        tensor tx = tensor_view(NULL, DT_F32, 1, (int64_t[]){3}, xs), ty = tensor_view(NULL, DT_F32, 1, (int64_t[]){3}, ys);
        op_silu(&ty, &tx);
        tensor t1 = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &xs[1]);
        tensor tg = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &one), td = tensor_view(NULL, DT_F32, 1, (int64_t[]){1}, &d);
        op_silu_backward(&td, &t1, &tg);
        CHECK_NEAR(d, (ys[2] - ys[0]) / (xs[2] - xs[0]), 2e-3);
    }
}

TEST(cpu_sum) {
    int64_t s[1] = {100001};
    tensor *t = tensor_new(NULL, DT_F32, 1, s);
    op_fill(t, 0.5f);
    CHECK_NEAR(op_sum(t), 50000.5, 1e-9);
    tensor_free(t);
}

int main(void) {
    RUN(every_backend_has_every_op);
    RUN(cpu_gemm_against_loops);
    RUN(cpu_silu_backward_is_derivative);
    RUN(cpu_sum);
    for (const backend *const *b = backend_list(); *b; b++) harness(*b);
    TEST_EXIT();
}
