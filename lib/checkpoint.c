/* checkpoint.c - see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "modeldir.h"
#include "safetensors.h"
#include "util.h"
#include "unet_lora.h"
#include "weights.h"

/* The numbers of the checkpoint-N folders, ascending. */
static int list_checkpoints(const char *output_dir, int64_t **steps) {
    DIR *d = opendir(output_dir);
    int n = 0, cap = 0;
    *steps = NULL;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11)) continue;
        long long v = strtoll(e->d_name + 11, &end, 10);
        if (end == e->d_name + 11 || *end || v < 0) continue; /* temporaries and strays */
        if (n == cap) *steps = xrealloc(*steps, sizeof(int64_t) * (size_t)(cap = cap ? 2 * cap : 16));
        (*steps)[n++] = v;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: few checkpoints */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1], (*steps)[j - 1] = t;
        }
    return n;
}

int checkpoint_latest(const char *output_dir, char *path, size_t n) {
    int64_t *steps;
    int count = list_checkpoints(output_dir, &steps);
    if (count) snprintf(path, n, "%s/checkpoint-%lld", output_dir, (long long)steps[count - 1]);
    free(steps);
    return count > 0;
}

static void prune(const char *output_dir, int total_limit) {
    if (total_limit <= 0) return;
    int64_t *steps;
    int count = list_checkpoints(output_dir, &steps);
    /* as the reference: before saving, keep at most total_limit - 1 */
    for (int i = 0; i + total_limit <= count; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/checkpoint-%lld", output_dir, (long long)steps[i]);
        rm_rf(p);
    }
    free(steps);
}

static int write_optimizer(const char *path, const adamw_state *opt, char *err) {
    int64_t n = tensor_numel(&opt->m);
    float *m = xmalloc((size_t)n * 4), *v = xmalloc((size_t)n * 4);
    tensor_to_host(&opt->m, m);
    tensor_to_host(&opt->v, v);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)opt->step);
    st_entry e[2] = {st_entry_of("exp_avg", DT_F32, 1, &n, m), st_entry_of("exp_avg_sq", DT_F32, 1, &n, v)};
    st_meta meta[1] = {{"step", step}};
    int rc = st_write(path, e, 2, meta, 1, err);
    free(m), free(v);
    return rc;
}

static int write_text(const char *path, const char *text, char *err) {
    atomic_file af;
    if (atomic_open(&af, path, err)) return -1;
    fputs(text, af.f);
    return atomic_commit(&af, err);
}

int checkpoint_save(const char *output_dir, int64_t step, const unet_model *student, const unet_model *target,
                    const adamw_state *opt, const char *state_json, int total_limit, char *err) {
    char final[4096], tmp[4200], p[4400];
    snprintf(final, sizeof final, "%s/checkpoint-%lld", output_dir, (long long)step);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", final, (long)getpid());
    prune(output_dir, total_limit);
    rm_rf(tmp);
    if (mkdir_p(tmp, err)) return -1;
    if (student->lora) {
        /* LoRA: the adapters are the whole trained state (target = student) */
        snprintf(p, sizeof p, "%s/" UNET_LORA_FILE, tmp);
        if (unet_lora_save(student->lora, p, err)) goto fail;
    } else {
        snprintf(p, sizeof p, "%s/unet", tmp);
        if (unet_save(student, p, err)) goto fail;
        snprintf(p, sizeof p, "%s/unet_target", tmp);
        if (unet_save(target, p, err)) goto fail;
    }
    snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
    if (write_optimizer(p, opt, err)) goto fail;
    snprintf(p, sizeof p, "%s/state.json", tmp);
    if (write_text(p, state_json, err)) goto fail;
    rm_rf(final); /* a checkpoint of the same step from an earlier run */
    if (rename(tmp, final)) {
        seterr(err, "%s: %s", final, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    rm_rf(tmp);
    return -1;
}

int unet_load_params(unet_model *m, const char *dir, char *err) {
    model_dir *md = model_open(dir, NULL, MODEL_VARIANT_AUTO, err);
    if (!md) return -1;
    int rc = weights_load(&m->ps, md, err);
    model_close(md);
    return rc;
}

static int read_optimizer(const char *path, adamw_state *opt, char *err) {
    st_file *f = st_open(path, err);
    if (!f) return -1;
    const st_tensor *m = st_find(f, "exp_avg"), *v = st_find(f, "exp_avg_sq");
    const char *step = st_meta_get(f, "step");
    int rc = 0;
    if (!m || !v || !step) rc = seterr(err, "%s: exp_avg, exp_avg_sq or the step is missing", path);
    else if (st_tensor_copy(m, &opt->m, err) || st_tensor_copy(v, &opt->v, err)) rc = -1;
    else opt->step = strtoll(step, NULL, 10);
    st_close(f);
    return rc;
}

int checkpoint_load(const char *dir, unet_model *student, unet_model *target, adamw_state *opt, char **state_json, char *err) {
    char p[4400];
    if (student->lora) {
        snprintf(p, sizeof p, "%s/" UNET_LORA_FILE, dir);
        if (unet_lora_load(student->lora, p, err)) return -1;
    } else {
        snprintf(p, sizeof p, "%s/unet", dir);
        if (unet_load_params(student, p, err)) return -1;
        snprintf(p, sizeof p, "%s/unet_target", dir);
        if (unet_load_params(target, p, err)) return -1;
    }
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    if (read_optimizer(p, opt, err)) return -1;
    snprintf(p, sizeof p, "%s/state.json", dir);
    return read_file(p, state_json, NULL, err);
}
