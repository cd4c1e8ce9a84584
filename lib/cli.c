/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
