/* ckpt_tool.c - usage and helpers shared by the ckpt-tool subcommands. */
#include "ckpt_tool.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void ckpt_usage(FILE *out) {
    fprintf(out,
            "Usage: ckpt-tool COMMAND [OPTION]... PATH...\n"
            "Inspect, compare, convert and check checkpoints and frame streams.\n"
            "PATH is a safetensors file, a diffusers model or pipeline folder, or a frame stream (- for stdin).\n"
            "\n"
            "Commands:\n"
            "  ls PATH                 one line per tensor: name, dtype, shape, element count; then a total\n"
            "  stat PATH [--match GLOB]  min, max, mean, std, NaN and Inf counts per tensor\n"
            "  diff A B [--tol X] [--quiet]  max abs and relative L2 difference per tensor;\n"
            "                          exit 1 if any is over X (default 0) or tensors are missing/mismatched\n"
            "  convert IN OUT --dtype f16|bf16|f32  rewrite a safetensors file or folder with floating\n"
            "                          tensors converted (atomically)\n"
            "  cat PATH [-n N]         records as JSON lines\n"
            "  verify PATH             check everything; exit 1 at the first fault\n"
            "  lora-export IN OUT --format kohya  rewrite a diffusers-layout LoRA file\n"
            "                          (pytorch_lora_weights.safetensors) in kohya's layout\n"
            "                          (lora_unet_*.lora_down/lora_up/alpha), atomically\n"
            "  lora-merge UNET_DIR LORA_FILE OUT_DIR [--scale S]  bake the adapters into the UNet:\n"
            "                          W += S * alpha/rank * (B @ A); OUT_DIR written atomically\n"
            "\n"
            "Options:\n"
            "  -h, --help              show this help and exit\n"
            "      --version           show the version and exit\n"
            "\n"
            "Exit status: 0 ok, 1 data or runtime error (or differences, for diff), 2 usage error.\n");
}

int ckpt_getopt(int argc, char **argv, const char *shortopts, const void *longopts) {
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == 'h') {
        ckpt_usage(stdout);
        exit(EXIT_OK);
    }
    if (c == '?') die_usage("%s: invalid option", argv[0]);
    return c;
}

ckpt_source *ckpt_open_or_die(const char *path) {
    char err[LCM_ERRLEN];
    ckpt_source *s = ckpt_open(path, err);
    if (!s) die("%s", err);
    return s;
}

const char *ckpt_shape(char *buf, int ndim, const int64_t *shape) {
    int n = sprintf(buf, "[");
    for (int i = 0; i < ndim; i++) n += sprintf(buf + n, "%s%lld", i ? "," : "", (long long)shape[i]);
    sprintf(buf + n, "]");
    return buf;
}

const char *ckpt_label(char *buf, const ckpt_record *r, const char *name) {
    if (r->number < 0) snprintf(buf, 300, "%s", name);
    else snprintf(buf, 300, "record %lld: %s", (long long)r->number, name);
    return buf;
}
