/* test_shardspec.c - brace expansion and URL lists against the examples of
 * data-reference.md §2 (braceexpand 0.1.7, webdataset expand_urls). */
#include <stdarg.h>
#include <stdlib.h>

#include "shardspec.h"
#include "test.h"
#include "util.h"

/* Expands pattern and compares with the NULL-terminated expected names. */
static int expands_to(const char *pattern, ...) {
    strlist got = {0};
    char err[LCM_ERRLEN];
    if (brace_expand(pattern, &got, err)) {
        fprintf(stderr, "  %s: error %s\n", pattern, err);
        return 0;
    }
    va_list ap;
    va_start(ap, pattern);
    size_t i = 0;
    int ok = 1;
    for (const char *want; (want = va_arg(ap, const char *)); i++)
        if (i >= got.n || strcmp(got.v[i], want)) {
            fprintf(stderr, "  %s: item %zu is '%s', want '%s'\n", pattern, i, i < got.n ? got.v[i] : "(none)", want);
            ok = 0;
            break;
        }
    va_end(ap);
    if (ok && i != got.n) {
        fprintf(stderr, "  %s: %zu items, want %zu\n", pattern, got.n, i);
        ok = 0;
    }
    strlist_free(&got);
    return ok;
}

static int fails(const char *pattern) {
    strlist got = {0};
    char err[LCM_ERRLEN];
    int rc = brace_expand(pattern, &got, err);
    strlist_free(&got);
    return rc == -1 && err[0];
}

TEST(plain) {
    CHECK(expands_to("data/shard.tar", "data/shard.tar", NULL));
    CHECK(expands_to("", "", NULL));
}

TEST(zero_padding) {
    CHECK(expands_to("data/{00000..00002}.tar", "data/00000.tar", "data/00001.tar", "data/00002.tar", NULL));
    CHECK(expands_to("{08..11}", "08", "09", "10", "11", NULL));
    CHECK(expands_to("{8..11}", "8", "9", "10", "11", NULL));
    CHECK(expands_to("{0..2}", "0", "1", "2", NULL));   /* a bare 0 does not pad */
    CHECK(expands_to("{00..2}", "00", "01", "02", NULL));
    CHECK(expands_to("{-01..1}", "-01", "000", "001", NULL));
    CHECK(expands_to("{9..011}", "009", "010", "011", NULL));
}

TEST(int_ranges) {
    CHECK(expands_to("{3..1}", "3", "2", "1", NULL));
    CHECK(expands_to("{1..10..3}", "1", "4", "7", "10", NULL));
    CHECK(expands_to("{10..1..3}", "10", "7", "4", "1", NULL));
    CHECK(expands_to("{1..3..0}", "1", "2", "3", NULL));   /* step 0 counts as 1 */
    CHECK(expands_to("{1..5..-2}", "1", "3", "5", NULL));  /* the step's sign is ignored */
    CHECK(expands_to("{-1..1}", "-1", "0", "1", NULL));
    CHECK(expands_to("{5..5}", "5", NULL));
    CHECK(expands_to("{1..3..}", "{1..3..}", NULL));     /* not a range: literal */
}

TEST(letter_ranges) {
    CHECK(expands_to("{a..e}", "a", "b", "c", "d", "e", NULL));
    CHECK(expands_to("{Y..b}", "Y", "Z", "a", "b", NULL));
    CHECK(expands_to("{e..a..2}", "e", "c", "a", NULL));
    CHECK(expands_to("{B..A}", "B", "A", NULL));
    strlist got = {0};
    char err[LCM_ERRLEN];
    CHECK(brace_expand("{b..A}", &got, err) == 0);
    CHECK(got.n == 28 && !strcmp(got.v[0], "b") && !strcmp(got.v[2], "Z") && !strcmp(got.v[27], "A"));
    strlist_free(&got);
}

TEST(groups) {
    CHECK(expands_to("{a,b}{1,2}", "a1", "a2", "b1", "b2", NULL)); /* leftmost slowest */
    CHECK(expands_to("{a,b{1,2}}x", "ax", "b1x", "b2x", NULL));
    CHECK(expands_to("a{,b}c", "ac", "abc", NULL));
    CHECK(expands_to("{,}", "", "", NULL));
    CHECK(expands_to("s{0..1}/{a,b}.tar", "s0/a.tar", "s0/b.tar", "s1/a.tar", "s1/b.tar", NULL));
}

TEST(literal_groups) {
    CHECK(expands_to("x{1}y", "x{1}y", NULL));
    CHECK(expands_to("x{}y", "x{}y", NULL));
    CHECK(expands_to("{a}", "{a}", NULL));
    CHECK(expands_to("x{a{1,2}b}y", "x{a1b}y", "x{a2b}y", NULL));
}

TEST(escapes) {
    CHECK(expands_to("a\\{b,c\\}", "a{b,c}", NULL));
    CHECK(expands_to("{a\\,b,c}", "a,b", "c", NULL));
    CHECK(expands_to("a\\\\b", "a\\b", NULL));
    CHECK(expands_to("{1\\{2,3}", "1{2", "3", NULL)); /* braceexpand's own doctest */
    /* Each nesting level strips one level of escapes, as _flatten does. */
    CHECK(expands_to("{\\\\z.}a", "{z.}a", NULL));
    CHECK(expands_to("{a\\\\,b}", "a\\", "b", NULL)); /* the outer join finds a lone backslash */
}

TEST(unbalanced) {
    CHECK(fails("{a,b"));
    CHECK(fails("a}b"));
    CHECK(fails("{a,{b}"));
    CHECK(fails("{0..99999999}{0..99999999}")); /* too many names */
}

TEST(url_lists) {
    strlist got = {0};
    char err[LCM_ERRLEN];
    CHECK(expand_urls("a.tar::b{1,2}.tar::pipe:cat c.tar", &got, err) == 0);
    CHECK(got.n == 4 && !strcmp(got.v[0], "a.tar") && !strcmp(got.v[1], "b1.tar") && !strcmp(got.v[2], "b2.tar") &&
          !strcmp(got.v[3], "pipe:cat c.tar"));
    strlist_free(&got);
    CHECK(expand_urls("a::", &got, err) == -1);
    strlist_free(&got);
    CHECK(expand_urls("http://h:80/x.tar", &got, err) == 0 && got.n == 1 && !strcmp(got.v[0], "http://h:80/x.tar"));
    strlist_free(&got);
}

TEST(env_substitution) {
    strlist got = {0};
    char err[LCM_ERRLEN];
    setenv("WDS_DIR", "/data", 1);
    setenv("WDS_OUTER", "${DIR}/s", 1);
    CHECK(expand_urls("${OUTER}{0..1}.tar::$HOME/${DIR}", &got, err) == 0);
    CHECK(got.n == 3 && !strcmp(got.v[0], "/data/s0.tar") && !strcmp(got.v[1], "/data/s1.tar") && !strcmp(got.v[2], "$HOME//data"));
    strlist_free(&got);
    unsetenv("WDS_NOPE");
    CHECK(expand_urls("${NOPE}/a.tar", &got, err) == -1 && strstr(err, "WDS_NOPE"));
    strlist_free(&got);
    /* A variable whose value names itself stops after 10 rounds. */
    setenv("WDS_LOOP", "x${LOOP}", 1);
    CHECK(expand_urls("${LOOP}", &got, err) == 0 && got.n == 1 && !strcmp(got.v[0], "xxxxxxxxxx${LOOP}"));
    strlist_free(&got);
}

int main(void) {
    RUN(plain);
    RUN(zero_padding);
    RUN(int_ranges);
    RUN(letter_ranges);
    RUN(groups);
    RUN(literal_groups);
    RUN(escapes);
    RUN(unbalanced);
    RUN(url_lists);
    RUN(env_substitution);
    TEST_EXIT();
}
