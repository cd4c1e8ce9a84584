/* conv.cu - 2-D convolution through cuDNN's legacy convolution API, FP32.
 *
 * Per shape a plan holds the descriptors and the algorithms chosen, cached so
 * that steady-state calls create nothing; workspaces are grow-only scratch
 * buffers. The math type is CUDNN_FMA_MATH: plain FP32 FMA kernels, never
 * TF32 tensor cores, so results match the CPU reference to FP32 rounding.
 * Algorithms come from cuDNN's heuristics (the _v7 queries), restricted to the
 * GEMM-like families (implicit/precomputed/explicit GEMM, direct): FFT and
 * Winograd variants trade accuracy for speed and are left out for now.
 *
 * cuDNN pads symmetrically only. A convolution whose bottom/right padding
 * differs from its top/left (the VAE downsampler's (0, 1, 0, 1)) runs on a
 * zero-padded copy of x with no padding of its own: the copy is exactly the
 * padded image the convolution is defined on, so nothing else changes; its
 * backward computes the gradient of the copy and crops it into dx. (A larger
 * symmetric pad and a cropped output would shift the sampling grid whenever
 * the extra pad is not a multiple of the stride.) */
#include "cuda_common.h"

#ifdef LCM_CUDNN

typedef struct conv_key {
    int n, c, h, w, k, r, s, stride, pad_top, pad_left, pad_bottom, pad_right;
} conv_key;

typedef struct conv_plan {
    conv_key key;
    int used;
    int padded_copy;  /* asymmetric padding: run on a zero-padded copy of x */
    int hp, wp;       /* the input cuDNN sees: padded copy or x itself */
    int p, q;         /* output size */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int have_fwd, have_data, have_filter; /* algorithms are chosen on first use */
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t data;
    cudnnConvolutionBwdFilterAlgo_t filter;
    size_t fwd_ws, data_ws, filter_ws;
} conv_plan;

enum { PLAN_CACHE = 64 };
static const size_t WORKSPACE_LIMIT = (size_t)512 << 20; /* algorithms wanting more are passed over */

static conv_key key_of(const tensor *x, const tensor *w, conv2d_params p) {
    conv_key k = {(int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)w->shape[0],
                  (int)w->shape[2], (int)w->shape[3], p.stride, p.pad_top, p.pad_left, p.pad_bottom, p.pad_right};
    return k;
}

static int same_key(const conv_key *a, const conv_key *b) { return !memcmp(a, b, sizeof *a); }

static void plan_init(conv_plan *pl, const conv_key *key) {
    memset(pl, 0, sizeof *pl);
    pl->key = *key, pl->used = 1;
    pl->padded_copy = key->pad_top != key->pad_bottom || key->pad_left != key->pad_right;
    int pad_h = pl->padded_copy ? 0 : key->pad_top, pad_w = pl->padded_copy ? 0 : key->pad_left;
    pl->hp = pl->padded_copy ? key->h + key->pad_top + key->pad_bottom : key->h;
    pl->wp = pl->padded_copy ? key->w + key->pad_left + key->pad_right : key->w;
    pl->p = (key->h + key->pad_top + key->pad_bottom - key->r) / key->stride + 1;
    pl->q = (key->w + key->pad_left + key->pad_right - key->s) / key->stride + 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->yd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&pl->wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pl->cd));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, key->n, key->c, pl->hp, pl->wp));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(pl->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, key->k, key->c, key->r, key->s));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(pl->cd, pad_h, pad_w, key->stride, key->stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(pl->cd, CUDNN_FMA_MATH));
    int dims[4];
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(pl->cd, pl->xd, pl->wd, &dims[0], &dims[1], &dims[2], &dims[3]));
    if (dims[0] != key->n || dims[1] != key->k || dims[2] != pl->p || dims[3] != pl->q)
        die("cuda conv2d: cuDNN output [%d, %d, %d, %d], [%d, %d, %d, %d] expected", dims[0], dims[1], dims[2], dims[3],
            key->n, key->k, pl->p, pl->q);
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, key->n, key->k, pl->p, pl->q));
}

static void plan_destroy(conv_plan *pl) {
    cudnnDestroyTensorDescriptor(pl->xd);
    cudnnDestroyTensorDescriptor(pl->yd);
    cudnnDestroyFilterDescriptor(pl->wd);
    cudnnDestroyConvolutionDescriptor(pl->cd);
    pl->used = 0;
}

/* The cached plan of this shape, made on first sight (round-robin eviction). */
static conv_plan *plan_for(const tensor *x, const tensor *w, conv2d_params p) {
    static conv_plan cache[PLAN_CACHE];
    static int next_victim;
    conv_key key = key_of(x, w, p);
    for (int i = 0; i < PLAN_CACHE; i++)
        if (cache[i].used && same_key(&cache[i].key, &key)) return &cache[i];
    conv_plan *pl = &cache[next_victim];
    next_victim = (next_victim + 1) % PLAN_CACHE;
    if (pl->used) plan_destroy(pl);
    plan_init(pl, &key);
    return pl;
}

/* ---- algorithm choice: the heuristics' order, GEMM-like families, workspace checked ---- */

static int fwd_allowed(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
static int data_allowed(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
static int filter_allowed(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}
static int tensor_op_math(cudnnMathType_t m) { return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION; }

static void choose_fwd(conv_plan *pl) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cuda_cudnn(), pl->xd, pl->wd, pl->cd, pl->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
    /* The fallback: implicit GEMM runs every shape with no workspace. */
    pl->fwd = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    for (int i = 0; i < n; i++) {
        size_t ws;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || !fwd_allowed(perf[i].algo) || tensor_op_math(perf[i].mathType)) continue;
        if (cudnnGetConvolutionForwardWorkspaceSize(cuda_cudnn(), pl->xd, pl->wd, pl->cd, pl->yd, perf[i].algo, &ws) !=
                CUDNN_STATUS_SUCCESS || ws > WORKSPACE_LIMIT)
            continue;
        pl->fwd = perf[i].algo;
        break;
    }
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cuda_cudnn(), pl->xd, pl->wd, pl->cd, pl->yd, pl->fwd, &pl->fwd_ws));
    pl->have_fwd = 1;
}

/* The backward passes prefer the heuristic's first deterministic algorithm
 * (data and filter algorithm 1; 0 and 3 accumulate with atomics), so that a
 * training run is the same every time it runs (a resumed run matches an
 * uninterrupted one); a non-deterministic one only where none qualifies. */
static void choose_data(conv_plan *pl) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cuda_cudnn(), pl->wd, pl->yd, pl->cd, pl->xd,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
    pl->data = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0; /* no workspace, every shape */
    int found = 0;
    for (int pass = 0; pass < 2 && !found; pass++) /* pass 0: deterministic algorithms only (the note above) */
        for (int i = 0; i < n && !found; i++) {
            size_t ws;
            if (perf[i].status != CUDNN_STATUS_SUCCESS || !data_allowed(perf[i].algo) || tensor_op_math(perf[i].mathType) ||
                (pass == 0 && perf[i].determinism != CUDNN_DETERMINISTIC))
                continue;
            if (cudnnGetConvolutionBackwardDataWorkspaceSize(cuda_cudnn(), pl->wd, pl->yd, pl->cd, pl->xd, perf[i].algo, &ws) !=
                    CUDNN_STATUS_SUCCESS || ws > WORKSPACE_LIMIT)
                continue;
            pl->data = perf[i].algo;
            found = 1;
        }
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cuda_cudnn(), pl->wd, pl->yd, pl->cd, pl->xd, pl->data,
                                                             &pl->data_ws));
    pl->have_data = 1;
}

static void choose_filter(conv_plan *pl) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cuda_cudnn(), pl->xd, pl->yd, pl->cd, pl->wd,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
    pl->filter = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0; /* no workspace, every shape */
    int found = 0;
    for (int pass = 0; pass < 2 && !found; pass++) /* pass 0: deterministic algorithms only (the note above) */
        for (int i = 0; i < n && !found; i++) {
            size_t ws;
            if (perf[i].status != CUDNN_STATUS_SUCCESS || !filter_allowed(perf[i].algo) || tensor_op_math(perf[i].mathType) ||
                (pass == 0 && perf[i].determinism != CUDNN_DETERMINISTIC))
                continue;
            if (cudnnGetConvolutionBackwardFilterWorkspaceSize(cuda_cudnn(), pl->xd, pl->yd, pl->cd, pl->wd, perf[i].algo, &ws) !=
                    CUDNN_STATUS_SUCCESS || ws > WORKSPACE_LIMIT)
                continue;
            pl->filter = perf[i].algo;
            found = 1;
        }
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cuda_cudnn(), pl->xd, pl->yd, pl->cd, pl->wd, pl->filter,
                                                               &pl->filter_ws));
    pl->have_filter = 1;
}

/* ---- the zero-padded copy for asymmetric padding ---- */

/* xp[n, c, i, j] = x[n, c, i - top, j - left], 0 outside x; xp is [planes, hp, wp]. */
__global__ void k_pad_copy(float *xp, const float *x, int64_t planes, int h, int w, int hp, int wp, int top, int left) {
    GRID_STRIDE(idx, planes * hp * wp) {
        int64_t plane = idx / ((int64_t)hp * wp);
        int i = (int)(idx / wp % hp) - top, j = (int)(idx % wp) - left;
        xp[idx] = i >= 0 && i < h && j >= 0 && j < w ? x[(plane * h + i) * w + j] : 0.0f;
    }
}

/* dx[n, c, i, j] = dxp[n, c, i + top, j + left]: the gradient of the padding itself is dropped. */
__global__ void k_crop(float *dx, const float *dxp, int64_t planes, int h, int w, int hp, int wp, int top, int left) {
    GRID_STRIDE(idx, planes * h * w) {
        int64_t plane = idx / ((int64_t)h * w);
        int i = (int)(idx / w % h), j = (int)(idx % w);
        dx[idx] = dxp[(plane * hp + i + top) * wp + j + left];
    }
}

/* x itself, or its zero-padded copy in scratch. */
static const float *conv_input(const conv_plan *pl, const tensor *x) {
    if (!pl->padded_copy) return CF(x);
    const conv_key *k = &pl->key;
    int64_t planes = (int64_t)k->n * k->c, n = planes * pl->hp * pl->wp;
    float *xp = (float *)cuda_scratch(SCRATCH_CONV_X, sizeof(float) * (size_t)n);
    k_pad_copy<<<blocks_for(n), THREADS>>>(xp, CF(x), planes, k->h, k->w, pl->hp, pl->wp, k->pad_top, k->pad_left);
    LAUNCH_CHECK();
    return xp;
}

void cuda_conv2d(tensor *y, const tensor *x, const tensor *w, const tensor *b, conv2d_params p) {
    conv_plan *pl = plan_for(x, w, p);
    if (!pl->have_fwd) choose_fwd(pl);
    const float *xin = conv_input(pl, x);
    void *ws = cuda_scratch(SCRATCH_CONV_WS, pl->fwd_ws);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(cuda_cudnn(), &one, pl->xd, xin, pl->wd, CF(w), pl->cd, pl->fwd, ws, pl->fwd_ws,
                                        &zero, pl->yd, F(y)));
    if (b) cuda_broadcast_add(F(y), CF(y), CF(b), pl->key.n, pl->key.k, (int64_t)pl->p * pl->q, 0);
}

/* dx is written, dw and db are added to (cuDNN's beta 1 for the filter). */
void cuda_conv2d_backward(tensor *dx, tensor *dw, tensor *db, const tensor *x, const tensor *w, const tensor *dy,
                          conv2d_params p) {
    conv_plan *pl = plan_for(x, w, p);
    const conv_key *k = &pl->key;
    const float one = 1.0f, zero = 0.0f;
    if (db) cuda_channel_sums(F(db), CF(dy), k->n, k->k, (int64_t)pl->p * pl->q);
    if (dw) {
        if (!pl->have_filter) choose_filter(pl);
        const float *xin = conv_input(pl, x);
        void *ws = cuda_scratch(SCRATCH_CONV_WS, pl->filter_ws);
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda_cudnn(), &one, pl->xd, xin, pl->yd, CF(dy), pl->cd, pl->filter, ws,
                                                   pl->filter_ws, &one, pl->wd, F(dw)));
    }
    if (dx) {
        if (!pl->have_data) choose_data(pl);
        int64_t planes = (int64_t)k->n * k->c;
        float *dxin = pl->padded_copy ? (float *)cuda_scratch(SCRATCH_CONV_DX, sizeof(float) * (size_t)(planes * pl->hp * pl->wp))
                                      : F(dx);
        void *ws = cuda_scratch(SCRATCH_CONV_WS, pl->data_ws);
        CUDNN_CHECK(cudnnConvolutionBackwardData(cuda_cudnn(), &one, pl->wd, CF(w), pl->yd, CF(dy), pl->cd, pl->data, ws,
                                                 pl->data_ws, &zero, pl->xd, dxin));
        if (pl->padded_copy) {
            int64_t n = planes * k->h * k->w;
            k_crop<<<blocks_for(n), THREADS>>>(F(dx), dxin, planes, k->h, k->w, pl->hp, pl->wp, k->pad_top, k->pad_left);
            LAUNCH_CHECK();
        }
    }
}

#endif /* LCM_CUDNN */
