// Embedding lookup: out[t, :] = table[ids[t], :].
// Variants: one templated kernel over the storage type (float, 16-bit words for fp16 and bf16: a row copy
// needs no arithmetic, so fp16 and bf16 share the uint16_t instantiation).
// CPU twin: CpuOps.embedding (java/src/main/java/io/github/optjava/backend/cpu/CpuOps.java).
#include "opt_kernels.h"

namespace {

// One block per token (grid.x = n_tokens), threads stride over the row.
template <typename T>
__global__ void embedding_kernel(T* __restrict__ out, const T* __restrict__ table,
                                 const int32_t* __restrict__ ids, int dim, int vocab) {
  const int t = blockIdx.x;
  const int id = ids[t];
  T* dst = out + static_cast<size_t>(t) * dim;
  if (id < 0 || id >= vocab) {  // never read outside the table
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = T(0);
    return;
  }
  const T* src = table + static_cast<size_t>(id) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

template <typename T>
int launch_embedding(T* out, const T* table, const int32_t* ids, int n_tokens, int dim, int vocab,
                     cudaStream_t stream) {
  if (n_tokens < 0 || dim < 0 || vocab < 0) return static_cast<int>(cudaErrorInvalidValue);
  if (n_tokens == 0 || dim == 0) return static_cast<int>(cudaSuccess);
  const int threads = dim >= 256 ? 256 : ((dim + 31) / 32) * 32;
  embedding_kernel<T><<<n_tokens, threads, 0, stream>>>(out, table, ids, dim, vocab);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" {

OPT_API int opt_embedding_f32(float* out, const float* table, const int32_t* ids, int n_tokens, int dim,
                              int vocab, cudaStream_t stream) {
  return launch_embedding(out, table, ids, n_tokens, dim, vocab, stream);
}

OPT_API int opt_embedding_f16(uint16_t* out, const uint16_t* table, const int32_t* ids, int n_tokens,
                              int dim, int vocab, cudaStream_t stream) {
  return launch_embedding(out, table, ids, n_tokens, dim, vocab, stream);
}

OPT_API int opt_embedding_bf16(uint16_t* out, const uint16_t* table, const int32_t* ids, int n_tokens,
                               int dim, int vocab, cudaStream_t stream) {
  return launch_embedding(out, table, ids, n_tokens, dim, vocab, stream);
}

}  // extern "C"
