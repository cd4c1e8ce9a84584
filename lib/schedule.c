/* schedule.c - see schedule.h. */
#include "schedule.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "torch_math.h"
#include "util.h"

/* torch.linspace(a, b, n) in float32: the ends are rounded to float, the
 * step is computed in float, and values come from both ends towards the
 * middle, as PyTorch's CPU kernel does. */
static void linspace_f32(double a, double b, int n, float *out) {
    float fa = (float)a, fb = (float)b;
    float step = n > 1 ? (fb - fa) / (float)(n - 1) : 0;
    int half = n / 2;
    for (int i = 0; i < n; i++) out[i] = i < half ? fa + step * (float)i : fb - step * (float)(n - 1 - i);
}

int schedule_make(noise_schedule *s, int T, double beta_start, double beta_end, const char *kind, char *err) {
    if (T < 2 || T > SCHEDULE_MAX_T) return seterr(err, "num_train_timesteps %d out of range [2, %d]", T, SCHEDULE_MAX_T);
    memset(s, 0, sizeof *s);
    s->T = T;
    strcpy(s->timestep_spacing, "leading");
    if (!strcmp(kind, "linear")) {
        linspace_f32(beta_start, beta_end, T, s->betas);
    } else if (!strcmp(kind, "scaled_linear")) {
        /* beta_start ** 0.5 is taken in Python, in double */
        linspace_f32(sqrt(beta_start), sqrt(beta_end), T, s->betas);
        for (int t = 0; t < T; t++) s->betas[t] = s->betas[t] * s->betas[t];
    } else if (!strcmp(kind, "squaredcos_cap_v2")) {
        /* betas_for_alpha_bar with the cosine alpha_bar, in double, capped at 0.999 */
        for (int t = 0; t < T; t++) {
            double a1 = cos(((double)t / T + 0.008) / 1.008 * M_PI / 2), a2 = cos(((double)(t + 1) / T + 0.008) / 1.008 * M_PI / 2);
            double b = 1 - (a2 * a2) / (a1 * a1);
            s->betas[t] = (float)(b < 0.999 ? b : 0.999);
        }
    } else {
        return seterr(err, "beta_schedule '%s' is not supported (linear, scaled_linear, squaredcos_cap_v2)", kind);
    }
    /* torch.cumprod on float32 CPU accumulates in double, rounding each output. */
    double acc = 1;
    for (int t = 0; t < T; t++) {
        acc *= (double)(1.0f - s->betas[t]);
        s->alphas_cumprod[t] = (float)acc;
    }
    return 0;
}

int prediction_parse(const char *name, prediction_type *out) {
    if (!strcmp(name, "epsilon")) *out = PRED_EPSILON;
    else if (!strcmp(name, "v_prediction")) *out = PRED_V;
    else if (!strcmp(name, "sample")) *out = PRED_SAMPLE;
    else return -1;
    return 0;
}

static double json_num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *json_str(const cJSON *o, const char *key, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

int schedule_from_config(noise_schedule *s, const char *path, char *err) {
    char *text;
    if (read_file(path, &text, NULL, err)) return -1;
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return seterr(err, "%s: not a JSON object", path);
    }
    int rc = -1;
    const cJSON *trained = cJSON_GetObjectItemCaseSensitive(cfg, "trained_betas");
    if (trained && !cJSON_IsNull(trained)) {
        seterr(err, "%s: trained_betas are not supported", path);
        goto out;
    }
    if (schedule_make(s, (int)json_num(cfg, "num_train_timesteps", 1000), json_num(cfg, "beta_start", 0.0001),
                      json_num(cfg, "beta_end", 0.02), json_str(cfg, "beta_schedule", "linear"), err))
        goto out;
    const char *pred = json_str(cfg, "prediction_type", "epsilon");
    if (prediction_parse(pred, &s->prediction)) {
        seterr(err, "%s: unknown prediction_type '%s'", path, pred);
        goto out;
    }
    s->steps_offset = (int)json_num(cfg, "steps_offset", 0);
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(cfg, "set_alpha_to_one");
    s->set_alpha_to_one = one ? cJSON_IsTrue(one) : 1;
    snprintf(s->timestep_spacing, sizeof s->timestep_spacing, "%s", json_str(cfg, "timestep_spacing", "leading"));
    rc = 0;
out:
    cJSON_Delete(cfg);
    return rc;
}

int ddim_solver_grid(const noise_schedule *s, int N, int *tau, double *abar_prev) {
    if (N < 1 || N > s->T) return -1;
    int k = s->T / N;
    for (int i = 0; i < N; i++) {
        tau[i] = (i + 1) * k - 1;
        abar_prev[i] = s->alphas_cumprod[i ? tau[i - 1] : 0];
    }
    return 0;
}

void boundary_scalings(int t, float timestep_scaling, float *c_skip, float *c_out) {
    const float sd2 = 0.25f; /* sigma_data = 0.5 */
    float ts = (float)t * timestep_scaling;
    float d = ts * ts + sd2;
    *c_skip = sd2 / d;
    *c_out = ts / sqrtf(d);
}

void guidance_embedding(float w, int d, float *out) {
    int half = d / 2;
    float c = logf(10000.0f) / (float)(half - 1);
    float ws = w * 1000.0f;
    for (int j = 0; j < half; j++) {
        /* torch's exp, not expf: the arguments reach 15000 rad, where one ulp
         * of a frequency moves an entry by ~4e-4 (lcd-reference.md §9). */
        float freq = torch_expf((float)j * -c);
        float arg = ws * freq;
        out[j] = sinf(arg);
        out[half + j] = cosf(arg);
    }
    if (d % 2) out[d - 1] = 0;
}

int lcm_timesteps(int T, int K, int n, float strength, int *out, char *err) {
    if (K < 1 || K > T) return seterr(err, "original_inference_steps %d out of range [1, %d]", K, T);
    if (n < 1 || n > K) return seterr(err, "num_inference_steps %d must be in [1, original_inference_steps = %d]", n, K);
    int k = T / K;
    int len = (int)((float)K * strength);
    if (len / n < 1) return seterr(err, "strength %g leaves %d training timesteps for %d steps", strength, len, n);
    /* origin = [1..len] * k - 1, reversed; pick floor(linspace(0, len, n, endpoint=False)) */
    for (int i = 0; i < n; i++) {
        int idx = (int)floor((double)len * i / n);
        out[i] = (len - idx) * k - 1;
    }
    return n;
}
