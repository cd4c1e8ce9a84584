/* unet_save.c - writing the UNet as a diffusers model folder: config.json
 * (the loaded config with its changes, e.g. a student's time_cond_proj_dim)
 * and diffusion_pytorch_model.safetensors in f32. The folder is built under
 * "<dir>.tmp" and renamed over dir only when complete. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "safetensors.h"
#include "unet.h"
#include "util.h"

#define DIFFUSERS_VERSION "0.30.3" /* the version whose format we write */

static int write_config(const unet_model *m, const char *dir, char *err) {
    cJSON *root = cJSON_Duplicate(m->cfg.json, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "_class_name");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "_diffusers_version");
    cJSON_AddItemToObject(root, "_class_name", cJSON_CreateString("UNet2DConditionModel"));
    if (cJSON_GetObjectItemCaseSensitive(m->cfg.json, "_diffusers_version"))
        cJSON_AddItemToObject(root, "_diffusers_version", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m->cfg.json, "_diffusers_version"), 1));
    else cJSON_AddItemToObject(root, "_diffusers_version", cJSON_CreateString(DIFFUSERS_VERSION));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char *path = path_join(dir, "config.json");
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (!rc) {
        fputs(text, af.f);
        fputc('\n', af.f);
        rc = atomic_commit(&af, err);
    }
    free(path);
    free(text);
    return rc;
}

static int write_weights(const unet_model *m, const char *dir, char *err) {
    const params *ps = &m->ps;
    float *host = xmalloc(sizeof(float) * (ps->total ? ps->total : 1));
    ps->backend->download(host, ps->data, sizeof(float) * ps->total);
    st_entry *e = xcalloc((size_t)ps->n, sizeof *e);
    for (int i = 0; i < ps->n; i++) {
        const param *p = ps->p[i];
        e[i] = st_entry_of(p->name, DT_F32, p->value.ndim, p->value.shape, host + p->offset);
    }
    st_meta meta = {"format", "pt"};
    char *path = path_join(dir, "diffusion_pytorch_model.safetensors");
    int rc = st_write(path, e, ps->n, &meta, 1, err);
    free(path);
    free(e);
    free(host);
    return rc;
}

int unet_save(const unet_model *m, const char *dir, char *err) {
    size_t n = strlen(dir);
    char *tmp = xmalloc(n + 8), *old = xmalloc(n + 8);
    snprintf(tmp, n + 8, "%s.tmp", dir);
    snprintf(old, n + 8, "%s.old", dir);
    rm_rf(tmp);
    int rc = mkdir_p(tmp, err);
    if (!rc) rc = write_config(m, tmp, err);
    if (!rc) rc = write_weights(m, tmp, err);
    if (!rc && path_exists(dir)) {
        rm_rf(old);
        if (rename(dir, old)) rc = seterr(err, "%s: cannot move the old folder aside: %s", dir, strerror(errno));
    }
    if (!rc && rename(tmp, dir)) {
        rc = seterr(err, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
        rename(old, dir); /* put the old folder back */
    }
    if (rc) rm_rf(tmp);
    else rm_rf(old);
    free(tmp);
    free(old);
    return rc;
}
