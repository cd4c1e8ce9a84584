/* Model folders: pipelines and components, config getters, shards, the fp16
 * variant, and the errors for pickles and broken indexes. */
#include <unistd.h>

#include "modeldir.h"
#include "test.h"
#include "util.h"

static char dir[] = "/tmp/lcm-test-md-XXXXXX";
static char *fixtures;

static void put_text(const char *folder, const char *name, const char *text) {
    char *p = path_join(folder, name);
    FILE *f = fopen(p, "w");
    CHECK(f && fputs(text, f) >= 0);
    fclose(f);
    free(p);
}

/* A model folder with config.json; returns its path. */
static char *make_model(const char *name) {
    char *p = path_join(dir, name);
    char err[LCM_ERRLEN];
    CHECK(mkdir_p(p, err) == 0);
    put_text(p, "config.json", "{\"in_channels\": 4, \"block_out_channels\": [8, 16], \"attention_head_dim\": 2}");
    return p;
}

static void put_weights(const char *folder, const char *file, const char *name1, const char *name2, float value) {
    float v[2] = {value, value + 1};
    int64_t shape[1] = {2};
    st_entry e[2] = {st_entry_of(name1, DT_F32, 1, shape, v), st_entry_of(name2, DT_F32, 1, shape, v)};
    char *p = path_join(folder, file), err[LCM_ERRLEN];
    CHECKF(st_write(p, e, name2 ? 2 : 1, NULL, 0, err) == 0, "%s", err);
    free(p);
}

TEST(pipeline_component) {
    char err[LCM_ERRLEN];
    char *pipe = path_join(fixtures, "tiny-sd");
    model_dir *m = model_open(pipe, "unet", MODEL_VARIANT_AUTO, err);
    CHECKF(m, "%s", err);
    CHECK(model_count(m) > 10);
    const st_tensor *t = model_find(m, "conv_in.weight");
    CHECK(t && t->ndim == 4 && t->shape[1] == 4);
    CHECK(!model_find(m, "conv_in.nope"));
    for (int i = 1; i < model_count(m); i++) CHECK(strcmp(model_at(m, i - 1)->name, model_at(m, i)->name) < 0);
    CHECK(cfg_int(&m->config, "in_channels", -1) == 4);
    CHECK(cfg_int(&m->config, "no_such_key", 77) == 77);
    CHECK(!strcmp(cfg_str(&m->config, "act_fn", "x"), "silu"));
    CHECK(cfg_bool(&m->config, "center_input_sample", 1) == 0);
    CHECK(cfg_int(&m->config, "cross_attention_dim", 0) == t->shape[0] * 2);
    int64_t boc[4];
    CHECK(cfg_int_list(&m->config, "block_out_channels", boc, 4, NULL, 0) == 2 && boc[0] == t->shape[0]);
    int64_t heads[2];
    cfg_int_or_list(&m->config, "attention_head_dim", heads, 2, 8);
    CHECK(heads[0] == 2 && heads[1] == 2);
    CHECK(cfg_float(&m->config, "norm_eps", 0) > 0);
    CHECK(!m->config.failed);
    cfg_int(&m->config, "act_fn", 0); /* wrong type: recorded, named */
    CHECK(m->config.failed && strstr(m->config.err, "unet/config.json") && strstr(m->config.err, "\"act_fn\""));
    model_close(m);
    /* A pipeline without a component is refused; with one that is absent too. */
    CHECK(!model_open(pipe, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "pipeline"));
    CHECK(!model_open(pipe, "text_encoder_2", MODEL_VARIANT_AUTO, err) && strstr(err, "text_encoder_2"));
    char **names;
    int n = pipeline_components(pipe, &names, err);
    CHECK(n == 3 && !strcmp(names[0], "text_encoder") && !strcmp(names[1], "unet") && !strcmp(names[2], "vae"));
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(pipe);
}

TEST(model_folder_direct) {
    char err[LCM_ERRLEN];
    char *p = path_join(fixtures, "models/vae-b");
    model_dir *m = model_open(p, "vae", MODEL_VARIANT_AUTO, err); /* a component name is ignored here */
    CHECKF(m, "%s", err);
    CHECK(model_find(m, "decoder.conv_in.weight"));
    model_close(m);
    free(p);
    p = path_join(fixtures, "models/text-b");
    CHECK((m = model_open(p, NULL, MODEL_VARIANT_AUTO, err)) && strstr(m->weights, "model.safetensors"));
    model_close(m);
    free(p);
}

TEST(int_or_list_forms) {
    json_cfg c;
    char *p = make_model("cfg");
    put_text(p, "config.json", "{\"a\": [1, 2, 3], \"b\": 5, \"c\": [1, 2], \"d\": [1, \"x\", 3], \"e\": null}");
    char *cfg = path_join(p, "config.json"), err[LCM_ERRLEN];
    CHECK(json_cfg_load(&c, cfg, err) == 0);
    int64_t v[3];
    cfg_int_or_list(&c, "a", v, 3, 0);
    CHECK(v[0] == 1 && v[2] == 3);
    cfg_int_or_list(&c, "b", v, 3, 0);
    CHECK(v[0] == 5 && v[1] == 5 && v[2] == 5);
    cfg_int_or_list(&c, "e", v, 3, 9); /* null: the default */
    CHECK(v[1] == 9 && !c.failed);
    int64_t def[2] = {4, 4};
    CHECK(cfg_int_list(&c, "missing", v, 3, def, 2) == 2 && v[1] == 4);
    cfg_int_or_list(&c, "c", v, 3, 0);
    CHECK(c.failed && strstr(c.err, "\"c\"") && strstr(c.err, "3 integers"));
    json_cfg_free(&c);
    CHECK(json_cfg_load(&c, cfg, err) == 0);
    CHECK(cfg_int_list(&c, "d", v, 3, NULL, 0) == 0 && c.failed && strstr(c.err, "\"d\""));
    json_cfg_free(&c);
    put_text(p, "config.json", "{\"a\": ");
    CHECK(json_cfg_load(&c, cfg, err) == -1 && strstr(err, "config.json") && strstr(err, "invalid JSON"));
    put_text(p, "config.json", "[1]");
    CHECK(json_cfg_load(&c, cfg, err) == -1 && strstr(err, "not a JSON object"));
    free(cfg);
    free(p);
}

TEST(shards_across_files) {
    char *p = make_model("sharded");
    put_weights(p, "diffusion_pytorch_model-00001-of-00002.safetensors", "a.weight", "b.weight", 1);
    put_weights(p, "diffusion_pytorch_model-00002-of-00002.safetensors", "c.weight", NULL, 10);
    const char *index = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
                        "\"a.weight\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
                        "\"b.weight\": \"diffusion_pytorch_model-00001-of-00002.safetensors\","
                        "\"c.weight\": \"diffusion_pytorch_model-00002-of-00002.safetensors\"}}";
    put_text(p, "diffusion_pytorch_model.safetensors.index.json", index);
    char err[LCM_ERRLEN];
    model_dir *m = model_open(p, NULL, MODEL_VARIANT_AUTO, err);
    CHECKF(m, "%s", err);
    CHECK(m->nshards == 2 && model_count(m) == 3);
    const st_tensor *c = model_find(m, "c.weight");
    CHECK(c && ((const float *)c->data)[0] == 10 && ((const float *)model_find(m, "a.weight")->data)[1] == 2);
    model_close(m);
    /* A map that points a tensor at the wrong shard. */
    put_text(p, "diffusion_pytorch_model.safetensors.index.json",
             "{\"weight_map\": {\"c.weight\": \"diffusion_pytorch_model-00001-of-00002.safetensors\"}}");
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "\"c.weight\"") && strstr(err, "index.json"));
    put_text(p, "diffusion_pytorch_model.safetensors.index.json", "{\"weight_map\": {\"c.weight\": \"../x.safetensors\"}}");
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "not a file name"));
    put_text(p, "diffusion_pytorch_model.safetensors.index.json", "{\"weight_map\": {\"c.weight\": \"gone.safetensors\"}}");
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "gone.safetensors"));
    put_text(p, "diffusion_pytorch_model.safetensors.index.json", "{\"nothing\": 1}");
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "weight_map"));
    /* The same tensor in two shards. */
    put_weights(p, "diffusion_pytorch_model-00002-of-00002.safetensors", "a.weight", "c.weight", 10);
    put_text(p, "diffusion_pytorch_model.safetensors.index.json", index);
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "more than one shard"));
    free(p);
}

TEST(fp16_variant) {
    char *p = make_model("variant");
    put_weights(p, "diffusion_pytorch_model.fp16.safetensors", "w", NULL, 16);
    char err[LCM_ERRLEN];
    model_dir *m = model_open(p, NULL, MODEL_VARIANT_AUTO, err);
    CHECKF(m && ((const float *)model_find(m, "w")->data)[0] == 16, "%s", err);
    model_close(m);
    CHECK(!model_open(p, NULL, MODEL_VARIANT_PLAIN, err) && strstr(err, "no safetensors"));
    put_weights(p, "diffusion_pytorch_model.safetensors", "w", NULL, 32);
    CHECK((m = model_open(p, NULL, MODEL_VARIANT_AUTO, err)) && ((const float *)model_find(m, "w")->data)[0] == 32);
    model_close(m);
    CHECK((m = model_open(p, NULL, MODEL_VARIANT_FP16, err)) && ((const float *)model_find(m, "w")->data)[0] == 16);
    model_close(m);
    free(p);
}

TEST(pickles_and_missing_weights) {
    char *p = make_model("pickle");
    char err[LCM_ERRLEN];
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, p) && strstr(err, "no safetensors"));
    put_text(p, "diffusion_pytorch_model.bin", "PK\3\4 not really");
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err));
    CHECKF(strstr(err, "diffusion_pytorch_model.bin") && strstr(err, "safe_serialization=True") && !strchr(err, '\n'), "%s", err);
    CHECK(dir_has_weights(p));
    char *nocfg = path_join(dir, "nocfg");
    CHECK(mkdir_p(nocfg, err) == 0);
    put_weights(nocfg, "model.safetensors", "w", NULL, 1);
    CHECK(!model_open(nocfg, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "config.json"));
    CHECK(!model_open("/nonexistent/folder", NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "/nonexistent/folder"));
    free(nocfg);
    free(p);
}

TEST(corrupt_weights_error_names_file) {
    char *p = make_model("corrupt");
    put_text(p, "diffusion_pytorch_model.safetensors", "\x05\0\0\0\0\0\0\0{\"a\":");
    char err[LCM_ERRLEN];
    CHECK(!model_open(p, NULL, MODEL_VARIANT_AUTO, err) && strstr(err, "diffusion_pytorch_model.safetensors"));
    free(p);
}

int main(void) {
    if (!mkdtemp(dir)) return 2;
    const char *top = getenv("LCM_TOP");
    fixtures = path_join(top ? top : ".", "tests/fixtures");
    RUN(pipeline_component);
    RUN(model_folder_direct);
    RUN(int_or_list_forms);
    RUN(shards_across_files);
    RUN(fp16_variant);
    RUN(pickles_and_missing_weights);
    RUN(corrupt_weights_error_names_file);
    rm_rf(dir);
    free(fixtures);
    TEST_EXIT();
}
