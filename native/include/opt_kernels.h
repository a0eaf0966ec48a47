/*
 * opt_kernels.h: the only header Java binds (through JavaCPP, see backend/cuda/OptKernels.java).
 *
 * Conventions for every launcher:
 *   - extern "C", named opt_<op>_<dtype> with dtype f32 | f16 | bf16 (the storage type);
 *   - outputs first, then inputs, then sizes, then the cudaStream_t last;
 *   - returns an int status: 0 (cudaSuccess) or the cudaError_t of the launch. It never aborts the process.
 * fp16 / bf16 tensors are passed as raw 16-bit words (uint16_t) so the header needs no cuda_fp16.h.
 * Each op family lives in one native/src/<family>.cu and has a CPU twin of the same meaning in CpuOps.
 */
#ifndef OPT_KERNELS_H
#define OPT_KERNELS_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#if defined(_WIN32)
#  define OPT_API __declspec(dllexport)
#else
/* The library is built with hidden visibility; only what carries OPT_API is exported. */
#  define OPT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Library version, "MAJOR.MINOR.PATCH". */
OPT_API const char* opt_kernels_version(void);
/* The CUDA architectures this library was compiled for, e.g. "80,86,89,90" (no cuobjdump needed). */
OPT_API const char* opt_kernels_archs(void);

/*
 * Embedding lookup (embedding.cu): out[t, :] = table[ids[t], :]
 *   out   (n_tokens, dim)   device
 *   table (vocab, dim)      device
 *   ids   (n_tokens)        device, int32; an id outside [0, vocab) yields a zero row
 *                           (the Java side validates ids first; the kernel never reads out of bounds).
 */
OPT_API int opt_embedding_f32(float* out, const float* table, const int32_t* ids,
                              int n_tokens, int dim, int vocab, cudaStream_t stream);
OPT_API int opt_embedding_f16(uint16_t* out, const uint16_t* table, const int32_t* ids,
                              int n_tokens, int dim, int vocab, cudaStream_t stream);
OPT_API int opt_embedding_bf16(uint16_t* out, const uint16_t* table, const int32_t* ids,
                               int n_tokens, int dim, int vocab, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* OPT_KERNELS_H */
