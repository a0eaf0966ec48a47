// Paged KV cache writes. Layout of one layer's cache (keys and values alike):
//   cache (num_blocks × block_size, width), width = heads × head_dim; slot s = block × block_size + offset,
//   so block b is the contiguous range of rows [b × block_size, (b + 1) × block_size).
// Variants (each for f32, f16, bf16 storage; pure copies, no arithmetic):
//   opt_kv_append_<dt>       k_cache[slots[t], :] = k[t, :], v_cache[slots[t], :] = v[t, :]
//                            (CPU twin: CpuOps.kvAppend, one layer)
//   opt_kv_copy_blocks_<dt>  block src[i] → block dst[i], keys and values (CPU twin: CpuOps.kvCopyBlocks,
//                            one layer per call: the caller loops over layers)
//   opt_qkv_append_<dt>      the fused q/k/v projection's epilogue: bias added, q written out, k and v
//                            appended to the cache (CPU twin: CpuOps.qkvAppend); one launch instead of
//                            three bias launches and a kv_append
// A slot or block id outside the cache is skipped (nothing written), so a bad index never corrupts
// memory; vLLM-style padding tokens may use slot -1 on purpose.
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxThreads = 256;
constexpr int kCopyThreads = 256;
constexpr int kCopyElementsPerBlock = 4096;  // one (pair, chunk) block copies about this many elements

// grid.x = n_tokens; caches (cache_slots, width), k and v (n_tokens, width), slots (n_tokens).
template <typename T>
__global__ void kv_append_kernel(T* __restrict__ k_cache, T* __restrict__ v_cache, const T* __restrict__ k,
                                 const T* __restrict__ v, const int32_t* __restrict__ slots, int width,
                                 int cache_slots) {
  const int t = blockIdx.x;
  const int slot = slots[t];
  if (slot < 0 || slot >= cache_slots) return;
  const size_t src = static_cast<size_t>(t) * width;
  const size_t dst = static_cast<size_t>(slot) * width;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    k_cache[dst + i] = k[src + i];
    v_cache[dst + i] = v[src + i];
  }
}

// grid = (n_pairs, chunks); each block copies a grid-strided share of one pair's block_size × width
// elements, keys and values.
template <typename T>
__global__ void kv_copy_blocks_kernel(T* __restrict__ k_cache, T* __restrict__ v_cache,
                                      const int32_t* __restrict__ src_blocks, const int32_t* __restrict__ dst_blocks,
                                      size_t block_elems, int num_blocks) {
  const int src = src_blocks[blockIdx.x];
  const int dst = dst_blocks[blockIdx.x];
  if (src < 0 || src >= num_blocks || dst < 0 || dst >= num_blocks) return;
  const size_t from = static_cast<size_t>(src) * block_elems;
  const size_t to = static_cast<size_t>(dst) * block_elems;
  const size_t stride = static_cast<size_t>(gridDim.y) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < block_elems; i += stride) {
    k_cache[to + i] = k_cache[from + i];
    v_cache[to + i] = v_cache[from + i];
  }
}

// grid.x = n_tokens; qkv (n_tokens, 3 × width) = (q | k | v) without bias, bias (3 × width) or null,
// q_out (n_tokens, width), caches (cache_slots, width). The bias is added in float32 and rounded once.
template <typename T>
__global__ void qkv_append_kernel(T* __restrict__ q_out, T* __restrict__ k_cache, T* __restrict__ v_cache,
                                  const T* __restrict__ qkv, const T* __restrict__ bias,
                                  const int32_t* __restrict__ slots, int width, int cache_slots) {
  const int t = blockIdx.x;
  const int slot = slots[t];
  const bool cached = slot >= 0 && slot < cache_slots;
  const T* row = qkv + static_cast<size_t>(t) * 3 * width;
  T* q_row = q_out + static_cast<size_t>(t) * width;
  const size_t dst = static_cast<size_t>(cached ? slot : 0) * width;
  for (int i = threadIdx.x; i < width; i += blockDim.x) {
    float q = to_float(row[i]);
    float k = to_float(row[width + i]);
    float v = to_float(row[2 * width + i]);
    if (bias != nullptr) {
      q += to_float(bias[i]);
      k += to_float(bias[width + i]);
      v += to_float(bias[2 * width + i]);
    }
    q_row[i] = from_float<T>(q);
    if (cached) {
      k_cache[dst + i] = from_float<T>(k);
      v_cache[dst + i] = from_float<T>(v);
    }
  }
}

template <typename T>
int launch_qkv_append(T* q_out, T* k_cache, T* v_cache, const T* qkv, const T* bias, const int32_t* slots,
                      int n_tokens, int width, int cache_slots, cudaStream_t stream) {
  if (n_tokens < 0 || width < 0 || cache_slots < 0) return kInvalidValue;
  if (n_tokens == 0 || width == 0) return kSuccess;
  qkv_append_kernel<T><<<n_tokens, threads_for(width, kMaxThreads), 0, stream>>>(q_out, k_cache, v_cache, qkv, bias,
                                                                                 slots, width, cache_slots);
  return launch_status();
}

template <typename T>
int launch_kv_append(T* k_cache, T* v_cache, const T* k, const T* v, const int32_t* slots, int n_tokens, int width,
                     int cache_slots, cudaStream_t stream) {
  if (n_tokens < 0 || width < 0 || cache_slots < 0) return kInvalidValue;
  if (n_tokens == 0 || width == 0 || cache_slots == 0) return kSuccess;
  kv_append_kernel<T><<<n_tokens, threads_for(width, kMaxThreads), 0, stream>>>(k_cache, v_cache, k, v, slots,
                                                                                width, cache_slots);
  return launch_status();
}

template <typename T>
int launch_kv_copy_blocks(T* k_cache, T* v_cache, const int32_t* src_blocks, const int32_t* dst_blocks,
                          int n_pairs, int block_size, int width, int num_blocks, cudaStream_t stream) {
  if (n_pairs < 0 || block_size < 0 || width < 0 || num_blocks < 0) return kInvalidValue;
  if (n_pairs == 0 || block_size == 0 || width == 0 || num_blocks == 0) return kSuccess;
  const size_t block_elems = static_cast<size_t>(block_size) * width;
  size_t chunks = (block_elems + kCopyElementsPerBlock - 1) / kCopyElementsPerBlock;
  if (chunks > 65535) chunks = 65535;  // grid.y limit; the grid stride covers the rest
  const dim3 grid(n_pairs, static_cast<unsigned>(chunks));
  kv_copy_blocks_kernel<T><<<grid, kCopyThreads, 0, stream>>>(k_cache, v_cache, src_blocks, dst_blocks,
                                                              block_elems, num_blocks);
  return launch_status();
}

}  // namespace

extern "C" {

// ---- kv_append ----

OPT_API int opt_kv_append_f32(float* k_cache, float* v_cache, const float* k, const float* v, const int32_t* slots,
                              int n_tokens, int width, int cache_slots, cudaStream_t stream) {
  return launch_kv_append(k_cache, v_cache, k, v, slots, n_tokens, width, cache_slots, stream);
}

OPT_API int opt_kv_append_f16(uint16_t* k_cache, uint16_t* v_cache, const uint16_t* k, const uint16_t* v,
                              const int32_t* slots, int n_tokens, int width, int cache_slots, cudaStream_t stream) {
  return launch_kv_append(as_f16(k_cache), as_f16(v_cache), as_f16(k), as_f16(v), slots, n_tokens, width,
                          cache_slots, stream);
}

OPT_API int opt_kv_append_bf16(uint16_t* k_cache, uint16_t* v_cache, const uint16_t* k, const uint16_t* v,
                               const int32_t* slots, int n_tokens, int width, int cache_slots,
                               cudaStream_t stream) {
  return launch_kv_append(as_bf16(k_cache), as_bf16(v_cache), as_bf16(k), as_bf16(v), slots, n_tokens, width,
                          cache_slots, stream);
}

// ---- qkv_append ----

OPT_API int opt_qkv_append_f32(float* q_out, float* k_cache, float* v_cache, const float* qkv, const float* bias,
                               const int32_t* slots, int n_tokens, int width, int cache_slots, cudaStream_t stream) {
  return launch_qkv_append(q_out, k_cache, v_cache, qkv, bias, slots, n_tokens, width, cache_slots, stream);
}

OPT_API int opt_qkv_append_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* qkv,
                               const uint16_t* bias, const int32_t* slots, int n_tokens, int width, int cache_slots,
                               cudaStream_t stream) {
  return launch_qkv_append(as_f16(q_out), as_f16(k_cache), as_f16(v_cache), as_f16(qkv), as_f16(bias), slots,
                           n_tokens, width, cache_slots, stream);
}

OPT_API int opt_qkv_append_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* qkv,
                                const uint16_t* bias, const int32_t* slots, int n_tokens, int width, int cache_slots,
                                cudaStream_t stream) {
  return launch_qkv_append(as_bf16(q_out), as_bf16(k_cache), as_bf16(v_cache), as_bf16(qkv), as_bf16(bias), slots,
                           n_tokens, width, cache_slots, stream);
}

// ---- kv_copy_blocks ----

OPT_API int opt_kv_copy_blocks_f32(float* k_cache, float* v_cache, const int32_t* src_blocks,
                                   const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                   int num_blocks, cudaStream_t stream) {
  return launch_kv_copy_blocks(k_cache, v_cache, src_blocks, dst_blocks, n_pairs, block_size, width, num_blocks,
                               stream);
}

OPT_API int opt_kv_copy_blocks_f16(uint16_t* k_cache, uint16_t* v_cache, const int32_t* src_blocks,
                                   const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                   int num_blocks, cudaStream_t stream) {
  return launch_kv_copy_blocks(as_f16(k_cache), as_f16(v_cache), src_blocks, dst_blocks, n_pairs, block_size,
                               width, num_blocks, stream);
}

OPT_API int opt_kv_copy_blocks_bf16(uint16_t* k_cache, uint16_t* v_cache, const int32_t* src_blocks,
                                    const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                    int num_blocks, cudaStream_t stream) {
  return launch_kv_copy_blocks(as_bf16(k_cache), as_bf16(v_cache), src_blocks, dst_blocks, n_pairs, block_size,
                               width, num_blocks, stream);
}

}  // extern "C"
