/* shardspec.c - brace expansion and shard URL lists; see shardspec.h.
 *
 * The parser follows braceexpand 0.1.7 step for step, so that odd inputs
 * (literal groups, escapes, descending ranges) give the same names as the
 * Python reference: a pattern is cut into items (literal text, or a brace
 * group's alternatives) whose cartesian product is the result. */
#include "shardspec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void strlist_push(strlist *l, char *owned) {
    if (l->n == l->cap) l->v = xrealloc(l->v, sizeof(char *) * (l->cap = l->cap ? 2 * l->cap : 8));
    l->v[l->n++] = owned;
}

void strlist_push_copy(strlist *l, const char *s, size_t len) {
    char *c = xmalloc(len + 1);
    memcpy(c, s, len);
    c[len] = 0;
    strlist_push(l, c);
}

void strlist_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int parse_pattern(const char *p, size_t len, strlist *out, char *err);

/* ---- ranges ---- */

/* Matches -?\d+ at s[i..); returns the end index, or 0 when there is none. */
static size_t scan_int(const char *s, size_t len, size_t i, int allow_sign) {
    size_t j = i;
    if (allow_sign && j < len && s[j] == '-') j++;
    size_t digits = j;
    while (j < len && isdigit((unsigned char)s[j])) j++;
    return j > digits ? j : 0;
}

static int is_dotdot(const char *s, size_t len, size_t i) { return i + 1 < len && s[i] == '.' && s[i + 1] == '.'; }

/* The optional "..-?STEP" tail of a range, which must end the expression.
 * Returns 1 and the step (a missing or zero step is 1), 0 when it does not match. */
static int parse_step(const char *s, size_t len, size_t i, long long *step) {
    *step = 1;
    if (i == len) return 1;
    if (!is_dotdot(s, len, i)) return 0;
    i += 2;
    if (i < len && s[i] == '-') i++; /* the sign of a step is ignored */
    size_t end = scan_int(s, len, i, 0);
    if (!end || end != len) return 0;
    errno = 0;
    long long v = strtoll(s + i, NULL, 10);
    if (errno || v > 1000000000LL) v = 1000000000LL; /* any step this large gives one value */
    *step = v ? v : 1;
    return 1;
}

static int parse_bound(const char *s, size_t len, long long *v, char *err) {
    char buf[32];
    if (len >= sizeof buf) return seterr(err, "range bound '%.*s' is too large", (int)len, s);
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    *v = strtoll(buf, NULL, 10);
    if (errno || *v > 999999999999999LL || *v < -999999999999999LL)
        return seterr(err, "range bound '%s' is too large", buf);
    return 0;
}

static int pads(const char *s, size_t len) {
    if ((len == 1 && s[0] == '0') || (len == 2 && s[0] == '-' && s[1] == '0')) return 0;
    return s[0] == '0' || (len >= 2 && s[0] == '-' && s[1] == '0');
}

/* {A..B} / {A..B..S}: 1 when expr is an integer range (values appended), 0 when not. */
static int int_range(const char *e, size_t len, strlist *out, char *err) {
    size_t a_end = scan_int(e, len, 0, 1);
    if (!a_end || !is_dotdot(e, len, a_end)) return 0;
    size_t b_end = scan_int(e, len, a_end + 2, 1);
    long long step;
    if (!b_end || !parse_step(e, len, b_end, &step)) return 0;
    const char *left = e, *right = e + a_end + 2;
    size_t left_len = a_end, right_len = b_end - a_end - 2;
    long long start, end;
    if (parse_bound(left, left_len, &start, err) || parse_bound(right, right_len, &end, err)) return -1;
    int width = pads(left, left_len) || pads(right, right_len) ? (int)(left_len > right_len ? left_len : right_len) : 0;
    unsigned long long span = start < end ? (unsigned long long)(end - start) : (unsigned long long)(start - end);
    if (span / (unsigned long long)step >= BRACE_MAX_RESULTS)
        return seterr(err, "range {%.*s} has more than %zu values", (int)len, e, BRACE_MAX_RESULTS);
    long long dir = start < end ? step : -step;
    for (unsigned long long k = 0; k <= span / (unsigned long long)step; k++) {
        char buf[48];
        int n = snprintf(buf, sizeof buf, "%0*lld", width, start + (long long)k * dir);
        strlist_push_copy(out, buf, (size_t)n);
    }
    return 1;
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* {a..e} / {a..e..S} over A-Z then a-z: 1 when expr is a letter range, 0 when not. */
static int char_range(const char *e, size_t len, strlist *out) {
    long long step;
    if (len < 4 || !isalpha((unsigned char)e[0]) || !is_dotdot(e, len, 1) || !isalpha((unsigned char)e[3])) return 0;
    if (!parse_step(e, len, 4, &step)) return 0;
    long long start = strchr(alphabet, e[0]) - alphabet, end = strchr(alphabet, e[3]) - alphabet;
    long long dir = start < end ? step : -step;
    for (long long i = start; start < end ? i <= end : i >= end; i += dir) strlist_push_copy(out, &alphabet[i], 1);
    return 1;
}

/* ---- groups ---- */

/* a,b,c at depth 0 inside a group: 1 with the alternatives appended, 0 when
 * there is no comma (the group is then literal). */
static int parse_sequence(const char *s, size_t len, strlist *out, char *err) {
    size_t start = 0;
    int depth = 0, commas = 0;
    for (size_t pos = 0; pos < len; pos++) {
        if (s[pos] == '\\') { pos++; continue; }
        if (s[pos] == '{') depth++;
        else if (s[pos] == '}') depth--;
        else if (s[pos] == ',' && depth == 0) {
            if (parse_pattern(s + start, pos - start, out, err)) return -1;
            start = pos + 1;
            commas++;
        }
    }
    if (depth != 0 || !commas) return 0; /* the caller keeps the group literal */
    return parse_pattern(s + start, len - start, out, err) ? -1 : 1;
}

static int parse_expression(const char *e, size_t len, strlist *out, char *err) {
    int rc = int_range(e, len, out, err);
    if (rc) return rc;
    if (char_range(e, len, out)) return 1;
    return parse_sequence(e, len, out, err);
}

typedef struct items {
    strlist *v;
    size_t n, cap;
} items;

static strlist *new_item(items *it) {
    if (it->n == it->cap) it->v = xrealloc(it->v, sizeof(strlist) * (it->cap = it->cap ? 2 * it->cap : 8));
    memset(&it->v[it->n], 0, sizeof(strlist));
    return &it->v[it->n++];
}

static void literal_item(items *it, const char *s, size_t len) { strlist_push_copy(new_item(it), s, len); }

static void free_items(items *it) {
    for (size_t i = 0; i < it->n; i++) strlist_free(&it->v[i]);
    free(it->v);
}

static void unescape(char *s);

/* Appends the cartesian product of the items to out, leftmost slowest.
 * braceexpand strips escapes each time it joins a product (_flatten), so
 * text inside nested groups loses one level of backslashes per level. */
static int product(const items *it, strlist *out, char *err) {
    size_t total = 1;
    for (size_t i = 0; i < it->n; i++) {
        if (it->v[i].n == 0) return 0;
        if (total > BRACE_MAX_RESULTS / it->v[i].n) return seterr(err, "pattern expands to more than %zu names", BRACE_MAX_RESULTS);
        total *= it->v[i].n;
    }
    size_t *idx = xcalloc(it->n + 1, sizeof(size_t));
    for (size_t r = 0; r < total; r++) {
        size_t len = 0;
        for (size_t i = 0; i < it->n; i++) len += strlen(it->v[i].v[idx[i]]);
        char *s = xmalloc(len + 1), *p = s;
        *p = 0;
        for (size_t i = 0; i < it->n; i++) p = stpcpy(p, it->v[i].v[idx[i]]);
        unescape(s);
        strlist_push(out, s);
        for (size_t i = it->n; i-- > 0;) { /* odometer: the rightmost item turns fastest */
            if (++idx[i] < it->v[i].n) break;
            idx[i] = 0;
        }
    }
    free(idx);
    return 0;
}

static int parse_pattern(const char *p, size_t len, strlist *out, char *err) {
    items it = {0};
    size_t start = 0, pos = 0;
    int depth = 0, rc = 0;
    for (; pos < len && !rc; pos++) {
        if (p[pos] == '\\') { pos++; continue; }
        if (p[pos] == '{') {
            if (depth == 0 && pos > start) {
                literal_item(&it, p + start, pos - start);
                start = pos;
            }
            depth++;
        } else if (p[pos] == '}') {
            if (--depth != 0) continue;
            const char *expr = p + start + 1;
            size_t expr_len = pos - start - 1;
            strlist *alts = new_item(&it);
            int m = parse_expression(expr, expr_len, alts, err);
            if (m < 0) rc = -1;
            else if (m == 0) { /* not a range or a list: the braces stay */
                strlist_free(alts);
                it.n--;
                literal_item(&it, "{", 1);
                if (parse_pattern(expr, expr_len, new_item(&it), err)) rc = -1;
                literal_item(&it, "}", 1);
            }
            start = pos + 1;
        }
    }
    if (!rc && depth != 0) rc = seterr(err, "unbalanced braces in '%.*s'", (int)len, p);
    if (!rc && start < len) literal_item(&it, p + start, len - start);
    if (!rc) rc = product(&it, out, err);
    free_items(&it);
    return rc;
}

/* Removes each backslash and keeps the character it escapes (not a newline,
 * as Python's '.' does not match one). */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] && r[1] != '\n') r++;
        *w++ = *r;
    }
    *w = 0;
}

int brace_expand(const char *pattern, strlist *out, char *err) {
    size_t first = out->n;
    if (parse_pattern(pattern, strlen(pattern), out, err)) {
        while (out->n > first) free(out->v[--out->n]);
        return -1;
    }
    return 0;
}

/* ---- URL lists ---- */

static int is_word(int c) { return isalnum(c) || c == '_'; }

/* One round of ${NAME} -> $WDS_NAME over s; returns a new heap string. */
static char *envsubst(const char *s, char *err) {
    size_t cap = strlen(s) + 1, n = 0;
    char *o = xmalloc(cap);
    for (const char *p = s; *p;) {
        const char *q = p + 2;
        while (p[0] == '$' && p[1] == '{' && is_word((unsigned char)*q)) q++;
        const char *value = NULL;
        if (p[0] == '$' && p[1] == '{' && q > p + 2 && *q == '}') {
            char name[256];
            if ((size_t)(q - p - 2) + 5 > sizeof name) {
                free(o);
                return seterr(err, "variable name too long in '%s'", s), NULL;
            }
            snprintf(name, sizeof name, "WDS_%.*s", (int)(q - p - 2), p + 2);
            if (!(value = getenv(name))) {
                free(o);
                return seterr(err, "missing environment variable %s (for ${%.*s} in '%s')", name, (int)(q - p - 2), p + 2, s), NULL;
            }
        }
        const char *piece = value ? value : p;
        size_t len = value ? strlen(value) : 1;
        if (n + len + 1 > cap) o = xrealloc(o, cap = 2 * (n + len + 1));
        memcpy(o + n, piece, len);
        n += len;
        p = value ? q + 1 : p + 1;
    }
    o[n] = 0;
    return o;
}

static int expand_url(const char *part, strlist *out, char *err) {
    char *s = xstrdup(part);
    for (int round = 0; round < 10; round++) {
        char *next = envsubst(s, err);
        if (!next) { free(s); return -1; }
        int same = !strcmp(next, s);
        free(s);
        s = next;
        if (same) break;
    }
    int rc = brace_expand(s, out, err);
    free(s);
    return rc;
}

int expand_urls(const char *spec, strlist *out, char *err) {
    const char *p = spec;
    for (;;) {
        const char *sep = strstr(p, "::");
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        if (len == 0) return seterr(err, "empty shard URL in '%s'", spec);
        char *part = xmalloc(len + 1);
        memcpy(part, p, len);
        part[len] = 0;
        int rc = expand_url(part, out, err);
        free(part);
        if (rc) return -1;
        if (!sep) return 0;
        p = sep + 2;
    }
}
