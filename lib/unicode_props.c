/* unicode_props.c - predicates, lower-casing and NFC over lib/unicode_tables.c.
 *
 * Each mirrors one Python behaviour the CLIP tokenizer relies on: see the
 * comments in unicode_tables.h and scripts/gen-unicode-tables. */
#include "unicode_tables.h"

int uc_in_ranges(const uc_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].first) hi = mid;
        else if (cp > r[mid].last) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int uc_is_clean_drop(uint32_t cp) {
    if (cp >= 0x20 && cp < 0x7F) return 0;
    return uc_in_ranges(uc_clean_drop, uc_clean_drop_len, cp);
}

int uc_is_clean_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r';
    return uc_in_ranges(uc_clean_space, uc_clean_space_len, cp);
}

int uc_is_py_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return uc_in_ranges(uc_py_space, uc_py_space_len, cp);
}

/* The ranges are BasicTokenizer._is_chinese_char's, which are fixed in code. */
int uc_is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

int uc_is_re_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return uc_in_ranges(uc_re_letter, uc_re_letter_len, cp);
}

int uc_is_re_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return uc_in_ranges(uc_re_number, uc_re_number_len, cp);
}

int uc_is_re_other(uint32_t cp) {
    return uc_in_ranges(uc_re_other, uc_re_other_len, cp);
}

int uc_matches_ascii_ci(uint32_t cp, char lower_ascii) {
    if (cp < 0x80) return cp == (uint32_t)lower_ascii || cp == (uint32_t)(lower_ascii - 'a' + 'A');
    for (size_t i = 0; i < uc_ascii_fold_len; i++)
        if (uc_ascii_fold[i].cp == cp) return uc_ascii_fold[i].letter == lower_ascii;
    return 0;
}

/* ---- lower-casing ---- */

static uint32_t lower_one(uint32_t cp) {
    size_t lo = 0, hi = uc_lower_runs_len;
    while (lo < hi) { /* last run whose first <= cp */
        size_t mid = lo + (hi - lo) / 2;
        if (uc_lower_runs[mid].first <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return cp;
    const uc_case_run *r = &uc_lower_runs[lo - 1];
    uint32_t off = cp - r->first;
    if (off % r->stride || off / r->stride >= r->count) return cp;
    return (uint32_t)((int32_t)cp + r->delta);
}

/* CPython's handle_capital_sigma: final form when a cased letter precedes
 * and none follows, case-ignorable characters being skipped both ways. */
static int is_final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && uc_in_ranges(uc_case_ignorable, uc_case_ignorable_len, s[j - 1])) j--;
    if (j == 0 || !uc_in_ranges(uc_cased, uc_cased_len, s[j - 1])) return 0;
    j = i + 1;
    while (j < n && uc_in_ranges(uc_case_ignorable, uc_case_ignorable_len, s[j])) j++;
    return j == n || !uc_in_ranges(uc_cased, uc_cased_len, s[j]);
}

size_t uc_lower(const uint32_t *s, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        if (cp < 0x80) {
            out[k++] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
            continue;
        }
        if (cp == 0x3A3) {
            out[k++] = is_final_sigma(s, n, i) ? 0x3C2 : 0x3C3;
            continue;
        }
        int multi = 0;
        for (size_t m = 0; m < uc_lower_multi_len && !multi; m++) {
            if (uc_lower_multi[m].cp != cp) continue;
            for (int t = 0; t < 3 && uc_lower_multi[m].lower[t]; t++) out[k++] = uc_lower_multi[m].lower[t];
            multi = 1;
        }
        if (!multi) out[k++] = lower_one(cp);
    }
    return k;
}

/* ---- NFC ---- */

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
       S_COUNT = L_COUNT * N_COUNT };

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = uc_ccc_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < uc_ccc[mid].first) hi = mid;
        else if (cp > uc_ccc[mid].last) lo = mid + 1;
        else return uc_ccc[mid].ccc;
    }
    return 0;
}

static const uc_decomp *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = uc_decomps_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < uc_decomps[mid].cp) hi = mid;
        else if (cp > uc_decomps[mid].cp) lo = mid + 1;
        else return &uc_decomps[mid];
    }
    return NULL;
}

/* Full canonical decomposition of cp appended at out; returns the count. */
static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE, t = s % T_COUNT;
        out[0] = L_BASE + s / N_COUNT;
        out[1] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (!t) return 2;
        out[2] = T_BASE + t;
        return 3;
    }
    const uc_decomp *d = cp < 0xC0 ? NULL : find_decomp(cp);
    if (!d) {
        out[0] = cp;
        return 1;
    }
    size_t k = decompose(d->a, out);
    if (d->b) k += decompose(d->b, out + k);
    return k;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = uc_comps_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uc_decomp *c = &uc_comps[mid];
        if (a < c->a || (a == c->a && b < c->b)) hi = mid;
        else if (a > c->a || b > c->b) lo = mid + 1;
        else return c->cp;
    }
    return 0;
}

/* Stable sort of each run of non-starters by combining class. */
static void canonical_order(uint32_t *s, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int c = ccc_of(s[i]);
        if (!c) continue;
        size_t j = i;
        while (j > 0 && ccc_of(s[j - 1]) > c) {
            uint32_t t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
            j--;
        }
    }
}

size_t uc_nfc(const uint32_t *s, size_t n, uint32_t *out) {
    int simple = 1; /* below U+0300 everything is already NFC */
    for (size_t i = 0; i < n && simple; i++) simple = s[i] < 0x300;
    if (simple) {
        for (size_t i = 0; i < n; i++) out[i] = s[i];
        return n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += decompose(s[i], out + k);
    canonical_order(out, k);
    size_t m = 0, starter = 0;
    int have_starter = 0, last_ccc = 0;
    for (size_t i = 0; i < k; i++) {
        uint32_t cp = out[i];
        int c = ccc_of(cp);
        int blocked = m > starter + 1 && (last_ccc == 0 || last_ccc >= c);
        uint32_t comp = have_starter && !blocked ? compose_pair(out[starter], cp) : 0;
        if (comp) {
            out[starter] = comp;
            continue;
        }
        if (!c) {
            starter = m;
            have_starter = 1;
        }
        last_ccc = c;
        out[m++] = cp;
    }
    return m;
}
