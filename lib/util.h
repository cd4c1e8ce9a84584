/* util.h - errors, allocation and file helpers shared by every program.
 *
 * Conventions: library functions report failure by returning non-zero and
 * leaving a one-line message in a caller-supplied or thread-local buffer;
 * programs turn that into "prog: message" on stderr and exit status 1. */
#ifndef LCM_UTIL_H
#define LCM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LCM_ERRLEN 512

/* Exit statuses of every program (interfaces.md §2). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

extern const char *lcm_progname;

/* Sets the program name for messages and ignores SIGPIPE so that a closed
 * downstream pipe shows up as EPIPE, which the writers treat as a clean end. */
void lcm_init(const char *argv0);

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void die_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A function die() and die_usage() run before they exit (e.g. stopping child
 * processes); one at most. */
void lcm_on_fatal(void (*fn)(void));

/* Allocation that never returns NULL: out of memory is fatal. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* 64-byte aligned allocation, for tensor data and SIMD loops. */
void *xaligned_alloc(size_t n);

/* Formats into buf (LCM_ERRLEN bytes); returns -1 so that callers can write
 * `return seterr(err, "...")`. */
int seterr(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file into a NUL-terminated heap buffer. */
int read_file(const char *path, char **data, size_t *len, char *err);

/* Atomic output: write to "<path>.tmp.<pid>" and rename over path on commit,
 * so that a reader never sees a half-written file. */
typedef struct atomic_file {
    FILE *f;
    char *path;
    char *tmp;
} atomic_file;
int atomic_open(atomic_file *af, const char *path, char *err);
int atomic_commit(atomic_file *af, char *err);
void atomic_abort(atomic_file *af);

/* Same for a whole directory: build under a temporary name, then rename. */
int path_exists(const char *path);
int is_dir(const char *path);
int mkdir_p(const char *path, char *err);
int rm_rf(const char *path);
char *path_join(const char *a, const char *b);

/* Progress goes to stderr only when it is a terminal or --progress asked. */
int progress_wanted(int forced);

double now_seconds(void);

#endif
