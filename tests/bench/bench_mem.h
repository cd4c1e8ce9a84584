/* bench_mem.h - the peak resident memory of a benchmark's measured part.
 *
 * Writing "5" to /proc/self/clear_refs resets the kernel's high-water mark
 * (VmHWM), so the peak read afterwards covers only what ran after the reset
 * (the model's weights, resident by then, included), not the loading. The
 * Python side of each benchmark does the same, so both peaks are alike.
 * Falls back to getrusage's whole-process ru_maxrss where /proc is missing. */
#ifndef LCM_BENCH_MEM_H
#define LCM_BENCH_MEM_H

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static inline void bench_peak_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* MiB. */
static inline double bench_peak_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return (double)kb / 1024.0;
}

#endif
