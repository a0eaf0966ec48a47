// Element-wise and row-copy ops: each element is loaded into float, combined in float and rounded back
// to the storage type once.
// Variants (each for f32, f16, bf16 storage):
//   opt_add_positions_<dt>  x[t, :] += table[positions[t] + 2, :]   learned positions, OPT's offset 2
//                                                                  (CPU twin: CpuOps.addPositions)
//   opt_residual_add_<dt>   x += y                                  (CPU twin: CpuOps.addInPlace)
//   opt_bias_act_<dt>       x[r, c] = act(x[r, c] + bias[c])        the epilogue of a cuBLAS GEMM: bias
//                                                                  and optional ReLU (CPU twin: the bias
//                                                                  and ReLU part of CpuOps.linear)
//   opt_gather_rows_<dt>    out[i, :] = x[rows[i], :]               (CPU twin: CpuOps.gatherRows)
//   opt_to_f32_<dt>         out = (float) x                         reads activations / logits back as
//                                                                  float32 (CPU twin: CpuOps.read)
// Index arrays are validated by the Java side; the kernels still never touch memory outside a tensor
// for a bad index (see each launcher in opt_kernels.h for what happens instead).
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kFlatThreads = 256;  // threads per block of the flat (grid-stride) kernels
constexpr int kRowThreads = 256;   // at most this many threads per block of the one-block-per-row kernels

// Blocks for a flat grid-stride launch over n elements; a grid stride keeps any n correct.
inline int flat_blocks(int n) {
  const long long blocks = (static_cast<long long>(n) + kFlatThreads - 1) / kFlatThreads;
  return blocks > 65536 ? 65536 : static_cast<int>(blocks);
}

// grid.x = n_tokens; x (n_tokens, dim) in/out, table (table_rows, dim), positions (n_tokens).
template <typename T>
__global__ void add_positions_kernel(T* __restrict__ x, const T* __restrict__ table,
                                     const int32_t* __restrict__ positions, int dim, int table_rows) {
  const int t = blockIdx.x;
  const long long row = static_cast<long long>(positions[t]) + 2;  // OPT's learned positions start at row 2
  if (row < 0 || row >= table_rows) return;                       // never read outside the table
  T* dst = x + static_cast<size_t>(t) * dim;
  const T* src = table + static_cast<size_t>(row) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = from_float<T>(to_float(dst[i]) + to_float(src[i]));
}

// x (n) in/out, y (n).
template <typename T>
__global__ void residual_add_kernel(T* __restrict__ x, const T* __restrict__ y, int n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<size_t>(n);
       i += stride) {
    x[i] = from_float<T>(to_float(x[i]) + to_float(y[i]));
  }
}

// grid.x = rows; x (rows, cols) in/out, bias (cols) or null.
template <typename T>
__global__ void bias_act_kernel(T* __restrict__ x, const T* __restrict__ bias, int cols, int relu) {
  T* row = x + static_cast<size_t>(blockIdx.x) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = to_float(row[c]);
    if (bias != nullptr) v += to_float(bias[c]);
    if (relu && v < 0.f) v = 0.f;  // NaN stays NaN, as in torch.relu and Java's Math.max
    row[c] = from_float<T>(v);
  }
}

// grid.x = n; out (n, cols), x (x_rows, cols), rows (n).
template <typename T>
__global__ void gather_rows_kernel(T* __restrict__ out, const T* __restrict__ x, const int32_t* __restrict__ rows,
                                   int cols, int x_rows) {
  const int i = blockIdx.x;
  const int r = rows[i];
  T* dst = out + static_cast<size_t>(i) * cols;
  if (r < 0 || r >= x_rows) {  // never read outside x: a bad row index gives a zero row
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = from_float<T>(0.f);
    return;
  }
  const T* src = x + static_cast<size_t>(r) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];
}

// out (n) float32, x (n).
template <typename T>
__global__ void to_f32_kernel(float* __restrict__ out, const T* __restrict__ x, int n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<size_t>(n);
       i += stride) {
    out[i] = to_float(x[i]);
  }
}

template <typename T>
int launch_add_positions(T* x, const T* table, const int32_t* positions, int n_tokens, int dim, int table_rows,
                         cudaStream_t stream) {
  if (n_tokens < 0 || dim < 0 || table_rows < 0) return kInvalidValue;
  if (n_tokens == 0 || dim == 0) return kSuccess;
  add_positions_kernel<T><<<n_tokens, threads_for(dim, kRowThreads), 0, stream>>>(x, table, positions, dim,
                                                                                  table_rows);
  return launch_status();
}

template <typename T>
int launch_residual_add(T* x, const T* y, int n, cudaStream_t stream) {
  if (n < 0) return kInvalidValue;
  if (n == 0) return kSuccess;
  residual_add_kernel<T><<<flat_blocks(n), kFlatThreads, 0, stream>>>(x, y, n);
  return launch_status();
}

template <typename T>
int launch_bias_act(T* x, const T* bias, int rows, int cols, int relu, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0 || (bias == nullptr && !relu)) return kSuccess;
  bias_act_kernel<T><<<rows, threads_for(cols, kRowThreads), 0, stream>>>(x, bias, cols, relu);
  return launch_status();
}

template <typename T>
int launch_gather_rows(T* out, const T* x, const int32_t* rows, int n, int cols, int x_rows, cudaStream_t stream) {
  if (n < 0 || cols < 0 || x_rows < 0) return kInvalidValue;
  if (n == 0 || cols == 0) return kSuccess;
  gather_rows_kernel<T><<<n, threads_for(cols, kRowThreads), 0, stream>>>(out, x, rows, cols, x_rows);
  return launch_status();
}

template <typename T>
int launch_to_f32(float* out, const T* x, int n, cudaStream_t stream) {
  if (n < 0) return kInvalidValue;
  if (n == 0) return kSuccess;
  to_f32_kernel<T><<<flat_blocks(n), kFlatThreads, 0, stream>>>(out, x, n);
  return launch_status();
}

}  // namespace

extern "C" {

// ---- add_positions ----

OPT_API int opt_add_positions_f32(float* x, const float* table, const int32_t* positions, int n_tokens, int dim,
                                  int table_rows, cudaStream_t stream) {
  return launch_add_positions(x, table, positions, n_tokens, dim, table_rows, stream);
}

OPT_API int opt_add_positions_f16(uint16_t* x, const uint16_t* table, const int32_t* positions, int n_tokens,
                                  int dim, int table_rows, cudaStream_t stream) {
  return launch_add_positions(as_f16(x), as_f16(table), positions, n_tokens, dim, table_rows, stream);
}

OPT_API int opt_add_positions_bf16(uint16_t* x, const uint16_t* table, const int32_t* positions, int n_tokens,
                                   int dim, int table_rows, cudaStream_t stream) {
  return launch_add_positions(as_bf16(x), as_bf16(table), positions, n_tokens, dim, table_rows, stream);
}

// ---- residual_add ----

OPT_API int opt_residual_add_f32(float* x, const float* y, int n, cudaStream_t stream) {
  return launch_residual_add(x, y, n, stream);
}

OPT_API int opt_residual_add_f16(uint16_t* x, const uint16_t* y, int n, cudaStream_t stream) {
  return launch_residual_add(as_f16(x), as_f16(y), n, stream);
}

OPT_API int opt_residual_add_bf16(uint16_t* x, const uint16_t* y, int n, cudaStream_t stream) {
  return launch_residual_add(as_bf16(x), as_bf16(y), n, stream);
}

// ---- bias_act ----

OPT_API int opt_bias_act_f32(float* x, const float* bias, int rows, int cols, int relu, cudaStream_t stream) {
  return launch_bias_act(x, bias, rows, cols, relu, stream);
}

OPT_API int opt_bias_act_f16(uint16_t* x, const uint16_t* bias, int rows, int cols, int relu, cudaStream_t stream) {
  return launch_bias_act(as_f16(x), as_f16(bias), rows, cols, relu, stream);
}

OPT_API int opt_bias_act_bf16(uint16_t* x, const uint16_t* bias, int rows, int cols, int relu,
                              cudaStream_t stream) {
  return launch_bias_act(as_bf16(x), as_bf16(bias), rows, cols, relu, stream);
}

// ---- gather_rows ----

OPT_API int opt_gather_rows_f32(float* out, const float* x, const int32_t* rows, int n, int cols, int x_rows,
                                cudaStream_t stream) {
  return launch_gather_rows(out, x, rows, n, cols, x_rows, stream);
}

OPT_API int opt_gather_rows_f16(uint16_t* out, const uint16_t* x, const int32_t* rows, int n, int cols, int x_rows,
                                cudaStream_t stream) {
  return launch_gather_rows(as_f16(out), as_f16(x), rows, n, cols, x_rows, stream);
}

OPT_API int opt_gather_rows_bf16(uint16_t* out, const uint16_t* x, const int32_t* rows, int n, int cols,
                                 int x_rows, cudaStream_t stream) {
  return launch_gather_rows(as_bf16(out), as_bf16(x), rows, n, cols, x_rows, stream);
}

// ---- to_f32 ----

OPT_API int opt_to_f32_f32(float* out, const float* x, int n, cudaStream_t stream) {
  return launch_to_f32(out, x, n, stream);
}

OPT_API int opt_to_f32_f16(float* out, const uint16_t* x, int n, cudaStream_t stream) {
  return launch_to_f32(out, as_f16(x), n, stream);
}

OPT_API int opt_to_f32_bf16(float* out, const uint16_t* x, int n, cudaStream_t stream) {
  return launch_to_f32(out, as_bf16(x), n, stream);
}

}  // extern "C"
