/* backend_cuda.cu - the CUDA backend: memory, the probe, the basic ops
 * (elementwise kernels, cuBLAS GEMM, sum, embedding, transpose) and the op
 * table. The neural-network ops live one concern per file (linear.cu,
 * conv.cu, norm.cu, act.cu, attention.cu, upsample.cu, timestep.cu,
 * reduce.cu, loss.cu, channels.cu, optim.cu; kernels/README.md lists them). Every op is checked
 * against the CPU backend by the op harness (tests/unit/test_ops.c), which
 * runs its CUDA cases on any machine with a GPU (scripts/gpu-check). */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_common.h"

__global__ void k_probe(int *flag) { *flag = 1; }

/* Usable means: a device, and this build's kernels run on it (the fat binary
 * holds SASS for CUDA_ARCH only; another architecture fails the test launch
 * with "no kernel image"). On success err, when given, gets a one-line
 * description of the device: "cuda: NAME (sm_XY, N GiB)". */
static int cuda_probe(char *err) {
    int count = 0, dev = 0, *flag = NULL, seen = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) return seterr(err, "no usable CUDA device (%s)", cudaGetErrorString(e));
    if (count == 0) return seterr(err, "no CUDA device");
    cudaDeviceProp prop;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess ||
        (e = cudaMalloc(&flag, sizeof *flag)) != cudaSuccess)
        return seterr(err, "CUDA device unusable (%s)", cudaGetErrorString(e));
    k_probe<<<1, 1>>>(flag);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(&seen, flag, sizeof seen, cudaMemcpyDeviceToHost);
    cudaFree(flag);
    if (e != cudaSuccess || !seen)
        return seterr(err, "%s (sm_%d%d) cannot run this build's kernels (%s)", prop.name, prop.major, prop.minor,
                      e != cudaSuccess ? cudaGetErrorString(e) : "the test kernel did not run");
    if (err)
        snprintf(err, LCM_ERRLEN, "cuda: %s (sm_%d%d, %.0f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1 << 30));
    return 0;
}

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 256));
    return p;
}

static void cuda_free(void *p) { CUDA_CHECK(cudaFree(p)); }
static void cuda_upload(void *dst, const void *src, size_t n) { CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice)); }
static void cuda_download(void *dst, const void *src, size_t n) { CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost)); }
static void cuda_synchronize(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

static size_t cuda_memory_in_use(void) {
    size_t free_bytes = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return total - free_bytes;
}

__global__ void k_fill(float *p, float v, int64_t n) { GRID_STRIDE(i, n) p[i] = v; }

static void cuda_fill(tensor *t, float value) {
    int64_t n = tensor_numel(t);
    k_fill<<<blocks_for(n), 256>>>((float *)t->data, value, n);
    CUDA_CHECK(cudaGetLastError());
}

template <typename D, typename S> __device__ D convert_one(S s);
template <> __device__ float convert_one<float, __half>(__half s) { return __half2float(s); }
template <> __device__ float convert_one<float, __nv_bfloat16>(__nv_bfloat16 s) { return __bfloat162float(s); }
template <> __device__ __half convert_one<__half, float>(float s) { return __float2half_rn(s); }
template <> __device__ __nv_bfloat16 convert_one<__nv_bfloat16, float>(float s) { return __float2bfloat16_rn(s); }

template <typename D, typename S> __global__ void k_convert(D *dst, const S *src, int64_t n) {
    GRID_STRIDE(i, n) dst[i] = convert_one<D, S>(src[i]);
}

static void cuda_convert(tensor *dst, const tensor *src) {
    int64_t n = tensor_numel(src);
    dtype_id d = dst->dtype, s = src->dtype;
    if (d == s) {
        CUDA_CHECK(cudaMemcpy(dst->data, src->data, tensor_nbytes(src), cudaMemcpyDeviceToDevice));
    } else if (d == DT_F32 && s == DT_F16) {
        k_convert<float, __half><<<blocks_for(n), 256>>>((float *)dst->data, (const __half *)src->data, n);
    } else if (d == DT_F32 && s == DT_BF16) {
        k_convert<float, __nv_bfloat16><<<blocks_for(n), 256>>>((float *)dst->data, (const __nv_bfloat16 *)src->data, n);
    } else if (d == DT_F16 && s == DT_F32) {
        k_convert<__half, float><<<blocks_for(n), 256>>>((__half *)dst->data, (const float *)src->data, n);
    } else if (d == DT_BF16 && s == DT_F32) {
        k_convert<__nv_bfloat16, float><<<blocks_for(n), 256>>>((__nv_bfloat16 *)dst->data, (const float *)src->data, n);
    } else {
        /* Rare pairs (integers, f64) go through the host reference converter. */
        size_t sb = tensor_nbytes(src), db = tensor_nbytes(dst);
        void *hs = xmalloc(sb), *hd = xmalloc(db);
        cuda_download(hs, src->data, sb);
        dtype_convert(hd, d, hs, s, (size_t)n);
        cuda_upload(dst->data, hd, db);
        free(hs);
        free(hd);
    }
    CUDA_CHECK(cudaGetLastError());
}

__global__ void k_axpby(float *o, float a, const float *x, float b, const float *y, int64_t n) {
    GRID_STRIDE(i, n) o[i] = y ? a * x[i] + b * y[i] : a * x[i];
}

static void cuda_axpby(tensor *out, float a, const tensor *x, float b, const tensor *y) {
    int64_t n = tensor_numel(out);
    k_axpby<<<blocks_for(n), 256>>>((float *)out->data, a, (const float *)x->data, b, y ? (const float *)y->data : NULL, n);
    CUDA_CHECK(cudaGetLastError());
}

__global__ void k_mul(float *o, const float *x, const float *y, int64_t n) { GRID_STRIDE(i, n) o[i] = x[i] * y[i]; }

static void cuda_mul(tensor *out, const tensor *x, const tensor *y) {
    int64_t n = tensor_numel(out);
    k_mul<<<blocks_for(n), 256>>>((float *)out->data, (const float *)x->data, (const float *)y->data, n);
    CUDA_CHECK(cudaGetLastError());
}

__global__ void k_silu(float *o, const float *x, int64_t n) { GRID_STRIDE(i, n) o[i] = x[i] / (1.0f + expf(-x[i])); }

__global__ void k_silu_backward(float *dx, const float *x, const float *dy, int64_t n) {
    GRID_STRIDE(i, n) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

static void cuda_silu(tensor *out, const tensor *x) {
    int64_t n = tensor_numel(out);
    k_silu<<<blocks_for(n), 256>>>((float *)out->data, (const float *)x->data, n);
    CUDA_CHECK(cudaGetLastError());
}

static void cuda_silu_backward(tensor *dx, const tensor *x, const tensor *dy) {
    int64_t n = tensor_numel(dx);
    k_silu_backward<<<blocks_for(n), 256>>>((float *)dx->data, (const float *)x->data, (const float *)dy->data, n);
    CUDA_CHECK(cudaGetLastError());
}

/* cuBLAS is column-major: a row-major C = A B is the column-major C^T = B^T A^T,
 * so the operands swap places and keep their transpose flags. */
static void cuda_gemm(tensor *c, const tensor *a, int trans_a, const tensor *b, int trans_b, float alpha, float beta) {
    int m = (int)c->shape[0], n = (int)c->shape[1];
    int k = (int)(trans_a ? a->shape[0] : a->shape[1]);
    CUBLAS_CHECK(cublasSgemm(cuda_cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                             &alpha, (const float *)b->data, (int)b->shape[1], (const float *)a->data, (int)a->shape[1], &beta,
                             (float *)c->data, n));
}

/* One block per chunk writes a partial sum in double; the host adds the partials. */
__global__ void k_sum(const float *x, int64_t n, double *partial) {
    __shared__ double s[256];
    double acc = 0;
    GRID_STRIDE(i, n) acc += x[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

static double cuda_sum(const tensor *x) {
    int64_t n = tensor_numel(x);
    int blocks = blocks_for(n) > 1024 ? 1024 : blocks_for(n);
    double *partial = (double *)cuda_alloc(sizeof(double) * blocks);
    k_sum<<<blocks, 256>>>((const float *)x->data, n, partial);
    CUDA_CHECK(cudaGetLastError());
    double *host = (double *)xmalloc(sizeof(double) * blocks), total = 0;
    cuda_download(host, partial, sizeof(double) * blocks);
    for (int i = 0; i < blocks; i++) total += host[i];
    free(host);
    cuda_free(partial);
    return total;
}

__global__ void k_embedding(float *y, const float *table, const int64_t *ids, int64_t n, int64_t d) {
    GRID_STRIDE(i, n * d) y[i] = table[ids[i / d] * d + i % d];
}

static void cuda_embedding(tensor *y, const tensor *table, const tensor *ids) {
    int64_t n = tensor_numel(ids), d = table->shape[1];
    k_embedding<<<blocks_for(n * d), 256>>>((float *)y->data, (const float *)table->data, (const int64_t *)ids->data, n, d);
    CUDA_CHECK(cudaGetLastError());
}

/* 32 x 32 tiles through shared memory (padded against bank conflicts), so
 * both the reads and the writes are coalesced. */
__global__ void k_transpose(float *y, const float *x, int64_t m, int64_t n) {
    __shared__ float tile[32][33];
    const float *src = x + blockIdx.z * m * n;
    float *dst = y + blockIdx.z * m * n;
    int64_t i0 = (int64_t)blockIdx.y * 32, j0 = (int64_t)blockIdx.x * 32;
    for (int r = threadIdx.y; r < 32; r += blockDim.y)
        if (i0 + r < m && j0 + threadIdx.x < n) tile[r][threadIdx.x] = src[(i0 + r) * n + j0 + threadIdx.x];
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y)
        if (j0 + r < n && i0 + threadIdx.x < m) dst[(j0 + r) * m + i0 + threadIdx.x] = tile[threadIdx.x][r];
}

static void cuda_transpose(tensor *y, const tensor *x) {
    int64_t b = x->ndim == 3 ? x->shape[0] : 1, m = x->shape[x->ndim - 2], n = x->shape[x->ndim - 1];
    dim3 grid((unsigned)((n + 31) / 32), (unsigned)((m + 31) / 32), (unsigned)b), block(32, 8);
    k_transpose<<<grid, block>>>((float *)y->data, (const float *)x->data, m, n);
    CUDA_CHECK(cudaGetLastError());
}

static const backend cuda_backend = {
    "cuda",                                /* name */
    cuda_probe,                            /* probe */
    cuda_alloc,                            /* alloc */
    cuda_free,                             /* free */
    cuda_upload,                           /* upload */
    cuda_download,                         /* download */
    cuda_synchronize,                      /* synchronize */
    {   /* ops: positional, in the order of backend_ops in lib/backend.h */
        cuda_fill,                         /* fill (backend_cuda.cu) */
        cuda_convert,                      /* convert (backend_cuda.cu) */
        cuda_axpby,                        /* axpby (backend_cuda.cu) */
        cuda_mul,                          /* mul (backend_cuda.cu) */
        cuda_silu,                         /* silu (backend_cuda.cu) */
        cuda_silu_backward,                /* silu_backward (backend_cuda.cu) */
        cuda_gemm,                         /* gemm (backend_cuda.cu) */
        cuda_sum,                          /* sum (backend_cuda.cu) */
        cuda_linear,                       /* linear (linear.cu) */
        cuda_linear_backward,              /* linear_backward (linear.cu) */
        CUDA_CONV2D,                       /* conv2d (conv.cu; NULL without cuDNN) */
        CUDA_CONV2D_BACKWARD,              /* conv2d_backward (conv.cu; NULL without cuDNN) */
        cuda_group_norm,                   /* group_norm (norm.cu) */
        cuda_group_norm_backward,          /* group_norm_backward (norm.cu) */
        cuda_layer_norm,                   /* layer_norm (norm.cu) */
        cuda_layer_norm_backward,          /* layer_norm_backward (norm.cu) */
        cuda_activation,                   /* activation (act.cu) */
        cuda_activation_backward,          /* activation_backward (act.cu) */
        cuda_geglu,                        /* geglu (act.cu) */
        cuda_geglu_backward,               /* geglu_backward (act.cu) */
        cuda_softmax,                      /* softmax (act.cu) */
        cuda_softmax_backward,             /* softmax_backward (act.cu) */
        cuda_attention,                    /* attention (attention.cu) */
        cuda_attention_backward,           /* attention_backward (attention.cu) */
        cuda_upsample_nearest,             /* upsample_nearest (upsample.cu) */
        cuda_upsample_nearest_backward,    /* upsample_nearest_backward (upsample.cu) */
        cuda_timestep_embedding,           /* timestep_embedding (timestep.cu) */
        cuda_add_broadcast,                /* add_broadcast (reduce.cu) */
        cuda_add_broadcast_backward,       /* add_broadcast_backward (reduce.cu) */
        cuda_loss,                         /* loss (loss.cu) */
        cuda_loss_backward,                /* loss_backward (loss.cu) */
        cuda_embedding,                    /* embedding (backend_cuda.cu) */
        cuda_transpose,                    /* transpose (backend_cuda.cu) */
        cuda_copy_channels,                /* copy_channels (channels.cu) */
        cuda_scale_shift,                  /* scale_shift (channels.cu) */
        cuda_scale_shift_backward,         /* scale_shift_backward (channels.cu) */
        cuda_adamw,                        /* adamw (optim.cu) */
        cuda_sumsq,                        /* sumsq (optim.cu) */
    },
    cuda_memory_in_use,                    /* memory_in_use */
};

extern "C" const backend *backend_cuda(void) { return &cuda_backend; }
