/* clip_tokenizer.h - CLIP's byte-level BPE tokenizer, as Stable Diffusion uses it.
 *
 * Reproduces transformers' slow CLIPTokenizer (4.40) without ftfy, the way
 * diffusers calls it: tokenizer(text, padding="max_length",
 * max_length=model_max_length, truncation=True). The steps, in order:
 *   1. split the text on the special tokens (bos, eos, unk, pad, added
 *      tokens; case-sensitive, leftmost-longest); each becomes its own id;
 *   2. per remaining chunk, BasicTokenizer(strip_accents=False,
 *      do_split_on_punc=False): drop NUL/U+FFFD/control/format/unassigned
 *      characters, turn whitespace into spaces, space out CJK ideographs,
 *      NFC, split on whitespace, Python str.lower() each word;
 *   3. the pre-tokenising regex (contractions, letter runs, single digits,
 *      runs of other symbols; IGNORECASE as the `regex` module applies it);
 *   4. each piece mapped byte-by-byte to CLIP's printable byte alphabet and
 *      merged by BPE rank, "</w>" on its last symbol; unknown -> unk id;
 *   5. bos + the first model_max_length-2 ids + eos, padded with the pad id.
 * Unicode facts come from lib/unicode_tables.c (see scripts/gen-unicode-tables).
 * Not reproduced: ftfy's fix_text (the path transformers takes when ftfy is
 * installed), AddedToken.single_word (no CLIP tokenizer sets it; lstrip and
 * rstrip change nothing here since the clean-up trims spaces anyway), and
 * padding_side "left". "do_lower_case" in the config has no effect on
 * CLIPTokenizer in transformers either: it always lower-cases.
 *
 * A tokenizer keeps a word cache, so one instance must not be used by two
 * threads at once. */
#ifndef LCM_CLIP_TOKENIZER_H
#define LCM_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct clip_tokenizer clip_tokenizer;

/* Loads a diffusers/transformers tokenizer folder: vocab.json and merges.txt
 * (required), tokenizer_config.json and special_tokens_map.json (optional:
 * bos/eos/unk/pad tokens, model_max_length, added tokens; the map overrides
 * the config as transformers does). Missing values take CLIPTokenizer's
 * defaults; a missing model_max_length is 77. NULL and err set on failure. */
clip_tokenizer *clip_tokenizer_load(const char *dir, char *err);
void clip_tokenizer_free(clip_tokenizer *t);

int clip_tokenizer_max_length(const clip_tokenizer *t);
int32_t clip_tokenizer_bos_id(const clip_tokenizer *t);
int32_t clip_tokenizer_eos_id(const clip_tokenizer *t);
int32_t clip_tokenizer_pad_id(const clip_tokenizer *t);
/* Number of entries of vocab.json. */
size_t clip_tokenizer_vocab_size(const clip_tokenizer *t);

/* Token ids of text[0..len) (UTF-8; invalid bytes count as U+FFFD, which
 * the clean-up drops) without bos/eos, truncation or padding. Writes at most
 * cap ids and returns how many there are in all, or -1 (err set) when a token
 * is unknown and the unk token is not in the vocabulary either. */
long clip_tokenize(clip_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
                   char *err);

/* The model input: out[0..max_length) = bos, ids truncated to max_length-2,
 * eos, then pad. Returns the count before padding (2..max_length) or -1. */
int clip_encode(clip_tokenizer *t, const char *text, size_t len, int32_t *out, char *err);

#endif
