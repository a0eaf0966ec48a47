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
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxThreads = 512;

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

template <typename T>
int launch_layernorm(T* out, const T* x, const T* gamma, const T* beta, int rows, int cols, float eps,
                     cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  layernorm_kernel<T><<<rows, threads_for(cols, kMaxThreads), 0, stream>>>(out, x, gamma, beta, cols, eps);
  return launch_status();
}

template <typename T>
int launch_add_layernorm(T* x, const T* y, const T* bias, T* out, const T* gamma, const T* beta, int rows, int cols,
                         float eps, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  return launch_chained(add_layernorm_kernel<T>, dim3(rows), dim3(threads_for(cols, kMaxThreads)), 0, stream, x, y,
                        bias, out, gamma, beta, cols, eps);
}

}  // namespace

extern "C" {

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
