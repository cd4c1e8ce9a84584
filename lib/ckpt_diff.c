/* ckpt_diff.c - ckpt-tool diff: compares two checkpoints or streams tensor
 * by tensor (streams record by record). A fault is a tensor whose max
 * absolute difference is over the tolerance, a tensor missing on either
 * side, a shape mismatch, or (streams) a non-tensor value that differs or a
 * record missing on either side. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_tool.h"
#include "safetensors.h"
#include "util.h"

typedef struct diff_state {
    double tol;
    int quiet;
    long long compared, over, missing, extra, mismatched, other;
} diff_state;

/* Max |a-b| and ||a-b|| / ||b|| over n elements. A NaN on both sides at the
 * same place counts as equal; a NaN on one side is an infinite difference. */
static void compare(const ckpt_item *a, const ckpt_item *b, double *max_abs, double *rel_l2) {
    enum { CHUNK = 4096 };
    static double x[CHUNK], y[CHUNK];
    size_t n = (size_t)shape_numel(a->ndim, a->shape);
    double worst = 0, d2 = 0, b2 = 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        st_load_f64(a->data, a->dtype, i, k, x);
        st_load_f64(b->data, b->dtype, i, k, y);
        for (size_t j = 0; j < k; j++) {
            double d;
            if (isnan(x[j]) || isnan(y[j])) d = isnan(x[j]) && isnan(y[j]) ? 0 : INFINITY;
            else if (x[j] == y[j]) d = 0; /* equal infinities too */
            else d = fabs(x[j] - y[j]);
            if (d > worst) worst = d;
            d2 += d * d;
            if (isfinite(y[j])) b2 += y[j] * y[j];
        }
    }
    *max_abs = worst;
    *rel_l2 = d2 == 0 ? 0 : b2 == 0 ? INFINITY : sqrt(d2) / sqrt(b2);
}

static void diff_tensors(diff_state *st, const ckpt_record *ra, const ckpt_item *a, const ckpt_item *b) {
    char label[300], sa[200], sb[200];
    ckpt_label(label, ra, a->name);
    if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof *a->shape * (size_t)a->ndim)) {
        st->mismatched++;
        printf("shape %s: %s vs %s\n", label, ckpt_shape(sa, a->ndim, a->shape), ckpt_shape(sb, b->ndim, b->shape));
        return;
    }
    double max_abs, rel;
    compare(a, b, &max_abs, &rel);
    st->compared++;
    int bad = !(max_abs <= st->tol);
    st->over += bad;
    if (bad || !st->quiet) printf("%s %s max_abs=%.9g rel_l2=%.9g\n", bad ? "DIFF" : "ok", label, max_abs, rel);
}

/* Frames: non-tensor values must be byte for byte the same. */
static void diff_values(diff_state *st, const ckpt_record *ra, const ckpt_record *rb) {
    for (int i = 0; i < ra->frame->n; i++) {
        const frame_entry *e = &ra->frame->entries[i];
        if (e->value.kind == FV_TENSOR) continue;
        char *key = strndup(e->key, e->key_len);
        const frame_value *v = frame_get(rb->frame, key);
        char label[300];
        ckpt_label(label, ra, key);
        if (!v) st->missing++, printf("missing in B: %s\n", label);
        else if (v->raw_len != e->value.raw_len || memcmp(v->raw, e->value.raw, v->raw_len))
            st->other++, printf("DIFF %s: values differ\n", label);
        free(key);
    }
    for (int i = 0; i < rb->frame->n; i++) {
        const frame_entry *e = &rb->frame->entries[i];
        char *key = strndup(e->key, e->key_len);
        char label[300];
        if (e->value.kind != FV_TENSOR && !frame_get(ra->frame, key))
            st->extra++, printf("extra in B: %s\n", ckpt_label(label, rb, key));
        free(key);
    }
}

static void diff_records(diff_state *st, const ckpt_record *ra, const ckpt_record *rb) {
    char label[300];
    for (int i = 0; i < ra->n; i++) {
        const ckpt_item *b = ckpt_find(rb, ra->items[i].name);
        if (b) diff_tensors(st, ra, &ra->items[i], b);
        else st->missing++, printf("missing in B: %s\n", ckpt_label(label, ra, ra->items[i].name));
    }
    for (int i = 0; i < rb->n; i++)
        if (!ckpt_find(ra, rb->items[i].name))
            st->extra++, printf("extra in B: %s\n", ckpt_label(label, rb, rb->items[i].name));
    if (ra->frame && rb->frame) diff_values(st, ra, rb);
}

int ckpt_diff_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"tol", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {0, 0, 0, 0}};
    diff_state st = {0};
    int c;
    char *end;
    while ((c = ckpt_getopt(argc, argv, "ht:q", opts)) != -1) {
        if (c == 'q') st.quiet = 1;
        if (c == 't' && (st.tol = strtod(optarg, &end), *end || end == optarg || !(st.tol >= 0)))
            die_usage("diff: --tol: not a non-negative number: %s", optarg);
    }
    if (argc - optind != 2) die_usage("diff: expects two paths, A and B");
    ckpt_source *a = ckpt_open_or_die(argv[optind]), *b = ckpt_open_or_die(argv[optind + 1]);
    char err[LCM_ERRLEN];
    const ckpt_record *ra, *rb;
    long long records = 0;
    for (;;) {
        int ka = ckpt_next(a, &ra, err);
        if (ka < 0) die("%s", err);
        int kb = ckpt_next(b, &rb, err);
        if (kb < 0) die("%s", err);
        if (!ka && !kb) break;
        if (ka != kb) {
            st.missing++;
            printf("%s ends after %lld records, %s has more\n", ka ? argv[optind + 1] : argv[optind], records,
                   ka ? argv[optind] : argv[optind + 1]);
            break;
        }
        records++;
        diff_records(&st, ra, rb);
    }
    long long faults = st.over + st.missing + st.extra + st.mismatched + st.other;
    printf("%s: %lld tensors compared, %lld over tolerance %g, %lld missing, %lld extra, %lld shape mismatches",
           faults ? "differ" : "same", st.compared, st.over, st.tol, st.missing, st.extra, st.mismatched);
    if (st.other) printf(", %lld other values differ", st.other);
    printf("\n");
    ckpt_close(a);
    ckpt_close(b);
    return faults ? EXIT_RUNTIME : EXIT_OK;
}
