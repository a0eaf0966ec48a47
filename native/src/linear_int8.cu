// Linears with int8 weights (weight-only quantization; session 11, verified on an H100 in session 17): each weight row
// j holds int8 values q[j, e] and one float scale s[j], standing for s[j] · q[j, e] (backend/Int8Rows on the host makes
// them: absmax / 127 per row, round to nearest even). CPU twin: CpuOps.linear over an int8 weight, which sums x · q in
// float32 and multiplies the sum by the row's scale before the bias; these kernels do the same.
//
//   opt_linear_int8_small_<dt>      out = act(s ⊙ (x · qᵀ) + bias) for 1–8 rows: the few-row kernel of
//                                   linear_small.cu (warps per group of R outputs, rows split over S warps, one-row
//                                   accumulators at m = 1) reading 16 int8 weights per 16-byte load, so a decode
//                                   step at small batch streams half the bytes of fp16 weights.
//   opt_linear_int8_small_qkv_<dt>  the same over the stacked q/k/v weight with opt_qkv_append's epilogue.
//   opt_dequant_int8_<dt>           w[j, e] = s[j] · q[j, e] rounded to the activations' dtype: steps of more rows
//                                   (prefill, larger batches) dequantize a Linear's weight into a scratch matrix and
//                                   run the usual GEMM (the products then use the rounded weights: within the
//                                   dtype's tolerance of the CPU twin, not its bits).
// The fast path only: k a multiple of 16, x and q 16-byte aligned; anything else is cudaErrorInvalidValue and the
// caller dequantizes instead (OPT's widths are all multiples of 16).
// The kernel and its product loop repeat linear_small.cu's split kernel with int8 chunks (a separate copy, so that
// the source of the kernels verified on an H100 stays as it ran): once both have run on a GPU, one kernel with a
// weight-format policy (chunk width, widening, row scale) can serve both.
#include <cstring>

#include "linear_small.cuh"

namespace {
using namespace opt;
using namespace opt::gemv;

constexpr int kInt8PerChunk = 16;

// (byte_perm: linear_small.cuh.)

__host__ __device__ __forceinline__ float bits_to_float(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// 16 int8 values of one 16-byte chunk, widened to float (exact, as static_cast<float>(static_cast<int8_t>(byte))),
// without a conversion instruction: each byte with its sign bit flipped (u = q + 128, 0..255) goes into the low
// mantissa bits of 2^23 (one byte permute: [u, 0, 0, 0x4B]), which is the float 2^23 + u, and subtracting 2^23 + 128
// (a float: 24 significant bits, the same exponent, so exact) leaves q: one permute and one add per value, plus one
// xor per four. The conversion it replaces (cvt.rn.f32.s16 per weight) runs on sm_90's 16-per-clock conversion pipe,
// which at one per weight byte bounded the kernel below the copy rate by session 17's count (docs/perf.md; session 18
// made the change; native/dev/int8_widen_test.cu checks every byte on the CPU; check_ops int8 passed on an H200 in
// session 21, where int8 batch-1 decode was only 1.07x fp16: docs/perf.md).
__host__ __device__ __forceinline__ void widen_int8(const uint4& v, float* out) {
  const uint32_t words[4] = {v.x ^ 0x80808080u, v.y ^ 0x80808080u, v.z ^ 0x80808080u, v.w ^ 0x80808080u};
OPT_UNROLL
  for (int w = 0; w < 4; ++w) {
OPT_UNROLL
    for (int b = 0; b < 4; ++b) {
      out[4 * w + b] = bits_to_float(byte_perm(words[w], 0x4B000000u, 0x7440u | b)) - 8388736.f;
    }
  }
}

// acc[i][r] += x[i, values 16c .. 16c + 15] · q[j0 + r, same]; wv holds the R weight chunks. x (m, k) in T: its 16
// values are 32 bytes (fp16/bf16) or 64 (f32), read as 16-byte pieces (x 16-byte aligned, k a multiple of 16).
template <typename T, int R, int M>
__device__ __forceinline__ void accumulate_int8(float (&acc)[M][R], const uint4 (&wv)[R], const T* x, int m, int k,
                                                int c) {
  constexpr int kPieces = kInt8PerChunk / Chunk<T>::kSize;  // 16-byte pieces of x per chunk: 2 (16-bit) or 4
  float wf[R][kInt8PerChunk];
#pragma unroll
  for (int r = 0; r < R; ++r) widen_int8(wv[r], wf[r]);
#pragma unroll
  for (int i = 0; i < M; ++i) {
    if (i < m) {
      // A plain load, not __ldg: x is the previous kernel's output (chained launches, common.cuh)
      const uint4* xp = reinterpret_cast<const uint4*>(x + static_cast<size_t>(i) * k) + static_cast<size_t>(c) * kPieces;
      float xf[kInt8PerChunk];
#pragma unroll
      for (int p = 0; p < kPieces; ++p) widen(xp[p], xf + p * Chunk<T>::kSize, static_cast<const T*>(nullptr));
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int e = 0; e < kInt8PerChunk; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
      }
    }
  }
}

// As linear_small.cu's product_chunks, over int8 chunks.
template <typename T, int R, int M>
__device__ __forceinline__ void product_int8(float (&acc)[M][R], const uint4* const (&wrow)[R], const T* x, int m,
                                             int k, int begin, int end, int lane) {
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
    for (int u = 0; u < kUnroll; ++u) accumulate_int8<T, R, M>(acc, wv[u], x, m, k, c + u * kWarp);
  }
  for (; c < end; c += kWarp) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = __ldcs(wrow[r] + c);
    accumulate_int8<T, R, M>(acc, wv, x, m, k, c);
  }
}

// linear_small_split_kernel's work split (S warps per group of R outputs, a fixed-order sum of their partial sums)
// over int8 weights; the sum is multiplied by the row's scale before the epilogue adds the bias.
template <typename T, int R, int S, int M, class Store>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    linear_int8_kernel(const T* x, const int8_t* __restrict__ w, const float* __restrict__ scales, int m, int k,
                       int n, Store store) {
  static_assert(S >= 1 && kWarpsPerBlock % S == 0, "S warps per group, whole groups per block");
  __shared__ float partial[kWarpsPerBlock][M][R];
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int part = warp % S;
  const long long j0 = (static_cast<long long>(blockIdx.x) * (kWarpsPerBlock / S) + warp / S) * R;
  const int chunks = k / kInt8PerChunk;
  const int span = split_span(chunks, S);
  const int begin = part * span < chunks ? part * span : chunks;
  const int end = chunks - begin < span ? chunks : begin + span;
  const uint4* wrow[R];
  weight_rows<int8_t, R>(wrow, w, j0, n, k);
  if (j0 < n) prefetch_first_chunks<R>(wrow, begin + lane, end);
  chain_wait();
  float acc[M][R];
  product_int8<T, R, M>(acc, wrow, x, m, k, begin, end, lane);
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);  // warp-uniform condition: every lane takes part in the shuffles
        if (lane == 0) partial[warp][i][r] = v;
      }
    }
  }
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
        store(i, j0 + r, v * scales[j0 + r]);
      }
    }
  }
}

template <typename T, int R, int M, class Store>
int launch_int8_rm(const T* x, const int8_t* w, const float* scales, int m, int k, int n, Store store, int split,
                   cudaStream_t stream) {
  const long long groups = (static_cast<long long>(n) + R - 1) / R;
  int s = split;
  if (s == 0) {  // as linear_small.cu's auto_split: the smallest S that fills one wave, a full round per warp
    const long long wave = static_cast<long long>(resident_blocks(linear_int8_kernel<T, R, 1, M, Store>)) *
                           sm_count() * kWarpsPerBlock;
    const int chunks = k / kInt8PerChunk;
    s = 1;
    while (s < 4 && groups * s < wave && chunks >= 2LL * s * kWarp * unroll_for<R>()) s *= 2;
  }
  const long long per_block = kWarpsPerBlock / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const dim3 grid(static_cast<unsigned>(blocks));
  const dim3 block(kWarp * kWarpsPerBlock);
  switch (s) {
    case 1: return launch_chained(linear_int8_kernel<T, R, 1, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    case 2: return launch_chained(linear_int8_kernel<T, R, 2, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    default: return launch_chained(linear_int8_kernel<T, R, 4, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
  }
}

template <typename T, class Store>
int launch_int8(const T* x, const int8_t* w, const float* scales, int m, int k, int n, Store store, int split,
                cudaStream_t stream) {
  if (m < 0 || m > kMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  if (k % kInt8PerChunk != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0 ||
      scales == nullptr) {
    return kInvalidValue;  // the caller dequantizes instead
  }
  if (m == 1) return launch_int8_rm<T, 2, 1>(x, w, scales, m, k, n, store, split, stream);
  return m <= 2 ? launch_int8_rm<T, 2, kMaxRows>(x, w, scales, m, k, n, store, split, stream)
                : launch_int8_rm<T, 4, kMaxRows>(x, w, scales, m, k, n, store, split, stream);
}

template <typename T>
__global__ void dequant_int8_kernel(T* out, const int8_t* __restrict__ w, const float* __restrict__ scales, int rows,
                                    int cols) {
  const long long total = static_cast<long long>(rows) * cols;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    out[i] = from_float<T>(static_cast<float>(w[i]) * scales[i / cols]);
  }
}

template <typename T>
int launch_dequant(T* out, const int8_t* w, const float* scales, int rows, int cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  const long long total = static_cast<long long>(rows) * cols;
  const long long want = (total + 255) / 256, most = 32LL * sm_count();  // grid-stride beyond that
  const long long blocks = want < most ? want : most;
  dequant_int8_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(out, w, scales, rows, cols);
  return launch_status();
}

template <typename T>
int launch_qkv(T* q_out, T* k_cache, T* v_cache, const T* x, const int8_t* w, const float* scales, const T* bias,
               const int32_t* slots, int m, int k, int width, int cache_slots, int split, cudaStream_t stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_int8(x, w, scales, m, k, 3 * width,
                     QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots}, split, stream);
}

}  // namespace

extern "C" {  // a definition that drifted from opt_kernels.h would be a compile error, not a new overload
OPT_API int opt_linear_int8_small_f32(float* out, const float* x, const int8_t* w, const float* scales,
                                      const float* bias, int m, int k, int n, int relu, int split,
                                      cudaStream_t stream) {
  return launch_int8(x, w, scales, m, k, n, DenseStore<float>{out, bias, n, relu}, split, stream);
}

OPT_API int opt_linear_int8_small_f16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                      const uint16_t* bias, int m, int k, int n, int relu, int split,
                                      cudaStream_t stream) {
  return launch_int8(as_f16(x), w, scales, m, k, n, DenseStore<__half>{as_f16(out), as_f16(bias), n, relu}, split,
                     stream);
}

OPT_API int opt_linear_int8_small_bf16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                       const uint16_t* bias, int m, int k, int n, int relu, int split,
                                       cudaStream_t stream) {
  return launch_int8(as_bf16(x), w, scales, m, k, n,
                     DenseStore<__nv_bfloat16>{as_bf16(out), as_bf16(bias), n, relu}, split, stream);
}

OPT_API int opt_linear_int8_small_qkv_f32(float* q_out, float* k_cache, float* v_cache, const float* x,
                                          const int8_t* w, const float* scales, const float* bias,
                                          const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                          cudaStream_t stream) {
  return launch_qkv(q_out, k_cache, v_cache, x, w, scales, bias, slots, m, k, width, cache_slots, split, stream);
}

OPT_API int opt_linear_int8_small_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                          const int8_t* w, const float* scales, const uint16_t* bias,
                                          const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                          cudaStream_t stream) {
  return launch_qkv(as_f16(q_out), as_f16(k_cache), as_f16(v_cache), as_f16(x), w, scales, as_f16(bias), slots, m, k,
                    width, cache_slots, split, stream);
}

OPT_API int opt_linear_int8_small_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache,
                                           const uint16_t* x, const int8_t* w, const float* scales,
                                           const uint16_t* bias, const int32_t* slots, int m, int k, int width,
                                           int cache_slots, int split, cudaStream_t stream) {
  return launch_qkv(as_bf16(q_out), as_bf16(k_cache), as_bf16(v_cache), as_bf16(x), w, scales, as_bf16(bias), slots,
                    m, k, width, cache_slots, split, stream);
}

OPT_API int opt_dequant_int8_f32(float* out, const int8_t* w, const float* scales, int rows, int cols,
                                 cudaStream_t stream) {
  return launch_dequant(out, w, scales, rows, cols, stream);
}

OPT_API int opt_dequant_int8_f16(uint16_t* out, const int8_t* w, const float* scales, int rows, int cols,
                                 cudaStream_t stream) {
  return launch_dequant(as_f16(out), w, scales, rows, cols, stream);
}

OPT_API int opt_dequant_int8_bf16(uint16_t* out, const int8_t* w, const float* scales, int rows, int cols,
                                  cudaStream_t stream) {
  return launch_dequant(as_bf16(out), w, scales, rows, cols, stream);
}

}  // extern "C"
