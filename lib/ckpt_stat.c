/* ckpt_stat.c - ckpt-tool stat: summary statistics per tensor. */
#include <fnmatch.h>
#include <getopt.h>

#include "ckpt_tool.h"
#include "util.h"

int ckpt_stat_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"match", required_argument, 0, 'm'}, {0, 0, 0, 0}};
    const char *match = NULL;
    int c;
    while ((c = ckpt_getopt(argc, argv, "hm:", opts)) != -1)
        if (c == 'm') match = optarg;
    if (argc - optind != 1) die_usage("stat: expects one PATH");
    ckpt_source *s = ckpt_open_or_die(argv[optind]);
    const ckpt_record *r;
    char err[LCM_ERRLEN], shape[200], label[300];
    int rc;
    while ((rc = ckpt_next(s, &r, err)) == 1)
        for (int i = 0; i < r->n; i++) {
            const ckpt_item *it = &r->items[i];
            if (match && fnmatch(match, it->name, 0)) continue;
            tensor_stats st;
            item_stats(it, &st);
            printf("%s %s %s min=%.9g max=%.9g mean=%.9g std=%.9g nan=%llu inf=%llu\n", ckpt_label(label, r, it->name),
                   dtype_name(it->dtype), ckpt_shape(shape, it->ndim, it->shape), st.min, st.max, st.mean, st.std,
                   (unsigned long long)st.nan, (unsigned long long)st.inf);
        }
    if (rc < 0) die("%s", err);
    ckpt_close(s);
    return EXIT_OK;
}
