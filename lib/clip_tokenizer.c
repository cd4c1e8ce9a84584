/* clip_tokenizer.c - loading a tokenizer folder and the text-to-ids pipeline.
 * The steps and the transformers behaviour they copy are listed in
 * clip_tokenizer.h; the BPE itself is in clip_bpe.c. */
#include "clip_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "clip_bpe.h"
#include "unicode_tables.h"
#include "util.h"

/* CLIPTokenizer.__init__ reads only this many merges, whatever the file holds. */
enum { CLIP_MERGES_USED = 49152 - 256 - 2, DEFAULT_MAX_LENGTH = 77 };

typedef struct {
    char *text;
    size_t len;
    int32_t id;
} added_token;

struct clip_tokenizer {
    clip_bpe *bpe;
    size_t vocab_size;
    int max_length;
    int32_t bos, eos, pad, unk;
    added_token *added; /* split out of the text before anything else */
    size_t n_added, next_new_id;
    uint32_t *cp_a, *cp_b, *cp_c; /* per-chunk code point buffers */
    size_t cp_cap;
    uint8_t *piece;
    size_t piece_cap;
    int32_t *ids;
    size_t n_ids, ids_cap;
};

/* ---- loading ---- */

/* Parses dir/name into *out. A missing optional file leaves *out NULL. */
static int load_json(const char *dir, const char *name, int required, cJSON **out, char *err) {
    char *path = path_join(dir, name), *text;
    size_t len;
    int rc = 0;
    *out = NULL;
    if (!required && !path_exists(path)) {
        free(path);
        return 0;
    }
    if (read_file(path, &text, &len, err)) {
        rc = -1;
    } else {
        *out = cJSON_ParseWithLength(text, len);
        if (!*out) rc = seterr(err, "%s: not valid JSON", path);
        free(text);
    }
    free(path);
    return rc;
}

static int load_vocab(clip_tokenizer *t, const char *dir, char *err) {
    cJSON *v;
    if (load_json(dir, "vocab.json", 1, &v, err)) return -1;
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return seterr(err, "%s/vocab.json: not a JSON object", dir);
    }
    for (cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX) {
            seterr(err, "%s/vocab.json: entry \"%s\" is not a token id", dir, e->string);
            cJSON_Delete(v);
            return -1;
        }
        clip_bpe_set_id(t->bpe, clip_bpe_intern(t->bpe, e->string, strlen(e->string)), (int32_t)e->valuedouble);
        t->vocab_size++;
    }
    cJSON_Delete(v);
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Like transformers: strip the file, drop its first line (the "#version"
 * header), rank the next CLIP_MERGES_USED lines; a line that is not exactly
 * two words takes a rank but merges nothing. */
static int load_merges(clip_tokenizer *t, const char *dir, char *err) {
    char *path = path_join(dir, "merges.txt"), *text;
    size_t len;
    int rc = read_file(path, &text, &len, err);
    free(path);
    if (rc) return -1;
    char *p = text, *end = text + len;
    while (p < end && is_blank(*p)) p++;
    p = memchr(p, '\n', (size_t)(end - p));
    for (int32_t rank = 0; p && p < end && rank < CLIP_MERGES_USED; rank++) {
        char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        const char *w[3];
        size_t wl[3], nw = 0;
        for (char *q = line; q < eol && nw < 3;) {
            while (q < eol && is_blank(*q)) q++;
            if (q == eol) break;
            w[nw] = q;
            while (q < eol && !is_blank(*q)) q++;
            wl[nw] = (size_t)(q - w[nw]);
            nw++;
        }
        if (nw == 2) clip_bpe_add_merge(t->bpe, w[0], wl[0], w[1], wl[1], rank);
        p = eol < end ? eol : NULL;
    }
    free(text);
    return 0;
}

/* A token setting is a string or an AddedToken object {"content": ...}. */
static const char *token_content(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* special_tokens_map.json overrides tokenizer_config.json, as from_pretrained does. */
static const cJSON *setting(const cJSON *cfg, const cJSON *map, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, key);
    if (v && !cJSON_IsNull(v)) return v;
    v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static added_token *find_added(const clip_tokenizer *t, const char *s, size_t n) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].text, s, n)) return &t->added[i];
    return NULL;
}

/* Registers an added token; id < 0 means "its vocab id, else the next free
 * one". Returns its id. Added ids win over vocab ids, as in transformers. */
static int32_t add_token(clip_tokenizer *t, const char *s, int64_t id) {
    size_t n = strlen(s);
    added_token *a = find_added(t, s, n);
    if (a) return a->id;
    if (id < 0) id = clip_bpe_lookup(t->bpe, s, n);
    if (id < 0) id = (int64_t)t->next_new_id++;
    t->added = xrealloc(t->added, (t->n_added + 1) * sizeof *t->added);
    t->added[t->n_added++] = (added_token){xstrdup(s), n, (int32_t)id};
    clip_bpe_set_id(t->bpe, clip_bpe_intern(t->bpe, s, n), (int32_t)id);
    return (int32_t)id;
}

static int32_t add_special(clip_tokenizer *t, const cJSON *cfg, const cJSON *map, const char *key,
                           const char *fallback) {
    const cJSON *v = setting(cfg, map, key);
    const char *s = v ? token_content(v) : fallback;
    return s ? add_token(t, s, -1) : -1;
}

static void add_listed(clip_tokenizer *t, const cJSON *list) {
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *s = token_content(e);
        if (s) add_token(t, s, -1);
    }
}

/* Order as transformers registers them: saved added tokens with their ids,
 * then bos, eos, unk, sep, pad, cls, mask, additional_special_tokens. */
static void load_specials(clip_tokenizer *t, const cJSON *cfg, const cJSON *map) {
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder"), *e;
    /* An unknown piece becomes encoder.get(unk_token): its vocab id, looked
     * up before added tokens take over any ids. */
    const cJSON *u = setting(cfg, map, "unk_token");
    const char *unk = u ? token_content(u) : "<|endoftext|>";
    t->unk = unk ? clip_bpe_lookup(t->bpe, unk, strlen(unk)) : -1;
    t->next_new_id = t->vocab_size;
    cJSON_ArrayForEach(e, dec) {
        const char *s = token_content(e);
        if (s && e->string) add_token(t, s, strtoll(e->string, NULL, 10));
    }
    t->bos = add_special(t, cfg, map, "bos_token", "<|startoftext|>");
    t->eos = add_special(t, cfg, map, "eos_token", "<|endoftext|>");
    add_special(t, cfg, map, "unk_token", "<|endoftext|>");
    add_special(t, cfg, map, "sep_token", NULL);
    t->pad = add_special(t, cfg, map, "pad_token", "<|endoftext|>");
    add_special(t, cfg, map, "cls_token", NULL);
    add_special(t, cfg, map, "mask_token", NULL);
    add_listed(t, cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens"));
    add_listed(t, cJSON_GetObjectItemCaseSensitive(map, "additional_special_tokens"));
}

static int load_config(clip_tokenizer *t, const char *dir, char *err) {
    cJSON *cfg = NULL, *map = NULL;
    if (load_json(dir, "tokenizer_config.json", 0, &cfg, err) ||
        load_json(dir, "special_tokens_map.json", 0, &map, err)) {
        cJSON_Delete(cfg);
        return -1;
    }
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    t->max_length = DEFAULT_MAX_LENGTH;
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= 1 << 20)
        t->max_length = (int)ml->valuedouble;
    load_specials(t, cfg, map);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    if (t->bos < 0 || t->eos < 0 || t->pad < 0)
        return seterr(err, "%s: the bos, eos and pad tokens must be set", dir);
    return 0;
}

clip_tokenizer *clip_tokenizer_load(const char *dir, char *err) {
    clip_tokenizer *t = xcalloc(1, sizeof *t);
    t->bpe = clip_bpe_new();
    if (load_vocab(t, dir, err) || load_merges(t, dir, err)) {
        clip_tokenizer_free(t);
        return NULL;
    }
    if (load_config(t, dir, err)) {
        clip_tokenizer_free(t);
        return NULL;
    }
    clip_bpe_ready(t->bpe, t->unk);
    return t;
}

void clip_tokenizer_free(clip_tokenizer *t) {
    if (!t) return;
    clip_bpe_free(t->bpe);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->cp_a);
    free(t->cp_b);
    free(t->cp_c);
    free(t->piece);
    free(t->ids);
    free(t);
}

int clip_tokenizer_max_length(const clip_tokenizer *t) { return t->max_length; }
int32_t clip_tokenizer_bos_id(const clip_tokenizer *t) { return t->bos; }
int32_t clip_tokenizer_eos_id(const clip_tokenizer *t) { return t->eos; }
int32_t clip_tokenizer_pad_id(const clip_tokenizer *t) { return t->pad; }
size_t clip_tokenizer_vocab_size(const clip_tokenizer *t) { return t->vocab_size; }

/* ---- text to code points ---- */

/* Next code point of s[*i..n); malformed UTF-8 reads as U+FFFD, one byte. */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    uint32_t c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t need = c >= 0xC2 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xF0 && c < 0xF5 ? 3 : 0;
    if (!need || need >= n - *i) {
        (*i)++;
        return 0xFFFD;
    }
    uint32_t cp = c & (0x3Fu >> need);
    for (size_t k = 1; k <= need; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[*i + k] & 0x3F);
    }
    if (cp < min_cp[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += need + 1;
    return cp;
}

static size_t utf8_put(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Worst cases per input byte: CJK spacing makes 3 code points, NFC's full
 * decomposition at most 4 of each, lower() at most 3 of each. */
static void reserve_buffers(clip_tokenizer *t, size_t len) {
    size_t need = 36 * len + 64;
    if (need <= t->cp_cap) return;
    t->cp_cap = need;
    t->cp_a = xrealloc(t->cp_a, (3 * len + 64) * sizeof *t->cp_a);
    t->cp_b = xrealloc(t->cp_b, (12 * len + 64) * sizeof *t->cp_b);
    t->cp_c = xrealloc(t->cp_c, need * sizeof *t->cp_c);
}

/* BasicTokenizer._clean_text then _tokenize_chinese_chars (at most 3 per byte). */
static size_t clean_text(const uint8_t *s, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = utf8_next(s, n, &i);
        if (uc_is_clean_drop(cp)) continue;
        if (uc_is_clean_space(cp)) {
            out[k++] = ' ';
        } else if (cp >= 0x3400 && uc_is_cjk(cp)) {
            out[k++] = ' ';
            out[k++] = cp;
            out[k++] = ' ';
        } else {
            out[k++] = cp;
        }
    }
    return k;
}

/* whitespace_tokenize, lower() per word, " ".join: one space between words. */
static size_t lower_words(const uint32_t *s, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && uc_is_py_space(s[i])) i++;
        size_t start = i;
        while (i < n && !uc_is_py_space(s[i])) i++;
        if (i == start) break;
        if (k) out[k++] = ' ';
        k += uc_lower(s + start, i - start, out + k);
    }
    return k;
}

/* ---- the pre-tokenising pattern ---- */

/* pat (ASCII) at s[i..n), letters compared as IGNORECASE does. */
static int literal_at(const uint32_t *s, size_t n, size_t i, const char *pat) {
    for (; *pat; pat++, i++) {
        if (i >= n) return 0;
        char p = *pat;
        if (p >= 'a' && p <= 'z' ? !uc_matches_ascii_ci(s[i], p) : s[i] != (uint32_t)p) return 0;
    }
    return 1;
}

/* Length of the pattern's match at s[i], 0 when none: the alternatives in
 * order, first that matches wins, as `regex` does. */
static size_t match_at(const uint32_t *s, size_t n, size_t i) {
    static const char *const literals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re",
                                           "'ve", "'m", "'ll", "'d"};
    if (s[i] == '<' || s[i] == '\'')
        for (size_t k = 0; k < sizeof literals / sizeof *literals; k++)
            if (literal_at(s, n, i, literals[k])) return strlen(literals[k]);
    size_t j = i;
    if (uc_is_re_letter(s[i])) {
        while (j < n && uc_is_re_letter(s[j])) j++;
        return j - i;
    }
    if (uc_is_re_number(s[i])) return 1;
    while (j < n && uc_is_re_other(s[j])) j++;
    return j - i;
}

static void push_id(clip_tokenizer *t, int32_t id) {
    if (t->n_ids == t->ids_cap) {
        t->ids_cap = t->ids_cap ? t->ids_cap * 2 : 256;
        t->ids = xrealloc(t->ids, t->ids_cap * sizeof *t->ids);
    }
    t->ids[t->n_ids++] = id;
}

static void emit_piece(clip_tokenizer *t, const uint32_t *s, size_t n) {
    if (4 * n > t->piece_cap) {
        t->piece_cap = 4 * n + 64;
        t->piece = xrealloc(t->piece, t->piece_cap);
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += utf8_put(s[i], t->piece + len);
    /* CLIPTokenizer's cache holds these two as themselves: no BPE, no </w>. */
    if ((len == 15 && !memcmp(t->piece, "<|startoftext|>", 15)) ||
        (len == 13 && !memcmp(t->piece, "<|endoftext|>", 13))) {
        int32_t id = clip_bpe_lookup(t->bpe, (const char *)t->piece, len);
        push_id(t, id >= 0 ? id : t->unk);
        return;
    }
    size_t k;
    const int32_t *ids = clip_bpe_word(t->bpe, t->piece, len, &k);
    for (size_t i = 0; i < k; i++) push_id(t, ids[i]);
}

/* CLIPTokenizer._tokenize of one chunk between added tokens. */
static void tokenize_chunk(clip_tokenizer *t, const uint8_t *s, size_t n) {
    reserve_buffers(t, n);
    size_t na = clean_text(s, n, t->cp_a);
    size_t nb = uc_nfc(t->cp_a, na, t->cp_b);
    size_t nc = lower_words(t->cp_b, nb, t->cp_c);
    for (size_t i = 0; i < nc;) {
        size_t m = match_at(t->cp_c, nc, i);
        if (!m) {
            i++;
            continue;
        }
        emit_piece(t, t->cp_c + i, m);
        i += m;
    }
}

/* The longest added token starting at s[i..n), or NULL. */
static const added_token *added_at(const clip_tokenizer *t, const char *s, size_t n, size_t i) {
    const added_token *best = NULL;
    for (size_t k = 0; k < t->n_added; k++) {
        const added_token *a = &t->added[k];
        if (a->len && a->len <= n - i && (!best || a->len > best->len) && !memcmp(s + i, a->text, a->len))
            best = a;
    }
    return best;
}

long clip_tokenize(clip_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
                   char *err) {
    t->n_ids = 0;
    size_t chunk = 0;
    for (size_t i = 0; i < len;) {
        const added_token *a = added_at(t, text, len, i);
        if (!a) {
            i++;
            continue;
        }
        if (i > chunk) tokenize_chunk(t, (const uint8_t *)text + chunk, i - chunk);
        push_id(t, a->id);
        i += a->len;
        chunk = i;
    }
    if (len > chunk) tokenize_chunk(t, (const uint8_t *)text + chunk, len - chunk);
    for (size_t i = 0; i < t->n_ids; i++)
        if (t->ids[i] < 0) return seterr(err, "text has an unknown token and the unk token is not in the vocabulary");
    if (t->n_ids) memcpy(ids, t->ids, (t->n_ids < cap ? t->n_ids : cap) * sizeof *ids);
    return (long)t->n_ids;
}

int clip_encode(clip_tokenizer *t, const char *text, size_t len, int32_t *out, char *err) {
    int max = t->max_length;
    long n = clip_tokenize(t, text, len, out + 1, (size_t)max - 2, err);
    if (n < 0) return -1;
    int k = n < max - 2 ? (int)n : max - 2;
    out[0] = t->bos;
    out[k + 1] = t->eos;
    for (int i = k + 2; i < max; i++) out[i] = t->pad;
    return k + 2;
}
