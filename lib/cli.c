/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

void cli_version(void) {
    printf("%s lcm-tools %s\n", lcm_progname, LCM_VERSION);
    exit(EXIT_OK);
}

void cli_help(const char *usage) {
    fputs(usage, stdout);
    exit(EXIT_OK);
}

long long cli_int(const char *opt, const char *value, long long min, long long max) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max)
        die_usage("--%s: '%s' is not an integer in [%lld, %lld]", opt, value, min, max);
    return v;
}

double cli_double(const char *opt, const char *value, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < min || v > max)
        die_usage("--%s: '%s' is not a number in [%g, %g]", opt, value, min, max);
    return v;
}

int cli_choice(const char *opt, const char *value, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(value, names[i])) return i;
    char list[256] = "";
    for (int i = 0; names[i]; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    die_usage("--%s: '%s' is not one of %s", opt, value, list);
}

const backend *cli_backend(const char *name) {
    if (!name) return backend_default();
    char err[LCM_ERRLEN];
    const backend *be = backend_by_name(name, err);
    if (!be) die_usage("--backend: %s", err);
    return be;
}

dtype_id cli_float_dtype(const char *opt, const char *value) {
    static const char *const names[] = {"f32", "f16", "bf16", NULL};
    static const dtype_id ids[] = {DT_F32, DT_F16, DT_BF16};
    return ids[cli_choice(opt, value, names)];
}
