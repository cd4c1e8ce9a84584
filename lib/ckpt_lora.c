/* ckpt_lora.c - ckpt-tool lora-export and lora-merge: a LoRA file from
 * lcm-step (or diffusers' save_lora_weights) rewritten in kohya's layout for
 * stable-diffusion.cpp and A1111, or baked into a UNet folder for tools that
 * take no adapters. The LoRA file layouts and the merge are unet_lora.c's. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ckpt_tool.h"
#include "cli.h"
#include "unet_lora.h"
#include "util.h"

int ckpt_lora_export_main(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *format = NULL;
    int c;
    while ((c = ckpt_getopt(argc, argv, "h", opts)) != -1)
        if (c == 'f') format = optarg;
    if (argc - optind != 2) die_usage("lora-export: IN and OUT are needed");
    if (!format) die_usage("lora-export: --format is needed (kohya)");
    if (strcmp(format, "kohya")) die_usage("lora-export: --format '%s': only kohya is supported", format);
    char err[LCM_ERRLEN];
    int skipped;
    if (unet_lora_to_kohya(argv[optind], argv[optind + 1], &skipped, err)) die("%s", err);
    if (skipped) warn("%s: %d tensors that are not UNet adapters left out", argv[optind], skipped);
    return EXIT_OK;
}

int ckpt_lora_merge_main(int argc, char **argv) {
    static const struct option opts[] = {{"scale", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    double scale = 1.0;
    int c;
    while ((c = ckpt_getopt(argc, argv, "h", opts)) != -1)
        if (c == 's') scale = cli_double("scale", optarg, -1000.0, 1000.0);
    if (argc - optind != 3) die_usage("lora-merge: UNET_DIR, LORA_FILE and OUT_DIR are needed");
    const char *unet_dir = argv[optind], *lora_file = argv[optind + 1], *out = argv[optind + 2];
    char err[LCM_ERRLEN];
    unet_model m;
    unet_lora l;
    const backend *cpu = backend_by_name("cpu", err);
    if (!cpu) die("%s", err);
    if (unet_load(&m, unet_dir, cpu, 0, err)) die("%s", err);
    if (unet_lora_open(&l, &m, lora_file, (float)scale, err)) die("%s", err);
    unet_lora_merge(&m, &l);
    if (unet_save(&m, out, err)) die("%s", err);
    fprintf(stderr, "ckpt-tool: %d adapters of rank %d merged at scale %g (--scale %g x alpha %g / rank %d) into %s\n", l.n,
            l.rank, l.scale, scale, l.alpha, l.rank, out);
    unet_lora_free(&l);
    unet_free(&m);
    return EXIT_OK;
}
