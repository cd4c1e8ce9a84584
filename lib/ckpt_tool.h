/* ckpt_tool.h - the subcommands of ckpt-tool (man 1 ckpt-tool), one per file.
 * Each takes its own argv (argv[0] is the subcommand's name) and returns the
 * program's exit status, or exits through die()/die_usage(). */
#ifndef LCM_CKPT_TOOL_H
#define LCM_CKPT_TOOL_H

#include <stdio.h>

#include "ckpt_source.h"

int ckpt_ls_main(int argc, char **argv);
int ckpt_stat_main(int argc, char **argv);
int ckpt_diff_main(int argc, char **argv);
int ckpt_convert_main(int argc, char **argv);
int ckpt_cat_main(int argc, char **argv);
int ckpt_verify_main(int argc, char **argv);
int ckpt_lora_export_main(int argc, char **argv);
int ckpt_lora_merge_main(int argc, char **argv);

/* Shared by the subcommands. */
void ckpt_usage(FILE *out);
/* Parses the options every subcommand has (-h/--help) plus its own; returns
 * getopt_long's value for the others, -1 at the end. */
int ckpt_getopt(int argc, char **argv, const char *shortopts, const void *longopts);
ckpt_source *ckpt_open_or_die(const char *path);
/* "[2,4,64,64]" into buf (at least 200 bytes). */
const char *ckpt_shape(char *buf, int ndim, const int64_t *shape);
/* "record 3: latent" or "unet/conv_in.weight" into buf (at least 300 bytes). */
const char *ckpt_label(char *buf, const ckpt_record *r, const char *name);

#endif
