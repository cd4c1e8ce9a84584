/* wds_sample.h - tar members grouped into webdataset samples
 * (data-reference.md §3-§5).
 *
 * wds_split_name() is webdataset's ^((?:.*\/|)[^.]+)[.]([^/]*)$ on a member
 * name; wds_is_metadata() its __x__ filter. A wds_sample gathers the members
 * of one sample (key from its first member, one entry per lower-cased
 * extension, tar order) and encodes it as one frame: __key__, __url__, then
 * one binary per extension. */
#ifndef LCM_WDS_SAMPLE_H
#define LCM_WDS_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the name is webdataset metadata (__info__, __x__/a.jpg), which is
 * skipped silently. */
int wds_is_metadata(const char *name);

/* 1 with *key_len (the key is name[0..key_len)) and *ext (points into name,
 * not lower-cased) when the name has a key; 0 when the member has none. */
int wds_split_name(const char *name, size_t *key_len, const char **ext);

typedef struct wds_member {
    char *ext;     /* lower-cased */
    uint8_t *data; /* owned */
    size_t len;
} wds_member;

typedef struct wds_sample {
    char *key;
    wds_member *m;
    int n, cap;
    size_t bytes; /* sum of member sizes */
} wds_sample;

void wds_sample_init(wds_sample *s);
void wds_sample_clear(wds_sample *s); /* drops the members, keeps the arrays */
void wds_sample_free(wds_sample *s);
int wds_sample_has_ext(const wds_sample *s, const char *ext);
/* 1 when a member with this key and extension starts a new sample (the key
 * differs from the current one, or the extension is already there). */
int wds_sample_starts_new(const wds_sample *s, const char *key, size_t key_len, const char *ext);
/* Adds a member, taking ownership of data; the first member sets the key. */
void wds_sample_add(wds_sample *s, const char *key, size_t key_len, const char *ext, uint8_t *data, size_t len);
/* The sample as one msgpack map: a heap buffer of *len bytes. */
uint8_t *wds_sample_encode(const wds_sample *s, const char *url, size_t *len);

/* ASCII lower-casing of an extension into a new heap string. */
char *wds_lower_ext(const char *ext);

#endif
