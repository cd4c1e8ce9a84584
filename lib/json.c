/* json.c - see json.h. */
#include "json.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void sb_reserve(strbuf *b, size_t more) {
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void sb_put(strbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_putc(strbuf *b, char c) { sb_put(b, &c, 1); }
void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_free(strbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void sb_json_str(strbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    sb_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = utf8_len(u + i, n - i);
        if (len == 0) {
            sb_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (len > 1) {
            sb_put(b, s + i, len);
        } else if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
        } else if (c == '\n') {
            sb_puts(b, "\\n");
        } else if (c == '\t') {
            sb_puts(b, "\\t");
        } else if (c == '\r') {
            sb_puts(b, "\\r");
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_putc(b, (char)c);
        }
        i += len;
    }
    sb_putc(b, '"');
}

void sb_json_num(strbuf *b, double v) {
    if (!isfinite(v)) sb_puts(b, "null");
    else if (v == floor(v) && fabs(v) < 1e15) sb_printf(b, "%.0f", v);
    else sb_printf(b, "%.9g", v);
}

int json_cfg_load(json_cfg *c, const char *path, char *err) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err)) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return seterr(err, "%s: byte %zu: invalid JSON", path, at);
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seterr(err, "%s: not a JSON object", path);
    }
    json_cfg_wrap(c, root, path);
    return 0;
}

void json_cfg_wrap(json_cfg *c, cJSON *root, const char *name) {
    memset(c, 0, sizeof *c);
    c->root = root;
    c->name = xstrdup(name);
}

void json_cfg_free(json_cfg *c) {
    cJSON_Delete(c->root);
    free(c->name);
    memset(c, 0, sizeof *c);
}

/* The value at key, or NULL when absent or null. */
static const cJSON *item(const json_cfg *c, const char *key) {
    const cJSON *v = c->root ? cJSON_GetObjectItemCaseSensitive(c->root, key) : NULL;
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static void bad(json_cfg *c, const char *key, const char *what) {
    if (c->failed) return;
    c->failed = 1;
    seterr(c->err, "%s: \"%s\": expected %s", c->name, key, what);
}

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9007199254740992.0;
}

int cfg_has(const json_cfg *c, const char *key) { return item(c, key) != NULL; }

long long cfg_int(json_cfg *c, const char *key, long long def) {
    const cJSON *v = item(c, key);
    if (!v) return def;
    if (!is_int(v)) return bad(c, key, "an integer"), def;
    return (long long)v->valuedouble;
}

double cfg_float(json_cfg *c, const char *key, double def) {
    const cJSON *v = item(c, key);
    if (!v) return def;
    if (!cJSON_IsNumber(v)) return bad(c, key, "a number"), def;
    return v->valuedouble;
}

int cfg_bool(json_cfg *c, const char *key, int def) {
    const cJSON *v = item(c, key);
    if (!v) return def;
    if (!cJSON_IsBool(v)) return bad(c, key, "true or false"), def;
    return cJSON_IsTrue(v);
}

const char *cfg_str(json_cfg *c, const char *key, const char *def) {
    const cJSON *v = item(c, key);
    if (!v) return def;
    if (!cJSON_IsString(v)) return bad(c, key, "a string"), def;
    return v->valuestring;
}

/* Reads an array of integers into out; -1 (error recorded) if it is not one. */
static int read_ints(json_cfg *c, const char *key, const cJSON *v, int64_t *out, int max) {
    int n = cJSON_GetArraySize(v);
    if (n > max) return bad(c, key, "a shorter list"), -1;
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!is_int(e)) return bad(c, key, "a list of integers"), -1;
        out[i] = (int64_t)e->valuedouble;
    }
    return n;
}

int cfg_int_list(json_cfg *c, const char *key, int64_t *out, int max, const int64_t *def, int ndef) {
    const cJSON *v = item(c, key);
    int n = -1;
    if (v && !cJSON_IsArray(v)) bad(c, key, "a list of integers");
    else if (v) n = read_ints(c, key, v, out, max);
    if (n >= 0) return n;
    if (ndef > max) ndef = max;
    if (ndef > 0) memcpy(out, def, sizeof *out * (size_t)ndef);
    return ndef;
}

void cfg_int_or_list(json_cfg *c, const char *key, int64_t *out, int n, long long def) {
    const cJSON *v = item(c, key);
    long long one = def;
    if (v && cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) == n && read_ints(c, key, v, out, n) == n) return;
        if (!c->failed) {
            c->failed = 1;
            seterr(c->err, "%s: \"%s\": expected an integer or a list of %d integers", c->name, key, n);
        }
    } else if (v) {
        one = cfg_int(c, key, def);
    }
    for (int i = 0; i < n; i++) out[i] = one;
}
