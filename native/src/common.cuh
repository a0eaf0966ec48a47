// Device helpers shared by the kernel files in native/src/ (internal: not part of opt_kernels.h).
//
//   storage types   float, __half (fp16), __nv_bfloat16 (bf16). The public header passes 16-bit tensors
//                   as uint16_t words; launchers reinterpret them with as_f16 / as_bf16 (same size and bit
//                   layout). Kernels load every element into float (to_float), compute in float and round
//                   back to nearest even once, when storing (from_float<T>).
//   reductions      warp_sum and block_sum (warp shuffles, then one float per warp in shared memory).
//   paged KV cache  kv_slot: a position's slot through its block table (-1 for a bad block id).
//   chained launch  programmatic dependent launch on sm_90+ (chain_start / chain_wait / launch_chained).
//   launch helpers  status codes and the thread count of a one-block-per-row launch.
#ifndef OPT_COMMON_CUH
#define OPT_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

#include <atomic>

#include "opt_kernels.h"

namespace opt {

// ---- storage types ---------------------------------------------------------------------------------

// `#pragma unroll` in __host__ __device__ code: the host compiler warns on it (an error under -Werror).
#if defined(__CUDA_ARCH__)
#define OPT_UNROLL _Pragma("unroll")
#else
#define OPT_UNROLL
#endif

// (__host__ too: native/dev/split_values_test.cu runs a kernel's helper on the CPU.)
__host__ __device__ __forceinline__ float to_float(float v) { return v; }
__host__ __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__host__ __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

inline __half* as_f16(uint16_t* p) { return reinterpret_cast<__half*>(p); }
inline const __half* as_f16(const uint16_t* p) { return reinterpret_cast<const __half*>(p); }
inline __nv_bfloat16* as_bf16(uint16_t* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
inline const __nv_bfloat16* as_bf16(const uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

// ---- tensor cores ------------------------------------------------------------------------------------

// (attention_fa.cu's since session 7, verified on an H100 in session 11; linear_tc.cu's too since session 22.)
// d += a · b for a 16×16 A (row-major) and a 16×8 B (column-major), float accumulate. Fragments (PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type"), g = lane / 4, t = lane % 4:
//   A: a[0] = (row g, cols 2t, 2t+1), a[1] = (row g+8, same cols), a[2] = (row g, cols 2t+8, 2t+9), a[3] = (g+8, ..)
//   B: b0 = (rows 2t, 2t+1, col g), b1 = (rows 2t+8, 2t+9, col g)
//   C/D: d[0], d[1] = (row g, cols 2t, 2t+1), d[2], d[3] = (row g+8, same cols)
// (in each 32-bit register the lower column or row is in the low half).
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- passes over a row --------------------------------------------------------------------------------

// f(i, p[i]) for a thread's elements i = first, first + stride, ... below n, in that order, with eight loads in flight
// (one at a time, a pass over a 200 KB row waited on L2's latency ~100 times per thread: top_logprobs.cu and
// sample.cu, session 22). Plain loads: a thread may read what it wrote earlier in the same kernel.
template <class F>
__device__ __forceinline__ void for_each_strided(const float* p, int first, int stride, int n, F&& f) {
  int i = first;
  for (; i + 7 * stride < n; i += 8 * stride) {
    float v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = p[i + u * stride];
#pragma unroll
    for (int u = 0; u < 8; ++u) f(i + u * stride, v[u]);
  }
  for (; i < n; i += stride) f(i, p[i]);
}

// ---- misc --------------------------------------------------------------------------------------------

// The NaN the kernels write for rows that must come out NaN (bad input, a NaN score).
__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

// The 4 (float) or 8 (fp16, bf16) values of a 16-byte chunk, widened to float. v is a register copy (a local or a
// by-value parameter): given a reference into global memory instead, nvcc loads only the elements, one at a time
// (layernorm.cu's first vector kernel did, session 12).
__device__ __forceinline__ void widen(const uint4& v, float* out, const float*) {
  out[0] = __uint_as_float(v.x);
  out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z);
  out[3] = __uint_as_float(v.w);
}

__device__ __forceinline__ void widen(const uint4& v, float* out, const __half*) {
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void widen(const uint4& v, float* out, const __nv_bfloat16*) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// ---- reductions ------------------------------------------------------------------------------------

constexpr int kWarp = 32;

// Sum over the 32 lanes of a warp; every lane gets the total. All 32 lanes must take part.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the whole block; every thread gets the total. blockDim.x must be a multiple of 32 (at most
// 1024) and every thread of the block must call it (it synchronises). The per-warp partials are added
// in warp order by every thread, so the result is deterministic and identical across the block.
// Safe to call several times in a row: the first barrier keeps the previous call's readers ahead of
// this call's writers.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kWarp];
  v = warp_sum(v);
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) total += partial[w];
  return total;
}

// ---- paged KV cache ---------------------------------------------------------------------------------

// The cache slot of position `key` of a sequence whose block table is `table`, or -1 when its block id is not
// one of the pool's `num_blocks` (the caller makes the rows that reach it NaN).
__device__ __forceinline__ long long kv_slot(const int32_t* table, int key, int block_size, int num_blocks) {
  const int block = table[key / block_size];
  return block >= 0 && block < num_blocks ? static_cast<long long>(block) * block_size + key % block_size : -1;
}

// ---- programmatic dependent launch ("chained" kernels) -----------------------------------------------
//
// On Hopper (sm_90+) a kernel launched with the programmatic-stream-serialization attribute may start while the
// kernel before it in the stream is still running: its blocks run until chain_wait(), which returns once that
// kernel has finished and its writes are visible. A chained kernel therefore reads nothing the previous kernels
// write, and writes nothing at all, before chain_wait(); what it may do first is read constants (weights).
// Nor does it read such data through const __restrict__ pointers or __ldg: those become ld.global.nc (the
// non-coherent path, outside the PTX memory model that chain_wait's visibility guarantee belongs to), and
// const + __restrict__ also lets the compiler move the loads above chain_wait (NVIDIA CCCL's review rule
// "pdl-restrict-aliasing"). __restrict__ stays on constants (weights, gamma/beta) and on index arrays copied in
// before the launch.
// chain_start() lets the next chained kernel launch (once every block of this grid has called it or exited).
// Both are no-ops below sm_90 and in a kernel launched without the attribute, so the kernels of a decode step
// call them unconditionally; whether launches carry the attribute is a process-wide switch
// (opt_set_chained_launch, off by default: written without a GPU, to be verified before it is turned on).
// The gain: the gap between dependent kernels (≈ 1 µs each, about 200 per decode step of a 24-layer model)
// overlaps with the previous kernel's tail.
__device__ __forceinline__ void chain_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}

__device__ __forceinline__ void chain_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();
#endif
}

// Whether launch_chained adds the attribute (launch.cu: opt_set_chained_launch).
bool chained_launch_enabled();

// Counts a launcher's choice of a counted kernel (which: an OPT_COUNT_* of opt_kernels.h; launch.cu, read back with
// opt_launch_count), so that a variant or test shows that the kernel it asks for really ran, not a fallback.
void count_launch(int which);

// kernel<<<grid, block, smem, stream>>>(args...), with the programmatic-stream-serialization attribute when
// chained launches are on. Returns the launch's status, as launch_status() does: a failed launch's error is
// also read off the thread's last error (else the next launcher's launch_status() would report it again), and
// an earlier unchecked error is reported here.
template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = chained_launch_enabled() ? 1 : 0;
  const cudaError_t launched = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  const cudaError_t last = cudaGetLastError();
  return static_cast<int>(launched != cudaSuccess ? launched : last);
}

// ---- launch helpers --------------------------------------------------------------------------------

constexpr int kInvalidValue = static_cast<int>(cudaErrorInvalidValue);  // 1: bad sizes, nothing launched
constexpr int kSuccess = static_cast<int>(cudaSuccess);                 // 0

// The status of the launch just made (and of any earlier unchecked error on this host thread).
inline int launch_status() { return static_cast<int>(cudaGetLastError()); }

// Threads for a block that strides over n elements: a multiple of 32 in [32, max_threads].
inline int threads_for(int n, int max_threads) {
  const long long rounded = (static_cast<long long>(n) + kWarp - 1) / kWarp * kWarp;
  return rounded < kWarp ? kWarp : (rounded > max_threads ? max_threads : static_cast<int>(rounded));
}

// The current device's multiprocessor count (launchers size their grids from it: the split-KV
// attention's split count, the matrix-vector Linear's warps per output), read once per device.
// Atomic: a process with one host thread per GPU (tensor parallelism) launches on several devices at once.
inline int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices];  // 0: not read yet
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();  // not this launch's error
    return 132;
  }
  int count = device >= 0 && device < kMaxDevices ? cached[device].load(std::memory_order_relaxed) : 0;
  if (count > 0) {
    return count;
  }
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count <= 0) {
    cudaGetLastError();
    return 132;
  }
  if (device >= 0 && device < kMaxDevices) {
    cached[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

}  // namespace opt

#endif  // OPT_COMMON_CUH
