/* ckpt_convert.c - ckpt-tool convert: rewrites a safetensors file, or a
 * whole model or pipeline folder, with floating tensors in another dtype.
 * Integer and bool tensors, metadata and every other file are kept. A folder
 * is built under a temporary name and renamed into place at the end. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_tool.h"
#include "json.h"
#include "safetensors.h"
#include "util.h"

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int convert_file(const char *in, const char *out, dtype_id to, char *err) {
    st_file *f = st_open(in, err);
    if (!f) return -1;
    int n = st_count(f), nm = st_meta_count(f);
    st_entry *e = xcalloc((size_t)(n ? n : 1), sizeof *e);
    st_meta *m = xcalloc((size_t)(nm ? nm : 1), sizeof *m);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        e[i] = st_entry_of(t->name, dtype_is_float(t->dtype) ? to : t->dtype, t->ndim, t->shape, t->data);
        e[i].data_dtype = t->dtype;
    }
    for (int i = 0; i < nm; i++) st_meta_at(f, i, &m[i].key, &m[i].value);
    int rc = st_write(out, e, n, m, nm, err);
    free(e);
    free(m);
    st_close(f);
    return rc;
}

static int copy_file(const char *in, const char *out, char *err) {
    FILE *src = fopen(in, "rb");
    if (!src) return seterr(err, "%s: %s", in, strerror(errno));
    atomic_file af;
    if (atomic_open(&af, out, err)) {
        fclose(src);
        return -1;
    }
    enum { BUF = 1 << 20 };
    char *buf = xmalloc(BUF);
    size_t got;
    int bad = 0;
    while (!bad && (got = fread(buf, 1, BUF, src)) > 0) bad = fwrite(buf, 1, got, af.f) != got;
    bad |= ferror(src);
    fclose(src);
    free(buf);
    if (bad) {
        atomic_abort(&af);
        return seterr(err, "%s: copy failed", in);
    }
    return atomic_commit(&af, err);
}

/* A shard index: metadata.total_size is the sum of the converted shards'
 * tensor bytes. */
static int rewrite_index(const char *in, const char *out, const char *out_dir, char *err) {
    json_cfg idx;
    if (json_cfg_load(&idx, in, err)) return -1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx.root, "weight_map");
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(idx.root, "metadata");
    double total = 0;
    int rc = 0;
    char **seen = NULL;
    int nseen = 0;
    for (const cJSON *e = cJSON_IsObject(map) ? map->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            rc = seterr(err, "%s: weight_map[\"%s\"]: not a file name", in, e->string);
            break;
        }
        int dup = 0;
        for (int i = 0; i < nseen; i++) dup |= !strcmp(seen[i], e->valuestring);
        if (dup) continue;
        seen = xrealloc(seen, sizeof *seen * (size_t)(nseen + 1));
        seen[nseen++] = e->valuestring;
        char *p = path_join(out_dir, e->valuestring);
        st_file *f = st_open(p, err);
        free(p);
        if (!f) rc = -1;
        for (int i = 0; f && i < st_count(f); i++) total += (double)st_at(f, i)->nbytes;
        st_close(f);
    }
    free(seen);
    if (!rc && cJSON_IsObject(meta) && cJSON_GetObjectItemCaseSensitive(meta, "total_size"))
        cJSON_ReplaceItemInObjectCaseSensitive(meta, "total_size", cJSON_CreateNumber(total));
    char *text = rc ? NULL : cJSON_Print(idx.root);
    atomic_file af;
    if (text && !(rc = atomic_open(&af, out, err))) {
        if (fputs(text, af.f) < 0 || fputc('\n', af.f) < 0) rc = seterr(err, "%s: write error", out), atomic_abort(&af);
        else rc = atomic_commit(&af, err);
    }
    free(text);
    json_cfg_free(&idx);
    return rc;
}

/* Copies folder in to out; pass 0 does everything but shard indexes, pass 1
 * the indexes (which need the converted shards). */
static int convert_tree(const char *in, const char *out, dtype_id to, int pass, char *err) {
    DIR *d = opendir(in);
    if (!d) return seterr(err, "%s: %s", in, strerror(errno));
    if (pass == 0 && mkdir_p(out, err)) return closedir(d), -1;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *src = path_join(in, e->d_name), *dst = path_join(out, e->d_name);
        int index = has_suffix(e->d_name, ".json") && strstr(e->d_name, ".safetensors.index");
        if (is_dir(src)) rc = convert_tree(src, dst, to, pass, err);
        else if (pass == 1 && index) rc = rewrite_index(src, dst, out, err);
        else if (pass == 0 && has_suffix(e->d_name, ".safetensors")) rc = convert_file(src, dst, to, err);
        else if (pass == 0 && !index) rc = copy_file(src, dst, err);
        free(src);
        free(dst);
    }
    closedir(d);
    return rc;
}

static int convert_dir(const char *in, const char *out, dtype_id to, char *err) {
    if (path_exists(out)) return seterr(err, "%s: exists; remove it first or choose another name", out);
    char *tmp = xmalloc(strlen(out) + 32);
    sprintf(tmp, "%s.tmp.%ld", out, (long)getpid());
    int rc = convert_tree(in, tmp, to, 0, err);
    if (!rc) rc = convert_tree(in, tmp, to, 1, err);
    if (!rc && rename(tmp, out)) rc = seterr(err, "%s: %s", out, strerror(errno));
    if (rc) rm_rf(tmp);
    free(tmp);
    return rc;
}

int ckpt_convert_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"dtype", required_argument, 0, 'd'}, {0, 0, 0, 0}};
    dtype_id to = DT_INVALID;
    int c;
    while ((c = ckpt_getopt(argc, argv, "hd:", opts)) != -1)
        if (c == 'd' && (to = dtype_parse(optarg, strlen(optarg)), to != DT_F16 && to != DT_BF16 && to != DT_F32))
            die_usage("convert: --dtype must be f16, bf16 or f32, not %s", optarg);
    if (to == DT_INVALID) die_usage("convert: --dtype is required");
    if (argc - optind != 2) die_usage("convert: expects IN and OUT");
    const char *in = argv[optind], *out = argv[optind + 1];
    /* Open everything first: a pickle-only folder or a corrupt file fails
     * here, before anything is written. */
    ckpt_source *s = ckpt_open_or_die(in);
    if (ckpt_kind_of(s) == CK_FRAMES) die("%s: not a safetensors file or model folder", in);
    ckpt_close(s);
    char err[LCM_ERRLEN];
    int rc = is_dir(in) ? convert_dir(in, out, to, err) : convert_file(in, out, to, err);
    if (rc) die("%s", err);
    return EXIT_OK;
}
