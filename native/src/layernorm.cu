// Layer norm over each row: out = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance
// (as torch.nn.LayerNorm) and all statistics in float32.
// Variants (each for f32, f16, bf16 storage):
//   opt_layernorm_<dt>      out = LN(x)
//   opt_add_layernorm_<dt>  x += y + bias (the residual add of a Linear's output whose bias was left out
//                           of the GEMM; bias may be null), written back to x in the storage type, then
//                           out = LN(x): "bias, residual add, then the next layer norm" in one pass over
//                           the row. LN sees x as stored.
// CPU twin: CpuOps.layerNorm and CpuOps.addBiasLayerNorm.
//
// One block per row. Two passes for the statistics (the mean, then the mean of squared deviations:
// no cancellation as in E[x²] - E[x]², even for rows with a large mean), then one pass that writes.
// Each thread re-reads its own elements in every pass (cache hits), so rows of any width work without
// staging them in shared memory.
//
// The vector path (session 12, verified on an H100 in session 17; process-wide switch opt_set_vector_layernorm: off in
// the library, turned on by CudaOps unless -Dopt.cuda.vecNorm=false): the same arithmetic, element by element, for rows
// whose width is a multiple of a 16-byte chunk and at most kMaxChunksPerThread chunks per thread. Why: at batch 1 a
// decode step's layer norms are one block each (one row), and the kernel above is a chain of memory latencies: its
// loops run up to four iterations per thread whose loads cannot move past the previous iteration's store (x, y and out
// may alias), then re-read the row twice (H100, session 11: 7.3 µs per call under ncu, 11.5 % of an opt-1.3b batch-1
// step, for 4 KB of data). Here each thread loads its chunks of x, y, bias, gamma and beta with 16-byte loads all at
// once, keeps the row in registers through both statistics, and stores 16 bytes at a time: one round of memory latency
// instead of about nine. The stored residual is the same bits as the kernel above (the same expression per element);
// the statistics sum in another order (each thread's chunks, then block_sum), so LN's output may differ from the scalar
// kernel's by a rounding.
#include <atomic>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxThreads = 512;
constexpr int kMaxChunksPerThread = 4;  // rows up to 4 · 512 chunks: 16384 fp16 values (opt-175b: 12288)

std::atomic<int> g_vector_norm{0};

// Finishes one row given each thread's partial sum of the row's (stored) values: the block-wide mean,
// the variance, then out = normalised row * gamma + beta.
template <typename T>
__device__ void normalize_row(T* out, const T* row, const T* gamma, const T* beta, int cols, float eps,
                              float partial_sum) {
  const float mean = block_sum(partial_sum) / cols;
  float partial_sq = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = to_float(row[i]) - mean;
    partial_sq += d * d;
  }
  const float var = block_sum(partial_sq) / cols;
  const float inv_std = 1.f / sqrtf(var + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float normed = (to_float(row[i]) - mean) * inv_std;
    out[i] = from_float<T>(normed * to_float(gamma[i]) + to_float(beta[i]));
  }
}

// grid.x = rows; out (rows, cols), x (rows, cols), gamma (cols), beta (cols).
template <typename T>
__global__ void layernorm_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ gamma,
                                 const T* __restrict__ beta, int cols, float eps) {
  const size_t base = static_cast<size_t>(blockIdx.x) * cols;
  const T* row = x + base;
  float sum = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) sum += to_float(row[i]);
  normalize_row(out + base, row, gamma, beta, cols, eps, sum);
}

// grid.x = rows; x (rows, cols) in/out, y (rows, cols), bias (cols) or null, out (rows, cols), gamma (cols),
// beta (cols). Every thread later reads back only the elements it wrote itself, so no barrier is needed
// between the add and the statistics. No __restrict__ on x, y and out (chained launches, common.cuh): earlier
// kernels write them.
template <typename T>
__global__ void add_layernorm_kernel(T* x, const T* y, const T* __restrict__ bias, T* out,
                                     const T* __restrict__ gamma, const T* __restrict__ beta, int cols, float eps) {
  chain_start();  // a chained launch (decode steps): wait for the Linear that wrote y before touching anything
  chain_wait();
  const size_t base = static_cast<size_t>(blockIdx.x) * cols;
  T* row = x + base;
  const T* y_row = y + base;
  float sum = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    // y + bias first, as the unfused order (Linear with its bias, then the residual add) rounds it.
    const float y_biased = bias == nullptr ? to_float(y_row[i]) : to_float(y_row[i]) + to_float(bias[i]);
    const T stored = from_float<T>(to_float(row[i]) + y_biased);
    row[i] = stored;
    sum += to_float(stored);
  }
  normalize_row(out + base, row, gamma, beta, cols, eps, sum);
}

// The 8 (fp16/bf16) or 4 (f32) values of a 16-byte chunk, as float, and back with from_float's rounding.
template <typename T>
struct Vec {
  static constexpr int kSize = 16 / static_cast<int>(sizeof(T));
  // u by value: given a reference to the global word itself (reinterpret_cast<const uint4*>(x)[c]), nvcc loaded
  // only the elements, one ld.global.u16 / .f32 each (PTX of 8cd9d1a: 8 or 4 loads per chunk of x, y and bias); a
  // copy is one ld.global.v4
  __device__ static void widen(const uint4 u, float (&f)[kSize]) {
    opt::widen(u, f, static_cast<const T*>(nullptr));
  }
  __device__ static uint4 narrow(const float (&f)[kSize]) {
    uint4 u;
    T* e = reinterpret_cast<T*>(&u);
#pragma unroll
    for (int i = 0; i < kSize; ++i) e[i] = from_float<T>(f[i]);
    return u;
  }
};

// grid.x = rows, blockDim.x threads; thread t takes chunks t, t + blockDim.x, ... (at most C of them) of its row.
// kAdd: add_layernorm_kernel's function (x += y + bias, bias may be null, then out = LN(x)); else
// layernorm_kernel's (out = LN(x)). No __restrict__ on x, y and out (chained launches, common.cuh).
template <typename T, int C, bool kAdd>
// (minBlocks 1 spelled out: with the loads above as v4, ptxas gave <bf16, 2, true> 64 registers and an 8-byte stack
// frame with spills under __launch_bounds__(kMaxThreads) alone; with it, every variant has none)
__global__ void __launch_bounds__(kMaxThreads, 1)
    layernorm_vec_kernel(T* x, const T* y, const T* __restrict__ bias, T* out, const T* __restrict__ gamma,
                         const T* __restrict__ beta, int cols, float eps) {
  constexpr int kV = Vec<T>::kSize;
  chain_start();
  const int chunks = cols / kV;
  const size_t base = static_cast<size_t>(blockIdx.x) * chunks;
  uint4 g_raw[C], b_raw[C];
#pragma unroll
  for (int j = 0; j < C; ++j) {  // constants: loaded while a chained predecessor finishes
    const int c = threadIdx.x + j * blockDim.x;
    if (c < chunks) {
      g_raw[j] = reinterpret_cast<const uint4*>(gamma)[c];
      b_raw[j] = reinterpret_cast<const uint4*>(beta)[c];
    }
  }
  chain_wait();
  float v[C][kV];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < C; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c < chunks) {
      Vec<T>::widen(reinterpret_cast<const uint4*>(x)[base + c], v[j]);
      if (kAdd) {
        float yf[kV];
        Vec<T>::widen(reinterpret_cast<const uint4*>(y)[base + c], yf);
        float bf[kV];
        if (bias != nullptr) Vec<T>::widen(reinterpret_cast<const uint4*>(bias)[c], bf);
#pragma unroll
        for (int e = 0; e < kV; ++e) {
          // add_layernorm_kernel's expression: y + bias first, then the residual add, rounded to T
          const float y_biased = bias == nullptr ? yf[e] : yf[e] + bf[e];
          v[j][e] = to_float(from_float<T>(v[j][e] + y_biased));
        }
      }
#pragma unroll
      for (int e = 0; e < kV; ++e) sum += v[j][e];
    }
  }
  const float mean = block_sum(sum) / cols;
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < C; ++j) {
    if (threadIdx.x + j * blockDim.x < chunks) {
#pragma unroll
      for (int e = 0; e < kV; ++e) {
        const float d = v[j][e] - mean;
        sq += d * d;
      }
    }
  }
  const float var = block_sum(sq) / cols;
  const float inv_std = 1.f / sqrtf(var + eps);
#pragma unroll
  for (int j = 0; j < C; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c < chunks) {
      if (kAdd) reinterpret_cast<uint4*>(x)[base + c] = Vec<T>::narrow(v[j]);
      float gf[kV], bf[kV], o[kV];
      Vec<T>::widen(g_raw[j], gf);
      Vec<T>::widen(b_raw[j], bf);
#pragma unroll
      for (int e = 0; e < kV; ++e) o[e] = (v[j][e] - mean) * inv_std * gf[e] + bf[e];
      reinterpret_cast<uint4*>(out)[base + c] = Vec<T>::narrow(o);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The vector path when it is on and applies (width a multiple of the chunk, every pointer 16-byte aligned, at most
// kMaxChunksPerThread chunks per thread); returns false (nothing launched) otherwise, and *status the launch's.
template <typename T, bool kAdd>
bool launch_vec(T* x, const T* y, const T* bias, T* out, const T* gamma, const T* beta, int rows, int cols,
                float eps, cudaStream_t stream, int* status) {
  constexpr int kV = Vec<T>::kSize;
  if (g_vector_norm.load(std::memory_order_relaxed) == 0 || cols % kV != 0 || !aligned16(x) || !aligned16(out) ||
      !aligned16(gamma) || !aligned16(beta) || (kAdd && (!aligned16(y) || (bias != nullptr && !aligned16(bias))))) {
    return false;
  }
  const int chunks = cols / kV;
  const int per_thread = (chunks + kMaxThreads - 1) / kMaxThreads;
  if (per_thread > kMaxChunksPerThread) return false;
  const int threads = threads_for((chunks + per_thread - 1) / per_thread, kMaxThreads);
  count_launch(OPT_COUNT_VECTOR_LAYERNORM);
  switch (per_thread) {
    case 1:
      *status = launch_chained(layernorm_vec_kernel<T, 1, kAdd>, dim3(rows), dim3(threads), 0, stream, x, y, bias,
                               out, gamma, beta, cols, eps);
      break;
    case 2:
      *status = launch_chained(layernorm_vec_kernel<T, 2, kAdd>, dim3(rows), dim3(threads), 0, stream, x, y, bias,
                               out, gamma, beta, cols, eps);
      break;
    default:
      *status = launch_chained(layernorm_vec_kernel<T, kMaxChunksPerThread, kAdd>, dim3(rows), dim3(threads), 0,
                               stream, x, y, bias, out, gamma, beta, cols, eps);
  }
  return true;
}

template <typename T>
int launch_layernorm(T* out, const T* x, const T* gamma, const T* beta, int rows, int cols, float eps,
                     cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  int status = kSuccess;
  // (x is only read: the kernel's x pointer is not const because the add variant writes it)
  if (launch_vec<T, false>(const_cast<T*>(x), nullptr, nullptr, out, gamma, beta, rows, cols, eps, stream, &status)) {
    return status;
  }
  layernorm_kernel<T><<<rows, threads_for(cols, kMaxThreads), 0, stream>>>(out, x, gamma, beta, cols, eps);
  return launch_status();
}

template <typename T>
int launch_add_layernorm(T* x, const T* y, const T* bias, T* out, const T* gamma, const T* beta, int rows, int cols,
                         float eps, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  int status = kSuccess;
  if (launch_vec<T, true>(x, y, bias, out, gamma, beta, rows, cols, eps, stream, &status)) return status;
  return launch_chained(add_layernorm_kernel<T>, dim3(rows), dim3(threads_for(cols, kMaxThreads)), 0, stream, x, y,
                        bias, out, gamma, beta, cols, eps);
}

}  // namespace

extern "C" {

OPT_API int opt_set_vector_layernorm(int on) { return g_vector_norm.exchange(on != 0 ? 1 : 0); }

OPT_API int opt_vector_layernorm(void) { return g_vector_norm.load() != 0 ? 1 : 0; }

OPT_API int opt_layernorm_f32(float* out, const float* x, const float* gamma, const float* beta, int rows,
                              int cols, float eps, cudaStream_t stream) {
  return launch_layernorm(out, x, gamma, beta, rows, cols, eps, stream);
}

OPT_API int opt_layernorm_f16(uint16_t* out, const uint16_t* x, const uint16_t* gamma, const uint16_t* beta,
                              int rows, int cols, float eps, cudaStream_t stream) {
  return launch_layernorm(as_f16(out), as_f16(x), as_f16(gamma), as_f16(beta), rows, cols, eps, stream);
}

OPT_API int opt_layernorm_bf16(uint16_t* out, const uint16_t* x, const uint16_t* gamma, const uint16_t* beta,
                               int rows, int cols, float eps, cudaStream_t stream) {
  return launch_layernorm(as_bf16(out), as_bf16(x), as_bf16(gamma), as_bf16(beta), rows, cols, eps, stream);
}

OPT_API int opt_add_layernorm_f32(float* x, const float* y, const float* bias, float* out, const float* gamma,
                                  const float* beta, int rows, int cols, float eps, cudaStream_t stream) {
  return launch_add_layernorm(x, y, bias, out, gamma, beta, rows, cols, eps, stream);
}

OPT_API int opt_add_layernorm_f16(uint16_t* x, const uint16_t* y, const uint16_t* bias, uint16_t* out,
                                  const uint16_t* gamma, const uint16_t* beta, int rows, int cols, float eps,
                                  cudaStream_t stream) {
  return launch_add_layernorm(as_f16(x), as_f16(y), as_f16(bias), as_f16(out), as_f16(gamma), as_f16(beta), rows,
                              cols, eps, stream);
}

OPT_API int opt_add_layernorm_bf16(uint16_t* x, const uint16_t* y, const uint16_t* bias, uint16_t* out,
                                   const uint16_t* gamma, const uint16_t* beta, int rows, int cols, float eps,
                                   cudaStream_t stream) {
  return launch_add_layernorm(as_bf16(x), as_bf16(y), as_bf16(bias), as_bf16(out), as_bf16(gamma), as_bf16(beta),
                              rows, cols, eps, stream);
}

}  // extern "C"
