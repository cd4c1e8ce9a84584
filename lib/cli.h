/* cli.h - what every program's command line shares: --help and --version
 * output, and number parsing that names the option on a bad value (exit 2). */
#ifndef LCM_CLI_H
#define LCM_CLI_H

#include <stdint.h>

#include "dtype.h"

/* Prints "PROG lcm-tools VERSION" and exits 0. */
void cli_version(void) __attribute__((noreturn));
/* Prints the usage text to stdout and exits 0. */
void cli_help(const char *usage) __attribute__((noreturn));

long long cli_int(const char *opt, const char *value, long long min, long long max);
double cli_double(const char *opt, const char *value, double min, double max);
/* One of the given names (NULL-terminated); returns its index. */
int cli_choice(const char *opt, const char *value, const char *const *names);

struct backend;
/* --backend NAME, or $LCM_BACKEND (cpu) when name is NULL; a name that is
 * unknown or cannot run here is a usage error. */
const struct backend *cli_backend(const char *name);
/* --dtype f32|f16|bf16 for written tensors. */
dtype_id cli_float_dtype(const char *opt, const char *value);

#endif
