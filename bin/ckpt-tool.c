/* ckpt-tool - inspect, compare, convert and verify checkpoints and frame
 * streams (man 1 ckpt-tool). The subcommands live in lib/ckpt_*.c. */
#include <stdio.h>
#include <string.h>

#include "ckpt_tool.h"
#include "util.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"ls", ckpt_ls_main},           {"stat", ckpt_stat_main}, {"diff", ckpt_diff_main},
    {"convert", ckpt_convert_main}, {"cat", ckpt_cat_main},   {"verify", ckpt_verify_main},
    {"lora-export", ckpt_lora_export_main}, {"lora-merge", ckpt_lora_merge_main},
};

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    if (argc < 2) die_usage("a command is needed (ls, stat, diff, convert, cat, verify, lora-export, lora-merge)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        ckpt_usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ckpt-tool lcm-tools %s\n", LCM_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    die_usage("unknown command: %s", argv[1]);
}
