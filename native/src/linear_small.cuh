// Shared by the few-row Linear kernels (linear_small.cu: weights in the activations' dtype; linear_int8.cu: int8
// weights with a float scale per output row): sizes, the 16-byte chunk helpers, the epilogues, the split of a row
// over warps. Internal: not part of opt_kernels.h.
#ifndef OPT_LINEAR_SMALL_CUH
#define OPT_LINEAR_SMALL_CUH

#include <atomic>

#include "common.cuh"

namespace opt {
namespace gemv {

constexpr int kMaxRows = 8;       // the launcher refuses more rows: use a GEMM
constexpr int kWarpsPerBlock = 4; // small blocks: a 2048-output Linear still spreads over every SM
// Chunks per weight row loaded before use: 16·U·R bytes in flight per lane. With 2 outputs per warp (1–2 rows)
// a 2048-output Linear has only ~8 warps per SM, so each lane keeps more loads going.
template <int R>
__host__ __device__ constexpr int unroll_for() { return R == 2 ? 4 : 2; }

// Eight (or four, for float) values of one 16-byte chunk (widened to float by common.cuh's widen).
template <typename T>
struct Chunk {
  static constexpr int kSize = 16 / sizeof(T);
};

// Where a sum goes (the kernels' epilogue), with the bias added first. Output j of row i:
// DenseStore: out[i, j] = act(sum + bias[j]), out (m, n) row-major.
template <typename T>
struct DenseStore {
  T* out;
  const T* bias;
  int n;
  int relu;
  __device__ __forceinline__ void operator()(int i, long long j, float v) const {
    if (bias != nullptr) v += to_float(bias[j]);
    if (relu && v < 0.f) v = 0.f;  // NaN stays NaN, as in torch.relu
    out[static_cast<size_t>(i) * n + j] = from_float<T>(v);
  }
};

// QkvStore: the fused q/k/v projection (n = 3 · width, outputs q | k | v), opt_qkv_append's epilogue: q to
// q_out (m, width), k and v to the cache rows slots[i] (a slot outside [0, cache_slots): q only).
template <typename T>
struct QkvStore {
  T* q_out;
  T* k_cache;
  T* v_cache;
  const T* bias;
  const int32_t* slots;
  int width;
  int cache_slots;
  __device__ __forceinline__ void operator()(int i, long long j, float v) const {
    if (bias != nullptr) v += to_float(bias[j]);
    const int part = static_cast<int>(j / width);
    const long long col = j - static_cast<long long>(part) * width;
    if (part == 0) {
      q_out[static_cast<size_t>(i) * width + col] = from_float<T>(v);
      return;
    }
    const int slot = slots[i];
    if (slot < 0 || slot >= cache_slots) return;
    (part == 1 ? k_cache : v_cache)[static_cast<size_t>(slot) * width + col] = from_float<T>(v);
  }
};

// (linear_int8.cu's since session 18; linear_tc.cu's since session 22.)
// __byte_perm on the device; the same selection of bytes on the host (native/dev/int8_widen_test.cu runs it there).
// Result byte k = byte (s >> 4k) & 7 of {x, y} (x bytes 0-3, y bytes 4-7); selectors here stay below 8.
__host__ __device__ __forceinline__ uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t s) {
#ifdef __CUDA_ARCH__
  return __byte_perm(x, y, s);
#else
  const uint64_t both = (static_cast<uint64_t>(y) << 32) | x;
  uint32_t r = 0;
  for (int k = 0; k < 4; ++k) r |= static_cast<uint32_t>((both >> (8 * ((s >> (4 * k)) & 7))) & 0xFFu) << (8 * k);
  return r;
#endif
}

// The R weight rows of a warp's outputs j0 .. j0 + R - 1 as 16-byte chunks; a row past n (the last warp's tail)
// re-reads row n - 1: its sums are never stored.
template <typename T, int R>
__device__ __forceinline__ void weight_rows(const uint4* (&wrow)[R], const T* w, long long j0, int n, int k) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const long long j = j0 + r < n ? j0 + r : n - 1;
    wrow[r] = reinterpret_cast<const uint4*>(w + static_cast<size_t>(j) * k);
  }
}

// Pulls this lane's first chunks of the rows into L2. The weights are constants, so a kernel may do it before
// chain_wait (while the previous kernel finishes) or while it computes something else.
// first: this lane's first chunk (its lane, plus the start of its warp's range when warps split the row).
template <int R>
__device__ __forceinline__ void prefetch_first_chunks(const uint4* const (&wrow)[R], int first, int end) {
#pragma unroll
  for (int u = 0; u < unroll_for<R>(); ++u) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (first + u * kWarp < end) asm volatile("prefetch.global.L2 [%0];" ::"l"(wrow[r] + first + u * kWarp));
    }
  }
}

// The chunks per warp when S warps share one row of 16-byte chunks: an equal share, rounded up to a multiple of
// 32 so that every warp's range starts at a lane-0 chunk. The last warps' ranges may be short or empty.
__host__ __device__ constexpr int split_span(int chunks, int s) {
  return ((chunks + s - 1) / s + kWarp - 1) / kWarp * kWarp;
}

// The blocks of a kernel that fit on one multiprocessor at once (its registers and shared memory decide), read
// once per kernel: one GPU model per process is assumed (the sizes only tune the split).
template <class Kernel>
int resident_blocks(Kernel kernel) {
  static std::atomic<int> cached{0};
  int blocks = cached.load(std::memory_order_relaxed);
  if (blocks > 0) return blocks;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kWarp * kWarpsPerBlock, 0) != cudaSuccess ||
      blocks <= 0) {
    cudaGetLastError();  // not this launch's error
    return 4;
  }
  cached.store(blocks, std::memory_order_relaxed);
  return blocks;
}

}  // namespace gemv
}  // namespace opt

#endif  // OPT_LINEAR_SMALL_CUH
