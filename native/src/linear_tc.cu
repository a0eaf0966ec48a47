// A Linear for the few rows of a decode step (1–32) on the tensor cores: out = act(x · wᵀ + bias), with the weight in
// the activations' 16-bit dtype, or in int8 with a float scale per output row (weight-only quantization; fp16
// activations), read straight from the row-major weight. Session 22, written without a GPU: behind
// -Dopt.cuda.tcLinear (off) until check_ops group `tclinear`, the parity tests and a speed run say otherwise.
//
//   opt_linear_tc_<f16|bf16>, opt_linear_tc_qkv_<f16|bf16>         16-bit weights
//   opt_linear_int8_tc_f16, opt_linear_int8_tc_qkv_f16              int8 weights, fp16 activations
// CPU twins: CpuOps.linear (and qkvAppend), as for linear_small.cu and linear_int8.cu.
//
// Why: linear_small.cu's matrix-vector kernels spend CUDA-core instructions on every weight (a widening and one FMA
// per row of x). At one row they streamed fp16 weights at 52–66 % of the copy rate on an H200 and int8 weights at
// 31–34 % (twice the instructions per byte: int8 decode only 1.07x fp16). Past one row, CudaOps sends fp16 Linears
// to cuBLASLt (38–71 % of the copy rate at 32 rows on an H100) and int8 ones through a dequantized copy of the weight
// (5 bytes moved per weight against fp16's 2: int8 decode 0.54x fp16 at batch 8). Here one mma.sync m16n8k16
// multiplies 16 weight rows by 8 rows of x over 16 values of k, so the instructions per weight byte are a small part
// of the CUDA-core kernel's, and every row count up to 32 reads the weight once.
//
// How: the product is computed transposed, outᵀ = w · xᵀ: weight rows are the mma's A rows (16 outputs per tile), rows
// of x its B columns (8 per tile). A warp owns 16·F outputs and all rows of x (NT tiles of 8). Per step a lane
// (g = lane / 4, t = lane % 4) loads 16 contiguous bytes of weight rows g and g + 8 of each output tile (8 fp16/bf16
// values, or 16 int8 values widened to fp16 pairs) and the same k positions of row g of each tile of x. The k order
// inside an mma is free (a dot product's terms may be taken in any order if A and B agree), so each lane's k
// positions are its own contiguous bytes rather than the mma's k order: mma q of a step takes the lane's pairs 2q and
// 2q + 1 (tc_a_fragment, tc_b_fragment; native/dev/tc_fragments_test.cu checks them on the CPU against the PTX ISA's
// fragment layout, the model attention_fa.cu's verified kernel uses). A step covers 32 values of k (16-bit weights,
// 2 mmas) or 64 (int8, 4 mmas) per warp. S warps of a block share a group of outputs, each taking a range of the
// steps, and add their sums in a fixed order (part 0 + part 1 + ...) through shared memory: the same bits each run.
//
// Numerics: float32 accumulation on the tensor cores (their own order of sums: within the dtype's tolerance of the
// CPU twin, not its bits); int8 sums times the row's scale, then the bias and ReLU, as linear_int8.cu does. The int8
// values become fp16 exactly (|q| <= 128).
// Limits: 1 <= m <= 32; k a multiple of 32 (16-bit weights) or 64 (int8); x and w 16-byte aligned. Anything else is
// cudaErrorInvalidValue, and the caller takes another path (OPT's widths are all multiples of 64).
#include "linear_small.cuh"

namespace {
using namespace opt;
using namespace opt::gemv;

constexpr int kTcWarps = 8;    // warps per block
constexpr int kTcUnroll = 2;   // steps whose weight loads are issued together
constexpr int kTcMaxRows = 32; // rows of x: NT = 1, 2 or 4 tiles of 8
constexpr int kTcF = 2;        // output tiles of 16 per warp: each x fragment loaded serves 32 outputs

// mma q of a step from a lane's 32-bit words of fp16/bf16 pairs: wg and wg8 its weight rows g and g + 8 (2·Q words
// each, word i holding the lane's values 2i and 2i + 1), xw its row of x (the same positions). A: (row g, k 2t, 2t+1),
// (row g+8, the same), (row g, k 2t+8, 2t+9), (row g+8, the same); B: (k 2t, 2t+1), (k 2t+8, 2t+9) of column g: the
// mma's k 2t, 2t+1 are the lane's values 4q, 4q+1 and its k 2t+8, 2t+9 the values 4q+2, 4q+3, in A and B alike.
__host__ __device__ __forceinline__ void tc_a_fragment(const uint32_t* wg, const uint32_t* wg8, int q,
                                                       uint32_t (&a)[4]) {
  a[0] = wg[2 * q];
  a[1] = wg8[2 * q];
  a[2] = wg[2 * q + 1];
  a[3] = wg8[2 * q + 1];
}
__host__ __device__ __forceinline__ void tc_b_fragment(const uint32_t* xw, int q, uint32_t& b0, uint32_t& b1) {
  b0 = xw[2 * q];
  b1 = xw[2 * q + 1];
}

// 16 int8 values (one 16-byte chunk) as the bits of 8 fp16 pairs before the subtraction: each byte with its sign bit
// flipped (u = q + 128, 0..255) becomes the low byte of fp16 bits 0x64uu, the value 1024 + u (fp16's step is 1 from
// 1024 to 2048). Pair i holds values 2i (low half) and 2i + 1.
__host__ __device__ __forceinline__ void int8_pair_bits(const uint4& v, uint32_t (&h)[8]) {
  const uint32_t words[4] = {v.x ^ 0x80808080u, v.y ^ 0x80808080u, v.z ^ 0x80808080u, v.w ^ 0x80808080u};
OPT_UNROLL
  for (int w = 0; w < 4; ++w) {
    h[2 * w] = byte_perm(words[w], 0x64646464u, 0x5140u);      // bytes 0, 1 -> [u0, 0x64, u1, 0x64]
    h[2 * w + 1] = byte_perm(words[w], 0x64646464u, 0x5342u);  // bytes 2, 3
  }
}

// The int8 values as fp16 pairs: (1024 + u) - (1024 + 128) = q, exact in fp16, both halves in one subtraction.
__device__ __forceinline__ void widen_int8_pairs(const uint4& v, uint32_t (&h)[8]) {
  int8_pair_bits(v, h);
  const __half2 bias = __halves2half2(__ushort_as_half(0x6480), __ushort_as_half(0x6480));  // 1152
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    __half2 p = *reinterpret_cast<const __half2*>(&h[i]);
    p = __hsub2(p, bias);
    h[i] = *reinterpret_cast<const uint32_t*>(&p);
  }
}

// grid.x = ceil(ceil(n / (16 F)) / (kTcWarps / S)), blockDim.x = 32 · kTcWarps. T: the activations (and 16-bit
// weights') type; kInt8: w is int8 with scales. NT tiles of 8 rows of x (m <= 8 NT). A group of outputs past n
// computes nothing and stores nothing (it still meets the block barrier); a weight row past n re-reads row n - 1.
template <typename T, bool kInt8, int NT, int S, class Store>
__global__ void __launch_bounds__(kWarp* kTcWarps)
    linear_tc_kernel(const T* x, const void* w_raw, const float* __restrict__ scales, int m, int k, int n,
                     Store store) {
  static_assert(S >= 1 && kTcWarps % S == 0, "S warps per group, whole groups per block");
  constexpr int kQ = kInt8 ? 4 : 2;      // mmas per step
  constexpr int kStepK = 16 * kQ;        // values of k per step
  constexpr int kXChunks = kInt8 ? 2 : 1;  // 16-byte pieces of x per lane per step
  constexpr int kAcc = kTcF * NT * 4;
  __shared__ float partial[S > 1 ? kTcWarps : 1][kAcc][kWarp];
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int part = warp % S;
  const int g = lane / 4;
  const int t = lane % 4;
  const long long j0 = (static_cast<long long>(blockIdx.x) * (kTcWarps / S) + warp / S) * (16 * kTcF);
  const int steps = k / kStepK;
  const int span = (steps + S - 1) / S;
  const int begin = j0 < n ? min(part * span, steps) : steps;  // a group past n: no steps
  const int end = min(begin + span, steps);

  // This lane's 16-byte chunk of each weight row it reads (rows g and g + 8 of each output tile) in step 0; step s
  // is 4 chunks further (64 bytes: 32 16-bit or 64 int8 values per row).
  const uint4* wrow[kTcF][2];
  const size_t row_bytes = static_cast<size_t>(k) * (kInt8 ? 1 : sizeof(T));
#pragma unroll
  for (int f = 0; f < kTcF; ++f) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      long long j = j0 + 16 * f + 8 * h + g;
      j = j < n ? j : n - 1;
      wrow[f][h] = reinterpret_cast<const uint4*>(static_cast<const char*>(w_raw) + static_cast<size_t>(j) * row_bytes) + t;
    }
  }
  // This lane's first 16-byte piece of x row 8 nt + g in step 0 (null past m: its B registers are zeros); step s is
  // 4 · kXChunks pieces further.
  const uint4* xrow[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int i = 8 * nt + g;
    xrow[nt] = i < m ? reinterpret_cast<const uint4*>(x + static_cast<size_t>(i) * k) + kXChunks * t : nullptr;
  }
  chain_wait();

  float acc[kTcF][NT][4];
#pragma unroll
  for (int f = 0; f < kTcF; ++f) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[f][nt][r] = 0.f;
    }
  }
  for (int s = begin; s < end; s += kTcUnroll) {
    uint4 wv[kTcUnroll][kTcF][2];
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
#pragma unroll
      for (int f = 0; f < kTcF; ++f) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          wv[u][f][h] = s + u < end ? __ldcs(wrow[f][h] + 4 * (s + u)) : make_uint4(0u, 0u, 0u, 0u);  // streamed once
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kTcUnroll; ++u) {
      if (s + u >= end) break;
      uint32_t xw[NT][2 * kQ];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int c = 0; c < kXChunks; ++c) {
          // A plain load, not __ldg: x is the previous kernel's output (chained launches, common.cuh)
          const uint4 v = xrow[nt] != nullptr ? xrow[nt][4 * kXChunks * (s + u) + c] : make_uint4(0u, 0u, 0u, 0u);
          xw[nt][4 * c] = v.x;
          xw[nt][4 * c + 1] = v.y;
          xw[nt][4 * c + 2] = v.z;
          xw[nt][4 * c + 3] = v.w;
        }
      }
#pragma unroll
      for (int f = 0; f < kTcF; ++f) {
        uint32_t wg[2 * kQ];
        uint32_t wg8[2 * kQ];
        if constexpr (kInt8) {
          widen_int8_pairs(wv[u][f][0], wg);
          widen_int8_pairs(wv[u][f][1], wg8);
        } else {
          const uint4 a = wv[u][f][0];
          const uint4 b = wv[u][f][1];
          wg[0] = a.x, wg[1] = a.y, wg[2] = a.z, wg[3] = a.w;
          wg8[0] = b.x, wg8[1] = b.y, wg8[2] = b.z, wg8[3] = b.w;
        }
#pragma unroll
        for (int q = 0; q < kQ; ++q) {
          uint32_t a[4];
          tc_a_fragment(wg, wg8, q, a);
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            uint32_t b0, b1;
            tc_b_fragment(xw[nt], q, b0, b1);
            mma16816<T>(acc[f][nt], a, b0, b1);
          }
        }
      }
    }
  }

  if constexpr (S > 1) {
#pragma unroll
    for (int f = 0; f < kTcF; ++f) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int r = 0; r < 4; ++r) partial[warp][(f * NT + nt) * 4 + r][lane] = acc[f][nt][r];
      }
    }
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int f = 0; f < kTcF; ++f) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
#pragma unroll
          for (int p = 1; p < S; ++p) acc[f][nt][r] += partial[warp + p][(f * NT + nt) * 4 + r][lane];
        }
      }
    }
  }
  if (j0 >= n) return;
  // D fragments: acc[f][nt][r] = output j0 + 16 f + g (+ 8 for r >= 2) of row 8 nt + 2 t (+ 1 for odd r).
#pragma unroll
  for (int f = 0; f < kTcF; ++f) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const long long j = j0 + 16 * f + g + (r >= 2 ? 8 : 0);
        const int i = 8 * nt + 2 * t + (r & 1);
        if (i < m && j < n) store(i, j, kInt8 ? acc[f][nt][r] * scales[j] : acc[f][nt][r]);
      }
    }
  }
}

// Warps per group for split = 0 (auto): the smallest S (1, 2, 4, 8) whose warps fill one wave of the GPU (as many
// blocks as fit at once on every multiprocessor), as long as each warp keeps at least two rounds of steps; else the
// largest S allowed. Few outputs (opt-1.3b's out_proj: 64 groups of 32) need many warps per group to keep enough
// weight loads in flight.
template <typename T, bool kInt8, int NT, class Store>
int tc_auto_split(long long groups, int steps) {
  // the blocks of S = 1's kernel that fit on a multiprocessor (its registers), read once per kernel: one GPU model per
  // process is assumed, as linear_small.cuh's resident_blocks does (the count only tunes the split)
  static std::atomic<int> cached{0};
  int resident = cached.load(std::memory_order_relaxed);
  if (resident <= 0) {
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, linear_tc_kernel<T, kInt8, NT, 1, Store>,
                                                      kWarp * kTcWarps, 0) != cudaSuccess || resident <= 0) {
      cudaGetLastError();  // not this launch's error
      resident = 2;
    } else {
      cached.store(resident, std::memory_order_relaxed);
    }
  }
  const long long wave = static_cast<long long>(resident) * sm_count() * kTcWarps;
  int s = 1;
  while (s < kTcWarps && groups * s < wave && steps >= 2LL * (2 * s) * kTcUnroll) s *= 2;
  return s;
}

template <typename T, bool kInt8, int NT, class Store>
int launch_tc_nt(const T* x, const void* w, const float* scales, int m, int k, int n, Store store, int split,
                 cudaStream_t stream) {
  const long long groups = (static_cast<long long>(n) + 16 * kTcF - 1) / (16 * kTcF);
  const int steps = k / (kInt8 ? 64 : 32);
  const int s = split == 0 ? tc_auto_split<T, kInt8, NT, Store>(groups, steps) : split;
  const long long per_block = kTcWarps / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const dim3 grid(static_cast<unsigned>(blocks));
  const dim3 block(kWarp * kTcWarps);
  switch (s) {
    case 1: return launch_chained(linear_tc_kernel<T, kInt8, NT, 1, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    case 2: return launch_chained(linear_tc_kernel<T, kInt8, NT, 2, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    case 4: return launch_chained(linear_tc_kernel<T, kInt8, NT, 4, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    default: return launch_chained(linear_tc_kernel<T, kInt8, NT, 8, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
  }
}

// split: 0 = auto (tc_auto_split), or 1, 2, 4, 8 warps per group of outputs.
template <typename T, bool kInt8, class Store>
int launch_tc(const T* x, const void* w, const float* scales, int m, int k, int n, Store store, int split,
              cudaStream_t stream) {
  if (m < 0 || m > kTcMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4 || split == 8) ||
      k % (kInt8 ? 64 : 32) != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(w) % 16 != 0 || (kInt8 && scales == nullptr)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  count_launch(OPT_COUNT_TC_LINEAR);
  if (m <= 8) return launch_tc_nt<T, kInt8, 1, Store>(x, w, scales, m, k, n, store, split, stream);
  if (m <= 16) return launch_tc_nt<T, kInt8, 2, Store>(x, w, scales, m, k, n, store, split, stream);
  return launch_tc_nt<T, kInt8, 4, Store>(x, w, scales, m, k, n, store, split, stream);
}

template <typename T, bool kInt8>
int launch_tc_linear(T* out, const T* x, const void* w, const float* scales, const T* bias, int m, int k, int n,
                     int relu, int split, cudaStream_t stream) {
  return launch_tc<T, kInt8>(x, w, scales, m, k, n, DenseStore<T>{out, bias, n, relu}, split, stream);
}

template <typename T, bool kInt8>
int launch_tc_qkv(T* q_out, T* k_cache, T* v_cache, const T* x, const void* w, const float* scales, const T* bias,
                  const int32_t* slots, int m, int k, int width, int cache_slots, int split, cudaStream_t stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_tc<T, kInt8>(x, w, scales, m, k, 3 * width,
                             QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots}, split, stream);
}

}  // namespace

extern "C" {  // a definition that drifted from opt_kernels.h would be a compile error, not a new overload
OPT_API int opt_linear_tc_f16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m, int k,
                              int n, int relu, int split, cudaStream_t stream) {
  return launch_tc_linear<__half, false>(as_f16(out), as_f16(x), w, nullptr, as_f16(bias), m, k, n, relu, split,
                                         stream);
}
OPT_API int opt_linear_tc_bf16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                               int k, int n, int relu, int split, cudaStream_t stream) {
  return launch_tc_linear<__nv_bfloat16, false>(as_bf16(out), as_bf16(x), w, nullptr, as_bf16(bias), m, k, n, relu,
                                                split, stream);
}
OPT_API int opt_linear_tc_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                  const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                  int width, int cache_slots, int split, cudaStream_t stream) {
  return launch_tc_qkv<__half, false>(as_f16(q_out), as_f16(k_cache), as_f16(v_cache), as_f16(x), w, nullptr,
                                      as_f16(bias), slots, m, k, width, cache_slots, split, stream);
}
OPT_API int opt_linear_tc_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                   const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                   int width, int cache_slots, int split, cudaStream_t stream) {
  return launch_tc_qkv<__nv_bfloat16, false>(as_bf16(q_out), as_bf16(k_cache), as_bf16(v_cache), as_bf16(x), w,
                                             nullptr, as_bf16(bias), slots, m, k, width, cache_slots, split, stream);
}
OPT_API int opt_linear_int8_tc_f16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                   const uint16_t* bias, int m, int k, int n, int relu, int split,
                                   cudaStream_t stream) {
  return launch_tc_linear<__half, true>(as_f16(out), as_f16(x), w, scales, as_f16(bias), m, k, n, relu, split,
                                        stream);
}
OPT_API int opt_linear_int8_tc_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                       const int8_t* w, const float* scales, const uint16_t* bias,
                                       const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                       cudaStream_t stream) {
  return launch_tc_qkv<__half, true>(as_f16(q_out), as_f16(k_cache), as_f16(v_cache), as_f16(x), w, scales,
                                     as_f16(bias), slots, m, k, width, cache_slots, split, stream);
}
}  // extern "C"
