/* reduce.cu - per-channel sums and broadcast adds shared by several ops:
 * bias gradients (linear, conv), add_broadcast and its backward.
 *
 * Sums run in double, as the CPU reference's do, and each output element has
 * one owner: no atomics, the same result every run. */
#include "cuda_common.h"

enum { COL_TILE = 32, COL_SLICES = 8, ROWS_PER_CHUNK = 512, MAX_CHUNKS = 256 };

/* [rows, cols] (inner 1): block (32, 8) sums 32 adjacent columns (coalesced
 * reads) over one chunk of rows into partial[chunk, col]. */
__global__ void k_column_partials(double *partial, const float *src, int64_t rows, int64_t cols, int64_t chunk_rows) {
    __shared__ double acc[COL_SLICES][COL_TILE];
    int64_t c = (int64_t)blockIdx.x * COL_TILE + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    double a = 0;
    if (c < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += COL_SLICES) a += src[r * cols + c];
    acc[threadIdx.y][threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double s = 0;
        for (int k = 0; k < COL_SLICES; k++) s += acc[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * cols + c] = s;
    }
}

__global__ void k_column_finish(float *out, const double *partial, int chunks, int64_t cols) {
    GRID_STRIDE(c, cols) {
        double s = 0;
        for (int k = 0; k < chunks; k++) s += partial[(int64_t)k * cols + c];
        out[c] += (float)s;
    }
}

/* [outer, C, inner] (inner > 1): one block per channel, threads along inner. */
__global__ void k_channel_sums(float *out, const float *src, int64_t outer, int64_t channels, int64_t inner) {
    int64_t c = blockIdx.x;
    double a = 0;
    for (int64_t b = 0; b < outer; b++) {
        const float *plane = src + (b * channels + c) * inner;
        for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) a += plane[i];
    }
    a = block_sum(a);
    if (threadIdx.x == 0) out[c] += (float)a;
}

void cuda_channel_sums(float *out, const float *src, int64_t outer, int64_t channels, int64_t inner) {
    if (outer < 1 || channels < 1 || inner < 1) return;
    if (inner > 1) {
        k_channel_sums<<<grid_dim(channels), THREADS>>>(out, src, outer, channels, inner);
        LAUNCH_CHECK();
        return;
    }
    int64_t chunks = (outer + ROWS_PER_CHUNK - 1) / ROWS_PER_CHUNK;
    if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
    int64_t chunk_rows = (outer + chunks - 1) / chunks;
    double *partial = (double *)cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (size_t)(chunks * channels));
    dim3 grid(grid_dim((channels + COL_TILE - 1) / COL_TILE), (unsigned)chunks), block(COL_TILE, COL_SLICES);
    k_column_partials<<<grid, block>>>(partial, src, outer, channels, chunk_rows);
    LAUNCH_CHECK();
    k_column_finish<<<blocks_for(channels), THREADS>>>(out, partial, (int)chunks, channels);
    LAUNCH_CHECK();
}

template <typename T>
__global__ void k_broadcast_add(T *y, const T *x, const float *v, int64_t n, int64_t c, int64_t inner, int per_image) {
    GRID_STRIDE(i, n * c * inner) {
        int64_t plane = i / inner;
        y[i] = from_f<T>((x ? to_f(x[i]) : 0.0f) + v[per_image ? plane : plane % c]); /* x NULL: y = v */
    }
}

void cuda_broadcast_add(float *y, const float *x, const float *v, int64_t n, int64_t c, int64_t inner, int per_image) {
    k_broadcast_add<float><<<blocks_for(n * c * inner), THREADS>>>(y, x, v, n, c, inner, per_image);
    LAUNCH_CHECK();
}

/* ---- add_broadcast: y[n, c, ...] = x + v[c] or v[n, c]; dv += sums of dy ---- */

void cuda_add_broadcast(tensor *y, const tensor *x, const tensor *v) {
    int64_t n = x->shape[0], c = x->shape[1], inner = tensor_numel(x) / (n * c);
    cuda_broadcast_add(F(y), CF(x), CF(v), n, c, inner, v->ndim == 2);
}

void cuda_add_broadcast_backward(tensor *dv, const tensor *dy) {
    int64_t n = dy->shape[0], c = dy->shape[1], inner = tensor_numel(dy) / (n * c);
    /* Per image ([N, C]): every (n, c) plane is its own channel. */
    if (dv->ndim == 2) cuda_channel_sums(F(dv), CF(dy), 1, n * c, inner);
    else cuda_channel_sums(F(dv), CF(dy), n, c, inner);
}
