/* ckpt_verify.c - ckpt-tool verify: reads everything; the first fault ends
 * it with exit status 1. NaN and Inf in floating tensors are warnings. */
#include <getopt.h>

#include "ckpt_tool.h"
#include "util.h"

int ckpt_verify_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while (ckpt_getopt(argc, argv, "h", opts) != -1) {}
    if (argc - optind != 1) die_usage("verify: expects one PATH");
    const char *path = argv[optind];
    ckpt_source *s = ckpt_open_or_die(path); /* checkpoints: every header checked here */
    const ckpt_record *r;
    char err[LCM_ERRLEN], label[300];
    long long records = 0, tensors = 0, bytes = 0, warnings = 0;
    int rc;
    while ((rc = ckpt_next(s, &r, err)) == 1) {
        records++;
        for (int i = 0; i < r->n; i++) {
            const ckpt_item *it = &r->items[i];
            tensors++, bytes += (long long)it->nbytes;
            if (!dtype_is_float(it->dtype)) continue;
            tensor_stats st;
            item_stats(it, &st);
            if (st.nan || st.inf) {
                warnings++;
                warn("warning: %s: %s: %llu NaN, %llu Inf of %llu values", path, ckpt_label(label, r, it->name),
                     (unsigned long long)st.nan, (unsigned long long)st.inf, (unsigned long long)st.count);
            }
        }
    }
    if (rc < 0) die("%s", err);
    if (ckpt_kind_of(s) == CK_FRAMES) printf("%s: ok: %lld records, %lld tensors, %lld tensor bytes, %lld warnings\n", path, records, tensors, bytes, warnings);
    else printf("%s: ok: %lld tensors, %lld tensor bytes, %lld warnings\n", path, tensors, bytes, warnings);
    ckpt_close(s);
    return EXIT_OK;
}
