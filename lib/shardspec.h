/* shardspec.h - shard lists the way webdataset spells them (data-reference.md §2).
 *
 * brace_expand() is braceexpand 0.1.7: nested {a,b} groups give a cartesian
 * product (leftmost slowest), {A..B[..S]} integer ranges (zero-padded when an
 * end starts with 0), {a..e} letter ranges over A-Z then a-z, anything else
 * stays literal, a backslash escapes the next character and is removed.
 * expand_urls() is webdataset's expand_urls for a string: split on "::",
 * substitute ${NAME} from $WDS_NAME (up to 10 rounds), brace-expand each part. */
#ifndef LCM_SHARDSPEC_H
#define LCM_SHARDSPEC_H

#include <stddef.h>

/* A growable list of heap strings. */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

void strlist_push(strlist *l, char *owned);
void strlist_push_copy(strlist *l, const char *s, size_t len);
void strlist_free(strlist *l);

/* Refuses patterns that would expand to more names than this. */
#define BRACE_MAX_RESULTS ((size_t)1 << 22)

/* Appends the expansions of pattern to out. 0, or -1 with err set
 * (unbalanced braces, a range bound too large, too many results). */
int brace_expand(const char *pattern, strlist *out, char *err);

/* Appends the URLs a webdataset shard string stands for to out. */
int expand_urls(const char *spec, strlist *out, char *err);

#endif
