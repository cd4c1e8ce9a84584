/* util.c - see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a fatal error leaves allocated is not a leak: under AddressSanitizer
 * a fatal exit skips the atexit leak check: the streams are flushed and the
 * lcm_on_fatal hook runs first, so nothing else of note is skipped. */
#ifdef __SANITIZE_ADDRESS__
#define fatal_exit(code) (on_fatal ? on_fatal() : (void)0, fflush(NULL), _exit(code))
#else
#define fatal_exit(code) (on_fatal ? on_fatal() : (void)0, exit(code))
#endif

const char *lcm_progname = "lcm";
static void (*on_fatal)(void);

void lcm_on_fatal(void (*fn)(void)) { on_fatal = fn; }

void lcm_init(const char *argv0) {
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    lcm_progname = slash ? slash + 1 : (argv0 ? argv0 : "lcm");
    signal(SIGPIPE, SIG_IGN);
}

static void vmessage(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", lcm_progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fatal_exit(EXIT_RUNTIME);
}

void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", lcm_progname);
    fatal_exit(EXIT_USAGE);
}

void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) die("out of memory allocating %zu bytes", n);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

void *xaligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) die("out of memory allocating %zu bytes", n);
    return p;
}

int seterr(char *buf, const char *fmt, ...) {
    if (buf) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, LCM_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int read_file(const char *path, char **data, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return seterr(err, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return 0;
}

int atomic_open(atomic_file *af, const char *path, char *err) {
    af->path = xstrdup(path);
    af->tmp = xmalloc(strlen(path) + 32);
    sprintf(af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        seterr(err, "%s: %s", af->tmp, strerror(errno));
        free(af->path);
        free(af->tmp);
        af->path = af->tmp = NULL;
        return -1;
    }
    return 0;
}

int atomic_commit(atomic_file *af, char *err) {
    int rc = 0;
    if (fflush(af->f) || fsync(fileno(af->f))) rc = seterr(err, "%s: %s", af->tmp, strerror(errno));
    if (fclose(af->f) && !rc) rc = seterr(err, "%s: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (!rc && rename(af->tmp, af->path)) rc = seterr(err, "%s: %s", af->path, strerror(errno));
    if (rc) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    return rc;
}

void atomic_abort(atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    af->f = NULL;
    af->path = af->tmp = NULL;
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mkdir_p(const char *path, char *err) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            seterr(err, "%s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0777) && errno != EEXIST) rc = seterr(err, "%s: %s", p, strerror(errno));
    free(p);
    return rc;
}

int rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = path_join(path, e->d_name);
        rc |= rm_rf(sub);
        free(sub);
    }
    closedir(d);
    return rc | rmdir(path);
}

char *path_join(const char *a, const char *b) {
    size_t na = strlen(a);
    char *p = xmalloc(na + strlen(b) + 2);
    sprintf(p, "%s%s%s", a, (na && a[na - 1] == '/') ? "" : "/", b);
    return p;
}

int progress_wanted(int forced) {
    return forced || isatty(STDERR_FILENO);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
