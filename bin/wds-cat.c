/* wds-cat - WebDataset shards to frames (man 1 wds-cat).
 *
 * Expands shard specs the way webdataset does, gives this rank its share,
 * reads each shard as a stream (tar through libarchive, or a frame file),
 * groups tar members into samples and writes one frame per sample, through
 * an optional webdataset-style shuffle buffer. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "pyrandom.h"
#include "shardspec.h"
#include "util.h"
#include "wds_read.h"
#include "wds_shuffle.h"
#include "wds_source.h"

enum handler { H_WARN, H_IGNORE, H_STOP };

typedef struct options {
    uint64_t shuffle, seed, epochs, limit, rank, world;
    int shard_shuffle, resampled, progress, handler;
    wds_source_opts source;
    wds_read_opts read;
} options;

typedef struct stats {
    uint64_t shards_read, shards_failed, samples_written, samples_dropped, members_skipped;
} stats;

/* Everything the output side needs; one per run. */
typedef struct cat {
    options opt;
    stats st;
    frame_writer *w;
    frame_out *o;
    frame f;
    pyrandom sample_rng, shard_rng;
    wds_shuffle shuffle;
    int progress;
    double last_progress;
    const char *current_url;
} cat;

static void usage(void) {
    printf("Usage: %s [OPTION]... SHARD...\n"
           "Read WebDataset shards and write one frame per sample on standard output.\n"
           "\n"
           "SHARD is a webdataset URL list: PATH, file:PATH, -, pipe:CMD, http(s)://...,\n"
           "with brace ranges ({000..099}), ${VAR} from $WDS_VAR and '::' between lists.\n"
           "Frame files (.mpk, .msgpack) are read as shards too, records passed as they are.\n"
           "\n"
           "  --shuffle N          shuffle samples through a buffer of N (initial min(100, N))\n"
           "  --shard-shuffle      shuffle this rank's shard list every epoch\n"
           "  --seed S             seed of the shard and sample shuffles (default 0)\n"
           "  --epochs N           passes over the shards (default 1)\n"
           "  --resampled          draw shards with replacement, without end\n"
           "  --rank R, --world W  read only shards i with i mod W == R (defaults from\n"
           "                       OMPI_COMM_WORLD_RANK/SIZE, SLURM_PROCID/NTASKS, RANK/WORLD_SIZE)\n"
           "  --limit N            stop after N samples\n"
           "  --handler H          broken shards and members: warn (default), ignore, stop\n"
           "  --max-member BYTES   skip tar members larger than this (default 1073741824)\n"
           "  --retries N          network retries before any byte is read (default 5)\n"
           "  --retry-delay S      first retry delay, doubled each time (default 1)\n"
           "  --connect-timeout S  network connect timeout (default 30)\n"
           "  --low-speed-time S   abort a transfer stalled this long (default 60)\n"
           "  --progress           progress on stderr even when it is not a terminal\n"
           "  --help, --version\n"
           "Option names with underscores (--shard_shuffle, ...) are accepted too.\n",
           lcm_progname);
}

/* ---- option parsing ---- */

static uint64_t parse_u64(const char *s, const char *opt) {
    char *end;
    errno = 0;
    if (!*s || *s == '-') die_usage("%s: '%s' is not a non-negative integer", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) die_usage("%s: '%s' is not a non-negative integer", opt, s);
    return v;
}

static double parse_seconds(const char *s, const char *opt) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !*s || !(v >= 0) || v > 1e6) die_usage("%s: '%s' is not a number of seconds", opt, s);
    return v;
}

/* The first pair of rank/size variables that is set, as launchers set them. */
static void rank_from_env(options *o, int have_rank, int have_world) {
    static const char *const pairs[][2] = {
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}, {"RANK", "WORLD_SIZE"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *r = getenv(pairs[i][0]), *w = getenv(pairs[i][1]);
        if (!r || !w) continue;
        if (!have_rank) o->rank = parse_u64(r, pairs[i][0]);
        if (!have_world) o->world = parse_u64(w, pairs[i][1]);
        return;
    }
}

enum {
    O_SHUFFLE = 256, O_SHARD_SHUFFLE, O_SEED, O_EPOCHS, O_RESAMPLED, O_RANK, O_WORLD, O_LIMIT, O_HANDLER, O_PROGRESS,
    O_MAX_MEMBER, O_RETRIES, O_RETRY_DELAY, O_CONNECT_TIMEOUT, O_LOW_SPEED_TIME, O_HELP, O_VERSION
};

static const struct option long_opts[] = {
    {"shuffle", required_argument, 0, O_SHUFFLE},
    {"shard-shuffle", no_argument, 0, O_SHARD_SHUFFLE}, {"shard_shuffle", no_argument, 0, O_SHARD_SHUFFLE},
    {"seed", required_argument, 0, O_SEED},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"resampled", no_argument, 0, O_RESAMPLED},
    {"rank", required_argument, 0, O_RANK},
    {"world", required_argument, 0, O_WORLD},
    {"world-size", required_argument, 0, O_WORLD}, {"world_size", required_argument, 0, O_WORLD},
    {"limit", required_argument, 0, O_LIMIT},
    {"handler", required_argument, 0, O_HANDLER},
    {"progress", no_argument, 0, O_PROGRESS},
    {"max-member", required_argument, 0, O_MAX_MEMBER}, {"max_member", required_argument, 0, O_MAX_MEMBER},
    {"retries", required_argument, 0, O_RETRIES},
    {"retry-delay", required_argument, 0, O_RETRY_DELAY}, {"retry_delay", required_argument, 0, O_RETRY_DELAY},
    {"connect-timeout", required_argument, 0, O_CONNECT_TIMEOUT}, {"connect_timeout", required_argument, 0, O_CONNECT_TIMEOUT},
    {"low-speed-time", required_argument, 0, O_LOW_SPEED_TIME}, {"low_speed_time", required_argument, 0, O_LOW_SPEED_TIME},
    {"help", no_argument, 0, O_HELP},
    {"version", no_argument, 0, O_VERSION},
    {0, 0, 0, 0},
};

static void parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 1;
    o->world = 1;
    o->handler = H_WARN;
    wds_source_opts_default(&o->source);
    o->read.max_member = (size_t)1 << 30;
    o->read.max_record = FRAME_DEFAULT_MAX_RECORD;
    int have_rank = 0, have_world = 0, have_epochs = 0, c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case O_SHUFFLE: o->shuffle = parse_u64(optarg, "--shuffle"); break;
        case O_SHARD_SHUFFLE: o->shard_shuffle = 1; break;
        case O_SEED: o->seed = parse_u64(optarg, "--seed"); break;
        case O_EPOCHS: o->epochs = parse_u64(optarg, "--epochs"), have_epochs = 1; break;
        case O_RESAMPLED: o->resampled = 1; break;
        case O_RANK: o->rank = parse_u64(optarg, "--rank"), have_rank = 1; break;
        case O_WORLD: o->world = parse_u64(optarg, "--world"), have_world = 1; break;
        case O_LIMIT: o->limit = parse_u64(optarg, "--limit"); break;
        case O_HANDLER:
            if (!strcmp(optarg, "warn")) o->handler = H_WARN;
            else if (!strcmp(optarg, "ignore")) o->handler = H_IGNORE;
            else if (!strcmp(optarg, "stop")) o->handler = H_STOP;
            else die_usage("--handler: '%s' is not warn, ignore or stop", optarg);
            break;
        case O_PROGRESS: o->progress = 1; break;
        case O_MAX_MEMBER: o->read.max_member = (size_t)parse_u64(optarg, "--max-member"); break;
        case O_RETRIES: o->source.retries = (int)parse_u64(optarg, "--retries"); break;
        case O_RETRY_DELAY: o->source.retry_delay = parse_seconds(optarg, "--retry-delay"); break;
        case O_CONNECT_TIMEOUT: o->source.connect_timeout = (long)parse_seconds(optarg, "--connect-timeout"); break;
        case O_LOW_SPEED_TIME: o->source.low_speed_time = (long)parse_seconds(optarg, "--low-speed-time"); break;
        case O_HELP: usage(); exit(EXIT_OK);
        case O_VERSION: printf("wds-cat lcm-tools %s\n", LCM_VERSION); exit(EXIT_OK);
        default: die_usage("unknown option or missing argument");
        }
    }
    if (optind >= argc) die_usage("no shards given");
    rank_from_env(o, have_rank, have_world);
    if (o->world < 1) die_usage("--world must be at least 1");
    if (o->rank >= o->world) die_usage("--rank %" PRIu64 " is not below --world %" PRIu64, o->rank, o->world);
    if (o->resampled && have_epochs) die_usage("--resampled runs without end; it takes no --epochs");
    if (o->read.max_member < 1) die_usage("--max-member must be at least 1");
}

/* ---- output ---- */

static void print_summary(const cat *c, int always) {
    const stats *s = &c->st;
    int skipped = s->shards_failed || s->samples_dropped || s->members_skipped;
    if (!skipped && !always) return;
    fprintf(stderr,
            "%s: %" PRIu64 " shards read, %" PRIu64 " samples written; skipped: %" PRIu64 " broken shards, %" PRIu64
            " partial samples, %" PRIu64 " oversized members\n",
            lcm_progname, s->shards_read, s->samples_written, s->shards_failed, s->samples_dropped, s->members_skipped);
}

static void finish(cat *c) {
    frame_writer_finish(c->w);
    print_summary(c, c->progress);
    exit(EXIT_OK);
}

static void show_progress(cat *c) {
    double now = now_seconds();
    if (!c->progress || now - c->last_progress < 1.0) return;
    c->last_progress = now;
    fprintf(stderr, "%s: %" PRIu64 " samples, %" PRIu64 " shards, reading %s\n", lcm_progname, c->st.samples_written,
            c->st.shards_read + c->st.shards_failed, c->current_url ? c->current_url : "");
}

/* A sample leaving the shuffle buffer: re-parsed (it was encoded as a
 * frame, or is a frame file's record) and written as it is. */
static void write_sample(void *ctx, wds_item it) {
    cat *c = ctx;
    char err[LCM_ERRLEN];
    size_t need, at;
    long long n = frame_parse(&c->f, it.data, it.len, it.len, &need, err, &at);
    if (n != (long long)it.len) die("internal error: a sample does not re-parse: %s", n < 0 ? err : "size differs");
    frame_out_reset(c->o);
    fo_pass(c->o, &c->f, NULL);
    frame_emit(c->w, c->o);
    free(it.data);
    c->st.samples_written++;
    show_progress(c);
    if (c->opt.limit && c->st.samples_written >= c->opt.limit) finish(c);
}

static void report(cat *c, const char *message) {
    if (c->opt.handler == H_STOP) {
        frame_writer_flush(c->w); /* what was complete before the damage stays written */
        die("%s", message);
    }
    if (c->opt.handler == H_WARN) warn("%s", message);
}

static void skip_member(void *ctx, const char *message) {
    cat *c = ctx;
    c->st.members_skipped++;
    report(c, message);
}

static void push_sample(void *ctx, wds_item it) {
    cat *c = ctx;
    wds_shuffle_push(&c->shuffle, it);
}

/* Reads one shard; returns the number of samples it gave. */
static uint64_t read_shard(cat *c, const char *url) {
    char err[LCM_ERRLEN];
    c->current_url = url;
    show_progress(c);
    wds_source *src = wds_source_open(url, &c->opt.source, err);
    if (!src) {
        c->st.shards_failed++;
        report(c, err);
        return 0;
    }
    wds_read_hooks hooks = {push_sample, skip_member, c};
    wds_read_result res;
    int rc = wds_read_shard(src, url, &c->opt.read, &hooks, &res, err);
    wds_source_close(src);
    if (rc) {
        c->st.shards_failed++;
        c->st.samples_dropped += (uint64_t)res.dropped_partial;
        report(c, err);
    } else {
        c->st.shards_read++;
    }
    return res.samples;
}

/* ---- shard schedule ---- */

static void run_epochs(cat *c, strlist *mine) {
    void **order = xmalloc(sizeof(void *) * (mine->n ? mine->n : 1));
    for (uint64_t e = 0; e < c->opt.epochs; e++) {
        memcpy(order, mine->v, sizeof(void *) * mine->n); /* each epoch shuffles the list afresh */
        if (c->opt.shard_shuffle) pyrandom_shuffle(&c->shard_rng, order, mine->n);
        for (size_t i = 0; i < mine->n; i++) read_shard(c, order[i]);
        wds_shuffle_drain(&c->shuffle); /* samples never cross epochs */
    }
    free(order);
}

/* Draws with replacement until the consumer stops or --limit is reached.
 * Gives up when a long run of draws yields nothing, rather than spin. */
static void run_resampled(cat *c, strlist *mine) {
    if (mine->n == 0) die("--resampled: rank %" PRIu64 " has no shards to draw from", c->opt.rank);
    uint64_t barren = 0, give_up = 1000 + 2 * (uint64_t)mine->n;
    for (;;) {
        const char *url = mine->v[pyrandom_below(&c->shard_rng, mine->n)];
        barren = read_shard(c, url) ? 0 : barren + 1;
        if (barren >= give_up) die("--resampled: %" PRIu64 " shards in a row gave no samples", barren);
    }
}

static void take_share(const options *o, const strlist *all, strlist *mine) {
    for (size_t i = 0; i < all->n; i++)
        if (i % o->world == o->rank) strlist_push(mine, all->v[i]);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    /* libarchive converts pax (UTF-8) names to the locale's charset: make
     * that UTF-8 so names come through byte for byte. */
    if (!setlocale(LC_CTYPE, "C.UTF-8")) setlocale(LC_CTYPE, "");
    cat c;
    memset(&c, 0, sizeof c);
    parse_options(argc, argv, &c.opt);

    strlist all = {0}, mine = {0};
    char err[LCM_ERRLEN];
    for (int i = optind; i < argc; i++)
        if (expand_urls(argv[i], &all, err)) die_usage("%s", err);
    int stdin_uses = 0;
    for (size_t i = 0; i < all.n; i++) stdin_uses += !strcmp(all.v[i], "-");
    if (stdin_uses > 1 || (stdin_uses && (c.opt.resampled || c.opt.epochs > 1)))
        die_usage("standard input ('-') can be read only once");
    take_share(&c.opt, &all, &mine);
    if (mine.n == 0 && !c.opt.resampled)
        warn("rank %" PRIu64 " of %" PRIu64 " gets none of the %zu shards", c.opt.rank, c.opt.world, all.n);

    atexit(wds_source_cleanup); /* early exits (--limit, closed pipe, errors) stop children */
    lcm_on_fatal(wds_source_cleanup);
    wds_source_install_signal_cleanup();
    c.w = frame_writer_fdopen(STDOUT_FILENO, "<stdout>");
    c.o = frame_out_new();
    frame_init(&c.f);
    c.progress = progress_wanted(c.opt.progress);
    pyrandom_seed(&c.sample_rng, c.opt.seed);
    pyrandom_seed(&c.shard_rng, c.opt.seed);
    size_t bufsize = c.opt.shuffle > ((uint64_t)1 << 30) ? (size_t)1 << 30 : (size_t)c.opt.shuffle;
    wds_shuffle_init(&c.shuffle, bufsize, 100, &c.sample_rng, write_sample, &c);

    if (c.opt.resampled) run_resampled(&c, &mine);
    else run_epochs(&c, &mine);
    finish(&c);
}
