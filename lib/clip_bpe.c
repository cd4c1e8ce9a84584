/* clip_bpe.c - symbol interning, merge ranks, the BPE loop and a word cache.
 *
 * Mirrors CLIPTokenizer.bpe(): repeatedly merge every left-to-right,
 * non-overlapping occurrence of the adjacent pair with the lowest rank, until
 * no adjacent pair has one. */
#include "clip_bpe.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    uint32_t off, len; /* in the string arena */
    int32_t id;        /* token id, -1 when the string is not a token */
} symbol;

typedef struct {
    uint64_t key; /* left << 32 | right; EMPTY_KEY when free */
    int32_t rank, merged;
} merge_slot;

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, n_ids; /* key_len == UINT32_MAX: free */
} cache_slot;

enum { CACHE_SLOTS = 8192, CACHE_MAX = CACHE_SLOTS / 2 };
#define EMPTY_KEY UINT64_MAX

struct clip_bpe {
    char *arena;
    size_t arena_len, arena_cap;
    symbol *syms;
    size_t n_syms, syms_cap;
    int32_t *sym_slots; /* open addressing over syms, -1 free */
    size_t sym_mask;
    merge_slot *merges;
    size_t n_merges, merge_mask;
    int32_t byte_sym[256], byte_sym_end[256]; /* "x" and "x</w>" per byte */
    int32_t unk_id;
    int32_t *work, *out; /* per-word scratch */
    size_t work_cap;
    cache_slot *cache;
    size_t cache_used;
    uint8_t *cache_keys;
    int32_t *cache_ids;
    size_t keys_len, keys_cap, ids_len, ids_cap;
};

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

clip_bpe *clip_bpe_new(void) {
    clip_bpe *b = xcalloc(1, sizeof *b);
    b->sym_mask = (1u << 17) - 1;
    b->sym_slots = xmalloc((b->sym_mask + 1) * sizeof *b->sym_slots);
    memset(b->sym_slots, 0xff, (b->sym_mask + 1) * sizeof *b->sym_slots);
    b->merge_mask = (1u << 17) - 1;
    b->merges = xmalloc((b->merge_mask + 1) * sizeof *b->merges);
    for (size_t i = 0; i <= b->merge_mask; i++) b->merges[i].key = EMPTY_KEY;
    b->cache = xmalloc(CACHE_SLOTS * sizeof *b->cache);
    for (size_t i = 0; i < CACHE_SLOTS; i++) b->cache[i].key_len = UINT32_MAX;
    b->unk_id = -1;
    return b;
}

void clip_bpe_free(clip_bpe *b) {
    if (!b) return;
    free(b->arena);
    free(b->syms);
    free(b->sym_slots);
    free(b->merges);
    free(b->work);
    free(b->out);
    free(b->cache);
    free(b->cache_keys);
    free(b->cache_ids);
    free(b);
}

/* ---- symbols ---- */

static void grow_symbols(clip_bpe *b) {
    size_t cap = (b->sym_mask + 1) * 2;
    int32_t *slots = xmalloc(cap * sizeof *slots);
    memset(slots, 0xff, cap * sizeof *slots);
    for (size_t s = 0; s < b->n_syms; s++) {
        size_t i = hash_bytes(b->arena + b->syms[s].off, b->syms[s].len) & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = (int32_t)s;
    }
    free(b->sym_slots);
    b->sym_slots = slots;
    b->sym_mask = cap - 1;
}

/* The slot holding s[0..n), or the free slot where it would go. */
static size_t find_slot(const clip_bpe *b, const char *s, size_t n) {
    size_t i = hash_bytes(s, n) & b->sym_mask;
    for (;; i = (i + 1) & b->sym_mask) {
        int32_t k = b->sym_slots[i];
        if (k < 0) return i;
        const symbol *y = &b->syms[k];
        if (y->len == n && !memcmp(b->arena + y->off, s, n)) return i;
    }
}

int32_t clip_bpe_intern(clip_bpe *b, const char *s, size_t n) {
    size_t i = find_slot(b, s, n);
    if (b->sym_slots[i] >= 0) return b->sym_slots[i];
    if (b->arena_len + n > b->arena_cap) {
        b->arena_cap = (b->arena_len + n) * 2 + 4096;
        b->arena = xrealloc(b->arena, b->arena_cap);
    }
    memcpy(b->arena + b->arena_len, s, n);
    if (b->n_syms == b->syms_cap) {
        b->syms_cap = b->syms_cap ? b->syms_cap * 2 : 65536;
        b->syms = xrealloc(b->syms, b->syms_cap * sizeof *b->syms);
    }
    int32_t k = (int32_t)b->n_syms++;
    b->syms[k] = (symbol){(uint32_t)b->arena_len, (uint32_t)n, -1};
    b->arena_len += n;
    b->sym_slots[i] = k;
    if (b->n_syms * 2 > b->sym_mask) grow_symbols(b);
    return k;
}

int32_t clip_bpe_lookup(const clip_bpe *b, const char *s, size_t n) {
    int32_t k = b->sym_slots[find_slot(b, s, n)];
    return k < 0 ? -1 : b->syms[k].id;
}

void clip_bpe_set_id(clip_bpe *b, int32_t sym, int32_t id) { b->syms[sym].id = id; }

/* ---- merges ---- */

static merge_slot *merge_find(const clip_bpe *b, uint64_t key) {
    size_t i = hash_pair(key) & b->merge_mask;
    while (b->merges[i].key != EMPTY_KEY && b->merges[i].key != key) i = (i + 1) & b->merge_mask;
    return &b->merges[i];
}

static void grow_merges(clip_bpe *b) {
    merge_slot *old = b->merges;
    size_t old_n = b->merge_mask + 1;
    b->merge_mask = old_n * 2 - 1;
    b->merges = xmalloc(old_n * 2 * sizeof *b->merges);
    for (size_t i = 0; i <= b->merge_mask; i++) b->merges[i].key = EMPTY_KEY;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].key != EMPTY_KEY) *merge_find(b, old[i].key) = old[i];
    free(old);
}

void clip_bpe_add_merge(clip_bpe *b, const char *left, size_t nl, const char *right, size_t nr,
                        int32_t rank) {
    char buf[512];
    char *joined = nl + nr <= sizeof buf ? buf : xmalloc(nl + nr);
    memcpy(joined, left, nl);
    memcpy(joined + nl, right, nr);
    int32_t merged = clip_bpe_intern(b, joined, nl + nr);
    if (joined != buf) free(joined);
    int32_t l = clip_bpe_intern(b, left, nl), r = clip_bpe_intern(b, right, nr);
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    merge_slot *m = merge_find(b, key);
    if (m->key == EMPTY_KEY) b->n_merges++;
    *m = (merge_slot){key, rank, merged};
    if (b->n_merges * 2 > b->merge_mask) grow_merges(b);
}

/* ---- the byte alphabet ---- */

/* CLIP's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 map in order to U+0100 onwards. */
static void byte_chars(uint32_t table[256]) {
    uint32_t next = 256;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        table[c] = printable ? (uint32_t)c : next++;
    }
}

void clip_bpe_ready(clip_bpe *b, int32_t unk_id) {
    uint32_t table[256];
    byte_chars(table);
    b->unk_id = unk_id;
    for (int c = 0; c < 256; c++) {
        uint32_t cp = table[c];
        char s[8] = {0};
        s[0] = (char)(0xC0 | cp >> 6); /* every byte char is U+0021..U+0143 */
        s[1] = (char)(0x80 | (cp & 0x3F));
        size_t n = 2;
        if (cp < 0x80) {
            s[0] = (char)cp;
            n = 1;
        }
        b->byte_sym[c] = clip_bpe_intern(b, s, n);
        memcpy(s + n, "</w>", 4);
        b->byte_sym_end[c] = clip_bpe_intern(b, s, n + 4);
    }
}

/* ---- BPE ---- */

/* One merge round: the lowest-ranked adjacent pair, merged everywhere.
 * Returns 0 when no pair has a rank. */
static int merge_once(clip_bpe *b, int32_t *w, size_t *n) {
    int32_t best_rank = INT32_MAX, best_l = -1, best_r = -1, merged = -1;
    for (size_t i = 0; i + 1 < *n; i++) {
        const merge_slot *m = merge_find(b, (uint64_t)(uint32_t)w[i] << 32 | (uint32_t)w[i + 1]);
        if (m->key != EMPTY_KEY && m->rank < best_rank) {
            best_rank = m->rank;
            best_l = w[i];
            best_r = w[i + 1];
            merged = m->merged;
        }
    }
    if (merged < 0) return 0;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (i + 1 < *n && w[i] == best_l && w[i + 1] == best_r) {
            w[k++] = merged;
            i++;
        } else {
            w[k++] = w[i];
        }
    }
    *n = k;
    return 1;
}

static size_t bpe_symbols(clip_bpe *b, const uint8_t *bytes, size_t len) {
    if (len > b->work_cap) {
        b->work_cap = len * 2;
        b->work = xrealloc(b->work, b->work_cap * sizeof *b->work);
        b->out = xrealloc(b->out, b->work_cap * sizeof *b->out);
    }
    for (size_t i = 0; i < len; i++) b->work[i] = i + 1 < len ? b->byte_sym[bytes[i]] : b->byte_sym_end[bytes[i]];
    size_t n = len;
    while (n > 1 && merge_once(b, b->work, &n)) {}
    for (size_t i = 0; i < n; i++) {
        int32_t id = b->syms[b->work[i]].id;
        b->out[i] = id >= 0 ? id : b->unk_id;
    }
    return n;
}

/* ---- the word cache: cleared wholesale when half full ---- */

static void cache_clear(clip_bpe *b) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) b->cache[i].key_len = UINT32_MAX;
    b->cache_used = b->keys_len = b->ids_len = 0;
}

static void cache_put(clip_bpe *b, size_t slot, uint64_t h, const uint8_t *key, size_t len,
                      const int32_t *ids, size_t n) {
    if (b->keys_len + len > b->keys_cap) {
        b->keys_cap = (b->keys_len + len) * 2;
        b->cache_keys = xrealloc(b->cache_keys, b->keys_cap);
    }
    if (b->ids_len + n > b->ids_cap) {
        b->ids_cap = (b->ids_len + n) * 2;
        b->cache_ids = xrealloc(b->cache_ids, b->ids_cap * sizeof *b->cache_ids);
    }
    memcpy(b->cache_keys + b->keys_len, key, len);
    memcpy(b->cache_ids + b->ids_len, ids, n * sizeof *ids);
    b->cache[slot] = (cache_slot){h, (uint32_t)b->keys_len, (uint32_t)len, (uint32_t)b->ids_len, (uint32_t)n};
    b->keys_len += len;
    b->ids_len += n;
    b->cache_used++;
}

const int32_t *clip_bpe_word(clip_bpe *b, const uint8_t *bytes, size_t len, size_t *n) {
    uint64_t h = hash_bytes(bytes, len);
    size_t i = h & (CACHE_SLOTS - 1);
    for (; b->cache[i].key_len != UINT32_MAX; i = (i + 1) & (CACHE_SLOTS - 1)) {
        const cache_slot *c = &b->cache[i];
        if (c->hash == h && c->key_len == len && !memcmp(b->cache_keys + c->key_off, bytes, len)) {
            *n = c->n_ids;
            return b->cache_ids + c->ids_off;
        }
    }
    *n = bpe_symbols(b, bytes, len);
    if (len <= 256) { /* long runs are rare and would crowd the cache */
        if (b->cache_used >= CACHE_MAX) {
            cache_clear(b);
            i = h & (CACHE_SLOTS - 1);
        }
        cache_put(b, i, h, bytes, len, b->out, *n);
    }
    return b->out;
}
