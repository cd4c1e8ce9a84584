/* test_tokenizer.c - the CLIP tokenizer and its Unicode helpers.
 *
 * Hand-checkable cases on the Unicode transforms and on a small tokenizer
 * folder written here, then the goldens: transformers' slow CLIPTokenizer
 * ids for 3000 captions (tests/fixtures/tokenizer/, made by
 * scripts/reference/golden_tokenizer.py) on the real CLIP-L files. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "clip_tokenizer.h"
#include "test.h"
#include "unicode_tables.h"
#include "util.h"

static char fixture_path_[1024];

/* A path under the repository root (LCM_TOP, set by tests/run, else "."). */
static const char *fixture(const char *rel) {
    const char *top = getenv("LCM_TOP");
    snprintf(fixture_path_, sizeof fixture_path_, "%s/%s", top && *top ? top : ".", rel);
    return fixture_path_;
}

/* ---- Unicode helpers ---- */

static size_t lower_of(const uint32_t *s, size_t n, uint32_t *out) { return uc_lower(s, n, out); }

TEST(lower_is_pythons_str_lower) {
    uint32_t out[16];
    const uint32_t dotted[] = {0x130}; /* İ -> i + combining dot above */
    CHECK(lower_of(dotted, 1, out) == 2 && out[0] == 'i' && out[1] == 0x307);
    const uint32_t kelvin[] = {0x212A, 'A', 0xC9, 0x1E9E}; /* K, A, É, ẞ */
    CHECK(lower_of(kelvin, 4, out) == 4);
    CHECK(out[0] == 'k' && out[1] == 'a' && out[2] == 0xE9 && out[3] == 0xDF);
    const uint32_t odos[] = {0x39F, 0x394, 0x39F, 0x3A3}; /* ΟΔΟΣ: final sigma */
    CHECK(lower_of(odos, 4, out) == 4 && out[3] == 0x3C2);
    const uint32_t sa[] = {0x3A3, 0x391}; /* ΣΑ: sigma not final */
    CHECK(lower_of(sa, 2, out) == 2 && out[0] == 0x3C3);
    const uint32_t alone[] = {0x3A3}; /* nothing cased before it */
    CHECK(lower_of(alone, 1, out) == 1 && out[0] == 0x3C3);
    const uint32_t dot[] = {0x391, 0x3A3, '.'}; /* '.' is case-ignorable: still final */
    CHECK(lower_of(dot, 3, out) == 3 && out[1] == 0x3C2);
    const uint32_t mid[] = {0x391, 0x3A3, 0xAD, 0x391}; /* soft hyphen skipped, letter follows */
    CHECK(lower_of(mid, 4, out) == 4 && out[1] == 0x3C3);
}

static int nfc_is(const uint32_t *in, size_t n, const uint32_t *want, size_t nw) {
    uint32_t out[64];
    size_t k = uc_nfc(in, n, out);
    return k == nw && !memcmp(out, want, nw * sizeof *want);
}

TEST(nfc_composes_and_reorders) {
    const uint32_t e_acute[] = {'e', 0x301}, e_acute_nfc[] = {0xE9};
    CHECK(nfc_is(e_acute, 2, e_acute_nfc, 1));
    /* a + dot below + circumflex and a + circumflex + dot below both give U+1EAD */
    const uint32_t a1[] = {'a', 0x323, 0x302}, a2[] = {'a', 0x302, 0x323}, ah[] = {0x1EAD};
    CHECK(nfc_is(a1, 3, ah, 1));
    CHECK(nfc_is(a2, 3, ah, 1));
    const uint32_t jamo[] = {0x1100, 0x1161, 0x11A8}, gag[] = {0xAC01}; /* Hangul L V T */
    CHECK(nfc_is(jamo, 3, gag, 1));
    const uint32_t compat[] = {0xF900}, unified[] = {0x8C48}; /* singleton decomposition */
    CHECK(nfc_is(compat, 1, unified, 1));
    const uint32_t excluded[] = {0x344}, split[] = {0x308, 0x301}; /* never recomposed */
    CHECK(nfc_is(excluded, 1, split, 2));
    const uint32_t blocked[] = {'a', 0x301, 0x301}, once[] = {0xE1, 0x301};
    CHECK(nfc_is(blocked, 3, once, 2));
}

TEST(pattern_classes_follow_regex) {
    CHECK(uc_is_re_letter('a') && uc_is_re_letter(0xE9) && uc_is_re_letter(0x4E00));
    CHECK(uc_is_re_number('7') && uc_is_re_number(0x661) && uc_is_re_number(0x2160));
    CHECK(uc_is_re_other('!') && uc_is_re_other(0x1F600) && !uc_is_re_other(' '));
    /* IGNORECASE quirk of `regex`: U+0345 is neither a letter nor "other" */
    CHECK(!uc_is_re_letter(0x345) && !uc_is_re_number(0x345) && !uc_is_re_other(0x345));
    CHECK(uc_matches_ascii_ci(0x17F, 's') && uc_matches_ascii_ci('S', 's') && !uc_matches_ascii_ci('t', 's'));
    CHECK(uc_is_clean_drop(0x200B) && uc_is_clean_drop(0) && !uc_is_clean_drop('\t'));
    CHECK(uc_is_clean_space(0x3000) && uc_is_py_space(0x2028) && uc_is_cjk(0x4E00) && !uc_is_cjk(0x3042));
}

/* ---- a small tokenizer folder: the 512 byte symbols and a few merges ---- */

static char tmpdir_[256];

static void byte_symbol(int b, char *out) {
    int next = 256, cp = -1;
    for (int c = 0; c < 256 && cp < 0; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        if (c == b) cp = printable ? c : next;
        if (!printable) next++;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

static void write_text(const char *dir, const char *name, const char *text) {
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    free(path);
}

/* Merges (rank order): "b c</w>", "a b", "a bc</w>", "x y</w>" (whose result
 * "xy</w>" is left out of the vocab), then a line that is not a pair. */
static const char *small_tokenizer(const char *config, const char *map) {
    snprintf(tmpdir_, sizeof tmpdir_, "/tmp/test_tokenizer.XXXXXX");
    if (!mkdtemp(tmpdir_)) return NULL;
    cJSON *v = cJSON_CreateObject();
    char sym[16];
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            /* ids by byte-symbol order, as CLIP lists them: printable bytes first */
            byte_symbol(b, sym);
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            int rank = 0;
            for (int c = 0; c < b; c++) rank += ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE) == printable;
            int id = (printable ? rank : 188 + rank) + pass * 256;
            if (pass) strcat(sym, "</w>");
            cJSON_AddNumberToObject(v, sym, id);
        }
    cJSON_AddNumberToObject(v, "bc</w>", 512);
    cJSON_AddNumberToObject(v, "ab", 513);
    cJSON_AddNumberToObject(v, "abc</w>", 514);
    cJSON_AddNumberToObject(v, "<|startoftext|>", 515);
    cJSON_AddNumberToObject(v, "<|endoftext|>", 516);
    char *json = cJSON_PrintUnformatted(v);
    write_text(tmpdir_, "vocab.json", json);
    free(json);
    cJSON_Delete(v);
    write_text(tmpdir_, "merges.txt", "#version: 0.2\nb c</w>\na b\na bc</w>\nx y</w>\nnot a pair\n");
    if (config) write_text(tmpdir_, "tokenizer_config.json", config);
    if (map) write_text(tmpdir_, "special_tokens_map.json", map);
    return tmpdir_;
}

static long tokenize_str(clip_tokenizer *t, const char *s, int32_t *ids, size_t cap) {
    char err[LCM_ERRLEN];
    return clip_tokenize(t, s, strlen(s), ids, cap, err);
}

TEST(bpe_merges_by_rank) {
    char err[LCM_ERRLEN];
    clip_tokenizer *t = clip_tokenizer_load(small_tokenizer(NULL, NULL), err);
    CHECKF(t, "%s", err);
    int32_t ids[64];
    CHECK(clip_tokenizer_vocab_size(t) == 517);
    CHECK(tokenize_str(t, "abc", ids, 64) == 1 && ids[0] == 514);       /* bc</w> first, then a+bc</w> */
    CHECK(tokenize_str(t, "ABC ab", ids, 64) == 3);                      /* lower-cased; "ab" ends in b</w> */
    CHECK(ids[0] == 514 && ids[1] == 'a' - '!' && ids[2] == 256 + 'b' - '!');
    CHECK(tokenize_str(t, "xy", ids, 64) == 1 && ids[0] == 516);         /* merged but not in vocab: unk */
    CHECK(tokenize_str(t, "a,b", ids, 64) == 3);                         /* letters, other, letters */
    CHECK(ids[0] == 256 + 'a' - '!' && ids[1] == 256 + ',' - '!' && ids[2] == 256 + 'b' - '!');
    CHECK(tokenize_str(t, "12", ids, 64) == 2 && ids[0] == 256 + '1' - '!'); /* digits one at a time */
    /* "'s" is a contraction piece ("'" then "s</w>"); "'x" is not ("'</w>" then "x</w>") */
    CHECK(tokenize_str(t, "a's", ids, 64) == 3 && ids[1] == '\'' - '!' && ids[2] == 256 + 's' - '!');
    CHECK(tokenize_str(t, "a'x", ids, 64) == 3 && ids[1] == 256 + '\'' - '!' && ids[2] == 256 + 'x' - '!');
    clip_tokenizer_free(t);
    rm_rf(tmpdir_);
}

TEST(special_tokens_truncation_padding) {
    char err[LCM_ERRLEN];
    const char *cfg = "{\"model_max_length\": 8, \"pad_token\": \"<|endoftext|>\"}";
    const char *map = "{\"pad_token\": {\"content\": \"!\", \"lstrip\": false}}"; /* overrides the config */
    clip_tokenizer *t = clip_tokenizer_load(small_tokenizer(cfg, map), err);
    CHECKF(t, "%s", err);
    CHECK(clip_tokenizer_max_length(t) == 8);
    CHECK(clip_tokenizer_bos_id(t) == 515 && clip_tokenizer_eos_id(t) == 516 && clip_tokenizer_pad_id(t) == 0);
    int32_t out[8], ids[64];
    /* the pad token "!" is an added token: split out, id 0 (not "!</w>") */
    CHECK(tokenize_str(t, "abc!abc", ids, 64) == 3 && ids[0] == 514 && ids[1] == 0 && ids[2] == 514);
    /* literal specials split before clean-up; upper-case ones come back through the pattern */
    CHECK(tokenize_str(t, "abc<|endoftext|>abc", ids, 64) == 3 && ids[1] == 516);
    CHECK(tokenize_str(t, "<|StartOfText|>", ids, 64) == 1 && ids[0] == 515);
    CHECK(clip_encode(t, "abc", 3, out, err) == 3);
    CHECK(out[0] == 515 && out[1] == 514 && out[2] == 516 && out[3] == 0 && out[7] == 0);
    const char *longer = "abc abc abc abc abc abc abc abc abc";
    CHECK(tokenize_str(t, longer, ids, 2) == 9); /* the full count even past cap */
    CHECK(clip_encode(t, longer, strlen(longer), out, err) == 8);
    CHECK(out[0] == 515 && out[6] == 514 && out[7] == 516);
    CHECK(clip_encode(t, "", 0, out, err) == 2 && out[1] == 516 && out[2] == 0);
    clip_tokenizer_free(t);
    rm_rf(tmpdir_);
}

TEST(clean_up_and_invalid_utf8) {
    char err[LCM_ERRLEN];
    clip_tokenizer *t = clip_tokenizer_load(small_tokenizer(NULL, NULL), err);
    CHECKF(t, "%s", err);
    int32_t ids[64];
    /* zero-width space and a stray continuation byte vanish; NBSP splits */
    CHECK(tokenize_str(t, "a\xe2\x80\x8b" "bc", ids, 64) == 1 && ids[0] == 514);
    CHECK(tokenize_str(t, "ab\x80" "c", ids, 64) == 1 && ids[0] == 514);
    CHECK(tokenize_str(t, "ab\xc2\xa0" "c", ids, 64) == 3 && ids[2] == 256 + 'c' - '!');
    CHECK(clip_tokenizer_max_length(t) == 77); /* no config: the SD default */
    clip_tokenizer_free(t);
    rm_rf(tmpdir_);
}

TEST(missing_files_are_errors) {
    char err[LCM_ERRLEN] = "";
    CHECK(!clip_tokenizer_load("/nonexistent/tokenizer", err));
    CHECKF(strstr(err, "vocab.json") != NULL, "%s", err);
    const char *dir = small_tokenizer("{\"model_max_length\": 77,", NULL); /* truncated JSON */
    CHECK(dir && !clip_tokenizer_load(dir, err));
    CHECKF(strstr(err, "tokenizer_config.json: not valid JSON") != NULL, "%s", err);
    rm_rf(tmpdir_);
}

TEST(tiny_sd_tokenizer_ids) {
    char err[LCM_ERRLEN];
    clip_tokenizer *t = clip_tokenizer_load(fixture("tests/fixtures/tiny-sd/tokenizer"), err);
    CHECKF(t, "%s", err);
    /* its layout (fixtures README): byte symbols, merges, then bos, eos (= pad) */
    int32_t v = (int32_t)clip_tokenizer_vocab_size(t);
    CHECK(clip_tokenizer_bos_id(t) == v - 2 && clip_tokenizer_eos_id(t) == v - 1 && clip_tokenizer_pad_id(t) == v - 1);
    int32_t out[77];
    CHECK(clip_encode(t, "", 0, out, err) == 2); /* the LCM script's unconditional prompt */
    CHECK(out[0] == v - 2);
    for (int i = 1; i < 77; i++) CHECK(out[i] == v - 1);
    CHECK(clip_encode(t, "a", 1, out, err) == 3 && out[1] == 320); /* "a</w>": byte 'a' + 256 */
    clip_tokenizer_free(t);
}

/* ---- goldens ---- */

/* The i32 tensor `name` of a safetensors file (8-byte header length, JSON
 * header, data); *rows x *cols. NULL when absent or malformed. */
static int32_t *read_i32_tensor(const char *path, const char *name, int *rows, int *cols) {
    char *data, err[LCM_ERRLEN];
    size_t len;
    if (read_file(path, &data, &len, err)) return NULL;
    uint64_t hlen = 0;
    int32_t *out = NULL;
    if (len >= 8) memcpy(&hlen, data, 8);
    cJSON *h = hlen && hlen <= len - 8 ? cJSON_ParseWithLength(data + 8, hlen) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(h, name);
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (cJSON_IsString(dtype) && !strcmp(dtype->valuestring, "I32") && cJSON_GetArraySize(shape) == 2 &&
        cJSON_GetArraySize(offs) == 2) {
        *rows = cJSON_GetArrayItem(shape, 0)->valueint;
        *cols = cJSON_GetArrayItem(shape, 1)->valueint;
        size_t begin = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
        size_t end = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
        size_t n = (size_t)*rows * (size_t)*cols;
        if (end - begin == n * 4 && 8 + hlen + end <= len) {
            out = xmalloc(n * 4);
            memcpy(out, data + 8 + hlen + begin, n * 4);
        }
    }
    cJSON_Delete(h);
    free(data);
    return out;
}

static int golden_files_present(void) {
    static const char *const need[] = {"tests/fixtures/clip-tokenizer/vocab.json",
                                       "tests/fixtures/clip-tokenizer/merges.txt",
                                       "tests/fixtures/tokenizer/captions.txt",
                                       "tests/fixtures/tokenizer/ids.safetensors"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!path_exists(fixture(need[i]))) return 0;
    return 1;
}

TEST(golden_captions_match_transformers) {
    char err[LCM_ERRLEN], *text;
    size_t len;
    int rows = 0, cols = 0;
    int32_t *want = read_i32_tensor(fixture("tests/fixtures/tokenizer/ids.safetensors"), "input_ids", &rows, &cols);
    CHECK(want && cols == 77 && rows > 0);
    CHECKF(!read_file(fixture("tests/fixtures/tokenizer/captions.txt"), &text, &len, err), "%s", err);
    clip_tokenizer *t = clip_tokenizer_load(fixture("tests/fixtures/clip-tokenizer"), err);
    CHECKF(t, "%s", err);
    CHECK(clip_tokenizer_max_length(t) == 77 && clip_tokenizer_vocab_size(t) == 49408);
    int32_t got[77];
    int row = 0, bad = 0, first_bad = -1, first_col = -1;
    for (size_t i = 0; i < len && row < rows; row++) { /* one caption per line, split on \n only */
        const char *eol = memchr(text + i, '\n', len - i);
        size_t n = eol ? (size_t)(eol - text - i) : len - i;
        CHECK(clip_encode(t, text + i, n, got, err) >= 2);
        const int32_t *w = want + (size_t)row * 77;
        if (memcmp(got, w, sizeof got)) {
            if (first_bad < 0) {
                first_bad = row;
                for (first_col = 0; got[first_col] == w[first_col]; first_col++) {}
            }
            bad++;
        }
        i += n + 1;
    }
    CHECKF(row == rows, "captions.txt has %d lines, ids %d rows", row, rows);
    CHECKF(!bad, "%d of %d captions differ; first: line %d, position %d", bad, rows, first_bad + 1, first_col);
    clip_tokenizer_free(t);
    free(text);
    free(want);
}

int main(void) {
    RUN(lower_is_pythons_str_lower);
    RUN(nfc_composes_and_reorders);
    RUN(pattern_classes_follow_regex);
    RUN(bpe_merges_by_rank);
    RUN(special_tokens_truncation_padding);
    RUN(clean_up_and_invalid_utf8);
    RUN(missing_files_are_errors);
    RUN(tiny_sd_tokenizer_ids);
    if (golden_files_present()) RUN(golden_captions_match_transformers);
    else SKIP(golden_captions_match_transformers, "fixtures missing");
    TEST_EXIT();
}
