/* LCM_PROFILE=1: the per-op time table at exit (lib/op_profile.c). Each case
 * runs a few CPU ops in a child process with the variable set (or not) and
 * reads the child's stderr. The parent runs no op itself, so each child reads
 * the variable afresh and no OpenMP pool crosses a fork. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "test.h"
#include "util.h"

/* Three linears, a fill and a softmax on the CPU backend. */
static void run_some_ops(void) {
    int64_t xs[2] = {64, 96}, ws[2] = {80, 96}, ys[2] = {64, 80};
    const backend *cpu = backend_cpu();
    tensor *x = tensor_new(cpu, DT_F32, 2, xs), *w = tensor_new(cpu, DT_F32, 2, ws), *y = tensor_new(cpu, DT_F32, 2, ys);
    op_fill(x, 0.25f), op_fill(w, -0.5f);
    for (int i = 0; i < 3; i++) op_linear(y, x, w, NULL);
    op_softmax(y, y);
    tensor_free(x), tensor_free(w), tensor_free(y);
}

/* The stderr of a child that runs the ops with LCM_PROFILE set to value (NULL: unset); its exit status in *status. */
static char *child_stderr(const char *value, int *status) {
    int fd[2];
    if (pipe(fd)) die("pipe: %s", strerror(errno));
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd[1], 2), close(fd[0]), close(fd[1]);
        if (value) setenv("LCM_PROFILE", value, 1);
        else unsetenv("LCM_PROFILE");
        run_some_ops();
        exit(0); /* the table is printed by an atexit handler */
    }
    close(fd[1]);
    size_t len = 0, cap = 4096;
    char *buf = xmalloc(cap);
    ssize_t n;
    while ((n = read(fd[0], buf + len, cap - len - 1)) > 0)
        if ((len += (size_t)n) + 1 == cap) buf = xrealloc(buf, cap *= 2);
    close(fd[0]);
    buf[len] = 0;
    waitpid(pid, status, 0);
    return buf;
}

/* The table row of op on backend in text: its calls, total ms and percent; 0 if there is none. */
static int find_row(const char *text, const char *op, long long *calls, double *ms, double *pct) {
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char name[64], be[16];
        if (sscanf(line, "%63s %15s %lld %lf %lf", name, be, calls, ms, pct) == 5 && !strcmp(name, op) && !strcmp(be, "cpu"))
            return 1;
    }
    return 0;
}

TEST(profile_table_at_exit) {
    int status;
    char *err = child_stderr("1", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECKF(strstr(err, "op profile (LCM_PROFILE=1): 6 op calls") != NULL, "stderr: %s", err);
    long long calls;
    double ms, pct, sum = 0, last = 1e300;
    CHECKF(find_row(err, "linear", &calls, &ms, &pct) && calls == 3, "stderr: %s", err);
    CHECKF(find_row(err, "fill", &calls, &ms, &pct) && calls == 2, "stderr: %s", err);
    CHECKF(find_row(err, "softmax", &calls, &ms, &pct) && calls == 1, "stderr: %s", err);
    CHECK(!find_row(err, "conv2d", &calls, &ms, &pct));
    /* Rows sorted by total time, their percentages summing to 100. */
    const char *rows = strstr(err, "\nop ");
    CHECK(rows != NULL);
    rows = strchr(rows + 1, '\n') + 1;
    int n = 0;
    for (const char *line = rows; *line; line = strchr(line, '\n') + 1, n++) {
        char name[64], be[16];
        CHECKF(sscanf(line, "%63s %15s %lld %lf %lf", name, be, &calls, &ms, &pct) == 5, "row \"%.40s\"", line);
        CHECK(ms >= 0 && ms <= last);
        last = ms, sum += pct;
    }
    CHECK(n == 3);
    CHECK_NEAR(sum, 100, 0.05);
    free(err);
}

TEST(no_profile_unless_set_to_1) {
    const char *values[] = {NULL, "0", ""};
    for (int i = 0; i < 3; i++) {
        int status;
        char *err = child_stderr(values[i], &status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECKF(!*err, "LCM_PROFILE=%s: stderr \"%s\"", values[i] ? values[i] : "(unset)", err);
        free(err);
    }
}

int main(void) {
    RUN(profile_table_at_exit);
    RUN(no_profile_unless_set_to_1);
    TEST_EXIT();
}
