/* modeldir.h - diffusers model folders (interfaces.md §3).
 *
 * A model folder holds config.json and its weights as safetensors: one file
 * (diffusion_pytorch_model.safetensors or model.safetensors) or shards listed
 * by a "*.safetensors.index.json" weight map, optionally in the ".fp16"
 * variant (diffusion_pytorch_model.fp16.safetensors,
 * diffusion_pytorch_model.safetensors.index.fp16.json). A pipeline folder holds
 * model_index.json and one model folder per component (unet/, vae/,
 * text_encoder/, ...). Pickled weights (.bin, .ckpt) are never loaded: the
 * error says how to convert them. */
#ifndef LCM_MODELDIR_H
#define LCM_MODELDIR_H

#include "json.h"
#include "safetensors.h"

typedef enum model_variant {
    MODEL_VARIANT_AUTO, /* the plain weights, else the .fp16 ones */
    MODEL_VARIANT_FP16, /* the .fp16 weights only */
    MODEL_VARIANT_PLAIN /* the plain weights only */
} model_variant;

typedef struct model_dir {
    char *dir;            /* the model folder */
    json_cfg config;      /* config.json */
    char *weights;        /* the weights file or index file, for messages */
    int nshards;
    st_file **shards;
    int n;                /* tensors, sorted by name, across shards */
    const st_tensor **tensors;
} model_dir;

/* Opens path as a model folder; with a component, path may also be a
 * pipeline folder (then path/component is opened). NULL with err. */
model_dir *model_open(const char *path, const char *component, model_variant v, char *err);
void model_close(model_dir *m);

int model_count(const model_dir *m);
const st_tensor *model_at(const model_dir *m, int i);
/* By diffusers name ("conv_in.weight"), whatever shard holds it. */
const st_tensor *model_find(const model_dir *m, const char *name);

/* 1 if dir holds model_index.json. */
int is_pipeline_dir(const char *dir);
/* 1 if dir holds weights of any kind (safetensors or a pickle). */
int dir_has_weights(const char *dir);
/* The components of a pipeline that hold weights (sorted names, to free with
 * free() each and the array); -1 with err. */
int pipeline_components(const char *dir, char ***names, char *err);

#endif
