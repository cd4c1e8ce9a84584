/* cuda_context.cu - the CUDA backend's process-wide state: the cuBLAS and
 * cuDNN handles and the grow-only scratch buffers (see cuda_common.h). The
 * programs are single-threaded towards the GPU, so no locking. */
#include "cuda_common.h"

cublasHandle_t cuda_cublas(void) {
    static cublasHandle_t h;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        /* Plain FP32 GEMMs: no TF32 tensor cores, so results match the CPU reference. */
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    }
    return h;
}

#ifdef LCM_CUDNN
cudnnHandle_t cuda_cudnn(void) {
    static cudnnHandle_t h;
    if (!h) CUDNN_CHECK(cudnnCreate(&h));
    return h;
}
#endif

void *cuda_scratch(enum scratch_slot slot, size_t bytes) {
    static void *buffer[SCRATCH_SLOTS];
    static size_t capacity[SCRATCH_SLOTS];
    if (bytes > capacity[slot]) {
        if (buffer[slot]) CUDA_CHECK(cudaFree(buffer[slot]));
        /* Half again as much, so that slowly growing sizes do not reallocate every call. */
        size_t want = bytes > capacity[slot] + capacity[slot] / 2 ? bytes : capacity[slot] + capacity[slot] / 2;
        CUDA_CHECK(cudaMalloc(&buffer[slot], want));
        capacity[slot] = want;
    }
    return buffer[slot];
}
