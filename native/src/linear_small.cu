// A Linear for a few rows (decode steps at small batch): out = act(x · wᵀ + bias), read straight from the
// row-major weight (out_features × in_features, the checkpoint's layout).
//
// Why our own kernel instead of cuBLAS here: at 1–8 rows a Linear is a matrix-vector product whose time is
// the time to stream the weight once from memory. cuBLAS's GEMM kernels are built for tiles of many rows and,
// at one row, leave part of the bandwidth unused (issue #5: batch-1 decode must reach 70–85 % of the
// memory-bandwidth limit). This kernel keeps many 16-byte weight loads in flight per thread, and it also
// applies the bias and ReLU while the sums are in registers, so a Linear is one launch instead of two.
//
// Variants (f32, f16, bf16 storage): opt_linear_small_<dt>; CPU twin: CpuOps.linear (fp32 sums, rounded once
// to the storage type after the bias and ReLU). opt_linear_small_qkv_<dt>: the same product over the stacked
// q/k/v weight with opt_qkv_append's epilogue (q out, k and v into the cache; CPU twin: CpuOps.linear then
// CpuOps.qkvAppend, which round the sums once more before the bias), so a decode step's q/k/v is one launch.
//
// Work split: one warp computes R consecutive outputs (columns of out) for all m rows. Its lanes walk the
// in_features axis in 16-byte chunks (8 fp16/bf16 or 4 fp32 values), lane l taking chunks l, l + 32, …; each
// iteration loads U chunks of each of the R weight rows before using them, so 16·U·R bytes per lane are in
// flight. Each x chunk loaded is used for R outputs: the x reads (L1/L2 hits, x is at most 8 rows) cost m/R
// of the weight traffic. Sums are float32, reduced across the warp with shuffles.
#include "linear_small.cuh"

namespace {
using namespace opt;
using namespace opt::gemv;

// acc[i][r] += x[i, chunk c] · w[j0 + r, chunk c] for the chunk's values; wv holds the R weight chunks.
// M: the most rows the caller's accumulators hold (kMaxRows, or 1 for the one-row kernels: fewer registers).
template <typename T, int R, int M>
__device__ __forceinline__ void accumulate(float (&acc)[M][R], const uint4 (&wv)[R], const T* x, int m, int k,
                                           int c) {
  constexpr int kC = Chunk<T>::kSize;
  float wf[R][kC];
#pragma unroll
  for (int r = 0; r < R; ++r) widen(wv[r], wf[r], static_cast<const T*>(nullptr));
#pragma unroll
  for (int i = 0; i < M; ++i) {
    if (i < m) {
      // A plain load, not __ldg: x is the previous kernel's output (chained launches, common.cuh)
      const uint4 xv = reinterpret_cast<const uint4*>(x + static_cast<size_t>(i) * k)[c];
      float xf[kC];
      widen(xv, xf, static_cast<const T*>(nullptr));
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int e = 0; e < kC; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
      }
    }
  }
}

// acc[i][r] = sum over this lane's chunks of [begin, end) (c = begin + lane, begin + lane + 32, ...) of
// x[i, chunk c] . wrow[r][c], for rows i < m; each round loads kUnroll chunks of every weight row before using them.
template <typename T, int R, int M>
__device__ __forceinline__ void product_chunks(float (&acc)[M][R], const uint4* const (&wrow)[R], const T* x,
                                               int m, int k, int begin, int end, int lane) {
  constexpr int kUnroll = unroll_for<R>();
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[i][r] = 0.f;
  }
  int c = begin + lane;
  for (; c + (kUnroll - 1) * kWarp < end; c += kUnroll * kWarp) {
    uint4 wv[kUnroll][R];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int r = 0; r < R; ++r) wv[u][r] = __ldcs(wrow[r] + c + u * kWarp);  // streamed once: evict first
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) accumulate<T, R, M>(acc, wv[u], x, m, k, c + u * kWarp);
  }
  for (; c < end; c += kWarp) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = __ldcs(wrow[r] + c);
    accumulate<T, R, M>(acc, wv, x, m, k, c);
  }
}

// The 16-byte path: k a multiple of the chunk size, x and w 16-byte aligned (checked by the launcher).
// grid.x = ceil(ceil(n / R) / kWarpsPerBlock), blockDim.x = 32 · kWarpsPerBlock.
template <typename T, int R, class Store>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    linear_small_vec_kernel(const T* x, const T* __restrict__ w, int m, int k, int n, Store store) {
  chain_start();  // a chained launch (common.cuh): the next kernel may launch now
  const int lane = threadIdx.x % kWarp;
  const long long j0 = (static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp) * R;
  if (j0 >= n) {
    chain_wait();  // exits only after the previous kernel, like every block (harmless, keeps the rule simple)
    return;  // the whole warp: no block-wide barrier below
  }
  const int chunks = k / Chunk<T>::kSize;
  const uint4* wrow[R];
  weight_rows<T, R>(wrow, w, j0, n, k);
  // While the previous kernel finishes (chained launches): nothing written by earlier kernels is read before
  // chain_wait, and nothing is written.
  prefetch_first_chunks<R>(wrow, lane, chunks);
  chain_wait();
  float acc[kMaxRows][R];
  product_chunks<T, R>(acc, wrow, x, m, k, 0, chunks, lane);
#pragma unroll
  for (int i = 0; i < kMaxRows; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);  // every lane gets the sum; one lane per output stores it
        if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
      }
    }
  }
}

// The 16-byte path with split rows (session 11, verified on an H100 in session 17; -Dopt.cuda.gemvSplit, auto by
// default): S consecutive warps of a block share one group of R outputs, warp `part` taking chunks [part · span, (part
// + 1) · span) of every row, so a Linear with few outputs (out_proj, fc2: 2048 outputs at opt-1.3b, 1024 warps of R =
// 2) still has S times as many warps streaming its weight. Each warp reduces its sums with shuffles, writes them to
// shared memory, and the group's first warp adds the S partial sums in a fixed order (part 0 + part 1 + ...) before the
// epilogue: the same result on every run, though not the same bits as linear_small_vec_kernel (another sum order) when
// S > 1. M = 1 compiles the one-row case with one row of accumulators: fewer registers than the vec kernel's kMaxRows
// rows, so more blocks fit on a multiprocessor (ptxas: see docs/perf.md, session 11). No warp returns early (the block
// barrier): a group past n re-reads row n - 1 (weight_rows) and stores nothing. grid.x = ceil(ceil(n / R) /
// (kWarpsPerBlock / S)), blockDim.x = 32 · kWarpsPerBlock.
template <typename T, int R, int S, int M, class Store>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    linear_small_split_kernel(const T* x, const T* __restrict__ w, int m, int k, int n, Store store) {
  static_assert(S >= 1 && kWarpsPerBlock % S == 0, "S warps per group, whole groups per block");
  static_assert(M == 1 || M == kMaxRows, "one row, or up to kMaxRows");
  __shared__ float partial[kWarpsPerBlock][M][R];
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int part = warp % S;
  const long long j0 = (static_cast<long long>(blockIdx.x) * (kWarpsPerBlock / S) + warp / S) * R;
  const int chunks = k / Chunk<T>::kSize;
  const int span = split_span(chunks, S);
  const int begin = part * span < chunks ? part * span : chunks;
  const int end = chunks - begin < span ? chunks : begin + span;
  const uint4* wrow[R];
  weight_rows<T, R>(wrow, w, j0, n, k);
  if (j0 < n) prefetch_first_chunks<R>(wrow, begin + lane, end);
  chain_wait();
  float acc[M][R];
  product_chunks<T, R, M>(acc, wrow, x, m, k, begin, end, lane);
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);  // warp-uniform condition: every lane takes part in the shuffles
        if (S == 1) {
          if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
        } else if (lane == 0) {
          partial[warp][i][r] = v;
        }
      }
    }
  }
  if (S == 1) return;
  __syncthreads();
  if (part != 0 || j0 >= n) return;
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (i < m && lane == (i * R + r) % kWarp && j0 + r < n) {
        float v = partial[warp][i][r];
#pragma unroll
        for (int p = 1; p < S; ++p) v += partial[warp + p][i][r];
        store(i, j0 + r, v);
      }
    }
  }
}

// Any k and alignment: one element per lane per step (shapes the 16-byte path refuses; never OPT's own).
template <typename T, int R, class Store>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    linear_small_scalar_kernel(const T* x, const T* __restrict__ w, int m, int k, int n, Store store) {
  chain_start();
  chain_wait();
  const int lane = threadIdx.x % kWarp;
  const long long j0 = (static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp) * R;
  if (j0 >= n) return;
  float acc[kMaxRows][R];
#pragma unroll
  for (int i = 0; i < kMaxRows; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) acc[i][r] = 0.f;
  }
  for (int e = lane; e < k; e += kWarp) {
    float wf[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wf[r] = j0 + r < n ? to_float(w[static_cast<size_t>(j0 + r) * k + e]) : 0.f;
#pragma unroll
    for (int i = 0; i < kMaxRows; ++i) {
      if (i < m) {
        const float xf = to_float(x[static_cast<size_t>(i) * k + e]);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[i][r] = fmaf(xf, wf[r], acc[i][r]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxRows; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);
        if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
      }
    }
  }
}

// Warps per output group for split = 0 (auto): the smallest S (1, 2, 4) whose grid fills every multiprocessor
// with as many blocks as fit at once (one full wave), as long as the warps' average share of the row (chunks / S)
// is at least one full round (32 lanes × U chunks); else the largest S allowed. split_span rounds each share up to
// 32 chunks, so the last warp's share can be shorter than a round, or empty (e.g. 257 chunks at S = 4: 96, 96, 65,
// 0; native/dev/emu_gemv/README.md): correct, and the slowest lane does the same number of chunks as with an even
// split.
template <typename T, int R, int M, class Store>
int auto_split(long long groups, int chunks) {
  const long long wave = static_cast<long long>(resident_blocks(linear_small_split_kernel<T, R, 1, M, Store>)) *
                         sm_count() * kWarpsPerBlock;  // warps
  int s = 1;
  while (s < 4 && groups * s < wave && chunks >= 2LL * s * kWarp * unroll_for<R>()) s *= 2;
  return s;
}

template <typename T, int R, int M, class Store>
int launch_split(const T* x, const T* w, int m, int k, int n, Store store, int split, cudaStream_t stream) {
  const long long groups = (static_cast<long long>(n) + R - 1) / R;
  const int s = split == 0 ? auto_split<T, R, M, Store>(groups, k / Chunk<T>::kSize) : split;
  const long long per_block = kWarpsPerBlock / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const dim3 grid(static_cast<unsigned>(blocks));
  const dim3 block(kWarp * kWarpsPerBlock);
  count_launch(OPT_COUNT_SPLIT_GEMV);
  switch (s) {
    case 1: return launch_chained(linear_small_split_kernel<T, R, 1, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
    case 2: return launch_chained(linear_small_split_kernel<T, R, 2, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
    default: return launch_chained(linear_small_split_kernel<T, R, 4, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
  }
}

// split: 1 = linear_small_vec_kernel (verified on an H100); 2 or 4 = linear_small_split_kernel with that S; 0 = the
// split kernel with auto_split's S. The one-element path (vec false) has no split.
template <typename T, int R, class Store>
int launch_r(const T* x, const T* w, int m, int k, int n, Store store, bool vec, int split, cudaStream_t stream) {
  if (vec && split != 1) {
    if constexpr (R == 2) {  // (m <= 2: R = 4 never sees one row)
      if (m == 1) return launch_split<T, R, 1, Store>(x, w, m, k, n, store, split, stream);
    }
    return launch_split<T, R, kMaxRows, Store>(x, w, m, k, n, store, split, stream);
  }
  const long long warps = (static_cast<long long>(n) + R - 1) / R;
  const long long blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const dim3 grid(static_cast<unsigned>(blocks));
  const dim3 block(kWarp * kWarpsPerBlock);
  return vec ? launch_chained(linear_small_vec_kernel<T, R, Store>, grid, block, 0, stream, x, w, m, k, n, store)
             : launch_chained(linear_small_scalar_kernel<T, R, Store>, grid, block, 0, stream, x, w, m, k, n, store);
}

template <typename T, class Store>
int launch_small(const T* x, const T* w, int m, int k, int n, Store store, int split, cudaStream_t stream) {
  if (m < 0 || m > kMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  const bool vec = k % Chunk<T>::kSize == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  // Outputs per warp: with more rows, each x chunk is reused for more outputs (fewer x reads per weight byte).
  return m <= 2 ? launch_r<T, 2>(x, w, m, k, n, store, vec, split, stream)
                : launch_r<T, 4>(x, w, m, k, n, store, vec, split, stream);
}

template <typename T>
int launch_linear_small(T* out, const T* x, const T* w, const T* bias, int m, int k, int n, int relu, int split,
                        cudaStream_t stream) {
  return launch_small(x, w, m, k, n, DenseStore<T>{out, bias, n, relu}, split, stream);
}

template <typename T>
int launch_linear_small_qkv(T* q_out, T* k_cache, T* v_cache, const T* x, const T* w, const T* bias,
                            const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                            cudaStream_t stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_small(x, w, m, k, 3 * width, QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots},
                      split, stream);
}

}  // namespace

extern "C" {  // a definition that drifted from opt_kernels.h would be a compile error, not a new overload
OPT_API int opt_linear_small_f32(float* out, const float* x, const float* w, const float* bias, int m, int k, int n,
                                 int relu, int split, cudaStream_t stream) {
  return launch_linear_small(out, x, w, bias, m, k, n, relu, split, stream);
}

OPT_API int opt_linear_small_f16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                                 int k, int n, int relu, int split, cudaStream_t stream) {
  return launch_linear_small(as_f16(out), as_f16(x), as_f16(w), as_f16(bias), m, k, n, relu, split, stream);
}

OPT_API int opt_linear_small_bf16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                                  int k, int n, int relu, int split, cudaStream_t stream) {
  return launch_linear_small(as_bf16(out), as_bf16(x), as_bf16(w), as_bf16(bias), m, k, n, relu, split, stream);
}

OPT_API int opt_linear_small_qkv_f32(float* q_out, float* k_cache, float* v_cache, const float* x, const float* w,
                                     const float* bias, const int32_t* slots, int m, int k, int width,
                                     int cache_slots, int split, cudaStream_t stream) {
  return launch_linear_small_qkv(q_out, k_cache, v_cache, x, w, bias, slots, m, k, width, cache_slots, split, stream);
}

OPT_API int opt_linear_small_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                     const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                     int width, int cache_slots, int split, cudaStream_t stream) {
  return launch_linear_small_qkv(as_f16(q_out), as_f16(k_cache), as_f16(v_cache), as_f16(x), as_f16(w),
                                 as_f16(bias), slots, m, k, width, cache_slots, split, stream);
}

OPT_API int opt_linear_small_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                      const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                      int width, int cache_slots, int split, cudaStream_t stream) {
  return launch_linear_small_qkv(as_bf16(q_out), as_bf16(k_cache), as_bf16(v_cache), as_bf16(x), as_bf16(w),
                                 as_bf16(bias), slots, m, k, width, cache_slots, split, stream);
}

}  // extern "C"
