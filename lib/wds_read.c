/* wds_read.c - see wds_read.h. */
#include "wds_read.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frame.h"
#include "util.h"
#include "wds_sample.h"

/* ---- which reader ---- */

static int ext_is(const char *ext, size_t len, const char *const *list) {
    for (; *list; list++)
        if (strlen(*list) == len && !strncasecmp(ext, *list, len)) return 1;
    return 0;
}

int wds_url_kind(const char *url) {
    size_t end = strlen(url);
    if (strstr(url, "://")) end = strcspn(url, "?#"); /* a network URL's query is not its name */
    while (end > 0 && isspace((unsigned char)url[end - 1])) end--;
    size_t base = end;
    while (base > 0 && url[base - 1] != '/') base--;
    const char *dot = NULL;
    for (size_t i = base; i < end; i++)
        if (url[i] == '.') dot = url + i;
    if (!dot) return -1;
    size_t len = (size_t)(url + end - dot - 1);
    static const char *const frames[] = {"mpk", "msgpack", NULL};
    static const char *const tars[] = {"tar", "tgz", "tbz", "tbz2", "txz", "tzst", "gz", "bz2", "xz", "zst", "zstd", "lz4", NULL};
    if (ext_is(dot + 1, len, frames)) return 1;
    if (ext_is(dot + 1, len, tars)) return 0;
    return -1;
}

int wds_read_shard(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err) {
    int kind = wds_url_kind(url);
    if (kind < 0) {
        int b = wds_source_peek(src, err);
        if (b == -2) return -1;
        kind = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf; /* fixmap, map16, map32 */
    }
    return kind ? wds_read_frames(src, url, o, h, res, err) : wds_read_tar(src, url, o, h, res, err);
}

/* ---- tar ---- */

typedef struct tar_input {
    wds_source *src;
    uint8_t buf[1 << 16];
    int failed;
    char err[LCM_ERRLEN];
} tar_input;

/* libarchive pulls the stream through this: nothing but the current block
 * and the current sample is ever held in memory. */
static la_ssize_t tar_read_cb(struct archive *a, void *ud, const void **out) {
    tar_input *in = ud;
    ssize_t k = wds_source_read(in->src, in->buf, sizeof in->buf, in->err);
    if (k < 0) {
        in->failed = 1;
        archive_set_error(a, EIO, "%s", in->err);
        return -1;
    }
    *out = in->buf;
    return k;
}

static struct archive *tar_open(tar_input *in, const char *url, char *err) {
    struct archive *a = archive_read_new();
    if (!a) die("cannot initialise libarchive");
    /* The compressions libarchive decodes itself; none of the filters that
     * would run an external program. */
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_lzma(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_lz4(a);
    archive_read_support_format_tar(a);
    if (archive_read_open(a, in, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
        if (in->failed) seterr(err, "%s", in->err);
        else seterr(err, "%s: not a tar archive: %s", url, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* What webdataset keeps: regular files only (not hard links, which tar
 * stores without data), never metadata. */
static int wanted(struct archive_entry *e, const char *name) {
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) return 0;
    return name && !wds_is_metadata(name);
}

/* Reads the current member's data; 1 with *data, 0 when it is too large
 * (skipped), -1 on damage. */
static int member_data(struct archive *a, struct archive_entry *e, size_t max, uint8_t **data, size_t *len) {
    size_t cap = archive_entry_size_is_set(e) ? (size_t)archive_entry_size(e) : 65536, n = 0;
    if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > max) return archive_read_data_skip(a) == ARCHIVE_OK ? 0 : -1;
    uint8_t *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(buf);
                return archive_read_data_skip(a) == ARCHIVE_OK ? 0 : -1;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        la_ssize_t k = archive_read_data(a, buf + n, cap - n);
        if (k < 0) {
            free(buf);
            return -1;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    *data = buf;
    *len = n;
    return 1;
}

typedef struct tar_state {
    const char *url;
    const wds_read_hooks *h;
    wds_read_result *res;
    wds_sample cur;
} tar_state;

static void flush_sample(tar_state *t) {
    if (t->cur.n == 0) return;
    wds_item it;
    it.data = wds_sample_encode(&t->cur, t->url, &it.len);
    wds_sample_clear(&t->cur);
    t->res->samples++;
    t->h->emit(t->h->ctx, it);
}

/* member: the member whose data is damaged, or NULL for a bad header, which
 * starts at header_at (a byte offset in the uncompressed tar stream). */
static int damage(tar_state *t, struct archive *a, tar_input *in, const char *member, long long header_at, char *err) {
    const char *why = in->failed ? in->err : archive_error_string(a);
    if (!why) why = "unknown error";
    if (member)
        seterr(err, "%s: member '%s' (header at byte %lld): %s", t->url, member, (long long)archive_read_header_position(a), why);
    else
        seterr(err, "%s: header at byte %lld: %s", t->url, header_at, why);
    t->res->dropped_partial = t->cur.n > 0;
    wds_sample_clear(&t->cur);
    return -1;
}

static int tar_members(tar_state *t, struct archive *a, tar_input *in, const wds_read_opts *o, char *err) {
    struct archive_entry *e;
    for (;;) {
        /* The previous member's data has been read; its padding to the
         * next 512-byte block is consumed with the next header. */
        long long next_header = (archive_filter_bytes(a, 0) + 511) / 512 * 512;
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF) return 0;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return damage(t, a, in, NULL, next_header, err); /* RETRY too: a bad checksum */
        const char *name = archive_entry_pathname(e);
        size_t key_len;
        const char *ext;
        /* Skipped members never end the current sample. */
        if (!wanted(e, name) || !wds_split_name(name, &key_len, &ext)) continue;
        char *lext = wds_lower_ext(ext);
        if (wds_sample_starts_new(&t->cur, name, key_len, lext)) flush_sample(t);
        uint8_t *data = NULL;
        size_t len = 0;
        int got = member_data(a, e, o->max_member, &data, &len);
        if (got < 0) {
            char *copy = xstrdup(name);
            damage(t, a, in, copy, 0, err);
            t->res->dropped_partial = 1; /* at least the sample this member began or continued */
            free(copy);
            free(lext);
            return -1;
        }
        if (got == 0) {
            char msg[LCM_ERRLEN];
            snprintf(msg, sizeof msg, "%s: member '%s' (header at byte %lld): larger than %zu bytes, skipped", t->url, name,
                     (long long)archive_read_header_position(a), o->max_member);
            t->res->members_skipped++;
            if (t->h->skip_member) t->h->skip_member(t->h->ctx, msg);
        } else {
            wds_sample_add(&t->cur, name, key_len, lext, data, len);
        }
        free(lext);
    }
}

int wds_read_tar(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err) {
    tar_input *in = xcalloc(1, sizeof *in);
    in->src = src;
    memset(res, 0, sizeof *res);
    struct archive *a = tar_open(in, url, err);
    if (!a) {
        free(in);
        return -1;
    }
    tar_state t = {.url = url, .h = h, .res = res};
    wds_sample_init(&t.cur);
    int rc = tar_members(&t, a, in, o, err);
    /* A pipe's command may still fail after the archive's end: its exit
     * status decides whether the last sample is complete. */
    if (!rc && wds_source_drain(src, in->err)) {
        seterr(err, "%s", in->err);
        res->dropped_partial = t.cur.n > 0;
        rc = -1;
    }
    if (!rc) flush_sample(&t);
    wds_sample_free(&t.cur);
    archive_read_free(a);
    free(in);
    return rc;
}

/* ---- frame files ---- */

int wds_read_frames(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err) {
    memset(res, 0, sizeof *res);
    size_t cap = 1 << 16, start = 0, end = 0, need = 1;
    uint8_t *buf = xmalloc(cap);
    uint64_t offset = 0, record = 0; /* of buf[start] */
    int eof = 0, rc = 0;
    frame f;
    frame_init(&f);
    for (;;) {
        if (end - start < need && !eof) { /* fill: compact, grow, read */
            memmove(buf, buf + start, end - start);
            end -= start;
            start = 0;
            if (need > cap) buf = xrealloc(buf, cap = need > 2 * cap ? need : 2 * cap);
            ssize_t k = wds_source_read(src, buf + end, cap - end, err);
            if (k < 0) { rc = -1; break; }
            if (k == 0) eof = 1;
            end += (size_t)k;
            continue;
        }
        if (end == start && eof) break;
        char msg[LCM_ERRLEN];
        size_t at = 0;
        long long n = frame_parse(&f, buf + start, end - start, o->max_record, &need, msg, &at);
        if (n < 0) {
            rc = seterr(err, "%s: record %llu at byte %llu: %s", url, (unsigned long long)record, (unsigned long long)offset, msg);
            break;
        }
        if (n == 0) {
            if (eof) {
                rc = seterr(err, "%s: record %llu at byte %llu: truncated (the stream ends after %zu of at least %zu bytes)", url,
                            (unsigned long long)record, (unsigned long long)offset, end - start, need);
                break;
            }
            if (need <= end - start) need = end - start + 1;
            continue;
        }
        wds_item it = {xmalloc((size_t)n), (size_t)n};
        memcpy(it.data, buf + start, (size_t)n);
        start += (size_t)n;
        offset += (uint64_t)n;
        record++;
        need = 1;
        res->samples++;
        h->emit(h->ctx, it);
    }
    if (!rc && wds_source_drain(src, err)) rc = -1;
    frame_free(&f);
    free(buf);
    return rc;
}
