/* unet_config.c - reading a UNet2DConditionModel config.json, quirks included.
 *
 * The quirks, as diffusers 0.30 has them:
 *  - attention_head_dim counts HEADS, not the head width, whenever
 *    num_attention_heads is absent (SD 1.x: 8 heads of 40, 80, 160); SD 2.x
 *    gives it per block. diffusers itself refuses num_attention_heads; where a
 *    config gives it anyway we take it as the head count.
 *  - int-or-list settings (attention_head_dim, cross_attention_dim,
 *    layers_per_block, transformer_layers_per_block, only_cross_attention)
 *    broadcast over the down blocks and are read in reverse by the up blocks,
 *    except that reverse_transformer_layers_per_block, when given, is the up
 *    blocks' own list.
 *  - the mid block takes the last down block's heads, cross-attention width
 *    and transformer depth, never only_cross_attention, and its resnets
 *    divide their output by mid_block_scale_factor.
 *  - encoder_hid_dim without encoder_hid_dim_type means "text_proj". */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "unet.h"
#include "util.h"

/* Keys whose only supported value is null (or absent). */
static const char *const must_be_null[] = {
    "class_embed_type", "num_class_embeds", "encoder_hid_dim", "encoder_hid_dim_type", "timestep_post_act",
    "time_embedding_act_fn", "cross_attention_norm",
};

static int unsupported(const json_cfg *j, const char *key, char *err) {
    char *v = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j->root, key));
    seterr(err, "%s: \"%s\": %s is not supported", j->name, key, v ? v : "this value");
    free(v);
    return -1;
}

static int is_set(const json_cfg *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    return v && !cJSON_IsNull(v);
}

/* A string setting that must equal one of the allowed values (NULL: null allowed). */
static int check_str(json_cfg *j, const char *key, const char *def, const char *a, const char *b, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) return (a == NULL || b == NULL || def) ? 0 : unsupported(j, key, err);
    if (!cJSON_IsString(v)) return unsupported(j, key, err);
    if ((a && !strcmp(v->valuestring, a)) || (b && !strcmp(v->valuestring, b))) return 0;
    return unsupported(j, key, err);
}

static int check_options(json_cfg *j, char *err) {
    for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++)
        if (is_set(j, must_be_null[i])) return unsupported(j, must_be_null[i], err);
    if (check_str(j, "act_fn", "silu", "silu", "swish", err) || check_str(j, "time_embedding_type", "positional", "positional", NULL, err) ||
        check_str(j, "attention_type", "default", "default", NULL, err) ||
        check_str(j, "resnet_time_scale_shift", "default", "default", "scale_shift", err) ||
        check_str(j, "addition_embed_type", NULL, "text_time", NULL, err) ||
        check_str(j, "mid_block_type", "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn", NULL, err))
        return -1;
    if (cfg_bool(j, "dual_cross_attention", 0)) return unsupported(j, "dual_cross_attention", err);
    if (cfg_bool(j, "resnet_skip_time_act", 0)) return unsupported(j, "resnet_skip_time_act", err);
    if (cfg_bool(j, "class_embeddings_concat", 0)) return unsupported(j, "class_embeddings_concat", err);
    if (cfg_float(j, "dropout", 0.0) != 0.0) return unsupported(j, "dropout", err);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j->root, "norm_num_groups");
    if (g && cJSON_IsNull(g)) return unsupported(j, "norm_num_groups", err);
    return j->failed ? seterr(err, "%s", j->err) : 0;
}

/* The block types: down (cross or plain), up (cross or plain). */
static int read_block_types(unet_config *c, json_cfg *j, const char *key, int *cross, const char *with, const char *without, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != c->n_blocks)
        return seterr(err, "%s: \"%s\": expected a list of %d block types (one per block_out_channels)", j->name, key, c->n_blocks);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (cJSON_IsString(e) && !strcmp(e->valuestring, with)) cross[i] = 1;
        else if (cJSON_IsString(e) && !strcmp(e->valuestring, without)) cross[i] = 0;
        else return seterr(err, "%s: \"%s\": block type %s is not supported (%s or %s)", j->name, key,
                           cJSON_IsString(e) ? e->valuestring : "?", with, without);
    }
    return 0;
}

/* A bool or a list of n bools. */
static int read_bool_or_list(json_cfg *j, const char *key, int *out, int n, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) != n) return seterr(err, "%s: \"%s\": expected a bool or a list of %d bools", j->name, key, n);
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            if (!cJSON_IsBool(e)) return seterr(err, "%s: \"%s\": expected a list of bools", j->name, key);
            out[i] = cJSON_IsTrue(e);
        }
        return 0;
    }
    int one = cfg_bool(j, key, 0);
    for (int i = 0; i < n; i++) out[i] = one;
    return j->failed ? seterr(err, "%s", j->err) : 0;
}

/* cfg_int_or_list into ints, refusing lists of lists (per-layer settings). */
static void int_or_list(json_cfg *j, const char *key, int *out, int n, long long def) {
    int64_t v[UNET_MAX_BLOCKS];
    cfg_int_or_list(j, key, v, n, def);
    for (int i = 0; i < n; i++) out[i] = (int)v[i];
}

static int read_sizes(unet_config *c, json_cfg *j, char *err) {
    int64_t boc[UNET_MAX_BLOCKS], dflt[4] = {320, 640, 1280, 1280};
    int nb = c->n_blocks = cfg_int_list(j, "block_out_channels", boc, UNET_MAX_BLOCKS, dflt, 4);
    if (j->failed) return seterr(err, "%s", j->err);
    if (nb < 1) return seterr(err, "%s: \"block_out_channels\": empty", j->name);
    for (int i = 0; i < nb; i++) c->block_out_channels[i] = (int)boc[i];
    int_or_list(j, "layers_per_block", c->layers_per_block, nb, 2);
    int_or_list(j, "transformer_layers_per_block", c->transformer_layers, nb, 1);
    int_or_list(j, "cross_attention_dim", c->cross_attention_dim, nb, 1280);
    int heads_key_given = is_set(j, "num_attention_heads");
    int_or_list(j, heads_key_given ? "num_attention_heads" : "attention_head_dim", c->heads, nb, 8);
    for (int i = 0; i < nb; i++) c->up_transformer_layers[i] = c->transformer_layers[nb - 1 - i];
    if (is_set(j, "reverse_transformer_layers_per_block")) {
        int64_t r[UNET_MAX_BLOCKS];
        if (cfg_int_list(j, "reverse_transformer_layers_per_block", r, UNET_MAX_BLOCKS, NULL, 0) != nb && !j->failed)
            return seterr(err, "%s: \"reverse_transformer_layers_per_block\": expected a list of %d integers", j->name, nb);
        for (int i = 0; i < nb; i++) c->up_transformer_layers[i] = (int)r[i];
    }
    if (j->failed) return seterr(err, "%s", j->err);
    if (read_block_types(c, j, "down_block_types", c->down_cross, "CrossAttnDownBlock2D", "DownBlock2D", err) ||
        read_block_types(c, j, "up_block_types", c->up_cross, "CrossAttnUpBlock2D", "UpBlock2D", err) ||
        read_bool_or_list(j, "only_cross_attention", c->only_cross_attention, nb, err))
        return -1;
    return 0;
}

static int read_scalars(unet_config *c, json_cfg *j, char *err) {
    c->in_channels = (int)cfg_int(j, "in_channels", 4);
    c->out_channels = (int)cfg_int(j, "out_channels", 4);
    c->groups = (int)cfg_int(j, "norm_num_groups", 32);
    c->norm_eps = (float)cfg_float(j, "norm_eps", 1e-5);
    c->mid_block_scale_factor = (float)cfg_float(j, "mid_block_scale_factor", 1.0);
    c->downsample_padding = (int)cfg_int(j, "downsample_padding", 1);
    c->conv_in_kernel = (int)cfg_int(j, "conv_in_kernel", 3);
    c->conv_out_kernel = (int)cfg_int(j, "conv_out_kernel", 3);
    c->flip_sin_to_cos = cfg_bool(j, "flip_sin_to_cos", 1);
    c->freq_shift = (float)cfg_float(j, "freq_shift", 0);
    c->use_linear_projection = cfg_bool(j, "use_linear_projection", 0);
    c->upcast_attention = cfg_bool(j, "upcast_attention", 0);
    c->center_input_sample = cfg_bool(j, "center_input_sample", 0);
    c->scale_shift = !strcmp(cfg_str(j, "resnet_time_scale_shift", "default"), "scale_shift");
    c->has_mid = is_set(j, "mid_block_type") || !cJSON_GetObjectItemCaseSensitive(j->root, "mid_block_type");
    c->time_embed_dim = (int)cfg_int(j, "time_embedding_dim", 4LL * c->block_out_channels[0]);
    c->time_cond_proj_dim = (int)cfg_int(j, "time_cond_proj_dim", 0);
    c->text_time = is_set(j, "addition_embed_type");
    c->addition_time_embed_dim = (int)cfg_int(j, "addition_time_embed_dim", 0);
    c->projection_class_embeddings_input_dim = (int)cfg_int(j, "projection_class_embeddings_input_dim", 0);
    if (j->failed) return seterr(err, "%s", j->err);
    if (c->text_time && (c->addition_time_embed_dim < 2 || c->projection_class_embeddings_input_dim <= 6 * c->addition_time_embed_dim))
        return seterr(err, "%s: \"addition_embed_type\": text_time needs addition_time_embed_dim and a larger "
                           "projection_class_embeddings_input_dim", j->name);
    if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0) return seterr(err, "%s: \"conv_in_kernel\"/\"conv_out_kernel\": even kernels are not supported", j->name);
    if (c->downsample_padding != 0 && c->downsample_padding != 1) return unsupported(j, "downsample_padding", err);
    return 0;
}

/* Channel counts must split into groups and heads. */
static int check_shapes(const unet_config *c, const char *name, char *err) {
    for (int i = 0; i < c->n_blocks; i++) {
        int ch = c->block_out_channels[i];
        if (ch < 1 || c->groups < 1 || ch % c->groups)
            return seterr(err, "%s: \"block_out_channels\": %d is not a multiple of norm_num_groups %d", name, ch, c->groups);
        if (c->heads[i] < 1 || ch % c->heads[i])
            return seterr(err, "%s: \"attention_head_dim\": %d channels do not split into %d heads", name, ch, c->heads[i]);
        if (c->layers_per_block[i] < 1 || c->transformer_layers[i] < 1 || c->up_transformer_layers[i] < 1 || c->cross_attention_dim[i] < 1)
            return seterr(err, "%s: \"layers_per_block\"/\"transformer_layers_per_block\"/\"cross_attention_dim\": must be positive", name);
    }
    if (c->in_channels < 1 || c->out_channels < 1 || c->time_embed_dim < 1 || c->time_cond_proj_dim < 0)
        return seterr(err, "%s: channel counts must be positive", name);
    return 0;
}

int unet_config_parse(unet_config *c, const cJSON *root, const char *name, char *err) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root)) return seterr(err, "%s: not a JSON object", name);
    c->json = cJSON_Duplicate(root, 1);
    json_cfg j;
    json_cfg_wrap(&j, c->json, name);
    int rc = check_options(&j, err);
    if (!rc) rc = read_sizes(c, &j, err);
    if (!rc) rc = read_scalars(c, &j, err);
    if (!rc) rc = check_shapes(c, name, err);
    j.root = NULL; /* c->json stays ours */
    json_cfg_free(&j);
    if (rc) unet_config_free(c);
    return rc;
}

int unet_config_set_int(unet_config *c, const char *key, long long value, char *err) {
    cJSON *root = cJSON_Duplicate(c->json, 1);
    cJSON *v = value < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)value);
    if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, v);
    else cJSON_AddItemToObject(root, key, v);
    unet_config fresh;
    int rc = unet_config_parse(&fresh, root, "config", err);
    cJSON_Delete(root);
    if (rc) return -1;
    unet_config_free(c);
    *c = fresh;
    return 0;
}

void unet_config_free(unet_config *c) {
    cJSON_Delete(c->json);
    memset(c, 0, sizeof *c);
}
