/* wds_read.h - reading one shard into samples: a tar (any compression
 * libarchive detects) grouped the webdataset way, or a frame file whose
 * records pass through as they are.
 *
 * Damage (a truncated member, a corrupt header, a broken record, a failed
 * pipe command) stops the shard: the complete samples before it have been
 * emitted, the sample being gathered is dropped, and the reader returns -1
 * with a message naming the shard and the byte offset. */
#ifndef LCM_WDS_READ_H
#define LCM_WDS_READ_H

#include <stddef.h>
#include <stdint.h>

#include "wds_shuffle.h"
#include "wds_source.h"

typedef struct wds_read_opts {
    size_t max_member; /* larger tar members are skipped (and reported) */
    size_t max_record; /* larger frame records are damage */
} wds_read_opts;

typedef struct wds_read_hooks {
    wds_emit_fn emit;  /* each complete sample, as an encoded frame */
    /* a member skipped on its own (too large); the shard goes on */
    void (*skip_member)(void *ctx, const char *message);
    void *ctx;
} wds_read_hooks;

typedef struct wds_read_result {
    uint64_t samples;        /* emitted */
    uint64_t members_skipped;
    int dropped_partial;     /* damage dropped a sample being gathered */
} wds_read_result;

/* 1 when the URL names a frame file (.mpk, .msgpack); 0 when it names a tar;
 * -1 when its name does not say (the first byte decides then). */
int wds_url_kind(const char *url);

int wds_read_tar(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err);
int wds_read_frames(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err);
/* Chooses by wds_url_kind(), or by the first byte: a msgpack map starts a
 * frame file. */
int wds_read_shard(wds_source *src, const char *url, const wds_read_opts *o, const wds_read_hooks *h, wds_read_result *res, char *err);

#endif
