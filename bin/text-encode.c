/* text-encode - adds the text encoder's prompt_embeds to every record with
 * a caption, or encodes --prompt strings without reading stdin. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "clip_text.h"
#include "clip_tokenizer.h"
#include "frame.h"
#include "util.h"

static const char usage[] =
    "Usage: text-encode --model DIR [OPTION]... < FRAMES > FRAMES\n"
    "       text-encode --model DIR --prompt TEXT [--prompt TEXT]... > FRAMES\n"
    "Add `prompt_embeds` [77,D] to each record with a `txt` caption, using the tokenizer\n"
    "and text encoder of DIR (a pipeline folder). For an SDXL pipeline (with\n"
    "text_encoder_2) prompt_embeds is both encoders' penultimate hidden states side by\n"
    "side [77,768+1280] and `pooled_prompt_embeds` [1280] is added, as diffusers does.\n"
    "\n"
    "  --model DIR          the pipeline folder (required)\n"
    "  --prompt TEXT        encode TEXT into one record {txt, prompt_embeds} instead of\n"
    "                       reading stdin; repeatable (\"\" gives the unconditional embedding)\n"
    "  --batch N            captions encoded together (default 16)\n"
    "  --dtype T            f32 (default), f16 or bf16 for the written tensors\n"
    "  --backend NAME       cpu (default, or $LCM_BACKEND) or cuda\n"
    "  --progress           report progress on stderr even when it is not a terminal\n"
    "  --help, --version\n"
    "\n"
    "Records without a caption pass through unchanged. Captions are tokenized as\n"
    "transformers' CLIPTokenizer does without ftfy (see the man page).\n"
    "Exit status: 0 ok, 1 error, 2 usage.\n";

typedef struct options {
    const char *model;
    const char **prompts;
    int n_prompts, batch, progress;
    dtype_id dtype;
    const backend *be;
} options;

/* One text encoder with its tokenizer; SDXL pipelines have two. */
typedef struct encoder {
    clip_tokenizer *tok;
    clip_text_model model;
    tensor *hidden, *proj; /* [B, L, D] and [B, P] outputs */
} encoder;

typedef struct state {
    options opt;
    encoder enc[2];
    int n_enc, len;
    int64_t *ids;    /* [batch, len] */
    frame *pending;  /* copies of the queued records */
    int n_pending;
    frame_writer *out;
    frame_out *fo;
    float *host;     /* staging for one record's output */
    void *conv;
    int64_t encoded, passed;
} state;

static options parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'P'}, {"batch", required_argument, 0, 'b'},
        {"dtype", required_argument, 0, 'd'}, {"backend", required_argument, 0, 'B'}, {"progress", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},        {"version", no_argument, 0, 'V'},        {0, 0, 0, 0}};
    options o = {.batch = 16, .dtype = DT_F32};
    o.prompts = xcalloc((size_t)argc, sizeof(char *));
    const char *backend_name = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'P': o.prompts[o.n_prompts++] = optarg; break;
        case 'b': o.batch = (int)cli_int("batch", optarg, 1, 4096); break;
        case 'd': o.dtype = cli_float_dtype("dtype", optarg); break;
        case 'B': backend_name = optarg; break;
        case 'p': o.progress = 1; break;
        case 'h': cli_help(usage);
        case 'V': cli_version();
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o.model) die_usage("--model DIR is required");
    o.be = cli_backend(backend_name);
    return o;
}

static void load_encoder(state *s, encoder *e, const char *tok_dir, const char *te_dir) {
    char err[LCM_ERRLEN], *path = path_join(s->opt.model, tok_dir);
    if (!(e->tok = clip_tokenizer_load(path, err))) die("%s", err);
    free(path);
    if (clip_text_load(&e->model, s->opt.model, te_dir, s->opt.be, err)) die("%s", err);
    int L = clip_tokenizer_max_length(e->tok), D = e->model.cfg.hidden_size, B = s->opt.batch;
    if (L > e->model.cfg.max_positions) die("%s: model_max_length %d exceeds the text encoder's %d positions", tok_dir, L, e->model.cfg.max_positions);
    e->hidden = tensor_new(s->opt.be, DT_F32, 3, (int64_t[]){B, L, D});
    if (e->model.cfg.projection_dim) e->proj = tensor_new(s->opt.be, DT_F32, 2, (int64_t[]){B, e->model.cfg.projection_dim});
}

static void load(state *s) {
    char *te2 = path_join(s->opt.model, "text_encoder_2");
    int sdxl = is_dir(te2);
    free(te2);
    load_encoder(s, &s->enc[0], "tokenizer", "text_encoder");
    s->n_enc = 1;
    if (sdxl) {
        load_encoder(s, &s->enc[1], "tokenizer_2", "text_encoder_2");
        s->n_enc = 2;
        if (!s->enc[1].proj) die("%s: text_encoder_2 has no projection (CLIPTextModelWithProjection expected)", s->opt.model);
        if (clip_tokenizer_max_length(s->enc[0].tok) != clip_tokenizer_max_length(s->enc[1].tok)) die("%s: the two tokenizers differ in length", s->opt.model);
    }
    s->len = clip_tokenizer_max_length(s->enc[0].tok);
    s->ids = xmalloc(sizeof(int64_t) * (size_t)(s->opt.batch * s->len));
    int width = s->enc[0].model.cfg.hidden_size + (s->n_enc > 1 ? s->enc[1].model.cfg.hidden_size : 0);
    s->host = xmalloc(sizeof(float) * (size_t)(s->len * width));
    s->conv = xmalloc(sizeof(float) * (size_t)(s->len * width));
}

/* The caption of a record: `txt` (str or bin), else NULL. */
static const char *caption(const frame *f, size_t *len) { return frame_get_bytes(f, "txt", len); }

static void tokenize_into(state *s, encoder *e, int n) {
    char err[LCM_ERRLEN];
    int32_t ids32[1024];
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *text = caption(&s->pending[i], &len);
        if (clip_encode(e->tok, text, len, ids32, err) < 0) die("record %llu: %s", (unsigned long long)s->pending[i].record, err);
        for (int j = 0; j < s->len; j++) s->ids[i * s->len + j] = ids32[j];
    }
}

/* Copies rows [.., D] of one sequence into the host staging buffer, side by
 * side with the other encoder's columns (SDXL). */
static void gather(state *s, int i, int n_cols) {
    int col = 0;
    for (int k = 0; k < s->n_enc; k++) {
        encoder *e = &s->enc[k];
        int D = e->model.cfg.hidden_size;
        float *seq = xmalloc(sizeof(float) * (size_t)(s->len * D));
        tensor one = tensor_view(e->hidden->backend, DT_F32, 2, (int64_t[]){s->len, D}, (float *)e->hidden->data + (size_t)i * s->len * D);
        tensor_to_host(&one, seq);
        for (int t = 0; t < s->len; t++) memcpy(s->host + (size_t)t * n_cols + col, seq + (size_t)t * D, sizeof(float) * (size_t)D);
        free(seq);
        col += D;
    }
}

static void flush(state *s) {
    int n = s->n_pending;
    if (!n) return;
    for (int k = 0; k < s->n_enc; k++) {
        encoder *e = &s->enc[k];
        tokenize_into(s, e, n);
        tensor hidden = *e->hidden, proj = e->proj ? *e->proj : hidden;
        hidden.shape[0] = n, proj.shape[0] = n;
        clip_text_out out = {0};
        if (s->n_enc == 1) out.last_hidden_state = &hidden;
        else out.penultimate = &hidden, out.text_embeds = k == 1 ? &proj : NULL;
        clip_text_forward(&e->model, s->ids, n, s->len, out);
    }
    int cols = 0;
    for (int k = 0; k < s->n_enc; k++) cols += s->enc[k].model.cfg.hidden_size;
    for (int i = 0; i < n; i++) {
        frame_out_reset(s->fo);
        fo_pass(s->fo, &s->pending[i], NULL);
        gather(s, i, cols);
        size_t per = (size_t)s->len * cols;
        dtype_convert(s->conv, s->opt.dtype, s->host, DT_F32, per);
        fo_tensor(s->fo, "prompt_embeds", s->opt.dtype, 2, (int64_t[]){s->len, cols}, s->conv);
        void *pooled = NULL;
        if (s->n_enc > 1) {
            int P = s->enc[1].model.cfg.projection_dim;
            float *p = xmalloc(sizeof(float) * (size_t)P);
            tensor one = tensor_view(s->enc[1].proj->backend, DT_F32, 1, (int64_t[]){P}, (float *)s->enc[1].proj->data + (size_t)i * P);
            tensor_to_host(&one, p);
            pooled = xmalloc(sizeof(float) * (size_t)P);
            dtype_convert(pooled, s->opt.dtype, p, DT_F32, (size_t)P);
            free(p);
            fo_tensor(s->fo, "pooled_prompt_embeds", s->opt.dtype, 1, (int64_t[]){P}, pooled);
        }
        frame_emit(s->out, s->fo);
        free(pooled);
    }
    s->encoded += n;
    s->n_pending = 0;
}

static void enqueue(state *s, const frame *f) {
    frame_copy(&s->pending[s->n_pending++], f);
    if (s->n_pending == s->opt.batch) flush(s);
}

/* --prompt: each prompt becomes a record {txt}, encoded like any other. */
static void encode_prompts(state *s) {
    frame_out *fo = frame_out_new();
    frame f;
    frame_init(&f);
    for (int i = 0; i < s->opt.n_prompts; i++) {
        frame_out_reset(fo);
        fo_str(fo, "txt", s->opt.prompts[i], strlen(s->opt.prompts[i]));
        frame_from_out(&f, fo);
        f.record = (uint64_t)i;
        enqueue(s, &f);
    }
    frame_free(&f);
    frame_out_free(fo);
}

int main(int argc, char **argv) {
    lcm_init(argv[0]);
    state s = {.opt = parse_args(argc, argv)};
    load(&s);
    s.pending = xcalloc((size_t)s.opt.batch, sizeof(frame));
    s.out = frame_writer_fdopen(1, "<stdout>");
    s.fo = frame_out_new();
    double started = now_seconds();
    int progress = progress_wanted(s.opt.progress);
    if (s.opt.n_prompts) {
        encode_prompts(&s);
    } else {
        frame_reader *in = frame_reader_fdopen(0, "<stdin>");
        frame f;
        frame_init(&f);
        int rc;
        while ((rc = frame_read(in, &f)) == 1) {
            size_t len;
            if (caption(&f, &len)) {
                enqueue(&s, &f);
            } else {
                flush(&s); /* keeps the input order */
                frame_out_reset(s.fo);
                fo_pass(s.fo, &f, NULL);
                frame_emit(s.out, s.fo);
                s.passed++;
            }
            if (progress && f.record % 64 == 0)
                fprintf(stderr, "\rtext-encode: %lld encoded, %.1f/s", (long long)s.encoded, s.encoded / (now_seconds() - started + 1e-9));
        }
        if (rc < 0) die("%s", frame_reader_error(in));
        frame_free(&f);
        frame_reader_close(in);
    }
    flush(&s);
    if (progress) fputc('\n', stderr);
    frame_writer_finish(s.out);
    if (s.passed) warn("%lld records encoded, %lld without a caption passed through", (long long)s.encoded, (long long)s.passed);
    for (int k = 0; k < s.n_enc; k++) {
        clip_tokenizer_free(s.enc[k].tok);
        clip_text_free(&s.enc[k].model);
        tensor_free(s.enc[k].hidden), tensor_free(s.enc[k].proj);
    }
    for (int i = 0; i < s.opt.batch; i++) frame_free(&s.pending[i]);
    free(s.pending), free(s.ids), free(s.host), free(s.conv), free(s.opt.prompts);
    frame_out_free(s.fo);
    return EXIT_OK;
}
