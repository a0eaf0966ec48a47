// emu_fold: a CPU emulation of the "fold" kernel of native/src/linear_small.cu (linear_small_norm_kernel<T, 2, Store>,
// launched by launch_norm_small for opt_norm_linear_small_{f32,f16,bf16} and opt_norm_linear_small_qkv_*), thread by
// thread and block by block, against a double-precision reference written from opt_kernels.h and against line-by-line
// copies of the two unfused kernels it replaces (add_layernorm_kernel of layernorm.cu with threads_for(k, 512)
// threads, then linear_small_vec_kernel with 4 warps per block). See README.md beside this file.
//
// Build and run (from the repository root; x86-64 only, a hand-written context switch):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_fold/emu_fold.cpp -o target/emu_fold
//   target/emu_fold [random cases=150] [seed]
// With CUDA's host conversions checked against ours (CUDA_HOME: the toolkit's folder):
//   g++ -O2 -std=c++17 -ffp-contract=off -DCUDA_HOST_CONVERSIONS -I"$CUDA_HOME/include"
//       native/dev/emu_fold/emu_fold.cpp -o target/emu_fold_cuda && target/emu_fold_cuda 60 3     (one line)
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 8 (listed below):
//   for N in 1 2 3 4 5 6 7 8; do g++ -O2 -std=c++17 -ffp-contract=off -DPLANT=$N
//       native/dev/emu_fold/emu_fold.cpp -o target/emu_fold_p$N && target/emu_fold_p$N 20; done     (one line)
// -DCONTRACT=0 evaluates the norm's `sq += d * d` and `normed * gamma + beta` unfused (as written) instead of as the
// fma that nvcc emits for them (fold_numerics_emu.cu read it off the PTX); the default is the PTX's fma.
//
// The coroutine threads, block scheduler, shared-memory checker, store buffers and global-memory checker are
// emu_split's (native/dev/emu_split/emu_split.cpp, namespace emu, copied with small additions: dynamic shared
// memory, gridDim, the block's shared-memory total, prefetch bounds).
#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef CUDA_HOST_CONVERSIONS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#if !defined(__x86_64__)
#error "emu_fold's context switch is written for x86-64"
#endif

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: the last block does not reset the counter
//   2: the last block decided with gridDim.x instead of gridDim.x - 1 (no block is the last)
//   3: block 0 writes the new x and the norm (not the last block to count)
//   4: thread 0 counts before the first block_sum barrier (its block's other threads may still read x)
//   5: warps past n (idle warps of the last block) return before the norm
//   6: no __syncthreads between the normalisation pass (xs = LN) and the product's reads of xs
//   7: DenseStore applies the ReLU before the bias
//   8: QkvStore computes the part as (j + 1) / width
constexpr int kPlant = PLANT;
#ifndef CONTRACT
#define CONTRACT 1
#endif
constexpr bool kContract = CONTRACT != 0;

#include "../emu_common/emu.h"
#include "../emu_common/ty.h"  // Ty<T>: the storage types' traits
#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)
#define __threadfence() emu::threadfence()

// ============================================================================================================
// The kernel files, as common.cuh, layernorm.cu and linear_small.cu write them. T* → GPtr<T> (ld / st), const uint4*
// → GPtr<V16>, __shared__ arrays → SArr (ld / st), extern __shared__ → emu::dyn_shared. kPlant marks planted bugs.
// ============================================================================================================
#include "../emu_common/common_cuh.h"

namespace opt {
inline float sqrtf(float v) { return std::sqrt(v); }  // sqrt.rn (no fast math)
// a * b + c where nvcc contracts the kernel's plain expression into fma.rn (the norm's two; fold_numerics_emu.cu)
inline float mad(float a, float b, float c) { return kContract ? fmaf(a, b, c) : a * b + c; }

float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

float block_sum(float v) {
  SHARED(float, partial, kWarp);
  v = warp_sum(v);
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  __syncthreads();
  if (lane == 0) partial.st(warp, v);
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) total += partial.ld(w);
  return total;
}

bool g_dry = false;              // emulation only: launch nothing, count the launches (the refusal checks)
long long g_dry_launches = 0;

template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t smem, int, Args... args) {
  if (g_dry) {
    ++g_dry_launches;
    return kSuccess;
  }
  ++emu::g_op;  // one operation per grid: outputs written at most once in it
  emu::run_grid(grid, block.x, smem, [=] { kernel(static_cast<Params>(args)...); });
  return kSuccess;
}

// ---- layernorm.cu (the unfused norm) ----
constexpr int kMaxThreads = 512;

template <typename T>
void normalize_row(GPtr<T> out, GPtr<T> row, GPtr<T> gamma, GPtr<T> beta, int cols, float eps, float partial_sum) {
  const float mean = block_sum(partial_sum) / cols;
  float partial_sq = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = to_float(row.ld(i, "x (ln)")) - mean;
    partial_sq = mad(d, d, partial_sq);  // partial_sq += d * d
  }
  const float var = block_sum(partial_sq) / cols;
  const float inv_std = 1.f / sqrtf(var + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float normed = (to_float(row.ld(i, "x (ln)")) - mean) * inv_std;
    out.st(i, from_float<T>(mad(normed, to_float(gamma.ld(i, "gamma")), to_float(beta.ld(i, "beta")))), "ln out");
  }
}

template <typename T>
void add_layernorm_kernel(GPtr<T> x, GPtr<T> y, GPtr<T> bias, GPtr<T> out, GPtr<T> gamma, GPtr<T> beta, int cols,
                          float eps) {
  chain_start();
  chain_wait();
  const size_t base = static_cast<size_t>(blockIdx.x) * cols;
  GPtr<T> row = x + base;
  const GPtr<T> y_row = y + base;
  float sum = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float y_biased = bias.null() ? to_float(y_row.ld(i, "y")) : to_float(y_row.ld(i, "y")) + to_float(bias.ld(i, "y_bias"));
    const T stored = from_float<T>(to_float(row.ld(i, "x")) + y_biased);
    row.st(i, stored, "x (add_layernorm)");
    sum += to_float(stored);
  }
  normalize_row(out + base, row, gamma, beta, cols, eps, sum);
}

template <typename T>
int launch_add_layernorm(GPtr<T> x, GPtr<T> y, GPtr<T> bias, GPtr<T> out, GPtr<T> gamma, GPtr<T> beta, int rows,
                         int cols, float eps, int stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  return launch_chained(add_layernorm_kernel<T>, Dim3(rows), Dim3(threads_for(cols, kMaxThreads)), 0, stream, x, y,
                        bias, out, gamma, beta, cols, eps);
}

// ---- linear_small.cu ----
constexpr int kMaxRows = 8;
constexpr int kWarpsPerBlock = 4;
template <int R>
constexpr int unroll_for() { return R == 2 ? 4 : 2; }

template <typename T>
struct Chunk {
  static constexpr int kSize = 16 / sizeof(T);
};

struct float2_ { float x, y; };

void widen(const V16& v, float* out, const float*) { std::memcpy(out, v.b, 16); }  // __uint_as_float of .x .y .z .w
void widen(const V16& v, float* out, const Half*) {
  uint16_t h[8];
  std::memcpy(h, v.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::half_to_float(h[2 * i]), emu::half_to_float(h[2 * i + 1])};  // __half22float2(h[i])
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
void widen(const V16& v, float* out, const BF16*) {
  uint16_t h[8];
  std::memcpy(h, v.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::bf16_to_float(h[2 * i]), emu::bf16_to_float(h[2 * i + 1])};  // __bfloat1622float2(h[i])
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename T>
struct DenseStore {
  GPtr<T> out;
  GPtr<T> bias;
  int n;
  int relu;
  void operator()(int i, long long j, float v) const {
    if (kPlant == 7 && relu && v < 0.f) v = 0.f;
    if (!bias.null()) v += to_float(bias.ld(j, "bias"));
    if (kPlant != 7 && relu && v < 0.f) v = 0.f;  // NaN stays NaN, as in torch.relu
    out.st(static_cast<size_t>(i) * n + j, from_float<T>(v), "out");
  }
};

template <typename T>
struct QkvStore {
  GPtr<T> q_out;
  GPtr<T> k_cache;
  GPtr<T> v_cache;
  GPtr<T> bias;
  GPtr<int32_t> slots;
  int width;
  int cache_slots;
  void operator()(int i, long long j, float v) const {
    if (!bias.null()) v += to_float(bias.ld(j, "bias"));
    const int part = kPlant == 8 ? static_cast<int>((j + 1) / width) : static_cast<int>(j / width);
    const long long col = j - static_cast<long long>(part) * width;
    if (part == 0) {
      q_out.st(static_cast<size_t>(i) * width + col, from_float<T>(v), "q_out");
      return;
    }
    const int slot = slots.ld(i, "slots");
    if (slot < 0 || slot >= cache_slots) return;
    (part == 1 ? k_cache : v_cache).st(static_cast<size_t>(slot) * width + col, from_float<T>(v), "k/v cache");
  }
};

// reinterpret_cast<const uint4*>(x)[c]: x in global memory (the unfused kernel) or in shared memory (xs)
template <typename T>
V16 load_chunk(GPtr<T> x, long long c) { return x.template as<V16>().ld(c, "x chunk (global)"); }
template <typename T>
V16 load_chunk(SPtr<T> x, long long c) {
  constexpr int kC = Chunk<T>::kSize;
  const long long first = x.off + c * kC;
  if ((first * static_cast<long long>(sizeof(T))) % 16 != 0)
    emu::g_log.add("misaligned 16-byte shared load of %s at element %lld", x.a->name, first);
  V16 v{};
  for (int e = 0; e < kC; ++e) {
    const T t = x.a->ld(first + e, "xs chunk");
    std::memcpy(v.b + e * sizeof(T), &t, sizeof(T));
  }
  return v;
}
V16 ldcs(GPtr<V16> p) { return p.ld(0, "__ldcs (weight)"); }
void prefetch_l2(GPtr<V16> p) {  // asm volatile("prefetch.global.L2 [%0];" ...): only its address is checked
  if (p.null()) emu::g_log.add("prefetch of a null pointer");
  else p.m->in(p.off, 16, 16, "prefetch.global.L2");
}

template <typename T, int R, class XP>
void accumulate(float (&acc)[kMaxRows][R], const V16 (&wv)[R], XP x, int m, int k, int c) {
  constexpr int kC = Chunk<T>::kSize;
  float wf[R][kC];
  for (int r = 0; r < R; ++r) widen(wv[r], wf[r], static_cast<const T*>(nullptr));
  for (int i = 0; i < kMaxRows; ++i) {
    if (i < m) {
      const V16 xv = load_chunk<T>(x + static_cast<long long>(static_cast<size_t>(i) * k), c);
      float xf[kC];
      widen(xv, xf, static_cast<const T*>(nullptr));
      for (int r = 0; r < R; ++r) {
        for (int e = 0; e < kC; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
      }
    }
  }
}

template <typename T, int R>
void weight_rows(GPtr<V16> (&wrow)[R], GPtr<T> w, long long j0, int n, int k) {
  for (int r = 0; r < R; ++r) {
    const long long j = j0 + r < n ? j0 + r : n - 1;
    wrow[r] = (w + static_cast<size_t>(j) * k).template as<V16>();
  }
}

template <int R>
void prefetch_first_chunks(const GPtr<V16> (&wrow)[R], int lane, int chunks) {
  for (int u = 0; u < unroll_for<R>(); ++u) {
    for (int r = 0; r < R; ++r) {
      if (lane + u * kWarp < chunks) prefetch_l2(wrow[r] + (lane + u * kWarp));
    }
  }
}

template <typename T, int R, class XP>
void product_chunks(float (&acc)[kMaxRows][R], const GPtr<V16> (&wrow)[R], XP x, int m, int k, int chunks, int lane) {
  constexpr int kUnroll = unroll_for<R>();
  for (int i = 0; i < kMaxRows; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = 0.f;
  }
  int c = lane;
  for (; c + (kUnroll - 1) * kWarp < chunks; c += kUnroll * kWarp) {
    V16 wv[kUnroll][R];
    for (int u = 0; u < kUnroll; ++u) {
      for (int r = 0; r < R; ++r) wv[u][r] = ldcs(wrow[r] + (c + u * kWarp));
    }
    for (int u = 0; u < kUnroll; ++u) accumulate<T, R>(acc, wv[u], x, m, k, c + u * kWarp);
  }
  for (; c < chunks; c += kWarp) {
    V16 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = ldcs(wrow[r] + c);
    accumulate<T, R>(acc, wv, x, m, k, c);
  }
}

template <typename T, int R, class Store>
void linear_small_vec_kernel(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store) {
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const long long j0 = (static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp) * R;
  if (j0 >= n) {
    chain_wait();
    return;
  }
  const int chunks = k / Chunk<T>::kSize;
  GPtr<V16> wrow[R];
  weight_rows<T, R>(wrow, w, j0, n, k);
  prefetch_first_chunks<R>(wrow, lane, chunks);
  chain_wait();
  float acc[kMaxRows][R];
  product_chunks<T, R>(acc, wrow, x, m, k, chunks, lane);
  for (int i = 0; i < kMaxRows; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);
        if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
      }
    }
  }
}

template <typename T>
struct NormIn {
  GPtr<T> x;
  GPtr<T> y;
  GPtr<T> bias;
  GPtr<T> out;
  GPtr<T> gamma;
  GPtr<T> beta;
  float eps;
  GPtr<int> counter;
};

constexpr int kNormWarps = 8;

template <typename T, int R, class Store>
void linear_small_norm_kernel(NormIn<T> norm, GPtr<T> w, int k, int n, Store store) {
  SArr<T>& xs = emu::dyn_shared<T>("xs");  // extern __shared__ uint4 xs_words[]; T* xs = ...
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const long long j0 = (static_cast<long long>(blockIdx.x) * kNormWarps + threadIdx.x / kWarp) * R;
  if (kPlant == 5 && j0 >= n) return;
  const int chunks = k / Chunk<T>::kSize;
  GPtr<V16> wrow[R];
  weight_rows<T, R>(wrow, w, j0, n, k);
  if (j0 < n) prefetch_first_chunks<R>(wrow, lane, chunks);
  chain_wait();

  // 1.
  float sum = 0.f;
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const float y_biased = norm.bias.null() ? to_float(norm.y.ld(i, "y"))
                                            : to_float(norm.y.ld(i, "y")) + to_float(norm.bias.ld(i, "y_bias"));
    const T stored = from_float<T>(to_float(norm.x.ld(i, "x (old residual)")) + y_biased);
    xs.st(i, stored);
    sum += to_float(stored);
  }
  SHARED(bool, last_s, 1);
  auto count = [&] {  // 2. (thread 0's part)
    if (threadIdx.x == 0) {
      __threadfence();
      const int old = emu::atomicAdd(norm.counter, 1);
      const bool l = kPlant == 3 ? blockIdx.x == 0u
                                 : old == static_cast<int>(gridDim.x) - (kPlant == 2 ? 0 : 1);
      if (l) __threadfence();
      last_s.st(0, l);
    }
  };
  if (kPlant == 4) count();
  const float mean = block_sum(sum) / k;
  float sq = 0.f;
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const float d = to_float(xs.ld(i)) - mean;
    sq = mad(d, d, sq);  // sq += d * d
  }
  const float var = block_sum(sq) / k;
  const float inv_std = 1.f / sqrtf(var + norm.eps);

  // 2.
  if (kPlant != 4) count();
  __syncthreads();
  const bool last = last_s.ld(0);
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const T r = xs.ld(i);
    const float normed = (to_float(r) - mean) * inv_std;
    const T y_norm = from_float<T>(mad(normed, to_float(norm.gamma.ld(i, "gamma")), to_float(norm.beta.ld(i, "beta"))));
    if (last) {
      norm.x.st(i, r, "x (new residual)");
      norm.out.st(i, y_norm, "norm_out");
    }
    xs.st(i, y_norm);
  }
  if (last && threadIdx.x == 0 && kPlant != 1) norm.counter.st(0, 0, "counter reset");
  if (kPlant != 6) __syncthreads();
  if (j0 >= n) return;

  // 3.
  float acc[kMaxRows][R];
  product_chunks<T, R>(acc, wrow, xs + 0LL, 1, k, chunks, lane);
  for (int r = 0; r < R; ++r) {
    const float v = warp_sum(acc[0][r]);
    if (lane == r % kWarp && j0 + r < n) store(0, j0 + r, v);
  }
}

template <typename T, int R, class Store>
int launch_r(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store, bool vec, int stream) {
  const long long warps = (static_cast<long long>(n) + R - 1) / R;
  const long long blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const Dim3 grid(static_cast<unsigned>(blocks));
  const Dim3 block(kWarp * kWarpsPerBlock);
  if (!vec) {
    emu::g_log.add("emulation: linear_small_scalar_kernel is not emulated (the unfused product took the scalar path)");
    return -1;
  }
  return launch_chained(linear_small_vec_kernel<T, R, Store>, grid, block, 0, stream, x, w, m, k, n, store);
}

template <typename T, class Store>
int launch_small(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store, int stream) {
  if (m < 0 || m > kMaxRows || k < 1 || n < 0) return kInvalidValue;
  if (m == 0 || n == 0) return kSuccess;
  const bool vec = k % Chunk<T>::kSize == 0 && x.addr() % 16 == 0 && w.addr() % 16 == 0;
  return m <= 2 ? launch_r<T, 2>(x, w, m, k, n, store, vec, stream) : launch_r<T, 4>(x, w, m, k, n, store, vec, stream);
}

template <typename T>
int launch_linear_small(GPtr<T> out, GPtr<T> x, GPtr<T> w, GPtr<T> bias, int m, int k, int n, int relu, int stream) {
  return launch_small(x, w, m, k, n, DenseStore<T>{out, bias, n, relu}, stream);
}

template <typename T>
int launch_linear_small_qkv(GPtr<T> q_out, GPtr<T> k_cache, GPtr<T> v_cache, GPtr<T> x, GPtr<T> w, GPtr<T> bias,
                            GPtr<int32_t> slots, int m, int k, int width, int cache_slots, int stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_small(x, w, m, k, 3 * width, QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots},
                      stream);
}

constexpr size_t kNormSmemMax = 48 * 1024 - 256;

template <typename T, class Store>
int launch_norm_small(NormIn<T> norm, GPtr<T> w, int k, int n, Store store, int stream) {
  constexpr int R = 2;
  if (k < 1 || n < 1 || norm.x.null() || norm.y.null() || norm.out.null() || norm.gamma.null() || norm.beta.null() ||
      norm.counter.null()) {
    return kInvalidValue;
  }
  const size_t smem = static_cast<size_t>(k) * sizeof(T);
  const bool vec = k % Chunk<T>::kSize == 0 && w.addr() % 16 == 0;
  if (!vec || smem > kNormSmemMax) return kInvalidValue;
  const long long warps = (static_cast<long long>(n) + R - 1) / R;
  const long long blocks = (warps + kNormWarps - 1) / kNormWarps;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  return launch_chained(linear_small_norm_kernel<T, R, Store>, Dim3(static_cast<unsigned>(blocks)),
                        Dim3(kWarp * kNormWarps), smem, stream, norm, w, k, n, store);
}

template <typename T>
int launch_norm_linear_small(GPtr<T> x, GPtr<T> y, GPtr<T> y_bias, GPtr<T> norm_out, GPtr<T> gamma, GPtr<T> beta,
                             float eps, GPtr<int> counter, GPtr<T> out, GPtr<T> w, GPtr<T> bias, int k, int n,
                             int relu, int stream) {
  return launch_norm_small(NormIn<T>{x, y, y_bias, norm_out, gamma, beta, eps, counter}, w, k, n,
                           DenseStore<T>{out, bias, n, relu}, stream);
}

template <typename T>
int launch_norm_linear_small_qkv(GPtr<T> x, GPtr<T> y, GPtr<T> y_bias, GPtr<T> norm_out, GPtr<T> gamma,
                                 GPtr<T> beta, float eps, GPtr<int> counter, GPtr<T> q_out, GPtr<T> k_cache,
                                 GPtr<T> v_cache, GPtr<T> w, GPtr<T> bias, GPtr<int32_t> slots, int k, int width,
                                 int cache_slots, int stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_norm_small(NormIn<T>{x, y, y_bias, norm_out, gamma, beta, eps, counter}, w, k, 3 * width,
                           QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots}, stream);
}

}  // namespace opt

// ============================================================================================================
// Reference, cases, checks
// ============================================================================================================
namespace {
using emu::g_log;
using opt::GPtr;



constexpr uintptr_t kBase = 0x10000000;  // every buffer's emulated address (16-byte aligned; offsets misalign)

template <class T>
void put(emu::GMem& m, const char* name, const std::vector<T>& v, bool writable) {
  m.init(name, v.size() * sizeof(T), kBase, writable, sizeof(T));
  if (!v.empty()) std::memcpy(m.bytes.data(), v.data(), v.size() * sizeof(T));
  if (writable) m.once_from = 0;  // every element written at most once per grid
}
template <class T>
std::vector<T> get(const emu::GMem& m, size_t from = 0, size_t n = SIZE_MAX) {
  const size_t total = m.bytes.size() / sizeof(T);
  if (n == SIZE_MAX) n = total - from;
  std::vector<T> v(n);
  if (n) std::memcpy(v.data(), m.bytes.data() + from * sizeof(T), n * sizeof(T));
  return v;
}
// elements [from, from + n) of m written by operation op (each at most once: GMem's once_from check)
long long written(const emu::GMem& m, size_t from, size_t n, uint32_t op) {
  long long c = 0;
  for (size_t e = from; e < from + n; ++e) c += m.meta[e].w_op == op;
  return c;
}

emu::GMem g_counter;  // one device int for the whole run, zeroed once (as CudaOps keeps one)
int counter_value() {
  int c;
  std::memcpy(&c, g_counter.bytes.data(), 4);
  return c;
}

struct Stats {
  long long cases = 0, fused_launches = 0, blocks = 0, max_grid = 0, idle_warp_launches = 0;
  long long norm_words = 0, norm_words_differ = 0, max_ulps = 0, ulp_hist[4] = {};  // 0, 1, 2, more
  double max_scaled_ulps = 0;
  double max_abs_small = 0;  // the largest |a - b| among words more than 2 ulps apart (values near zero)  // |a - b| in ulps of max(|b|, 1/16): values near zero in ulps of 1/16
  double max_x_ref = 0, max_norm_ref = 0, max_prod_ref = 0, max_norm_unfused = 0, max_prod_unfused = 0;
  long long bits_x = 0, bits_prod = 0;  // bit-for-bit comparisons made (all must hold)
};
Stats g_stats[3];
long long g_failed_cases = 0, g_counter_checks = 0;

struct Case {
  int k = 64, n = 8;  // qkv: n is the width (3n outputs)
  bool qkv = false, relu = false, y_bias = true, bias = true;
  float x_mean = 0.5f;
  int cache_slots = 4, slot = 2;
  std::string label;
};

template <class T>
bool run_case(const Case& c, std::mt19937& rng) {
  const int k = c.k, width = c.n, outputs = c.qkv ? 3 * c.n : c.n;
  const float eps = 1e-5f;
  const long long errors_before = g_log.errors;
  std::vector<std::string> why;
  auto fail = [&](const std::string& s) { why.push_back(s); };
  // inputs as check_ops' check_norm_linear draws them
  const auto x = random_tensor<T>(rng, k, c.x_mean, 1.f);
  const auto y = random_tensor<T>(rng, k, 0.f, 1.f);
  const auto yb = random_tensor<T>(rng, k, 0.f, 0.3f);
  const auto g = random_tensor<T>(rng, k, 1.f, 0.2f);
  const auto be = random_tensor<T>(rng, k, 0.f, 0.2f);
  const auto w = random_tensor<T>(rng, static_cast<size_t>(outputs) * k, 0.f, 1.f / std::sqrt(static_cast<float>(k)));
  const auto b = random_tensor<T>(rng, outputs, 0.f, 0.5f);
  const auto cache = random_tensor<T>(rng, static_cast<size_t>(c.cache_slots) * width, 0.f, 1.f);
  const std::vector<int32_t> slots = {c.slot};
  std::vector<T> poison(std::max(k, outputs));
  std::memset(poison.data(), 0xff, poison.size() * sizeof(T));
  emu::GMem m_y, m_yb, m_g, m_be, m_w, m_b, m_slots;
  put(m_y, "y", y, false);
  put(m_yb, "y_bias", yb, false);
  put(m_g, "gamma", g, false);
  put(m_be, "beta", be, false);
  put(m_w, "w", w, false);
  put(m_b, "bias", b, false);
  put(m_slots, "slots", slots, false);
  const GPtr<T> Y{&m_y, 0}, YB = c.y_bias ? GPtr<T>{&m_yb, 0} : GPtr<T>{}, G{&m_g, 0}, BE{&m_be, 0}, W{&m_w, 0},
                B = c.bias ? GPtr<T>{&m_b, 0} : GPtr<T>{};
  const GPtr<int32_t> S{&m_slots, 0};
  const int out_len = c.qkv ? width : outputs;
  const std::vector<T> out_poison(poison.begin(), poison.begin() + out_len);
  const std::vector<T> k_poison(poison.begin(), poison.begin() + k);

  // 1. Unfused: add_layernorm_kernel, then linear_small_vec_kernel over its norm
  emu::GMem r_x, r_h, r_out, r_k, r_v;
  put(r_x, "x (unfused)", x, true);
  put(r_h, "norm (unfused)", k_poison, true);
  put(r_out, "out (unfused)", out_poison, true);
  put(r_k, "k_cache (unfused)", cache, true);
  put(r_v, "v_cache (unfused)", cache, true);
  int st = opt::launch_add_layernorm<T>(GPtr<T>{&r_x, 0}, Y, YB, GPtr<T>{&r_h, 0}, G, BE, 1, k, eps, 0);
  if (st != 0) fail("add_layernorm status " + std::to_string(st));
  st = c.qkv ? opt::launch_linear_small_qkv<T>(GPtr<T>{&r_out, 0}, GPtr<T>{&r_k, 0}, GPtr<T>{&r_v, 0},
                                               GPtr<T>{&r_h, 0}, W, B, S, 1, k, width, c.cache_slots, 0)
             : opt::launch_linear_small<T>(GPtr<T>{&r_out, 0}, GPtr<T>{&r_h, 0}, W, B, 1, k, outputs, c.relu, 0);
  if (st != 0) fail("linear_small status " + std::to_string(st));

  // 2. Fused, on the run's one counter; the norm's output and the product poisoned
  emu::GMem f_x, f_h, f_out, f_k, f_v;
  put(f_x, "x", x, true);
  put(f_h, "norm_out", k_poison, true);
  put(f_out, c.qkv ? "q_out" : "out", out_poison, true);
  put(f_k, "k_cache", cache, true);
  put(f_v, "v_cache", cache, true);
  const GPtr<int> C{&g_counter, 0};
  const uint32_t launches_before = emu::g_launch;
  st = c.qkv ? opt::launch_norm_linear_small_qkv<T>(GPtr<T>{&f_x, 0}, Y, YB, GPtr<T>{&f_h, 0}, G, BE, eps, C,
                                                    GPtr<T>{&f_out, 0}, GPtr<T>{&f_k, 0}, GPtr<T>{&f_v, 0}, W, B, S, k,
                                                    width, c.cache_slots, 0)
             : opt::launch_norm_linear_small<T>(GPtr<T>{&f_x, 0}, Y, YB, GPtr<T>{&f_h, 0}, G, BE, eps, C,
                                                GPtr<T>{&f_out, 0}, W, B, k, outputs, c.relu, 0);
  const uint32_t op = emu::g_op;
  if (st != 0) fail("fused status " + std::to_string(st));
  if (emu::g_launch != launches_before + 1) fail("the fused launcher did not launch one grid");
  Stats& s = g_stats[Ty<T>::idx];
  ++s.cases;
  ++s.fused_launches;
  const long long grid = ((outputs + 1) / 2 + 7) / 8;
  s.blocks += grid;
  s.max_grid = std::max(s.max_grid, grid);
  if (((outputs + 1) / 2) % 8 != 0) ++s.idle_warp_launches;
  ++g_counter_checks;
  if (counter_value() != 0) {
    fail("counter " + std::to_string(counter_value()) + " after the launch (grid " + std::to_string(grid) + ")");
    std::memset(g_counter.bytes.data(), 0, 4);  // so later cases are not failed by this one
  }
  // written exactly once (twice: GMem's checker), and only what the contract names
  if (written(f_x, 0, k, op) != k) fail("x: " + std::to_string(k - written(f_x, 0, k, op)) + " elements not written");
  if (written(f_h, 0, k, op) != k) fail("norm_out: " + std::to_string(k - written(f_h, 0, k, op)) + " not written");
  if (written(f_out, 0, out_len, op) != out_len)
    fail(std::string(c.qkv ? "q_out" : "out") + ": " + std::to_string(out_len - written(f_out, 0, out_len, op)) +
         " elements not written");
  if (c.qkv) {
    const bool cached = c.slot >= 0 && c.slot < c.cache_slots;
    for (emu::GMem* m : {&f_k, &f_v}) {
      const long long all = written(*m, 0, static_cast<size_t>(c.cache_slots) * width, op);
      const long long row = cached ? written(*m, static_cast<size_t>(c.slot) * width, width, op) : 0;
      if (row != (cached ? width : 0) || all != row) fail(m->name + ": rows written other than slots[0]'s");
    }
  }

  // 3. The unfused product over the fused norm: the fused product's bits
  emu::GMem p_out, p_k, p_v;
  put(p_out, "out (product over norm_out)", out_poison, true);
  put(p_k, "k_cache (product over norm_out)", cache, true);
  put(p_v, "v_cache (product over norm_out)", cache, true);
  st = c.qkv ? opt::launch_linear_small_qkv<T>(GPtr<T>{&p_out, 0}, GPtr<T>{&p_k, 0}, GPtr<T>{&p_v, 0},
                                               GPtr<T>{&f_h, 0}, W, B, S, 1, k, width, c.cache_slots, 0)
             : opt::launch_linear_small<T>(GPtr<T>{&p_out, 0}, GPtr<T>{&f_h, 0}, W, B, 1, k, outputs, c.relu, 0);
  if (st != 0) fail("linear_small (over norm_out) status " + std::to_string(st));

  const auto fx = get<T>(f_x), rx = get<T>(r_x), fh = get<T>(f_h), rh = get<T>(r_h);
  const auto fo = get<T>(f_out), ro = get<T>(r_out), po = get<T>(p_out);
  const auto fk = get<T>(f_k), fv = get<T>(f_v), rk = get<T>(r_k), rv = get<T>(r_v), pk = get<T>(p_k), pv = get<T>(p_v);
  ++s.bits_x;
  if (!same_bits(fx, rx)) {
    long long d = 0;
    for (int i = 0; i < k; ++i) d += std::memcmp(&fx[i], &rx[i], sizeof(T)) != 0;
    fail("new x differs from add_layernorm's in " + std::to_string(d) + " words");
  }
  ++s.bits_prod;
  if (!same_bits(fo, po) || (c.qkv && (!same_bits(fk, pk) || !same_bits(fv, pv))))
    fail("product != linear_small_vec_kernel over the same norm (bits)");
  // the norm: ulps against add_layernorm's
  long long case_ulps = 0;
  double case_scaled = 0;
  for (int i = 0; i < k; ++i) {
    const double a = Ty<T>::widen(fh[i]), r = Ty<T>::widen(rh[i]);
    const double scale = std::max(std::fabs(r), 1.0 / 16);
    const double ulp = std::ldexp(1.0, std::ilogb(scale) - Ty<T>::mant);
    case_scaled = std::max(case_scaled, std::isnan(a) || std::isnan(r) ? INFINITY : std::fabs(a - r) / ulp);
    if (std::llabs(Ty<T>::key(fh[i]) - Ty<T>::key(rh[i])) > 2) s.max_abs_small = std::max(s.max_abs_small, std::fabs(a - r));
    const long long u = std::llabs(Ty<T>::key(fh[i]) - Ty<T>::key(rh[i]));
    ++s.norm_words;
    s.norm_words_differ += u != 0;
    ++s.ulp_hist[std::min<long long>(u, 3)];
    case_ulps = std::max(case_ulps, u);
  }
  s.max_ulps = std::max(s.max_ulps, case_ulps);
  s.max_scaled_ulps = std::max(s.max_scaled_ulps, case_scaled);
  const double norm_unfused = max_error(wide(fh), wide(rh));
  s.max_norm_unfused = std::max(s.max_norm_unfused, norm_unfused);
  if (Ty<T>::idx != 0 && !(case_scaled <= 2))
    fail("norm " + std::to_string(case_scaled) + " ulps (of max(|value|, 1/16)) from add_layernorm's");
  if (Ty<T>::idx == 0 && norm_unfused > Ty<T>::tol) fail("norm (f32) differs from add_layernorm's by " + std::to_string(norm_unfused));
  double prod_unfused = max_error(wide(fo), wide(ro));
  if (c.qkv) prod_unfused = std::max({prod_unfused, max_error(wide(fk), wide(rk)), max_error(wide(fv), wide(rv))});
  s.max_prod_unfused = std::max(s.max_prod_unfused, prod_unfused);
  if (!(prod_unfused <= Ty<T>::tol)) fail("product differs from the unfused chain's by " + std::to_string(prod_unfused));

  // 4. The double-precision reference from opt_kernels.h: x += y + y_bias (rounded to T), out = LN(x as stored),
  // the product of that norm (as stored) with m = 1, bias, ReLU / q|k|v into the cache row slots[0]
  std::vector<double> xref(k), xs(k), nref(k), hT(k);
  for (int i = 0; i < k; ++i) {
    xref[i] = static_cast<double>(Ty<T>::widen(x[i])) + Ty<T>::widen(y[i]) + (c.y_bias ? Ty<T>::widen(yb[i]) : 0.0);
    xs[i] = Ty<T>::widen(fx[i]);
  }
  double mean = 0, var = 0;
  for (int i = 0; i < k; ++i) mean += xs[i];
  mean /= k;
  for (int i = 0; i < k; ++i) var += (xs[i] - mean) * (xs[i] - mean);
  var /= k;
  for (int i = 0; i < k; ++i) {
    nref[i] = (xs[i] - mean) / std::sqrt(var + eps) * Ty<T>::widen(g[i]) + Ty<T>::widen(be[i]);
    hT[i] = Ty<T>::widen(Ty<T>::narrow(static_cast<float>(nref[i])));
  }
  std::vector<double> oref(out_len), kref = wide(cache), vref = wide(cache);
  for (int j = 0; j < outputs; ++j) {
    double v = c.bias ? Ty<T>::widen(b[j]) : 0.0;
    for (int e = 0; e < k; ++e) v += hT[e] * Ty<T>::widen(w[static_cast<size_t>(j) * k + e]);
    if (!c.qkv) {
      oref[j] = c.relu ? std::max(v, 0.0) : v;
    } else {
      const int part = j / width, col = j % width;
      if (part == 0) oref[col] = v;
      else if (c.slot >= 0 && c.slot < c.cache_slots) (part == 1 ? kref : vref)[static_cast<size_t>(c.slot) * width + col] = v;
    }
  }
  const double ex = max_error(wide(fx), xref), en = max_error(wide(fh), nref);
  double ep = max_error(wide(fo), oref);
  if (c.qkv) ep = std::max({ep, max_error(wide(fk), kref), max_error(wide(fv), vref)});
  s.max_x_ref = std::max(s.max_x_ref, ex);
  s.max_norm_ref = std::max(s.max_norm_ref, en);
  s.max_prod_ref = std::max(s.max_prod_ref, std::isfinite(ep) ? ep : s.max_prod_ref);
  if (!(ex <= Ty<T>::tol)) fail("x vs reference " + std::to_string(ex));
  if (!(en <= Ty<T>::tol)) fail("norm vs reference " + std::to_string(en));
  if (!(ep <= Ty<T>::tol)) fail("product vs reference " + std::to_string(ep));
  if (g_log.errors != errors_before) fail(std::to_string(g_log.errors - errors_before) + " checker errors");
  if (!why.empty()) {
    if (++g_failed_cases <= 10) {
      std::string all;
      for (const auto& e : why) all += (all.empty() ? "" : "; ") + e;
      std::printf("  FAIL %s %s: %s\n", Ty<T>::name(), c.label.c_str(), all.c_str());
    }
    return false;
  }
  return true;
}

bool run_any(int dtype, const Case& c, std::mt19937& rng) {
  return dtype == 0 ? run_case<float>(c, rng) : dtype == 1 ? run_case<emu::Half>(c, rng) : run_case<emu::BF16>(c, rng);
}

std::string describe(const Case& c) {
  char buf[200];
  const int outputs = c.qkv ? 3 * c.n : c.n;
  const int warps = (outputs + 1) / 2;
  std::snprintf(buf, sizeof buf, "%s k=%d %s=%d (grid %d, %d idle warps)%s%s%s%s slot %d/%d", c.qkv ? "qkv" : "dense",
                c.k, c.qkv ? "width" : "n", c.n, (warps + 7) / 8, (8 - warps % 8) % 8, c.relu ? " relu" : "",
                c.y_bias ? "" : " no-y_bias", c.bias ? "" : " no-bias", c.x_mean > 1 ? " x-mean-40" : "", c.slot,
                c.cache_slots);
  return buf;
}

// A decode-like chain on the one counter: each launch's x is the next one's input (the residual through the layers),
// grids of random sizes one after the other; x bits against a chain of add_layernorm_kernel, every launch.
template <class T>
bool chain(std::mt19937& rng, int steps, int k) {
  const long long errors_before = g_log.errors;
  const float eps = 1e-5f;
  emu::GMem f_x, r_x, m_g, m_be, m_w;
  std::vector<T> x = random_tensor<T>(rng, k, 0.5f, 1.f);
  put(f_x, "x (chain)", x, true);
  put(r_x, "x (chain, unfused)", x, true);
  put(m_g, "gamma", random_tensor<T>(rng, k, 1.f, 0.2f), false);
  put(m_be, "beta", random_tensor<T>(rng, k, 0.f, 0.2f), false);
  constexpr int kMaxN = 260;
  put(m_w, "w", random_tensor<T>(rng, static_cast<size_t>(kMaxN) * k, 0.f, 0.1f), false);
  int bad = 0;
  long long grids = 0;
  for (int step = 0; step < steps; ++step) {
    const int n = 1 + static_cast<int>(rng() % kMaxN);
    emu::GMem m_y, f_h, f_out, r_h;
    std::vector<T> yv = random_tensor<T>(rng, k, 0.f, 1.f);
    put(m_y, "y", yv, false);
    put(f_h, "norm_out", std::vector<T>(k), true);
    put(f_out, "out", std::vector<T>(n), true);
    put(r_h, "norm (unfused)", std::vector<T>(k), true);
    opt::launch_add_layernorm<T>(GPtr<T>{&r_x, 0}, GPtr<T>{&m_y, 0}, GPtr<T>{}, GPtr<T>{&r_h, 0}, GPtr<T>{&m_g, 0},
                                 GPtr<T>{&m_be, 0}, 1, k, eps, 0);
    const int st = opt::launch_norm_linear_small<T>(GPtr<T>{&f_x, 0}, GPtr<T>{&m_y, 0}, GPtr<T>{}, GPtr<T>{&f_h, 0},
                                                    GPtr<T>{&m_g, 0}, GPtr<T>{&m_be, 0}, eps, GPtr<int>{&g_counter, 0},
                                                    GPtr<T>{&f_out, 0}, GPtr<T>{&m_w, 0}, GPtr<T>{}, k, n, step % 2, 0);
    const uint32_t op = emu::g_op;
    grids += ((n + 1) / 2 + 7) / 8;
    ++g_counter_checks;
    bad += st != 0;
    if (counter_value() != 0) {
      ++bad;
      std::memset(g_counter.bytes.data(), 0, 4);
    }
    bad += written(f_x, 0, k, op) != k || written(f_h, 0, k, op) != k || written(f_out, 0, n, op) != n;
    bad += !same_bits(get<T>(f_x), get<T>(r_x));
  }
  const long long errs = g_log.errors - errors_before;
  std::printf("chain %-4s k=%d: %d launches (%lld blocks, grids 1..%d) on one counter: %s (%d wrong launches, %lld "
              "checker errors)\n", Ty<T>::name(), k, steps, grids, ((kMaxN + 1) / 2 + 7) / 8,
              bad == 0 && errs == 0 ? "ok" : "FAIL", bad, errs);
  return bad == 0 && errs == 0;
}

// The launcher's refusals: nothing launched, cudaErrorInvalidValue (1); and its acceptance of the largest row.
template <class T>
bool validation() {
  int wrong = 0;
  constexpr int kC = 16 / sizeof(T);
  const int kmax = static_cast<int>((48 * 1024 - 256) / sizeof(T));
  emu::GMem d;
  d.init("dummy", 1 << 20, kBase, true, 4);
  const GPtr<T> P{&d, 0}, Mis{&d, static_cast<long long>(sizeof(T))}, Null{};
  const GPtr<int> C{&g_counter, 0};
  const GPtr<int32_t> S{&d, 0};
  auto dense = [&](GPtr<T> x, GPtr<T> y, GPtr<T> h, GPtr<T> g, GPtr<T> be, GPtr<int> c, GPtr<T> w, int k, int n) {
    const uint32_t l = emu::g_launch;
    opt::g_dry = true;
    const int st = opt::launch_norm_linear_small<T>(x, y, P, h, g, be, 1e-5f, c, P, w, P, k, n, 0, 0);
    opt::g_dry = false;
    const bool launched = emu::g_launch != l || opt::g_dry_launches;
    opt::g_dry_launches = 0;
    return launched ? -100 - st : st;  // launched: negative
  };
  auto qkv = [&](int k, int width, int cache_slots) {
    const uint32_t l = emu::g_launch;
    opt::g_dry = true;
    const int st = opt::launch_norm_linear_small_qkv<T>(P, P, P, P, P, P, 1e-5f, C, P, P, P, P, P, S, k, width,
                                                        cache_slots, 0);
    opt::g_dry = false;
    const bool launched = emu::g_launch != l || opt::g_dry_launches;
    opt::g_dry_launches = 0;
    return launched ? -100 - st : st;
  };
  auto expect = [&](int got, int want, const char* what) {
    if (got != want) {
      ++wrong;
      std::printf("  %s %s: got %d, want %d (negative: launched)\n", Ty<T>::name(), what, got, want);
    }
  };
  expect(dense(P, P, P, P, P, C, P, 64, 8), -100, "k 64 n 8 (accepted)");
  expect(dense(P, P, P, P, P, C, P, kmax, 1), -100, "k = 48 KiB - 256 bytes (accepted)");
  expect(dense(P, P, P, P, P, C, P, kmax + kC, 1), 1, "k past 48 KiB - 256 bytes");
  expect(dense(P, P, P, P, P, C, P, kC + 1, 8), 1, "k not a multiple of the chunk");
  if (kC > 2) expect(dense(P, P, P, P, P, C, P, kC / 2, 8), 1, "k half a chunk");
  expect(dense(P, P, P, P, P, C, Mis, 64, 8), 1, "w misaligned by one element");
  expect(dense(Mis, Mis, Mis, Mis, Mis, C, P, 64, 8), -100, "x, y, norm_out, gamma, beta misaligned (accepted)");
  expect(dense(P, P, P, P, P, C, P, 64, 0), 1, "n = 0");
  expect(dense(P, P, P, P, P, C, P, 64, -1), 1, "n = -1");
  expect(dense(P, P, P, P, P, C, P, 0, 8), 1, "k = 0");
  expect(dense(P, P, P, P, P, C, P, -kC, 8), 1, "k < 0");
  expect(dense(Null, P, P, P, P, C, P, 64, 8), 1, "x null");
  expect(dense(P, Null, P, P, P, C, P, 64, 8), 1, "y null");
  expect(dense(P, P, Null, P, P, C, P, 64, 8), 1, "norm_out null");
  expect(dense(P, P, P, Null, P, C, P, 64, 8), 1, "gamma null");
  expect(dense(P, P, P, P, Null, C, P, 64, 8), 1, "beta null");
  expect(dense(P, P, P, P, P, GPtr<int>{}, P, 64, 8), 1, "counter null");
  expect(qkv(64, 1, 0), -100, "qkv width 1, cache_slots 0 (accepted)");
  expect(qkv(64, 0, 4), 1, "qkv width 0");
  expect(qkv(64, 8, -1), 1, "qkv cache_slots < 0");
  expect(qkv(64, 0x2aaaaaab, 4), 1, "qkv 3 * width past int");
  expect(qkv(kmax + kC, 8, 4), 1, "qkv k past 48 KiB - 256 bytes");
  std::printf("launcher refusals %-4s (k max %d): %s\n", Ty<T>::name(), kmax, wrong == 0 ? "ok" : "FAIL");
  return wrong == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 150;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261128u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  emu::g_skew_allowed = true;                       // skewed schedules (a late reader of x: planted bug 4)
  emu::g_resident_choices = {1, 2, 3, 8, 32, 64};
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_fold: linear_small_norm_kernel emulated, fixed cases + %d random, seed %u%s%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "", kContract ? "" : ", CONTRACT=0");
  bool conv_ok = true;
#ifdef CUDA_HOST_CONVERSIONS
  conv_ok = emu::check_conversions(7);
#endif
  g_counter.init("counter", 4, kBase, true, 4);
  g_counter.atomic_end = 4;
  bool ok = validation<float>();
  ok &= validation<emu::Half>();
  ok &= validation<emu::BF16>();
  int ran = 0, failed = 0;
  auto one = [&](int dtype, Case c) {
    c.label = describe(c);
    ++ran;
    failed += !run_any(dtype, c, rng);
  };
  // check_ops' fold shapes in every dtype (the two largest in f16 only: the emulation's time), the largest row,
  // idle warps in the last block, one output (7 of 8 warps idle), the smallest row (one chunk)
  for (int dtype : {1, 0, 2}) {
    const int kC = dtype == 0 ? 4 : 8;
    const int kmax = static_cast<int>((48 * 1024 - 256) / (dtype == 0 ? 4 : 2)) / 8 * 8;
    auto mk = [](int k, int n, bool qkv, bool relu, bool yb) {
      Case c;
      c.k = k;
      c.n = n;
      c.qkv = qkv;
      c.relu = relu;
      c.y_bias = yb;
      return c;
    };
    if (dtype == 1) {
      one(dtype, mk(2048, 8192, false, true, true));   // opt-1.3b fc1
      one(dtype, mk(2048, 2048, true, false, true));   // opt-1.3b q/k/v
      one(dtype, mk(4096, 4096, true, false, false));  // opt-6.7b q/k/v, no y bias
    } else {
      one(dtype, mk(2048, 600, true, false, true));
      one(dtype, mk(4096, 301, false, true, false));
    }
    one(dtype, mk(64, 8, false, false, true));      // one block: it is also the last
    one(dtype, mk(768, 3072, false, true, true));   // opt-125m fc1
    one(dtype, mk(256, 101, false, true, true));    // idle warps (51 of 56)
    one(dtype, mk(128, 100, true, false, true));    // q/k/v of 300 outputs: idle warps
    one(dtype, mk(kmax, 40, false, false, true));   // the largest row the launcher takes
    one(dtype, mk(kmax, 101, true, true, true));     // ... with q/k/v and idle warps
    one(dtype, mk(64, 1, false, true, true));       // one output
    one(dtype, mk(kC, 17, false, true, true));      // one chunk per row
    one(dtype, mk(768, 101, false, true, true));
    one(dtype, mk(4096, 101, false, true, true));
    Case big_mean = mk(4096, 100, true, false, true);
    big_mean.x_mean = 40.f;
    one(dtype, big_mean);
  }
  // random cases: f16 most
  static const int kKs[] = {1, 2, 8, 33, 64, 96, 128, 256, 768, 1024, 2048, 2560, 4096, 5120, -1};
  for (int i = 0; i < cases; ++i) {
    const int dtype = rng() % 4 == 0 ? 0 : rng() % 3 == 0 ? 2 : 1;
    const int kC = dtype == 0 ? 4 : 8;
    const int kmax = static_cast<int>((48 * 1024 - 256) / (dtype == 0 ? 4 : 2)) / kC * kC;
    Case c;
    const int kk = kKs[rng() % (sizeof kKs / sizeof kKs[0])];
    c.k = kk < 0 ? kmax : kk <= 33 ? kk * kC : kk;
    c.qkv = rng() % 3 == 0;
    static const int kNs[] = {1, 2, 3, 15, 16, 17, 31, 32, 33, 100, 101};
    c.n = rng() % 2 ? kNs[rng() % 11] : 1 + static_cast<int>(rng() % (c.qkv ? 300 : 900));
    if (c.k > 4096 && c.n > 200) c.n = 1 + c.n % 200;  // time
    c.relu = !c.qkv && rng() % 2;
    c.y_bias = rng() % 4 != 0;
    c.bias = rng() % 6 != 0;
    c.x_mean = rng() % 4 == 0 ? 40.f : 0.5f;
    c.cache_slots = 1 + static_cast<int>(rng() % 6);
    c.slot = static_cast<int>(rng() % (c.cache_slots + 2)) - 1;  // -1 and cache_slots: q only
    one(dtype, c);
  }
  ok &= chain<emu::Half>(rng, kPlant ? 40 : 150, 64);
  ok &= chain<emu::BF16>(rng, kPlant ? 20 : 50, 128);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %5s %7s %8s %5s %10s %10s %10s %10s %10s  %s\n", "dtype", "cases", "blocks", "max grid", "idle",
              "x vs ref", "norm vs ref", "prod vs ref", "norm vs un", "prod vs un", "norm vs add_layernorm: words differing, ulps (0/1/2/more), ulps of max(|v|, 1/16), max |diff| where > 2 ulps");
  for (int i = 0; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %5lld %7lld %8lld %5lld %10.2e %10.2e %10.2e %10.2e %10.2e  %lld of %lld words differ, max %lld "
                "ulps (%lld/%lld/%lld/%lld), %.2f, %.2g\n",
                i == 0 ? "f32" : i == 1 ? "f16" : "bf16", s.cases, s.blocks, s.max_grid, s.idle_warp_launches,
                s.max_x_ref, s.max_norm_ref, s.max_prod_ref, s.max_norm_unfused, s.max_prod_unfused,
                s.norm_words_differ, s.norm_words, s.max_ulps, s.ulp_hist[0], s.ulp_hist[1], s.ulp_hist[2],
                s.ulp_hist[3], s.max_scaled_ulps, s.max_abs_small);
  }
  long long bx = 0, bp = 0;
  for (const Stats& s : g_stats) bx += s.bits_x, bp += s.bits_prod;
  std::printf("bit-for-bit: new x = add_layernorm's in %lld cases, product = linear_small_vec_kernel's over norm_out "
              "in %lld; counter zero checked after %lld fused launches; grids run %u; largest block shared memory %zu "
              "bytes\n", bx, bp, g_counter_checks, emu::g_launch, emu::g_max_block_smem);
  std::printf("checker errors (races, uninitialised reads, bounds, visibility, barriers, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  const bool pass = ok && failed == 0 && g_log.errors == 0 && conv_ok;
  std::printf("%s: %d of %d cases failed (%.1f s)%s\n", pass ? "PASS" : "FAIL", failed, ran, secs,
              conv_ok ? "" : " (conversions differ from CUDA's)");
  return pass ? 0 : 1;
}
