/* clip_bpe.h - the BPE half of the CLIP tokenizer (internal to clip_tokenizer.c).
 *
 * Strings (vocabulary entries, merge parts and results) are interned as
 * symbols, so that a word is an array of small integers and a merge rank is
 * one hash look-up of a symbol pair. */
#ifndef LCM_CLIP_BPE_H
#define LCM_CLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct clip_bpe clip_bpe;

clip_bpe *clip_bpe_new(void);
void clip_bpe_free(clip_bpe *b);

/* The symbol of s[0..n), created if new (with no token id). */
int32_t clip_bpe_intern(clip_bpe *b, const char *s, size_t n);
/* The token id of s[0..n), or -1 when it has none. */
int32_t clip_bpe_lookup(const clip_bpe *b, const char *s, size_t n);
void clip_bpe_set_id(clip_bpe *b, int32_t sym, int32_t id);
/* Ranks follow transformers: a pair listed twice keeps its last rank. */
void clip_bpe_add_merge(clip_bpe *b, const char *left, size_t nl, const char *right, size_t nr,
                        int32_t rank);
/* Call once after the vocabulary and merges; unk_id may be -1. */
void clip_bpe_ready(clip_bpe *b, int32_t unk_id);

/* Ids of one pre-tokenised piece (raw UTF-8 bytes): byte-mapped, "</w>" on
 * the last symbol, merged by rank, unknown symbols as unk_id (which may be
 * -1). Returns a pointer valid until the next call, and *n. */
const int32_t *clip_bpe_word(clip_bpe *b, const uint8_t *bytes, size_t len, size_t *n);

#endif
