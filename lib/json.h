/* json.h - small JSON helpers over cJSON: a growable string buffer with JSON
 * string escaping (for writers), and typed getters for config files.
 *
 * Config getters keep the first error: each returns its default when the key
 * is absent or null, and on a value of the wrong type it records a one-line
 * message ("unet/config.json: \"block_out_channels\": expected ...") in
 * cfg->err, sets cfg->failed, and returns the default. Callers read all the
 * keys they need, then check cfg->failed once. */
#ifndef LCM_JSON_H
#define LCM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct cJSON;

typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

void sb_putc(strbuf *b, char c);
void sb_put(strbuf *b, const char *s, size_t n);
void sb_puts(strbuf *b, const char *s);
void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(strbuf *b);
/* Appends s[0..n) as a quoted JSON string. Bytes that are not valid UTF-8
 * become U+FFFD, so the output is always valid JSON (and valid UTF-8). */
void sb_json_str(strbuf *b, const char *s, size_t n);
/* A double as a JSON number; NaN and infinities (not JSON) become null. */
void sb_json_num(strbuf *b, double v);

typedef struct json_cfg {
    struct cJSON *root;
    char *name; /* for messages: usually the file's path */
    int failed;
    char err[LCM_ERRLEN];
} json_cfg;

/* Parses a file that must hold a JSON object. */
int json_cfg_load(json_cfg *c, const char *path, char *err);
/* Takes ownership of root (an object). */
void json_cfg_wrap(json_cfg *c, struct cJSON *root, const char *name);
void json_cfg_free(json_cfg *c);

int cfg_has(const json_cfg *c, const char *key);
long long cfg_int(json_cfg *c, const char *key, long long def);
double cfg_float(json_cfg *c, const char *key, double def);
int cfg_bool(json_cfg *c, const char *key, int def);
/* Points into the tree; valid while c lives. */
const char *cfg_str(json_cfg *c, const char *key, const char *def);
/* A list of integers into out (at most max); returns its length, or the
 * defaults' length (copied to out) when absent. */
int cfg_int_list(json_cfg *c, const char *key, int64_t *out, int max, const int64_t *def, int ndef);
/* diffusers writes some settings either as one int or as one per block:
 * fills out[0..n) either way (broadcasting a single int). A list of another
 * length is an error. */
void cfg_int_or_list(json_cfg *c, const char *key, int64_t *out, int n, long long def);

#endif
