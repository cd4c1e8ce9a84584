/* test_wds.c - webdataset member names, grouping, the shuffle buffer and the
 * Python-compatible generator (data-reference.md §3-§6). */
#include <stdlib.h>

#include "frame.h"
#include "pyrandom.h"
#include "test.h"
#include "util.h"
#include "wds_read.h"
#include "wds_sample.h"
#include "wds_shuffle.h"

/* "key|ext" for a name, or "-" when it has no key. */
static const char *split(const char *name) {
    static char buf[256];
    size_t key_len;
    const char *ext;
    if (!wds_split_name(name, &key_len, &ext)) return "-";
    snprintf(buf, sizeof buf, "%.*s|%s", (int)key_len, name, ext);
    return buf;
}

TEST(key_extension_split) {
    CHECK(!strcmp(split("a.jpg"), "a|jpg"));
    CHECK(!strcmp(split("img.depth.png"), "img|depth.png"));
    CHECK(!strcmp(split("a."), "a|"));
    CHECK(!strcmp(split("v1.2/x.jpg"), "v1.2/x|jpg"));
    CHECK(!strcmp(split("dir/sub/k.TXT"), "dir/sub/k|TXT"));
    CHECK(!strcmp(split("noext"), "-"));
    CHECK(!strcmp(split("d.x/noext"), "-"));
    CHECK(!strcmp(split("._photo.jpg"), "-"));
    CHECK(!strcmp(split("sub/._a.jpg"), "sub/|_a.jpg"));
    CHECK(!strcmp(split("d.v2/._a.jpg"), "-"));
    CHECK(!strcmp(split("a//.x"), "a//|x")); /* an empty component has no dot either */
    CHECK(!strcmp(split("/.x"), "/|x"));
}

TEST(metadata_names) {
    CHECK(wds_is_metadata("__info__"));
    CHECK(wds_is_metadata("__x__/a.jpg"));
    CHECK(wds_is_metadata("__"));
    CHECK(wds_is_metadata("___"));
    CHECK(!wds_is_metadata("__index__.json"));
    CHECK(!wds_is_metadata("__a/b__"));
    CHECK(!wds_is_metadata("a/__info__"));
    CHECK(!wds_is_metadata("_x_"));
}

/* Groups names (each member's data is its own name) and renders the samples
 * as "key:ext,ext;key:ext;". */
static const char *group(const char *const *names) {
    static char out[1024];
    out[0] = 0;
    wds_sample s;
    wds_sample_init(&s);
    for (; *names; names++) {
        size_t key_len;
        const char *ext;
        if (wds_is_metadata(*names) || !wds_split_name(*names, &key_len, &ext)) continue;
        char *lext = wds_lower_ext(ext);
        if (wds_sample_starts_new(&s, *names, key_len, lext)) {
            snprintf(out + strlen(out), sizeof out - strlen(out), "%s:", s.key);
            for (int i = 0; i < s.n; i++) snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", s.m[i].ext);
            strcat(out, ";");
            wds_sample_clear(&s);
        }
        wds_sample_add(&s, *names, key_len, lext, (uint8_t *)xstrdup(*names), strlen(*names));
        free(lext);
    }
    if (s.n) {
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s:", s.key);
        for (int i = 0; i < s.n; i++) snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", s.m[i].ext);
        strcat(out, ";");
    }
    wds_sample_free(&s);
    return out;
}

TEST(grouping) {
    const char *basic[] = {"a.jpg", "a.txt", "b.jpg", "b.TXT", NULL};
    CHECK(!strcmp(group(basic), "a:jpg,txt;b:jpg,txt;"));
    const char *repeat[] = {"k.jpg", "k.txt", "k.jpg", NULL}; /* a repeated extension starts a sample */
    CHECK(!strcmp(group(repeat), "k:jpg,txt;k:jpg;"));
    const char *again[] = {"a.jpg", "b.jpg", "a.txt", NULL}; /* no merging of non-adjacent keys */
    CHECK(!strcmp(group(again), "a:jpg;b:jpg;a:txt;"));
    const char *skips[] = {"a.jpg", "__info__", "noext", "a.depth.png", "a.txt", NULL}; /* skipped members never split */
    CHECK(!strcmp(group(skips), "a:jpg,depth.png,txt;"));
    const char *dirs[] = {"x/a.jpg", "y/a.jpg", NULL};
    CHECK(!strcmp(group(dirs), "x/a:jpg;y/a:jpg;"));
}

TEST(sample_encoding) {
    wds_sample s;
    wds_sample_init(&s);
    wds_sample_add(&s, "k1", 2, "jpg", (uint8_t *)xstrdup("JPEG"), 4);
    wds_sample_add(&s, "k1", 2, "txt", (uint8_t *)xstrdup("hi"), 2);
    size_t len;
    uint8_t *blob = wds_sample_encode(&s, "s.tar", &len);
    frame f;
    frame_init(&f);
    char err[LCM_ERRLEN];
    size_t need, at;
    CHECK(frame_parse(&f, blob, len, len, &need, err, &at) == (long long)len);
    CHECK(f.n == 4 && f.entries[0].key_len == 7 && !memcmp(f.entries[0].key, "__key__", 7)); /* key, url, then members */
    CHECK(f.entries[1].key_len == 7 && !memcmp(f.entries[1].key, "__url__", 7));
    CHECK(f.entries[2].key_len == 3 && !memcmp(f.entries[2].key, "jpg", 3));
    size_t n;
    const char *v = frame_get_bytes(&f, "__key__", &n);
    CHECK(v && n == 2 && !memcmp(v, "k1", 2) && frame_get(&f, "__key__")->kind == FV_STR);
    v = frame_get_bytes(&f, "__url__", &n);
    CHECK(v && n == 5 && !memcmp(v, "s.tar", 5));
    CHECK(frame_get(&f, "txt")->kind == FV_BIN); /* text members stay binary */
    v = frame_get_bytes(&f, "jpg", &n);
    CHECK(v && n == 4 && !memcmp(v, "JPEG", 4));
    frame_free(&f);
    free(blob);
    wds_sample_free(&s);
}

TEST(url_kind) {
    CHECK(wds_url_kind("a/b.mpk") == 1);
    CHECK(wds_url_kind("http://h/x.msgpack?sig=1") == 1);
    CHECK(wds_url_kind("pipe:cat x.mpk") == 1);
    CHECK(wds_url_kind("x.tar") == 0);
    CHECK(wds_url_kind("x.tar.zst") == 0);
    CHECK(wds_url_kind("http://h/x.tar?a.mpk") == 0);
    CHECK(wds_url_kind("-") == -1);
    CHECK(wds_url_kind("pipe:cat x.tar | gzip") == -1);
}

TEST(mt19937_reference_vector) {
    /* mt19937ar.c's published test: init_by_array({0x123, 0x234, 0x345, 0x456}). */
    pyrandom r;
    const uint32_t key[] = {0x123, 0x234, 0x345, 0x456};
    pyrandom_init_by_array(&r, key, 4);
    const uint32_t want[] = {1067595299u, 955945823u, 477289528u, 4107218783u, 4228976476u};
    for (int i = 0; i < 5; i++) CHECK(pyrandom_u32(&r) == want[i]);
    /* CPython seeds an int with its 32-bit words: the same key as a seed. */
    pyrandom_seed(&r, 0x456ull << 32 | 0x345); /* only 2 words fit: check it differs from the 4-word key */
    CHECK(pyrandom_u32(&r) != want[0]);
}

TEST(randbelow_range) {
    pyrandom r;
    pyrandom_seed(&r, 5);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = pyrandom_below(&r, 7);
        CHECK(v < 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++) CHECK(seen[i] > 800 && seen[i] < 1200);
    CHECK(pyrandom_below(&r, 1) == 0);
}

typedef struct collect {
    int got[512];
    int n;
} collect;

static void take(void *ctx, wds_item it) {
    collect *c = ctx;
    c->got[c->n++] = *(int *)it.data;
    free(it.data);
}

static int shuffle_run(size_t bufsize, int items, uint64_t seed, collect *c) {
    pyrandom r;
    pyrandom_seed(&r, seed);
    wds_shuffle s;
    memset(c, 0, sizeof *c);
    wds_shuffle_init(&s, bufsize, 100, &r, take, c);
    for (int i = 0; i < items; i++) {
        int *v = xmalloc(sizeof *v);
        *v = i;
        wds_shuffle_push(&s, (wds_item){(uint8_t *)v, sizeof *v});
    }
    wds_shuffle_drain(&s);
    wds_shuffle_free(&s);
    return c->n;
}

TEST(shuffle_is_a_permutation) {
    collect a, b;
    CHECK(shuffle_run(50, 300, 1, &a) == 300);
    int seen[300] = {0}, moved = 0;
    for (int i = 0; i < 300; i++) {
        CHECK(a.got[i] >= 0 && a.got[i] < 300 && !seen[a.got[i]]);
        seen[a.got[i]] = 1;
        moved += a.got[i] != i;
    }
    CHECK(moved > 200);
    CHECK(shuffle_run(50, 300, 1, &b) == 300 && !memcmp(a.got, b.got, sizeof a.got)); /* deterministic */
    CHECK(shuffle_run(50, 300, 2, &b) == 300 && memcmp(a.got, b.got, sizeof a.got));  /* seed matters */
    CHECK(shuffle_run(1, 20, 1, &b) == 20);
    for (int i = 0; i < 20; i++) CHECK(b.got[i] == i); /* a buffer of one keeps the order */
    CHECK(shuffle_run(1000, 3, 1, &b) == 3);             /* fewer items than the buffer */
}

int main(void) {
    RUN(key_extension_split);
    RUN(metadata_names);
    RUN(grouping);
    RUN(sample_encoding);
    RUN(url_kind);
    RUN(mt19937_reference_vector);
    RUN(randbelow_range);
    RUN(shuffle_is_a_permutation);
    TEST_EXIT();
}
