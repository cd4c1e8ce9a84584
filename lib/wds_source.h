/* wds_source.h - opening a shard URL as a byte stream, like webdataset's gopen
 * (data-reference.md §2).
 *
 *   "-"                  standard input
 *   PATH, file:PATH      a local file (file:// URLs are percent-decoded)
 *   pipe:CMD             /bin/sh -c CMD, reading its standard output; exit
 *                        status 0 and 141 (SIGPIPE) are success
 *   http(s)://, ftp(s)://, sftp://, scp://
 *                        libcurl, failing on HTTP errors, following
 *                        redirects, retrying transient failures with
 *                        exponential back-off while nothing has been read
 *   gs://                pipe:gsutil cat URL
 *
 * Reading streams: a source never holds more than about one network buffer.
 * A child process or transfer still running when the source is closed early
 * is stopped; wds_source_cleanup() (for atexit) stops any still open. */
#ifndef LCM_WDS_SOURCE_H
#define LCM_WDS_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct wds_source_opts {
    int retries;           /* network retries while no byte has been read */
    double retry_delay;    /* first back-off in seconds, doubled each time (max 60) */
    long connect_timeout;  /* seconds */
    long low_speed_time;   /* abort a transfer below 1 byte/s for this long */
} wds_source_opts;

void wds_source_opts_default(wds_source_opts *o);

typedef struct wds_source wds_source;

/* NULL with err set when the URL cannot be opened (no such file, no handler
 * for the scheme, HTTP error, connection refused after all retries). */
wds_source *wds_source_open(const char *url, const wds_source_opts *o, char *err);
/* >0 bytes read, 0 at a clean end (a pipe's exit status checked), -1 error. */
ssize_t wds_source_read(wds_source *s, void *buf, size_t n, char *err);
/* The next byte without consuming it: 0..255, -1 at the end, -2 on error. */
int wds_source_peek(wds_source *s, char *err);
/* For a pipe, reads and discards to the end, so that the command's exit
 * status is known; a no-op for other sources. 0, or -1 with err. */
int wds_source_drain(wds_source *s, char *err);
/* Bytes read so far (the position in the raw, possibly compressed, stream). */
uint64_t wds_source_offset(const wds_source *s);
/* Stops whatever is still running and frees s. */
void wds_source_close(wds_source *s);
/* Closes every source still open (for atexit on an early exit). */
void wds_source_cleanup(void);
/* On SIGINT, SIGTERM and SIGHUP, stops running pipe: commands (each runs in
 * its own process group) before dying of the signal. */
void wds_source_install_signal_cleanup(void);

#endif
