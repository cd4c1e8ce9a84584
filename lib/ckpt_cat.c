/* ckpt_cat.c - ckpt-tool cat: records as JSON lines, for jq. Strings are
 * text, binaries {"bin": length, "sha256": hex}, tensors {"dtype", "shape",
 * "min", "max", "mean"}, numbers numbers; nested arrays and maps are
 * rendered recursively. A checkpoint prints as one line of tensors. */
#include <getopt.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_tool.h"
#include "json.h"
#include "sha256.h"
#include "util.h"

static void put_bin(strbuf *b, const void *p, size_t n) {
    char hex[65];
    sha256_hex(p, n, hex);
    sb_printf(b, "{\"bin\":%zu,\"sha256\":\"%s\"}", n, hex);
}

static void put_tensor(strbuf *b, const ckpt_item *it) {
    tensor_stats st;
    item_stats(it, &st);
    sb_printf(b, "{\"dtype\":\"%s\",\"shape\":[", dtype_name(it->dtype));
    for (int d = 0; d < it->ndim; d++) sb_printf(b, "%s%lld", d ? "," : "", (long long)it->shape[d]);
    sb_puts(b, "],\"min\":");
    sb_json_num(b, st.min);
    sb_puts(b, ",\"max\":");
    sb_json_num(b, st.max);
    sb_puts(b, ",\"mean\":");
    sb_json_num(b, st.mean);
    sb_putc(b, '}');
}

static void put_object(strbuf *b, const msgpack_object *o, int depth);

/* JSON keys must be strings: a non-string key is rendered, then quoted. */
static void put_key(strbuf *b, const msgpack_object *k, int depth) {
    if (k->type == MSGPACK_OBJECT_STR) {
        sb_json_str(b, k->via.str.ptr, k->via.str.size);
        return;
    }
    strbuf tmp = {0};
    put_object(&tmp, k, depth + 1);
    sb_json_str(b, tmp.p, tmp.n);
    sb_free(&tmp);
}

static void put_object(strbuf *b, const msgpack_object *o, int depth) {
    if (depth > 64) { sb_puts(b, "null"); return; } /* the frame reader bounds depth; belt and braces */
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: sb_puts(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN: sb_puts(b, o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: sb_printf(b, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: sb_printf(b, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: sb_json_num(b, o->via.f64); break;
    case MSGPACK_OBJECT_STR: sb_json_str(b, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: put_bin(b, o->via.bin.ptr, o->via.bin.size); break;
    case MSGPACK_OBJECT_EXT: sb_printf(b, "{\"ext\":%d,\"len\":%u}", o->via.ext.type, o->via.ext.size); break;
    case MSGPACK_OBJECT_ARRAY:
        sb_putc(b, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) sb_putc(b, ',');
            put_object(b, &o->via.array.ptr[i], depth + 1);
        }
        sb_putc(b, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        sb_putc(b, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) sb_putc(b, ',');
            put_key(b, &o->via.map.ptr[i].key, depth);
            sb_putc(b, ':');
            put_object(b, &o->via.map.ptr[i].val, depth + 1);
        }
        sb_putc(b, '}');
        break;
    default: sb_puts(b, "null");
    }
}

static void put_raw(strbuf *b, const frame_value *v) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, (const char *)v->raw, v->raw_len, &off) == MSGPACK_UNPACK_SUCCESS) put_object(b, &u.data, 0);
    else sb_puts(b, "null");
    msgpack_unpacked_destroy(&u);
}

static void put_value(strbuf *b, const ckpt_record *r, const frame_entry *e) {
    const frame_value *v = &e->value;
    switch (v->kind) {
    case FV_NIL: sb_puts(b, "null"); break;
    case FV_BOOL: sb_puts(b, v->v.boolean ? "true" : "false"); break;
    case FV_INT: sb_printf(b, "%lld", (long long)v->v.i); break;
    case FV_UINT: sb_printf(b, "%llu", (unsigned long long)v->v.u); break;
    case FV_FLOAT: sb_json_num(b, v->v.f); break;
    case FV_STR: sb_json_str(b, v->v.bytes.ptr, v->v.bytes.len); break;
    case FV_BIN: put_bin(b, v->v.bytes.ptr, v->v.bytes.len); break;
    case FV_TENSOR: {
        char *key = strndup(e->key, e->key_len);
        put_tensor(b, ckpt_find(r, key));
        free(key);
        break;
    }
    default: put_raw(b, v);
    }
}

static void put_record(strbuf *b, const ckpt_record *r) {
    sb_putc(b, '{');
    if (r->frame) {
        for (int i = 0; i < r->frame->n; i++) {
            const frame_entry *e = &r->frame->entries[i];
            if (i) sb_putc(b, ',');
            sb_json_str(b, e->key, e->key_len);
            sb_putc(b, ':');
            put_value(b, r, e);
        }
    } else {
        for (int i = 0; i < r->n; i++) {
            if (i) sb_putc(b, ',');
            sb_json_str(b, r->items[i].name, strlen(r->items[i].name));
            sb_putc(b, ':');
            put_tensor(b, &r->items[i]);
        }
    }
    sb_puts(b, "}\n");
}

int ckpt_cat_main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {"count", required_argument, 0, 'n'}, {0, 0, 0, 0}};
    long long limit = -1;
    int c;
    char *end;
    while ((c = ckpt_getopt(argc, argv, "hn:", opts)) != -1)
        if (c == 'n' && (limit = strtoll(optarg, &end, 10), *end || end == optarg || limit < 0))
            die_usage("cat: -n: not a count: %s", optarg);
    if (argc - optind != 1) die_usage("cat: expects one PATH");
    ckpt_source *s = ckpt_open_or_die(argv[optind]);
    const ckpt_record *r;
    char err[LCM_ERRLEN];
    strbuf b = {0};
    int rc = 0;
    for (long long n = 0; (limit < 0 || n < limit) && (rc = ckpt_next(s, &r, err)) == 1; n++) {
        b.n = 0;
        put_record(&b, r);
        if (fwrite(b.p, 1, b.n, stdout) != b.n) break; /* a closed pipe ends quietly */
    }
    sb_free(&b);
    if (rc < 0) die("%s", err);
    ckpt_close(s);
    return EXIT_OK;
}
