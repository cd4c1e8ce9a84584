/* ckpt_ls.c - ckpt-tool ls: one line per tensor and a total. */
#include <getopt.h>

#include "ckpt_tool.h"
#include "util.h"

int ckpt_ls_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while (ckpt_getopt(argc, argv, "h", opts) != -1) {}
    if (argc - optind != 1) die_usage("ls: expects one PATH");
    ckpt_source *s = ckpt_open_or_die(argv[optind]);
    const ckpt_record *r;
    char err[LCM_ERRLEN], shape[200];
    long long tensors = 0, records = 0, elements = 0, bytes = 0;
    int rc;
    while ((rc = ckpt_next(s, &r, err)) == 1) {
        records++;
        for (int i = 0; i < r->n; i++) {
            const ckpt_item *it = &r->items[i];
            long long numel = shape_numel(it->ndim, it->shape);
            if (r->number >= 0) printf("%lld ", (long long)r->number);
            printf("%s %s %s %lld\n", it->name, dtype_name(it->dtype), ckpt_shape(shape, it->ndim, it->shape), numel);
            tensors++, elements += numel, bytes += (long long)it->nbytes;
        }
    }
    if (rc < 0) die("%s", err);
    if (ckpt_kind_of(s) == CK_FRAMES) printf("total: %lld records, ", records);
    else printf("total: ");
    printf("%lld tensors, %lld elements, %lld bytes\n", tensors, elements, bytes);
    ckpt_close(s);
    return EXIT_OK;
}
