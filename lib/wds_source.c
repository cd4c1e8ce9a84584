/* wds_source.c - see wds_source.h. */
#include "wds_source.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

enum { SRC_FD, SRC_PIPE, SRC_CURL };

/* A transfer is driven by the multi interface so that reading pulls data on
 * demand: the write callback pauses the transfer while unread data is held,
 * which bounds memory to about one network buffer. */
typedef struct net {
    CURLM *multi;
    CURL *easy;
    uint8_t *buf;
    size_t pos, len, cap;
    int paused, done;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} net;

struct wds_source {
    int kind;
    int fd, owns_fd;
    pid_t pid; /* pipe: the child, 0 once reaped */
    int eof;
    int peeked; /* -1, or a byte wds_source_peek() read ahead */
    uint64_t offset;
    char *url;
    net *net;
    wds_source *next; /* list of open sources, for the exit clean-up */
};

static wds_source *open_sources;

/* Process groups of running pipe: commands, for the signal handler (which
 * must not walk heap lists). */
#define MAX_CHILDREN 64
static volatile sig_atomic_t child_groups[MAX_CHILDREN];

static void remember_child(pid_t pid, int add) {
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (add ? child_groups[i] == 0 : child_groups[i] == pid) {
            child_groups[i] = add ? pid : 0;
            return;
        }
}

/* Interrupted: stop the commands we started, then die of the same signal. */
static void on_fatal_signal(int sig) {
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (child_groups[i] > 0) kill(-(pid_t)child_groups[i], SIGTERM);
    signal(sig, SIG_DFL);
    raise(sig);
}

void wds_source_install_signal_cleanup(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

void wds_source_opts_default(wds_source_opts *o) {
    o->retries = 5;
    o->retry_delay = 1;
    o->connect_timeout = 30;
    o->low_speed_time = 60;
}

/* Python's urlsplit scheme: a letter then letters, digits, "+-." before ':'. */
static size_t scheme_len(const char *url) {
    const char *colon = strchr(url, ':');
    if (!colon || colon == url || !isalpha((unsigned char)url[0])) return 0;
    for (const char *p = url; p < colon; p++)
        if (!isalnum((unsigned char)*p) && !strchr("+-.", *p)) return 0;
    return (size_t)(colon - url);
}

static int scheme_is(const char *url, size_t n, const char *name) { return strlen(name) == n && !strncasecmp(url, name, n); }

static wds_source *new_source(const char *url, int kind) {
    wds_source *s = xcalloc(1, sizeof *s);
    s->kind = kind;
    s->fd = -1;
    s->peeked = -1;
    s->url = xstrdup(url);
    s->next = open_sources;
    open_sources = s;
    return s;
}

static void unlink_source(wds_source *s) {
    for (wds_source **p = &open_sources; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            return;
        }
}

/* ---- files ---- */

static int hexval(int c) { return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10; }

/* The path of a file: URL as urlparse + url2pathname give it: the netloc of
 * file://host/path dropped, query and fragment cut, %XX decoded. */
static char *file_url_path(const char *rest) {
    if (!strncmp(rest, "//", 2)) {
        const char *slash = strchr(rest + 2, '/');
        rest = slash ? slash : "";
    }
    size_t len = strcspn(rest, "?#");
    char *p = xmalloc(len + 1), *w = p;
    for (size_t i = 0; i < len; i++) {
        if (rest[i] == '%' && i + 2 < len && isxdigit((unsigned char)rest[i + 1]) && isxdigit((unsigned char)rest[i + 2])) {
            *w++ = (char)(hexval((unsigned char)rest[i + 1]) * 16 + hexval((unsigned char)rest[i + 2]));
            i += 2;
        } else {
            *w++ = rest[i];
        }
    }
    *w = 0;
    return p;
}

static wds_source *open_file(const char *url, const char *path, char *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seterr(err, "%s: cannot open: %s", url, strerror(errno)), NULL;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return seterr(err, "%s: is a directory", url), NULL;
    }
    wds_source *s = new_source(url, SRC_FD);
    s->fd = fd;
    s->owns_fd = 1;
    return s;
}

/* ---- pipes ---- */

static wds_source *open_pipe(const char *url, const char *cmd, char *err) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) return seterr(err, "%s: pipe: %s", url, strerror(errno)), NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawnattr_init(&attr);
    /* We ignore SIGPIPE ourselves; the command must not inherit that, or it
     * would fail with EPIPE instead of ending quietly when we stop reading. */
    sigset_t dflt;
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &dflt);
    /* Its own process group, so that stopping it early also stops whatever
     * the shell started (cat x | zcat, cmd; sleep ...). */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return seterr(err, "%s: cannot run /bin/sh: %s", url, strerror(rc)), NULL;
    }
    wds_source *s = new_source(url, SRC_PIPE);
    s->fd = fds[0];
    s->owns_fd = 1;
    s->pid = pid;
    remember_child(pid, 1);
    return s;
}

/* Reaps the child; 0 when it ended well (status 0, or 141 / killed by
 * SIGPIPE because an earlier reader stopped early). */
static int reap(wds_source *s, char *err) {
    int st;
    pid_t r;
    while ((r = waitpid(s->pid, &st, 0)) < 0 && errno == EINTR) {}
    remember_child(s->pid, 0);
    s->pid = 0;
    if (r < 0) return seterr(err, "%s: waitpid: %s", s->url, strerror(errno));
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 141)) return 0;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE) return 0;
    if (WIFSIGNALED(st)) return seterr(err, "%s: command killed by signal %d", s->url, WTERMSIG(st));
    return seterr(err, "%s: command exited with status %d", s->url, WEXITSTATUS(st));
}

/* ---- network ---- */

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud) {
    net *c = ud;
    size_t n = size * nmemb;
    if (c->pos == c->len) c->pos = c->len = 0;
    if (c->len + n > c->cap && c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->len + n > c->cap) {
        if (c->len > 0) { /* unread data waits: hold the transfer */
            c->paused = 1;
            return CURL_WRITEFUNC_PAUSE;
        }
        c->buf = xrealloc(c->buf, c->cap = n);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    return n;
}

/* Runs the transfer until unread data is there or it has ended. */
static int pump(net *c, const char *url, char *err) {
    while (c->pos == c->len && !c->done) {
        int running, queued;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK) return seterr(err, "%s: %s", url, curl_multi_strerror(mc));
        CURLMsg *m;
        while ((m = curl_multi_info_read(c->multi, &queued)))
            if (m->msg == CURLMSG_DONE) {
                c->done = 1;
                c->result = m->data.result;
            }
        if (c->pos < c->len || c->done) break;
        mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) return seterr(err, "%s: %s", url, curl_multi_strerror(mc));
    }
    return 0;
}

static void net_free(net *c) {
    if (!c) return;
    if (c->easy) {
        curl_multi_remove_handle(c->multi, c->easy);
        curl_easy_cleanup(c->easy);
    }
    if (c->multi) curl_multi_cleanup(c->multi);
    free(c->buf);
    free(c);
}

static net *net_start(const char *url, const wds_source_opts *o) {
    static int initialised;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialised = 1;
    }
    net *c = xcalloc(1, sizeof *c);
    c->cap = CURL_MAX_WRITE_SIZE * 4;
    c->buf = xmalloc(c->cap);
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (!c->multi || !c->easy) die("cannot initialise libcurl");
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 20L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, o->connect_timeout);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_time);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "wds-cat (lcm-tools " LCM_VERSION ")");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_multi_add_handle(c->multi, e);
    return c;
}

static void net_error(net *c, const char *url, char *err) {
    long code = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    if (c->result == CURLE_HTTP_RETURNED_ERROR) seterr(err, "%s: HTTP error %ld", url, code);
    else seterr(err, "%s: %s", url, c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->result));
}

/* Failures worth another try, as curl --retry sees them. */
static int transient(net *c) {
    long code = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    switch (c->result) {
    case CURLE_HTTP_RETURNED_ERROR: return code == 408 || code == 429 || code == 500 || code == 502 || code == 503 || code == 504;
    case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_PARTIAL_FILE:
        return 1;
    default: return 0;
    }
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static wds_source *open_net(const char *url, const wds_source_opts *o, char *err) {
    double delay = o->retry_delay;
    for (int attempt = 0;; attempt++) {
        net *c = net_start(url, o);
        if (pump(c, url, err)) {
            net_free(c);
            return NULL;
        }
        if (c->pos < c->len || c->result == CURLE_OK) { /* data flows, or an empty body */
            wds_source *s = new_source(url, SRC_CURL);
            s->net = c;
            return s;
        }
        net_error(c, url, err);
        int again = transient(c) && attempt < o->retries;
        net_free(c);
        if (!again) return NULL;
        warn("%s (retrying in %gs)", err, delay);
        sleep_seconds(delay);
        delay = delay * 2 > 60 ? 60 : delay * 2;
    }
}

static ssize_t net_read(wds_source *s, void *buf, size_t n, char *err) {
    net *c = s->net;
    if (c->pos == c->len && c->paused) {
        c->paused = 0;
        curl_easy_pause(c->easy, CURLPAUSE_CONT);
    }
    if (pump(c, s->url, err)) return -1;
    if (c->pos == c->len) {
        if (c->result == CURLE_OK) return 0;
        net_error(c, s->url, err);
        return -1;
    }
    size_t k = c->len - c->pos < n ? c->len - c->pos : n;
    memcpy(buf, c->buf + c->pos, k);
    c->pos += k;
    return (ssize_t)k;
}

/* ---- the interface ---- */

wds_source *wds_source_open(const char *url, const wds_source_opts *o, char *err) {
    if (!strcmp(url, "-")) {
        wds_source *s = new_source(url, SRC_FD);
        s->fd = STDIN_FILENO;
        return s;
    }
    size_t n = scheme_len(url);
    if (n == 0) return open_file(url, url, err);
    const char *rest = url + n + 1;
    if (scheme_is(url, n, "file")) {
        char *path = file_url_path(rest);
        wds_source *s = open_file(url, path, err);
        free(path);
        return s;
    }
    if (scheme_is(url, n, "pipe")) return open_pipe(url, rest, err);
    if (scheme_is(url, n, "gs")) {
        char cmd[8192];
        if (strchr(url, '\'') || strlen(url) > sizeof cmd - 32) return seterr(err, "%s: cannot pass this URL to gsutil", url), NULL;
        snprintf(cmd, sizeof cmd, "exec gsutil cat '%s'", url);
        return open_pipe(url, cmd, err);
    }
    static const char *const net_schemes[] = {"http", "https", "ftp", "ftps", "sftp", "scp", NULL};
    for (const char *const *p = net_schemes; *p; p++)
        if (scheme_is(url, n, *p)) return open_net(url, o, err);
    return seterr(err, "%s: no handler for the URL scheme '%.*s'", url, (int)n, url), NULL;
}

ssize_t wds_source_read(wds_source *s, void *buf, size_t n, char *err) {
    if (s->peeked >= 0 && n > 0) {
        *(uint8_t *)buf = (uint8_t)s->peeked;
        s->peeked = -1;
        s->offset++;
        return 1;
    }
    if (s->eof) return 0;
    ssize_t k;
    if (s->kind == SRC_CURL) {
        k = net_read(s, buf, n, err);
    } else {
        while ((k = read(s->fd, buf, n)) < 0 && errno == EINTR) {}
        if (k < 0) return seterr(err, "%s: read error at byte %llu: %s", s->url, (unsigned long long)s->offset, strerror(errno));
    }
    if (k > 0) s->offset += (uint64_t)k;
    if (k == 0) {
        s->eof = 1;
        if (s->kind == SRC_PIPE && s->pid && reap(s, err)) return -1;
    }
    return k;
}

int wds_source_peek(wds_source *s, char *err) {
    if (s->peeked >= 0) return s->peeked;
    uint8_t b;
    ssize_t k = wds_source_read(s, &b, 1, err);
    if (k <= 0) return k == 0 ? -1 : -2;
    s->offset--; /* not consumed yet */
    return s->peeked = b;
}

int wds_source_drain(wds_source *s, char *err) {
    if (s->kind != SRC_PIPE) return 0;
    char buf[65536];
    ssize_t k;
    while ((k = wds_source_read(s, buf, sizeof buf, err)) > 0) {}
    return k < 0 ? -1 : 0;
}

uint64_t wds_source_offset(const wds_source *s) { return s->offset; }

void wds_source_close(wds_source *s) {
    if (!s) return;
    unlink_source(s);
    if (s->owns_fd && s->fd >= 0) close(s->fd);
    if (s->kind == SRC_PIPE && s->pid) { /* stopped early: the command is not needed any more */
        kill(-s->pid, SIGTERM);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {}
        remember_child(s->pid, 0);
    }
    net_free(s->net);
    free(s->url);
    free(s);
}

void wds_source_cleanup(void) {
    while (open_sources) wds_source_close(open_sources);
}
