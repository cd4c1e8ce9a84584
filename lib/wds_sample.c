/* wds_sample.c - see wds_sample.h. */
#include "wds_sample.h"

#include <ctype.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* webdataset's two tests: a name without '/' that starts and ends with "__"
 * (so "__" and "___" too), or a first path component matching ^__[^/]*__
 * (at least 4 characters). */
int wds_is_metadata(const char *name) {
    if (strncmp(name, "__", 2)) return 0;
    const char *slash = strchr(name, '/');
    size_t first = slash ? (size_t)(slash - name) : strlen(name);
    if (!slash && first >= 2 && name[first - 1] == '_' && name[first - 2] == '_') return 1;
    return first >= 4 && name[first - 1] == '_' && name[first - 2] == '_';
}

/* The regex backtracks: the key is the longest "anything ending in / or
 * empty" prefix followed by one or more non-dots, then a dot, then an
 * extension without '/'. Walking it by hand: the extension cannot hold a '/',
 * so the key's directory part ends at the last '/' or one before it. */
int wds_split_name(const char *name, size_t *key_len, const char **ext) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    if (!dot) return 0;
    if (dot > base) { /* [^.]+ is the basename up to its first dot */
        *key_len = (size_t)(dot - name);
        *ext = dot + 1;
        return 1;
    }
    /* The basename starts with '.': [^.]+ must then end with the last '/'
     * (key = dir/ and extension = basename minus its dot), which needs the
     * directory component before it (possibly empty) to be free of dots. */
    if (base == name) return 0;
    const char *comp_end = base - 1, *comp = comp_end;
    while (comp > name && comp[-1] != '/') comp--;
    if (memchr(comp, '.', (size_t)(comp_end - comp))) return 0;
    *key_len = (size_t)(base - name);
    *ext = base + 1;
    return 1;
}

char *wds_lower_ext(const char *ext) {
    char *l = xstrdup(ext);
    for (char *p = l; *p; p++) *p = (char)tolower((unsigned char)*p);
    return l;
}

void wds_sample_init(wds_sample *s) { memset(s, 0, sizeof *s); }

void wds_sample_clear(wds_sample *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->m[i].ext);
        free(s->m[i].data);
    }
    free(s->key);
    s->key = NULL;
    s->n = 0;
    s->bytes = 0;
}

void wds_sample_free(wds_sample *s) {
    wds_sample_clear(s);
    free(s->m);
    memset(s, 0, sizeof *s);
}

int wds_sample_has_ext(const wds_sample *s, const char *ext) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->m[i].ext, ext)) return 1;
    return 0;
}

int wds_sample_starts_new(const wds_sample *s, const char *key, size_t key_len, const char *ext) {
    if (s->n == 0) return 0;
    if (strlen(s->key) != key_len || memcmp(s->key, key, key_len)) return 1;
    return wds_sample_has_ext(s, ext);
}

void wds_sample_add(wds_sample *s, const char *key, size_t key_len, const char *ext, uint8_t *data, size_t len) {
    if (s->n == 0) {
        free(s->key);
        s->key = xmalloc(key_len + 1);
        memcpy(s->key, key, key_len);
        s->key[key_len] = 0;
    }
    if (s->n == s->cap) s->m = xrealloc(s->m, sizeof(wds_member) * (size_t)(s->cap = s->cap ? 2 * s->cap : 8));
    s->m[s->n++] = (wds_member){xstrdup(ext), data, len};
    s->bytes += len;
}

uint8_t *wds_sample_encode(const wds_sample *s, const char *url, size_t *len) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)s->n + 2);
    msgpack_pack_str_with_body(&pk, "__key__", 7);
    msgpack_pack_str_with_body(&pk, s->key, strlen(s->key));
    msgpack_pack_str_with_body(&pk, "__url__", 7);
    msgpack_pack_str_with_body(&pk, url, strlen(url));
    for (int i = 0; i < s->n; i++) {
        msgpack_pack_str_with_body(&pk, s->m[i].ext, strlen(s->m[i].ext));
        msgpack_pack_bin_with_body(&pk, s->m[i].data, s->m[i].len);
    }
    *len = sb.size;
    return (uint8_t *)msgpack_sbuffer_release(&sb);
}
