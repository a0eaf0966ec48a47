// check_ops: runs every launcher of native/include/opt_kernels.h on random inputs and compares it with a
// straightforward CPU reference written in this file (double precision, the meaning of CpuOps in
// java/src/main/java/io/github/optjava/backend/cpu/CpuOps.java). Prints the worst error per op × dtype
// and exits with status 1 when any is over its tolerance. Not shipped, not built by Maven.
//
//   nvcc -O2 -arch=sm_90 -I native/include native/dev/check_ops.cu native/src/*.cu -o check_ops && ./check_ops
//   ./check_ops tc gemv      only these groups (base split combine grouped vecnorm tiled tc fa gemv gemvsplit int8 tclinear logprob score sample chained edits toplp; see run_group)
//
// Error measure: max over elements of |gpu - ref| / max(1, |ref|); the reference sees the inputs exactly
// as stored (already rounded to the storage type), so the error is the kernel's own: float32 accumulation
// and the final rounding. A NaN where the reference has none (or the other way round) is an infinite error.
// Tolerances: f32 1e-4, f16 1e-2, bf16 4e-2 (those of the op parity tests in design.md, f32 loosened for
// float32-vs-double reference); index outputs (argmax) must match exactly.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "opt_kernels.h"
#include "sample_ref.h"  // ref_sample: backend/RowSampling transliterated (shared with emu_sample)

namespace {

// ---- plumbing ----------------------------------------------------------------------------------------

#define CHECK_CUDA(call)                                                                              \
  do {                                                                                                \
    const cudaError_t err_ = (call);                                                                  \
    if (err_ != cudaSuccess) {                                                                        \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
      std::exit(2);                                                                                   \
    }                                                                                                 \
  } while (0)

cudaStream_t g_stream = nullptr;

// A launcher's status must be 0, and so must the stream once the kernel has run (catches faults too).
void expect_ok(int status, const char* what) {
  if (status != 0) {
    std::fprintf(stderr, "%s: launcher returned %d (%s)\n", what, status,
                 cudaGetErrorString(static_cast<cudaError_t>(status)));
    std::exit(2);
  }
  const cudaError_t err = cudaStreamSynchronize(g_stream);
  if (err != cudaSuccess) {
    std::fprintf(stderr, "%s: kernel failed: %s\n", what, cudaGetErrorString(err));
    std::exit(2);
  }
}

template <typename T>
struct DevBuf {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) { CHECK_CUDA(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit DevBuf(const std::vector<T>& host) : DevBuf(host.size()) { upload(host); }
  ~DevBuf() { cudaFree(ptr); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& host) {
    CHECK_CUDA(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    CHECK_CUDA(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
};

// ---- storage types -------------------------------------------------------------------------------------

struct F32 {
  using W = float;
  static const char* name() { return "f32"; }
  static constexpr double tol = 1e-4;
  static float widen(W w) { return w; }
  static W narrow(float f) { return f; }
};

struct F16 {
  using W = uint16_t;
  static const char* name() { return "f16"; }
  static constexpr double tol = 1e-2;
  static float widen(W w) {
    __half_raw raw;
    raw.x = w;
    return __half2float(__half(raw));
  }
  static W narrow(float f) { return static_cast<__half_raw>(__float2half_rn(f)).x; }
};

struct BF16 {
  using W = uint16_t;
  static const char* name() { return "bf16"; }
  static constexpr double tol = 4e-2;
  static float widen(W w) {
    __nv_bfloat16_raw raw;
    raw.x = w;
    return __bfloat162float(__nv_bfloat16(raw));
  }
  static W narrow(float f) { return static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(f)).x; }
};

// The launchers of one storage type.
template <class D>
struct K;
template <>
struct K<F32> {
  static constexpr auto embedding = opt_embedding_f32;
  static constexpr auto layernorm = opt_layernorm_f32;
  static constexpr auto add_layernorm = opt_add_layernorm_f32;
  static constexpr auto add_positions = opt_add_positions_f32;
  static constexpr auto residual_add = opt_residual_add_f32;
  static constexpr auto bias_act = opt_bias_act_f32;
  static constexpr auto linear_small = opt_linear_small_f32;
  static constexpr auto linear_small_qkv = opt_linear_small_qkv_f32;
  static constexpr auto linear_int8_small = opt_linear_int8_small_f32;
  static constexpr auto linear_int8_small_qkv = opt_linear_int8_small_qkv_f32;
  static constexpr auto dequant_int8 = opt_dequant_int8_f32;
  static constexpr auto gather_rows = opt_gather_rows_f32;
  static constexpr auto to_f32 = opt_to_f32_f32;
  static constexpr auto kv_append = opt_kv_append_f32;
  static constexpr auto qkv_append = opt_qkv_append_f32;
  static constexpr auto kv_copy_blocks = opt_kv_copy_blocks_f32;
  static constexpr auto attention = opt_attention_f32;
  static constexpr auto attention_split = opt_attention_split_f32;
  static constexpr auto attention_tiled = opt_attention_tiled_f32;
  static constexpr bool has_tc = false;  // the tensor-core kernel has no float32 variant
  static constexpr auto attention_tc = opt_attention_tiled_f32;  // never called (has_tc): keeps the calls typed
  static constexpr auto attention_fa = opt_attention_tiled_f32;  // never called (has_tc): keeps the calls typed
};
template <>
struct K<F16> {
  static constexpr auto embedding = opt_embedding_f16;
  static constexpr auto layernorm = opt_layernorm_f16;
  static constexpr auto add_layernorm = opt_add_layernorm_f16;
  static constexpr auto add_positions = opt_add_positions_f16;
  static constexpr auto residual_add = opt_residual_add_f16;
  static constexpr auto bias_act = opt_bias_act_f16;
  static constexpr auto linear_small = opt_linear_small_f16;
  static constexpr auto linear_small_qkv = opt_linear_small_qkv_f16;
  static constexpr auto linear_int8_small = opt_linear_int8_small_f16;
  static constexpr auto linear_int8_small_qkv = opt_linear_int8_small_qkv_f16;
  static constexpr auto linear_tc = opt_linear_tc_f16;
  static constexpr auto linear_tc_qkv = opt_linear_tc_qkv_f16;
  static constexpr auto dequant_int8 = opt_dequant_int8_f16;
  static constexpr auto gather_rows = opt_gather_rows_f16;
  static constexpr auto to_f32 = opt_to_f32_f16;
  static constexpr auto kv_append = opt_kv_append_f16;
  static constexpr auto qkv_append = opt_qkv_append_f16;
  static constexpr auto kv_copy_blocks = opt_kv_copy_blocks_f16;
  static constexpr auto attention = opt_attention_f16;
  static constexpr auto attention_split = opt_attention_split_f16;
  static constexpr auto attention_tiled = opt_attention_tiled_f16;
  static constexpr bool has_tc = true;
  static constexpr auto attention_tc = opt_attention_tc_f16;
  static constexpr auto attention_fa = opt_attention_fa_f16;
};
template <>
struct K<BF16> {
  static constexpr auto embedding = opt_embedding_bf16;
  static constexpr auto layernorm = opt_layernorm_bf16;
  static constexpr auto add_layernorm = opt_add_layernorm_bf16;
  static constexpr auto add_positions = opt_add_positions_bf16;
  static constexpr auto residual_add = opt_residual_add_bf16;
  static constexpr auto bias_act = opt_bias_act_bf16;
  static constexpr auto linear_small = opt_linear_small_bf16;
  static constexpr auto linear_small_qkv = opt_linear_small_qkv_bf16;
  static constexpr auto linear_int8_small = opt_linear_int8_small_bf16;
  static constexpr auto linear_int8_small_qkv = opt_linear_int8_small_qkv_bf16;
  static constexpr auto linear_tc = opt_linear_tc_bf16;
  static constexpr auto linear_tc_qkv = opt_linear_tc_qkv_bf16;
  static constexpr auto dequant_int8 = opt_dequant_int8_bf16;
  static constexpr auto gather_rows = opt_gather_rows_bf16;
  static constexpr auto to_f32 = opt_to_f32_bf16;
  static constexpr auto kv_append = opt_kv_append_bf16;
  static constexpr auto qkv_append = opt_qkv_append_bf16;
  static constexpr auto kv_copy_blocks = opt_kv_copy_blocks_bf16;
  static constexpr auto attention = opt_attention_bf16;
  static constexpr auto attention_split = opt_attention_split_bf16;
  static constexpr auto attention_tiled = opt_attention_tiled_bf16;
  static constexpr bool has_tc = true;
  static constexpr auto attention_tc = opt_attention_tc_bf16;
  static constexpr auto attention_fa = opt_attention_fa_bf16;
};

// A host tensor of storage type D: the stored words and the float values they hold.
template <class D>
struct Host {
  std::vector<typename D::W> words;
  std::vector<float> values;
};

std::mt19937 g_rng(20240611u);

template <class D>
Host<D> random_tensor(size_t n, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  Host<D> h;
  h.words.resize(n);
  h.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    h.words[i] = D::narrow(dist(g_rng));
    h.values[i] = D::widen(h.words[i]);
  }
  return h;
}

template <class D>
std::vector<float> widen_all(const std::vector<typename D::W>& words) {
  std::vector<float> out(words.size());
  for (size_t i = 0; i < words.size(); ++i) out[i] = D::widen(words[i]);
  return out;
}

// Rounds a float to storage type D and back (what a kernel storing an intermediate in D sees again).
template <class D>
float round_to(float f) {
  return D::widen(D::narrow(f));
}

double max_error(const std::vector<float>& got, const std::vector<double>& ref) {
  if (got.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool got_nan = std::isnan(got[i]);
    const bool ref_nan = std::isnan(ref[i]);
    if (got_nan || ref_nan) {
      if (got_nan != ref_nan) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::fabs(got[i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
  }
  return worst;
}

int g_failures = 0;

void report(const std::string& op, const char* dtype, double err, double tol) {
  const bool ok = err <= tol;
  if (!ok) ++g_failures;
  std::printf("%-34s %-5s max_err %-10.3e tol %-8.1e %s\n", op.c_str(), dtype, err, tol, ok ? "ok" : "FAIL");
}

std::string shape(const char* op, int a, int b) { return std::string(op) + " " + std::to_string(a) + "x" + std::to_string(b); }

// ---- references (double precision, the meaning of CpuOps) ---------------------------------------------

std::vector<double> ref_layernorm(const std::vector<float>& x, const std::vector<float>& gamma,
                                  const std::vector<float>& beta, int rows, int cols, double eps) {
  std::vector<double> out(x.size());
  for (int r = 0; r < rows; ++r) {
    const float* row = &x[static_cast<size_t>(r) * cols];
    double mean = 0;
    for (int j = 0; j < cols; ++j) mean += row[j];
    mean /= cols;
    double var = 0;
    for (int j = 0; j < cols; ++j) var += (row[j] - mean) * (row[j] - mean);
    var /= cols;  // biased, as torch.nn.LayerNorm
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int j = 0; j < cols; ++j) out[static_cast<size_t>(r) * cols + j] = (row[j] - mean) * inv * gamma[j] + beta[j];
  }
  return out;
}

struct Batch {  // an AttentionBatch plus the cache geometry
  std::vector<int32_t> query_start, query_count, context_len;
  std::vector<std::vector<int32_t>> block_tables;
  int total_queries = 0;
  int block_size = 0;
  int num_blocks = 0;
};

// CpuOps.attention, in double.
std::vector<double> ref_attention(const std::vector<float>& q, const std::vector<float>& keys,
                                  const std::vector<float>& values, const Batch& b, int heads, int head_dim,
                                  double scale) {
  const int width = heads * head_dim;
  std::vector<double> out(static_cast<size_t>(b.total_queries) * width, 0.0);
  for (size_t s = 0; s < b.query_start.size(); ++s) {
    const int past = b.context_len[s] - b.query_count[s];
    for (int i = 0; i < b.query_count[s]; ++i) {
      const int row = b.query_start[s] + i;
      const int visible = past + i + 1;
      for (int h = 0; h < heads; ++h) {
        const size_t q_off = static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
        std::vector<double> scores(visible);
        std::vector<size_t> kv_off(visible);
        double max = -INFINITY;
        for (int p = 0; p < visible; ++p) {
          const size_t slot = static_cast<size_t>(b.block_tables[s][p / b.block_size]) * b.block_size + p % b.block_size;
          kv_off[p] = slot * width + static_cast<size_t>(h) * head_dim;
          double dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(q[q_off + d]) * keys[kv_off[p] + d];
          scores[p] = dot * scale;
          max = std::max(max, scores[p]);
        }
        double sum = 0;
        for (int p = 0; p < visible; ++p) {
          scores[p] = std::exp(scores[p] - max);
          sum += scores[p];
        }
        for (int d = 0; d < head_dim; ++d) {
          double acc = 0;
          for (int p = 0; p < visible; ++p) acc += scores[p] * values[kv_off[p] + d];
          out[q_off + d] = acc / sum;
        }
      }
    }
  }
  return out;
}

// engine/Sampler.argmax: first index of the maximum, the first NaN wins.
int ref_argmax(const float* row, int vocab) {
  int best = 0;
  for (int i = 0; i < vocab; ++i) {
    if (std::isnan(row[i])) return i;
    if (row[i] > row[best]) best = i;
  }
  return best;
}

// ---- checks, one per op family ------------------------------------------------------------------------

template <class D>
void check_embedding() {
  const int vocab = 100, dim = 72;
  const std::vector<int32_t> ids = {5, 0, 99, 42, -1, 100, 5};  // the last-but-one two are outside the table
  const int n = static_cast<int>(ids.size());
  const Host<D> table = random_tensor<D>(static_cast<size_t>(vocab) * dim, 0.f, 1.f);
  DevBuf<typename D::W> d_table(table.words), d_out(static_cast<size_t>(n) * dim);
  DevBuf<int32_t> d_ids(ids);
  expect_ok(K<D>::embedding(d_out.ptr, d_table.ptr, d_ids.ptr, n, dim, vocab, g_stream), "embedding");
  std::vector<double> ref(static_cast<size_t>(n) * dim, 0.0);
  for (int t = 0; t < n; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab) continue;
    for (int j = 0; j < dim; ++j) ref[static_cast<size_t>(t) * dim + j] = table.values[static_cast<size_t>(ids[t]) * dim + j];
  }
  report(shape("embedding", n, dim), D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

template <class D>
void check_layernorm(int rows, int cols) {
  const float eps = 1e-5f;
  // A large mean relative to the spread: a one-pass E[x²] - E[x]² variance would lose digits here.
  const Host<D> x = random_tensor<D>(static_cast<size_t>(rows) * cols, 3.f, 2.f);
  const Host<D> gamma = random_tensor<D>(cols, 1.f, 0.1f);
  const Host<D> beta = random_tensor<D>(cols, 0.f, 0.1f);
  DevBuf<typename D::W> d_x(x.words), d_g(gamma.words), d_b(beta.words), d_out(x.words.size());
  expect_ok(K<D>::layernorm(d_out.ptr, d_x.ptr, d_g.ptr, d_b.ptr, rows, cols, eps, g_stream), "layernorm");
  const std::vector<double> ref = ref_layernorm(x.values, gamma.values, beta.values, rows, cols, eps);
  report(shape("layernorm", rows, cols), D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

template <class D>
void check_add_layernorm(int rows, int cols, bool with_bias) {
  const float eps = 1e-5f;
  const Host<D> x = random_tensor<D>(static_cast<size_t>(rows) * cols, 1.f, 2.f);
  const Host<D> y = random_tensor<D>(x.words.size(), 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(cols, 0.f, 0.5f);
  const Host<D> gamma = random_tensor<D>(cols, 1.f, 0.1f);
  const Host<D> beta = random_tensor<D>(cols, 0.f, 0.1f);
  DevBuf<typename D::W> d_x(x.words), d_y(y.words), d_bias(bias.words), d_g(gamma.words), d_b(beta.words),
      d_out(x.words.size());
  expect_ok(K<D>::add_layernorm(d_x.ptr, d_y.ptr, with_bias ? d_bias.ptr : nullptr, d_out.ptr, d_g.ptr, d_b.ptr,
                                rows, cols, eps, g_stream),
            "add_layernorm");
  // The sum is stored in D first; the norm is of the stored sum.
  std::vector<float> sum(x.values.size());
  std::vector<double> sum_ref(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) {
    const float b = with_bias ? bias.values[i % cols] : 0.f;
    sum[i] = round_to<D>(x.values[i] + (y.values[i] + b));
    sum_ref[i] = sum[i];
  }
  const std::string name = with_bias ? "add_layernorm+bias" : "add_layernorm";
  report(shape((name + " (x += y)").c_str(), rows, cols), D::name(), max_error(widen_all<D>(d_x.download()), sum_ref), D::tol);
  const std::vector<double> ref = ref_layernorm(sum, gamma.values, beta.values, rows, cols, eps);
  report(shape((name + " (out)").c_str(), rows, cols), D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

template <class D>
void check_add_positions() {
  const int table_rows = 20, dim = 96;  // 18 positions + OPT's offset of 2
  const std::vector<int32_t> positions = {0, 1, 2, 17, 5, 18, -3};  // 18 and -3 are outside: left unchanged
  const int n = static_cast<int>(positions.size());
  const Host<D> x = random_tensor<D>(static_cast<size_t>(n) * dim, 0.f, 1.f);
  const Host<D> table = random_tensor<D>(static_cast<size_t>(table_rows) * dim, 0.f, 1.f);
  DevBuf<typename D::W> d_x(x.words), d_table(table.words);
  DevBuf<int32_t> d_pos(positions);
  expect_ok(K<D>::add_positions(d_x.ptr, d_table.ptr, d_pos.ptr, n, dim, table_rows, g_stream), "add_positions");
  std::vector<double> ref(x.values.begin(), x.values.end());
  for (int t = 0; t < n; ++t) {
    const int row = positions[t] + 2;
    if (row < 0 || row >= table_rows) continue;
    for (int j = 0; j < dim; ++j) ref[static_cast<size_t>(t) * dim + j] += table.values[static_cast<size_t>(row) * dim + j];
  }
  report(shape("add_positions", n, dim), D::name(), max_error(widen_all<D>(d_x.download()), ref), D::tol);
}

template <class D>
void check_residual_add() {
  const int n = 1037;
  const Host<D> x = random_tensor<D>(n, 0.f, 1.f);
  const Host<D> y = random_tensor<D>(n, 0.f, 1.f);
  DevBuf<typename D::W> d_x(x.words), d_y(y.words);
  expect_ok(K<D>::residual_add(d_x.ptr, d_y.ptr, n, g_stream), "residual_add");
  std::vector<double> ref(n);
  for (int i = 0; i < n; ++i) ref[i] = static_cast<double>(x.values[i]) + y.values[i];
  report("residual_add " + std::to_string(n), D::name(), max_error(widen_all<D>(d_x.download()), ref), D::tol);
}

template <class D>
void check_bias_act(bool with_bias, bool relu) {
  const int rows = 6, cols = 300;
  const Host<D> x = random_tensor<D>(static_cast<size_t>(rows) * cols, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(cols, 0.f, 1.f);
  DevBuf<typename D::W> d_x(x.words), d_bias(bias.words);
  expect_ok(K<D>::bias_act(d_x.ptr, with_bias ? d_bias.ptr : nullptr, rows, cols, relu ? 1 : 0, g_stream),
            "bias_act");
  std::vector<double> ref(x.values.size());
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      double v = x.values[static_cast<size_t>(r) * cols + c] + (with_bias ? bias.values[c] : 0.f);
      ref[static_cast<size_t>(r) * cols + c] = relu ? std::max(v, 0.0) : v;
    }
  }
  const char* op = with_bias ? (relu ? "bias_act (bias, relu)" : "bias_act (bias)") : "bias_act (relu, no bias)";
  report(shape(op, rows, cols), D::name(), max_error(widen_all<D>(d_x.download()), ref), D::tol);
}

// opt_linear_small: out = act(x · wᵀ + bias) for 1–8 rows. offset_x shifts x by one element so the kernel
// must take its one-element path (x no longer 16-byte aligned); an odd k does the same. split: warps per group of
// outputs (1, 2, 4; 0 = auto). The output is poisoned (NaN) before the launch, so an output nobody stores fails;
// with split != 1 a second launch must give the same bits (a fixed sum order; a race would move them).
template <class D>
void check_linear_small(int m, int k, int n, bool with_bias, bool relu, int offset_x, int split = 1) {
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k + offset_x, 0.f, 1.f);
  const Host<D> w = random_tensor<D>(static_cast<size_t>(n) * k, 0.f, 1.f / std::sqrt(static_cast<float>(k)));
  const Host<D> bias = random_tensor<D>(n, 0.f, 1.f);
  DevBuf<typename D::W> d_x(x.words), d_w(w.words), d_bias(bias.words), d_out(static_cast<size_t>(m) * n);
  CHECK_CUDA(cudaMemsetAsync(d_out.ptr, 0xff, d_out.n * sizeof(typename D::W), g_stream));
  expect_ok(K<D>::linear_small(d_out.ptr, d_x.ptr + offset_x, d_w.ptr, with_bias ? d_bias.ptr : nullptr, m, k, n,
                               relu ? 1 : 0, split, g_stream),
            "linear_small");
  if (split != 1) {
    DevBuf<typename D::W> d_again(static_cast<size_t>(m) * n);
    expect_ok(K<D>::linear_small(d_again.ptr, d_x.ptr + offset_x, d_w.ptr, with_bias ? d_bias.ptr : nullptr, m, k, n,
                                 relu ? 1 : 0, split, g_stream),
              "linear_small (again)");
    if (d_again.download() != d_out.download()) {
      report("linear_small split " + std::to_string(split) + ": two launches differ", D::name(), 1.0, 0.0);
    }
  }
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double v = with_bias ? bias.values[j] : 0.0;
      for (int e = 0; e < k; ++e) {
        v += static_cast<double>(x.values[offset_x + static_cast<size_t>(i) * k + e]) * w.values[static_cast<size_t>(j) * k + e];
      }
      ref[static_cast<size_t>(i) * n + j] = relu ? std::max(v, 0.0) : v;
    }
  }
  std::string op = "linear_small " + std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
  if (with_bias) op += " b";
  if (relu) op += " relu";
  if (offset_x) op += " unaligned";
  if (split != 1) op += " split " + std::to_string(split);
  report(op, D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

// The reference of opt_qkv_append's epilogue: value(i, j) is output j of row i (its bias added); q rows go to ref_q,
// k and v to the cache rows of the valid slots (the other rows keep what ref_k / ref_v hold).
template <class Value>
void qkv_reference(int m, int width, const std::vector<int32_t>& slots, Value value, std::vector<double>& ref_q,
                   std::vector<double>& ref_k, std::vector<double>& ref_v) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < 3 * width; ++j) {
      const double v = value(i, j);
      const int part = j / width, col = j % width;
      if (part == 0) {
        ref_q[static_cast<size_t>(i) * width + col] = v;
      } else if (slots[i] >= 0) {
        (part == 1 ? ref_k : ref_v)[static_cast<size_t>(slots[i]) * width + col] = v;
      }
    }
  }
}

// opt_linear_small_qkv: the q/k/v product with opt_qkv_append's epilogue. With m > 1, row m - 1 has slot -1
// (q only; at m = 1 the row is cached: batch-1 decode); the cache's other rows must keep what they held.
template <class D>
void check_linear_small_qkv(int m, int k, int width, bool with_bias, int split = 1) {
  const int cache_slots = 3 * m + 5;
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k, 0.f, 1.f);
  const Host<D> w = random_tensor<D>(static_cast<size_t>(3) * width * k, 0.f, 1.f / std::sqrt(static_cast<float>(k)));
  const Host<D> bias = random_tensor<D>(static_cast<size_t>(3) * width, 0.f, 1.f);
  const Host<D> cache_k = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> cache_v = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  std::vector<int32_t> slots(m);
  for (int i = 0; i < m; ++i) slots[i] = 3 * i + 1;
  if (m > 1) slots[m - 1] = -1;
  DevBuf<typename D::W> d_x(x.words), d_w(w.words), d_bias(bias.words), d_q(static_cast<size_t>(m) * width),
      d_k(cache_k.words), d_v(cache_v.words);
  DevBuf<int32_t> d_slots(slots);
  CHECK_CUDA(cudaMemsetAsync(d_q.ptr, 0xff, d_q.n * sizeof(typename D::W), g_stream));
  expect_ok(K<D>::linear_small_qkv(d_q.ptr, d_k.ptr, d_v.ptr, d_x.ptr, d_w.ptr, with_bias ? d_bias.ptr : nullptr,
                                   d_slots.ptr, m, k, width, cache_slots, split, g_stream),
            "linear_small_qkv");
  std::vector<double> ref_q(static_cast<size_t>(m) * width), ref_k(cache_k.values.begin(), cache_k.values.end()),
      ref_v(cache_v.values.begin(), cache_v.values.end());
  qkv_reference(m, width, slots, [&](int i, int j) {
    double v = with_bias ? bias.values[j] : 0.0;
    for (int e = 0; e < k; ++e) {
      v += static_cast<double>(x.values[static_cast<size_t>(i) * k + e]) * w.values[static_cast<size_t>(j) * k + e];
    }
    return v;
  }, ref_q, ref_k, ref_v);
  const double err = std::max({max_error(widen_all<D>(d_q.download()), ref_q),
                               max_error(widen_all<D>(d_k.download()), ref_k),
                               max_error(widen_all<D>(d_v.download()), ref_v)});
  report("linear_small_qkv " + std::to_string(m) + "x" + std::to_string(k) + " width " + std::to_string(width) +
             (with_bias ? " b" : "") + (split != 1 ? " split " + std::to_string(split) : ""),
         D::name(), err, D::tol);
}

// Random int8 weight rows as Int8Rows makes them (values in [-127, 127]) and positive row scales.
struct Int8Weights {
  std::vector<int8_t> q;
  std::vector<float> scales;
};
Int8Weights random_int8(int n, int k) {
  std::uniform_int_distribution<int> value(-127, 127);
  std::uniform_real_distribution<float> scale(0.5f, 1.5f);
  Int8Weights w{std::vector<int8_t>(static_cast<size_t>(n) * k), std::vector<float>(n)};
  for (auto& v : w.q) v = static_cast<int8_t>(value(g_rng));
  for (auto& s : w.scales) s = scale(g_rng) / (127.f * std::sqrt(static_cast<float>(k)));
  return w;
}

// opt_linear_int8_small (session 11, not yet run on a GPU): out = act(s ⊙ (x · qᵀ) + bias) against a double
// reference; the output poisoned first, a second launch the same bits; then the q/k/v form and opt_dequant_int8.
template <class D>
void check_linear_int8(int m, int k, int n, bool with_bias, bool relu, int split) {
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(n, 0.f, 1.f);
  const Int8Weights w = random_int8(n, k);
  DevBuf<typename D::W> d_x(x.words), d_bias(bias.words), d_out(static_cast<size_t>(m) * n),
      d_again(static_cast<size_t>(m) * n);
  DevBuf<int8_t> d_q(w.q);
  DevBuf<float> d_s(w.scales);
  CHECK_CUDA(cudaMemsetAsync(d_out.ptr, 0xff, d_out.n * sizeof(typename D::W), g_stream));
  for (DevBuf<typename D::W>* o : {&d_out, &d_again}) {
    expect_ok(K<D>::linear_int8_small(o->ptr, d_x.ptr, d_q.ptr, d_s.ptr, with_bias ? d_bias.ptr : nullptr, m, k, n,
                                      relu ? 1 : 0, split, g_stream),
              "linear_int8_small");
  }
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double v = 0.0;
      for (int e = 0; e < k; ++e) {
        v += static_cast<double>(x.values[static_cast<size_t>(i) * k + e]) * w.q[static_cast<size_t>(j) * k + e];
      }
      v = v * w.scales[j] + (with_bias ? bias.values[j] : 0.0);
      ref[static_cast<size_t>(i) * n + j] = relu ? std::max(v, 0.0) : v;
    }
  }
  std::string op = "linear_int8_small " + std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n) +
                   (with_bias ? " b" : "") + (relu ? " relu" : "") + " split " + std::to_string(split);
  report(op, D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
  if (d_again.download() != d_out.download()) report(op + ": two launches differ", D::name(), 1.0, 0.0);
}

template <class D>
void check_linear_int8_qkv(int m, int k, int width, int split) {
  const int cache_slots = 3 * m + 5;
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(static_cast<size_t>(3) * width, 0.f, 1.f);
  const Host<D> cache_k = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> cache_v = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Int8Weights w = random_int8(3 * width, k);
  std::vector<int32_t> slots(m);
  for (int i = 0; i < m; ++i) slots[i] = 3 * i + 1;
  if (m > 1) slots[m - 1] = -1;
  DevBuf<typename D::W> d_x(x.words), d_bias(bias.words), d_q(static_cast<size_t>(m) * width), d_k(cache_k.words),
      d_v(cache_v.words);
  DevBuf<int8_t> d_w(w.q);
  DevBuf<float> d_s(w.scales);
  DevBuf<int32_t> d_slots(slots);
  CHECK_CUDA(cudaMemsetAsync(d_q.ptr, 0xff, d_q.n * sizeof(typename D::W), g_stream));
  expect_ok(K<D>::linear_int8_small_qkv(d_q.ptr, d_k.ptr, d_v.ptr, d_x.ptr, d_w.ptr, d_s.ptr, d_bias.ptr, d_slots.ptr,
                                        m, k, width, cache_slots, split, g_stream),
            "linear_int8_small_qkv");
  std::vector<double> ref_q(static_cast<size_t>(m) * width), ref_k(cache_k.values.begin(), cache_k.values.end()),
      ref_v(cache_v.values.begin(), cache_v.values.end());
  qkv_reference(m, width, slots, [&](int i, int j) {
    double v = 0.0;
    for (int e = 0; e < k; ++e) {
      v += static_cast<double>(x.values[static_cast<size_t>(i) * k + e]) * w.q[static_cast<size_t>(j) * k + e];
    }
    return v * w.scales[j] + bias.values[j];
  }, ref_q, ref_k, ref_v);
  const double err = std::max({max_error(widen_all<D>(d_q.download()), ref_q),
                               max_error(widen_all<D>(d_k.download()), ref_k),
                               max_error(widen_all<D>(d_v.download()), ref_v)});
  report("linear_int8_small_qkv " + std::to_string(m) + "x" + std::to_string(k) + " width " + std::to_string(width) +
             " split " + std::to_string(split),
         D::name(), err, D::tol);
}

// opt_linear_tc_<dt> and opt_linear_int8_tc_f16 (session 22, not yet run on a GPU): the tensor-core Linear for 1–32
// rows against a double reference, 16-bit weights (D) or int8 ones (fp16 activations); the output poisoned first, a
// second launch the same bits (split > 1 adds the warps' sums in a fixed order).
template <class D>
void check_linear_tc(int m, int k, int n, bool int8, bool with_bias, bool relu, int split) {
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(n, 0.f, 1.f);
  const Host<D> w = random_tensor<D>(int8 ? 1 : static_cast<size_t>(n) * k, 0.f, 1.f / std::sqrt(static_cast<float>(k)));
  const Int8Weights w8 = random_int8(int8 ? n : 1, int8 ? k : 1);
  DevBuf<typename D::W> d_x(x.words), d_w(w.words), d_bias(bias.words), d_out(static_cast<size_t>(m) * n),
      d_again(static_cast<size_t>(m) * n);
  DevBuf<int8_t> d_q(w8.q);
  DevBuf<float> d_s(w8.scales);
  CHECK_CUDA(cudaMemsetAsync(d_out.ptr, 0xff, d_out.n * sizeof(typename D::W), g_stream));
  for (DevBuf<typename D::W>* o : {&d_out, &d_again}) {
    if (int8) {
      expect_ok(opt_linear_int8_tc_f16(o->ptr, d_x.ptr, d_q.ptr, d_s.ptr, with_bias ? d_bias.ptr : nullptr, m, k, n,
                                       relu ? 1 : 0, split, g_stream),
                "linear_int8_tc");
    } else {
      expect_ok(K<D>::linear_tc(o->ptr, d_x.ptr, d_w.ptr, with_bias ? d_bias.ptr : nullptr, m, k, n, relu ? 1 : 0,
                                split, g_stream),
                "linear_tc");
    }
  }
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double v = 0.0;
      for (int e = 0; e < k; ++e) {
        const size_t we = static_cast<size_t>(j) * k + e;
        v += static_cast<double>(x.values[static_cast<size_t>(i) * k + e]) * (int8 ? w8.q[we] : w.values[we]);
      }
      v = (int8 ? v * w8.scales[j] : v) + (with_bias ? bias.values[j] : 0.0);
      ref[static_cast<size_t>(i) * n + j] = relu ? std::max(v, 0.0) : v;
    }
  }
  std::string op = std::string(int8 ? "linear_int8_tc " : "linear_tc ") + std::to_string(m) + "x" +
                   std::to_string(k) + "x" + std::to_string(n) + (with_bias ? " b" : "") + (relu ? " relu" : "") +
                   " split " + std::to_string(split);
  report(op, D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
  if (d_again.download() != d_out.download()) report(op + ": two launches differ", D::name(), 1.0, 0.0);
}

// The q/k/v forms: opt_linear_small_qkv's epilogue (row m - 1 has slot -1 when m > 1; the cache's other rows keep
// what they held).
template <class D>
void check_linear_tc_qkv(int m, int k, int width, bool int8, int split) {
  const int cache_slots = 3 * m + 5;
  const Host<D> x = random_tensor<D>(static_cast<size_t>(m) * k, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(static_cast<size_t>(3) * width, 0.f, 1.f);
  const Host<D> cache_k = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> cache_v = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> w = random_tensor<D>(int8 ? 1 : static_cast<size_t>(3) * width * k, 0.f,
                                     1.f / std::sqrt(static_cast<float>(k)));
  const Int8Weights w8 = random_int8(int8 ? 3 * width : 1, int8 ? k : 1);
  std::vector<int32_t> slots(m);
  for (int i = 0; i < m; ++i) slots[i] = 3 * i + 1;
  if (m > 1) slots[m - 1] = -1;
  DevBuf<typename D::W> d_x(x.words), d_w(w.words), d_bias(bias.words), d_q(static_cast<size_t>(m) * width),
      d_k(cache_k.words), d_v(cache_v.words);
  DevBuf<int8_t> d_q8(w8.q);
  DevBuf<float> d_s(w8.scales);
  DevBuf<int32_t> d_slots(slots);
  CHECK_CUDA(cudaMemsetAsync(d_q.ptr, 0xff, d_q.n * sizeof(typename D::W), g_stream));
  if (int8) {
    expect_ok(opt_linear_int8_tc_qkv_f16(d_q.ptr, d_k.ptr, d_v.ptr, d_x.ptr, d_q8.ptr, d_s.ptr, d_bias.ptr,
                                         d_slots.ptr, m, k, width, cache_slots, split, g_stream),
              "linear_int8_tc_qkv");
  } else {
    expect_ok(K<D>::linear_tc_qkv(d_q.ptr, d_k.ptr, d_v.ptr, d_x.ptr, d_w.ptr, d_bias.ptr, d_slots.ptr, m, k, width,
                                  cache_slots, split, g_stream),
              "linear_tc_qkv");
  }
  std::vector<double> ref_q(static_cast<size_t>(m) * width), ref_k(cache_k.values.begin(), cache_k.values.end()),
      ref_v(cache_v.values.begin(), cache_v.values.end());
  qkv_reference(m, width, slots, [&](int i, int j) {
    double v = 0.0;
    for (int e = 0; e < k; ++e) {
      const size_t we = static_cast<size_t>(j) * k + e;
      v += static_cast<double>(x.values[static_cast<size_t>(i) * k + e]) * (int8 ? w8.q[we] : w.values[we]);
    }
    return (int8 ? v * w8.scales[j] : v) + bias.values[j];
  }, ref_q, ref_k, ref_v);
  const double err = std::max({max_error(widen_all<D>(d_q.download()), ref_q),
                               max_error(widen_all<D>(d_k.download()), ref_k),
                               max_error(widen_all<D>(d_v.download()), ref_v)});
  report(std::string(int8 ? "linear_int8_tc_qkv " : "linear_tc_qkv ") + std::to_string(m) + "x" + std::to_string(k) +
             " width " + std::to_string(width) + " split " + std::to_string(split),
         D::name(), err, D::tol);
}

// Group tclinear: row counts around the tile edges (1, 2, 8, 9, 16, 17, 31, 32), OPT-like and odd shapes (outputs not
// a multiple of 32: the last group's tail; k of one or two steps: warps of a group with no steps), every split, then
// the refusals (the caller takes another path on them).
template <class D>
void check_linear_tc_all(bool int8) {
  const int step = int8 ? 64 : 32;
  for (int split : {1, 2, 4, 8, 0}) {
    check_linear_tc<D>(1, 2048, 2048, int8, true, false, split);   // opt-1.3b's out_proj at batch 1
    check_linear_tc<D>(8, 2048, 2048, int8, true, false, split);
    check_linear_tc<D>(32, 8192, 256, int8, true, true, split);    // fc2-like: long rows, few outputs
    check_linear_tc<D>(17, 768, 301, int8, true, true, split);     // 301 outputs: a partial group of 32
    check_linear_tc<D>(2, step, 48, int8, false, true, split);     // one step: most warps of a group idle
    check_linear_tc<D>(9, 2 * step, 33, int8, true, false, split);
    check_linear_tc_qkv<D>(1, 2048, 256, int8, split);
    check_linear_tc_qkv<D>(5, 2 * step, 42, int8, split);
  }
  for (int m : {1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32}) check_linear_tc<D>(m, 1024, 160, int8, true, m % 2 == 0, 0);
  check_linear_tc_qkv<D>(32, 1024, 128, int8, 0);
  int wrong = 0;
  auto refused = [&](int status, const char* what) {
    if (status != 1) {  // cudaErrorInvalidValue
      std::fprintf(stderr, "linear_tc refusal (%s): status %d\n", what, status);
      ++wrong;
    }
  };
  DevBuf<typename D::W> d_x(static_cast<size_t>(33) * 4 * step + 8), d_w(static_cast<size_t>(64) * 4 * step),
      d_out(static_cast<size_t>(33) * 64);
  DevBuf<int8_t> d_q(static_cast<size_t>(64) * 4 * step);
  DevBuf<float> d_s(64);
  auto run = [&](const typename D::W* x, int m, int k, int split, bool scales) {
    return int8 ? opt_linear_int8_tc_f16(d_out.ptr, x, d_q.ptr, scales ? d_s.ptr : nullptr, nullptr, m, k, 64, 0,
                                         split, g_stream)
                : K<D>::linear_tc(d_out.ptr, x, d_w.ptr, nullptr, m, k, 64, 0, split, g_stream);
  };
  refused(run(d_x.ptr, 33, 4 * step, 0, true), "33 rows");
  refused(run(d_x.ptr, 4, 4 * step - 16, 0, true), "k not a whole step");
  refused(run(d_x.ptr + 1, 4, 4 * step, 0, true), "x not 16-byte aligned");
  refused(run(d_x.ptr, 4, 4 * step, 3, true), "split 3");
  if (int8) refused(run(d_x.ptr, 4, 4 * step, 0, false), "int8 without scales");
  report(std::string(int8 ? "linear_int8_tc" : "linear_tc") + " refusals (wrong statuses)", D::name(), wrong, 0.0);
}

template <class D>
void check_dequant_int8(int rows, int cols) {
  const Int8Weights w = random_int8(rows, cols);
  DevBuf<int8_t> d_q(w.q);
  DevBuf<float> d_s(w.scales);
  DevBuf<typename D::W> d_out(static_cast<size_t>(rows) * cols);
  CHECK_CUDA(cudaMemsetAsync(d_out.ptr, 0xff, d_out.n * sizeof(typename D::W), g_stream));
  expect_ok(K<D>::dequant_int8(d_out.ptr, d_q.ptr, d_s.ptr, rows, cols, g_stream), "dequant_int8");
  const std::vector<typename D::W> got = d_out.download();
  double wrong = 0;  // the float product rounded once to the dtype: exactly what the host rounding gives
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != D::narrow(static_cast<float>(w.q[i]) * w.scales[i / cols])) ++wrong;
  }
  report("dequant_int8 " + std::to_string(rows) + "x" + std::to_string(cols) + " (elements not bit-equal)",
         D::name(), wrong, 0.0);
}

template <class D>
void check_int8_all() {
  for (int split : {1, 2, 4, 0}) {
    check_linear_int8<D>(1, 2048, 2048, true, false, split);  // opt-1.3b's out_proj
    check_linear_int8<D>(1, 8192, 256, true, true, split);    // fc2-like: long rows, few outputs
    check_linear_int8<D>(2, 768, 64, false, true, split);
    check_linear_int8<D>(3, 1024, 130, true, true, split);    // R = 4; the last group's tail outputs
    check_linear_int8<D>(8, 528, 9, true, false, split);      // 33 chunks: the round loop's tail
    check_linear_int8<D>(1, 16, 301, true, false, split);     // one chunk: only the first warp has any
    check_linear_int8_qkv<D>(1, 2048, 256, split);
    check_linear_int8_qkv<D>(3, 128, 42, split);
  }
  check_dequant_int8<D>(301, 528);
  check_dequant_int8<D>(1, 16);
}

template <class D>
void check_gather_rows() {
  const int x_rows = 10, cols = 130;
  const std::vector<int32_t> rows = {3, 0, 9, 3, -1, 10};  // the last two are outside x: zero rows
  const int n = static_cast<int>(rows.size());
  const Host<D> x = random_tensor<D>(static_cast<size_t>(x_rows) * cols, 0.f, 1.f);
  DevBuf<typename D::W> d_x(x.words), d_out(static_cast<size_t>(n) * cols);
  DevBuf<int32_t> d_rows(rows);
  expect_ok(K<D>::gather_rows(d_out.ptr, d_x.ptr, d_rows.ptr, n, cols, x_rows, g_stream), "gather_rows");
  std::vector<double> ref(static_cast<size_t>(n) * cols, 0.0);
  for (int i = 0; i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= x_rows) continue;
    for (int c = 0; c < cols; ++c) ref[static_cast<size_t>(i) * cols + c] = x.values[static_cast<size_t>(rows[i]) * cols + c];
  }
  report(shape("gather_rows", n, cols), D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

template <class D>
void check_to_f32() {
  const int n = 777;
  const Host<D> x = random_tensor<D>(n, 0.f, 10.f);
  DevBuf<typename D::W> d_x(x.words);
  DevBuf<float> d_out(n);
  expect_ok(K<D>::to_f32(d_out.ptr, d_x.ptr, n, g_stream), "to_f32");
  const std::vector<double> ref(x.values.begin(), x.values.end());
  report("to_f32 " + std::to_string(n), D::name(), max_error(d_out.download(), ref), 0.0);  // exact
}

template <class D>
void check_kv_append() {
  const int num_blocks = 6, block_size = 4, width = 48, cache_slots = num_blocks * block_size;
  const std::vector<int32_t> slots = {0, 7, 23, -1, 13, 24};  // -1 and 24 are outside the cache: skipped
  const int n = static_cast<int>(slots.size());
  const Host<D> k_cache = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> v_cache = random_tensor<D>(k_cache.words.size(), 0.f, 1.f);
  const Host<D> k = random_tensor<D>(static_cast<size_t>(n) * width, 0.f, 1.f);
  const Host<D> v = random_tensor<D>(k.words.size(), 0.f, 1.f);
  DevBuf<typename D::W> d_kc(k_cache.words), d_vc(v_cache.words), d_k(k.words), d_v(v.words);
  DevBuf<int32_t> d_slots(slots);
  expect_ok(K<D>::kv_append(d_kc.ptr, d_vc.ptr, d_k.ptr, d_v.ptr, d_slots.ptr, n, width, cache_slots, g_stream),
            "kv_append");
  std::vector<double> ref_k(k_cache.values.begin(), k_cache.values.end());
  std::vector<double> ref_v(v_cache.values.begin(), v_cache.values.end());
  for (int t = 0; t < n; ++t) {
    if (slots[t] < 0 || slots[t] >= cache_slots) continue;
    for (int j = 0; j < width; ++j) {
      ref_k[static_cast<size_t>(slots[t]) * width + j] = k.values[static_cast<size_t>(t) * width + j];
      ref_v[static_cast<size_t>(slots[t]) * width + j] = v.values[static_cast<size_t>(t) * width + j];
    }
  }
  const double err = std::max(max_error(widen_all<D>(d_kc.download()), ref_k),
                              max_error(widen_all<D>(d_vc.download()), ref_v));
  report(shape("kv_append", n, width), D::name(), err, 0.0);  // a copy: exact
}

template <class D>
void check_qkv_append(bool with_bias) {
  const int num_blocks = 5, block_size = 4, width = 80, cache_slots = num_blocks * block_size;
  const std::vector<int32_t> slots = {3, 19, -1, 8, 20, 0, 11};  // -1 and 20: q written, cache untouched
  const int n = static_cast<int>(slots.size());
  const Host<D> k_cache = random_tensor<D>(static_cast<size_t>(cache_slots) * width, 0.f, 1.f);
  const Host<D> v_cache = random_tensor<D>(k_cache.words.size(), 0.f, 1.f);
  const Host<D> qkv = random_tensor<D>(static_cast<size_t>(n) * 3 * width, 0.f, 1.f);
  const Host<D> bias = random_tensor<D>(3 * width, 0.f, 0.5f);
  const Host<D> poison = random_tensor<D>(static_cast<size_t>(n) * width, 100.f, 1.f);  // q_out must be overwritten
  DevBuf<typename D::W> d_kc(k_cache.words), d_vc(v_cache.words), d_qkv(qkv.words), d_bias(bias.words),
      d_q(poison.words);
  DevBuf<int32_t> d_slots(slots);
  expect_ok(K<D>::qkv_append(d_q.ptr, d_kc.ptr, d_vc.ptr, d_qkv.ptr, with_bias ? d_bias.ptr : nullptr, d_slots.ptr,
                             n, width, cache_slots, g_stream),
            "qkv_append");
  std::vector<double> ref_q(static_cast<size_t>(n) * width);
  std::vector<double> ref_k(k_cache.values.begin(), k_cache.values.end());
  std::vector<double> ref_v(v_cache.values.begin(), v_cache.values.end());
  auto biased = [&](int t, int part, int j) {
    const float b = with_bias ? bias.values[static_cast<size_t>(part) * width + j] : 0.f;
    return static_cast<double>(round_to<D>(qkv.values[(static_cast<size_t>(t) * 3 + part) * width + j] + b));
  };
  for (int t = 0; t < n; ++t) {
    for (int j = 0; j < width; ++j) {
      ref_q[static_cast<size_t>(t) * width + j] = biased(t, 0, j);
      if (slots[t] < 0 || slots[t] >= cache_slots) continue;
      ref_k[static_cast<size_t>(slots[t]) * width + j] = biased(t, 1, j);
      ref_v[static_cast<size_t>(slots[t]) * width + j] = biased(t, 2, j);
    }
  }
  const double err = std::max({max_error(widen_all<D>(d_q.download()), ref_q),
                               max_error(widen_all<D>(d_kc.download()), ref_k),
                               max_error(widen_all<D>(d_vc.download()), ref_v)});
  report(shape(with_bias ? "qkv_append+bias" : "qkv_append", n, width), D::name(), err, 0.0);  // one rounding: exact
}

template <class D>
void check_kv_copy_blocks() {
  const int num_blocks = 8, block_size = 16, width = 200;
  const std::vector<int32_t> src = {1, 5, 7, 2};
  const std::vector<int32_t> dst = {3, 6, 8, 2};  // 8 is outside the cache: skipped; 2 → 2 is a no-op
  const int n = static_cast<int>(src.size());
  const size_t block_elems = static_cast<size_t>(block_size) * width;
  const Host<D> k_cache = random_tensor<D>(num_blocks * block_elems, 0.f, 1.f);
  const Host<D> v_cache = random_tensor<D>(k_cache.words.size(), 0.f, 1.f);
  DevBuf<typename D::W> d_kc(k_cache.words), d_vc(v_cache.words);
  DevBuf<int32_t> d_src(src), d_dst(dst);
  expect_ok(K<D>::kv_copy_blocks(d_kc.ptr, d_vc.ptr, d_src.ptr, d_dst.ptr, n, block_size, width, num_blocks,
                                 g_stream),
            "kv_copy_blocks");
  std::vector<double> ref_k(k_cache.values.begin(), k_cache.values.end());
  std::vector<double> ref_v(v_cache.values.begin(), v_cache.values.end());
  for (int i = 0; i < n; ++i) {
    if (src[i] < 0 || src[i] >= num_blocks || dst[i] < 0 || dst[i] >= num_blocks) continue;
    for (size_t e = 0; e < block_elems; ++e) {
      ref_k[dst[i] * block_elems + e] = k_cache.values[src[i] * block_elems + e];
      ref_v[dst[i] * block_elems + e] = v_cache.values[src[i] * block_elems + e];
    }
  }
  const double err = std::max(max_error(widen_all<D>(d_kc.download()), ref_k),
                              max_error(widen_all<D>(d_vc.download()), ref_v));
  report(shape("kv_copy_blocks", n, static_cast<int>(block_elems)), D::name(), err, 0.0);  // a copy: exact
}

// The vector layer norm (session 12, not yet run on a GPU; opt_set_vector_layernorm): both layer norms against the
// reference with the switch on, at OPT's widths (one to three 16-byte chunks per thread) and at widths it leaves to
// the scalar kernel (33, 83: not whole chunks; 16384 in f32: more than four chunks per thread); then the fused op
// with the switch off and on over the same inputs: the residual x the same words, the norm within tolerance.
template <class D>
void check_vector_norm_all() {
  const int previous = opt_set_vector_layernorm(1);
  for (int cols : {768, 2048, 4096, 5120, 12288, 16384, 33, 83}) {
    check_layernorm<D>(3, cols);
    check_add_layernorm<D>(2, cols, true);
    check_add_layernorm<D>(1, cols, false);
  }
  for (int cols : {2048, 4096, 12288}) {
    const int rows = 3;
    const Host<D> x = random_tensor<D>(static_cast<size_t>(rows) * cols, 1.f, 2.f);
    const Host<D> y = random_tensor<D>(x.words.size(), 0.f, 1.f);
    const Host<D> bias = random_tensor<D>(cols, 0.f, 0.5f);
    const Host<D> gamma = random_tensor<D>(cols, 1.f, 0.1f);
    const Host<D> beta = random_tensor<D>(cols, 0.f, 0.1f);
    DevBuf<typename D::W> d_y(y.words), d_bias(bias.words), d_g(gamma.words), d_b(beta.words);
    std::vector<typename D::W> xs[2], outs[2];
    // the launcher's rule (layernorm.cu): whole 16-byte chunks, at most 4 per thread of 512
    const int chunk = 16 / static_cast<int>(sizeof(typename D::W));
    const bool applies = cols % chunk == 0 && (cols / chunk + 511) / 512 <= 4;
    for (int vec : {0, 1}) {
      opt_set_vector_layernorm(vec);
      DevBuf<typename D::W> d_x(x.words), d_out(x.words.size());
      const long long launched = opt_launch_count(OPT_COUNT_VECTOR_LAYERNORM);
      expect_ok(K<D>::add_layernorm(d_x.ptr, d_y.ptr, d_bias.ptr, d_out.ptr, d_g.ptr, d_b.ptr, rows, cols, 1e-5f,
                                    g_stream),
                "add_layernorm");
      report(shape(vec != 0 ? "add_layernorm: vector launches (on)" : "add_layernorm: vector launches (off)", rows, cols),
             D::name(),
             std::fabs(static_cast<double>(opt_launch_count(OPT_COUNT_VECTOR_LAYERNORM) - launched -
                                           (vec != 0 && applies))),
             0.0);
      xs[vec] = d_x.download();
      outs[vec] = d_out.download();
    }
    size_t differ = 0;
    for (size_t i = 0; i < xs[0].size(); ++i) differ += xs[0][i] != xs[1][i];
    report(shape("add_layernorm vector = scalar (x words)", rows, cols), D::name(), static_cast<double>(differ), 0.0);
    std::vector<double> scalar_out(outs[0].size());
    const std::vector<float> widened = widen_all<D>(outs[0]);
    for (size_t i = 0; i < widened.size(); ++i) scalar_out[i] = widened[i];
    report(shape("add_layernorm vector ~ scalar (out)", rows, cols), D::name(),
           max_error(widen_all<D>(outs[1]), scalar_out), D::tol);
  }
  opt_set_vector_layernorm(previous);
}

// A ragged batch: a decode sequence with a long context (many tiles), a prefill crossing a tile border,
// a chunked prefill (5 new tokens on 40 cached), and a sequence with no new tokens. Rows are not in
// sequence order, and blocks are a random permutation of the pool.
Batch make_batch() {
  Batch b;
  b.block_size = 16;
  b.query_count = {1, 70, 5, 0};
  b.context_len = {300, 70, 45, 10};
  b.query_start = {75, 0, 70, 76};
  b.total_queries = 76;
  int needed = 0;
  for (int ctx : b.context_len) needed += (ctx + b.block_size - 1) / b.block_size;
  b.num_blocks = needed + 7;  // some blocks belong to nobody
  std::vector<int32_t> pool(b.num_blocks);
  for (int i = 0; i < b.num_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), g_rng);
  int next = 0;
  for (int ctx : b.context_len) {
    std::vector<int32_t> table;
    for (int i = 0; i < (ctx + b.block_size - 1) / b.block_size; ++i) table.push_back(pool[next++]);
    b.block_tables.push_back(table);
  }
  return b;
}

template <class D>
void check_attention(int heads, int head_dim, int kernel) {
  const Batch b = make_batch();
  const int width = heads * head_dim;
  const int num_seqs = static_cast<int>(b.query_start.size());
  int max_blocks = 0;
  for (const auto& t : b.block_tables) max_blocks = std::max(max_blocks, static_cast<int>(t.size()));
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs) * max_blocks, -1);  // padding: never read
  for (int s = 0; s < num_seqs; ++s) std::copy(b.block_tables[s].begin(), b.block_tables[s].end(), &tables[static_cast<size_t>(s) * max_blocks]);

  const size_t cache_elems = static_cast<size_t>(b.num_blocks) * b.block_size * width;
  const Host<D> q = random_tensor<D>(static_cast<size_t>(b.total_queries) * width, 0.f, 2.f);
  const Host<D> keys = random_tensor<D>(cache_elems, 0.f, 1.f);
  const Host<D> values = random_tensor<D>(cache_elems, 0.f, 1.f);
  const float scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  DevBuf<typename D::W> d_q(q.words), d_k(keys.words), d_v(values.words), d_out(q.words.size());
  DevBuf<int32_t> d_tables(tables), d_start(b.query_start), d_count(b.query_count), d_ctx(b.context_len);
  // kernel 0: opt_attention; 3: opt_attention_tiled; 4: opt_attention_tc (fp16/bf16, head_dim % 16 == 0);
  // 5: opt_attention_fa (fp16/bf16, head_dim 64, 80, 128; the tc kernel's 64-row tile map);
  // 1: opt_attention_split without a workspace (one split); 2: with one (the split
  // count the launcher picks for this small batch: several per row); 6: 2 with the inline combine; 7 and 8: 1 and 2
  // with OPT_ATTENTION_GROUPED (session 12: fp16/bf16 at head_dim 64 and 128; the per-key kernel elsewhere).
  // Poisoned: an element the kernel leaves unwritten fails the check instead of passing on stale memory.
  d_out.upload(std::vector<typename D::W>(q.words.size(), D::narrow(std::numeric_limits<float>::quiet_NaN())));
  DevBuf<float> d_ws(static_cast<size_t>(1) << 20);
  std::string name = "attention";
  if (kernel == 0) {
    expect_ok(K<D>::attention(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                              d_ctx.ptr, num_seqs, b.total_queries, heads, head_dim, b.block_size, max_blocks,
                              b.num_blocks, scale, g_stream),
              "attention");
  } else if (kernel == 3 || kernel == 4 || kernel == 5) {
    name = kernel == 3 ? "attention_tiled" : kernel == 4 ? "attention_tc" : "attention_fa";
    if (head_dim > 128) return;  // the tiled kernels' limit: CudaOps uses the split kernel there
    if (kernel == 4 && (!K<D>::has_tc || head_dim % 16 != 0)) return;  // CudaOps uses the tiled kernel there
    if (kernel == 5 && (!K<D>::has_tc || (head_dim != 64 && head_dim != 80 && head_dim != 128))) return;  // OPT's
    const int rows_per_tile = kernel == 3 ? 16 : 64;
    std::vector<int32_t> tile_seq, tile_first;
    for (int seq = 0; seq < num_seqs; ++seq) {
      for (int f = 0; f < b.query_count[seq]; f += rows_per_tile) {
        tile_seq.push_back(seq);
        tile_first.push_back(f);
      }
    }
    DevBuf<int32_t> d_ts(tile_seq), d_tf(tile_first);
    const auto launch = kernel == 3 ? K<D>::attention_tiled : kernel == 4 ? K<D>::attention_tc : K<D>::attention_fa;
    expect_ok(launch(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr, d_ctx.ptr,
                     d_ts.ptr, d_tf.ptr, static_cast<int>(tile_seq.size()), num_seqs, heads, head_dim, b.block_size,
                     max_blocks, b.num_blocks, scale, g_stream),
              name.c_str());
  } else {
    name = kernel == 1 ? "attention_split (1 split)" : kernel == 2 ? "attention_split (splits)"
         : kernel == 6 ? "attention_split (inline combine)" : kernel == 7 ? "attention_split grouped (1 split)"
                                                                          : "attention_split grouped (splits)";
    const bool with_ws = kernel == 2 || kernel == 6 || kernel == 8;
    const int options = kernel == 6 ? OPT_ATTENTION_INLINE_COMBINE : kernel >= 7 ? OPT_ATTENTION_GROUPED : 0;
    const size_t ws_bytes = (static_cast<size_t>(1) << 20) * sizeof(float);
    // the contract: zeroed once before the first use. On g_stream: cudaMemset runs on the legacy default stream,
    // which a cudaStreamNonBlocking stream does not wait for (and it may return before the memset is done)
    CHECK_CUDA(cudaMemsetAsync(d_ws.ptr, 0, ws_bytes, g_stream));
    auto run_split = [&](int opts, typename D::W* out, const typename D::W* q_ptr) {
      expect_ok(K<D>::attention_split(out, q_ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                      d_ctx.ptr, num_seqs, b.total_queries, heads, head_dim, b.block_size,
                                      max_blocks, b.num_blocks, scale, with_ws ? d_ws.ptr : nullptr,
                                      with_ws ? ws_bytes : 0, opts, g_stream),
                "attention_split");
    };
    run_split(options, d_out.ptr, d_q.ptr);
    if (kernel == 8) {
      // The grouped kernel's sums have a fixed order: a second launch into a poisoned output gives the same words.
      using W = typename D::W;
      const std::vector<W> first = d_out.download();
      DevBuf<W> d_again(std::vector<W>(q.words.size(), D::narrow(std::numeric_limits<float>::quiet_NaN())));
      run_split(options, d_again.ptr, d_q.ptr);
      const std::vector<W> again = d_again.download();
      size_t differ = 0;
      for (size_t i = 0; i < first.size(); ++i) differ += first[i] != again[i];
      report(name + " two launches equal, heads " + std::to_string(heads) + " head_dim " + std::to_string(head_dim),
             D::name(), static_cast<double>(differ), 0.0);
    }
    if (kernel == 6) {
      // The inline combine: launches back to back on one workspace, each after the partials (everything past the
      // 64 KiB of counters) and the output were poisoned with NaN, so that a merge that reads a split's record
      // before it is written, or a (row, head) that nobody merges (a counter not back at zero), shows as NaN; the
      // second launch has other queries, so records left from the first cannot pass for its own. Each launch bit
      // for bit the combine kernel's output for the same queries, and the counters zero at the end. Every row of
      // make_batch's batch has an owner and reaches no bad block: no NaN is right anywhere.
      using W = typename D::W;
      const size_t counter_bytes = static_cast<size_t>(64) * 1024;
      auto poison = [&](W* out) {
        CHECK_CUDA(cudaMemsetAsync(reinterpret_cast<char*>(d_ws.ptr) + counter_bytes, 0xff, ws_bytes - counter_bytes,
                                   g_stream));
        CHECK_CUDA(cudaMemsetAsync(out, 0xff, q.words.size() * sizeof(W), g_stream));
      };
      const std::vector<W> first = d_out.download();
      const Host<D> q2 = random_tensor<D>(q.words.size(), 0.f, 2.f);
      DevBuf<W> d_q2(q2.words), d_other(q.words.size()), d_other2(q.words.size());
      poison(d_out.ptr);
      run_split(1, d_out.ptr, d_q2.ptr);
      const std::vector<W> second = d_out.download();
      poison(d_out.ptr);
      run_split(1, d_out.ptr, d_q.ptr);
      run_split(0, d_other.ptr, d_q.ptr);
      run_split(0, d_other2.ptr, d_q2.ptr);
      const std::vector<W> last = d_out.download(), other = d_other.download(), other2 = d_other2.download();
      size_t differ = 0;
      for (size_t i = 0; i < first.size(); ++i) {
        differ += first[i] != other[i] || last[i] != other[i] || second[i] != other2[i] ||
                  std::isnan(D::widen(first[i])) || std::isnan(D::widen(second[i])) || std::isnan(D::widen(last[i]));
      }
      std::vector<int32_t> counters(counter_bytes / sizeof(int32_t));
      CHECK_CUDA(cudaMemcpy(counters.data(), d_ws.ptr, counter_bytes, cudaMemcpyDeviceToHost));
      size_t nonzero = 0;
      for (int32_t c : counters) nonzero += c != 0;
      report(name + " = combine kernel, 3 launches, heads " + std::to_string(heads) + " head_dim " +
                 std::to_string(head_dim), D::name(), static_cast<double>(differ + nonzero), 0.0);
    }
  }
  const std::vector<double> ref = ref_attention(q.values, keys.values, values.values, b, heads, head_dim, scale);
  report(name + " heads " + std::to_string(heads) + " head_dim " + std::to_string(head_dim), D::name(),
         max_error(widen_all<D>(d_out.download()), ref), D::tol);
}

// Decode batches of OPT's shapes (one query per sequence, the launcher's split count from the real SM count, a
// table width padded as CudaOps pads it) through opt_attention_split with and without OPT_ATTENTION_GROUPED:
// batch 1 over 192 positions of a 256-wide table (several splits of one round each), batch 32 with contexts 1 to
// 300 (one split, several rounds), head_dim 128 at batch 4; each against the reference.
template <class D>
void check_grouped_decode() {
  struct Case {
    int seqs, heads, head_dim, max_context, table_blocks;
  };
  for (const Case c : {Case{1, 32, 64, 192, 16}, Case{32, 32, 64, 300, 20}, Case{4, 32, 128, 130, 16},
                       Case{3, 4, 64, 1000, 64}}) {
    Batch b;
    b.block_size = 16;
    std::uniform_int_distribution<int> len(1, c.max_context);
    for (int s = 0; s < c.seqs; ++s) {
      b.query_start.push_back(s);
      b.query_count.push_back(1);
      b.context_len.push_back(s == 0 ? c.max_context : len(g_rng));
    }
    b.total_queries = c.seqs;
    b.num_blocks = c.seqs * c.table_blocks + 5;
    std::vector<int32_t> pool(b.num_blocks);
    for (int i = 0; i < b.num_blocks; ++i) pool[i] = i;
    std::shuffle(pool.begin(), pool.end(), g_rng);
    std::vector<int32_t> tables(static_cast<size_t>(c.seqs) * c.table_blocks, -1);  // padding past a context
    int next = 0;
    for (int s = 0; s < c.seqs; ++s) {
      std::vector<int32_t> table;
      for (int i = 0; i < (b.context_len[s] + b.block_size - 1) / b.block_size; ++i) table.push_back(pool[next++]);
      std::copy(table.begin(), table.end(), &tables[static_cast<size_t>(s) * c.table_blocks]);
      b.block_tables.push_back(table);
    }
    const int width = c.heads * c.head_dim;
    const size_t cache_elems = static_cast<size_t>(b.num_blocks) * b.block_size * width;
    const Host<D> q = random_tensor<D>(static_cast<size_t>(c.seqs) * width, 0.f, 2.f);
    const Host<D> keys = random_tensor<D>(cache_elems, 0.f, 1.f);
    const Host<D> values = random_tensor<D>(cache_elems, 0.f, 1.f);
    const float scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
    DevBuf<typename D::W> d_q(q.words), d_k(keys.words), d_v(values.words);
    DevBuf<int32_t> d_tables(tables), d_start(b.query_start), d_count(b.query_count), d_ctx(b.context_len);
    const size_t ws_bytes = (static_cast<size_t>(4) << 20) * sizeof(float);
    DevBuf<float> d_ws(static_cast<size_t>(4) << 20);
    CHECK_CUDA(cudaMemsetAsync(d_ws.ptr, 0, ws_bytes, g_stream));
    const std::vector<double> ref = ref_attention(q.values, keys.values, values.values, b, c.heads, c.head_dim, scale);
    for (int options : {0, OPT_ATTENTION_GROUPED}) {
      DevBuf<typename D::W> d_out(std::vector<typename D::W>(q.words.size(),
                                                             D::narrow(std::numeric_limits<float>::quiet_NaN())));
      const long long launched = opt_launch_count(OPT_COUNT_GROUPED_SPLIT);
      expect_ok(K<D>::attention_split(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                      d_ctx.ptr, c.seqs, c.seqs, c.heads, c.head_dim, b.block_size, c.table_blocks,
                                      b.num_blocks, scale, d_ws.ptr, ws_bytes, options, g_stream),
                "attention_split (decode)");
      // every case here is one the grouped kernel takes: it must have been chosen exactly when asked for
      report("attention_split: grouped kernel launches (options " + std::to_string(options) + ")", D::name(),
             std::fabs(static_cast<double>(opt_launch_count(OPT_COUNT_GROUPED_SPLIT) - launched - (options != 0))),
             0.0);
      report(std::string(options != 0 ? "attention_split grouped" : "attention_split") + " decode batch " +
                 std::to_string(c.seqs) + " heads " + std::to_string(c.heads) + " head_dim " +
                 std::to_string(c.head_dim) + " context <= " + std::to_string(c.max_context),
             D::name(), max_error(widen_all<D>(d_out.download()), ref), D::tol);
    }
  }
}

// The attention kernels' rules beyond the numbers, in every mode (0: opt_attention; 3: tiled; 4: tc; 5: fa;
// 1, 2, 6: opt_attention_split without / with a workspace / with the inline combine; 7, 8: 1 and 2 grouped): a row no sequence owns
// keeps what was there; a row that reaches a bad block id, and every row of an inconsistent sequence (more queries than context), is NaN; the others are finite.
void check_attention_rules(int kernel) {
  const int heads = 2, head_dim = 64, width = heads * head_dim, block_size = 16, num_blocks = 12, max_blocks = 8;
  // rows 0-2: sequence 0 (a 3-token prefill); row 3: sequence 1 (decode at 100 tokens, block 99 in its table);
  // row 4: nobody's; rows 5-6: sequence 2 (2 queries, context 1: inconsistent); rows 7-26: sequence 3 (a
  // 20-token prefill whose second block is bad: its first 16 rows never see it and stay finite, the last 4 NaN).
  const std::vector<int32_t> start = {0, 3, 5, 7}, count = {3, 1, 2, 20}, context = {3, 100, 1, 20};
  std::vector<int32_t> tables(4 * max_blocks, -1);
  tables[0] = 0;
  const int32_t seq1[] = {1, 2, 3, 99, 4, 5, 6};
  for (int i = 0; i < 7; ++i) tables[max_blocks + i] = seq1[i];
  tables[2 * max_blocks] = 7;
  tables[3 * max_blocks] = 8;
  tables[3 * max_blocks + 1] = 99;
  const int total = 27;
  const size_t cache_elems = static_cast<size_t>(num_blocks) * block_size * width;
  const Host<F16> q = random_tensor<F16>(static_cast<size_t>(total) * width, 0.f, 1.f);
  const Host<F16> keys = random_tensor<F16>(cache_elems, 0.f, 1.f);
  const Host<F16> values = random_tensor<F16>(cache_elems, 0.f, 1.f);
  const uint16_t poison = F16::narrow(1234.5f);
  DevBuf<uint16_t> d_q(q.words), d_k(keys.words), d_v(values.words),
      d_out(std::vector<uint16_t>(static_cast<size_t>(total) * width, poison));
  DevBuf<int32_t> d_tables(tables), d_start(start), d_count(count), d_ctx(context);
  DevBuf<float> d_ws(static_cast<size_t>(1) << 20);
  const float scale = 0.125f;
  if (kernel == 0) {
    expect_ok(opt_attention_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                d_ctx.ptr, 4, total, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                g_stream),
              "attention (rules)");
  } else if (kernel == 3) {
    const std::vector<int32_t> tile_seq = {0, 1, 2, 3, 3}, tile_first = {0, 0, 0, 0, 16};  // none names row 4
    DevBuf<int32_t> d_ts(tile_seq), d_tf(tile_first);
    expect_ok(opt_attention_tiled_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                      d_ctx.ptr, d_ts.ptr, d_tf.ptr, 5, 4, heads, head_dim, block_size, max_blocks,
                                      num_blocks, scale, g_stream),
              "attention_tiled (rules)");
  } else if (kernel == 4) {
    const std::vector<int32_t> tile_seq = {0, 1, 2, 3}, tile_first = {0, 0, 0, 0};  // 64-row tiles; none names row 4
    DevBuf<int32_t> d_ts(tile_seq), d_tf(tile_first);
    expect_ok(opt_attention_tc_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                   d_ctx.ptr, d_ts.ptr, d_tf.ptr, 4, 4, heads, head_dim, block_size, max_blocks,
                                   num_blocks, scale, g_stream),
              "attention_tc (rules)");
  } else if (kernel == 5) {
    const std::vector<int32_t> tile_seq = {0, 1, 2, 3}, tile_first = {0, 0, 0, 0};  // 64-row tiles; none names row 4
    DevBuf<int32_t> d_ts(tile_seq), d_tf(tile_first);
    expect_ok(opt_attention_fa_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                   d_ctx.ptr, d_ts.ptr, d_tf.ptr, 4, 4, heads, head_dim, block_size, max_blocks,
                                   num_blocks, scale, g_stream),
              "attention_fa (rules)");
  } else {
    CHECK_CUDA(cudaMemsetAsync(d_ws.ptr, 0, (static_cast<size_t>(1) << 20) * sizeof(float), g_stream));
    // g_stream: see check_attention
    const bool with_ws = kernel == 2 || kernel == 6 || kernel == 8;
    const int options = kernel == 6 ? OPT_ATTENTION_INLINE_COMBINE : kernel >= 7 ? OPT_ATTENTION_GROUPED : 0;
    expect_ok(opt_attention_split_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                      d_ctx.ptr, 4, total, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                      with_ws ? d_ws.ptr : nullptr,
                                      with_ws ? (static_cast<size_t>(1) << 20) * sizeof(float) : 0, options,
                                      g_stream),
              "attention_split (rules)");
  }
  const std::vector<uint16_t> out = d_out.download();
  int wrong = 0;
  if (kernel == 6) {
    // The early returns (row 4: nobody's; rows 5-6: inconsistent) must leave every counter at zero, so a second
    // launch, with the partials and the output poisoned first, gives the same words.
    const size_t ws_bytes = (static_cast<size_t>(1) << 20) * sizeof(float), counter_bytes = 64 * 1024;
    CHECK_CUDA(cudaMemsetAsync(reinterpret_cast<char*>(d_ws.ptr) + counter_bytes, 0xff, ws_bytes - counter_bytes,
                               g_stream));
    CHECK_CUDA(cudaStreamSynchronize(g_stream));
    d_out.upload(std::vector<uint16_t>(static_cast<size_t>(total) * width, poison));
    expect_ok(opt_attention_split_f16(d_out.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_tables.ptr, d_start.ptr, d_count.ptr,
                                      d_ctx.ptr, 4, total, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                      d_ws.ptr, ws_bytes, 1, g_stream),
              "attention_split (rules, second launch)");
    const std::vector<uint16_t> again = d_out.download();
    for (size_t i = 0; i < out.size(); ++i) {
      wrong += out[i] != again[i] && !(std::isnan(F16::widen(out[i])) && std::isnan(F16::widen(again[i])));
    }
    std::vector<int32_t> counters(counter_bytes / sizeof(int32_t));
    CHECK_CUDA(cudaMemcpy(counters.data(), d_ws.ptr, counter_bytes, cudaMemcpyDeviceToHost));
    for (int32_t c : counters) wrong += c != 0;
  }
  for (int row = 0; row < total; ++row) {
    for (int j = 0; j < width; ++j) {
      const uint16_t w = out[static_cast<size_t>(row) * width + j];
      const float v = F16::widen(w);
      if (row <= 2 || (row >= 7 && row <= 22)) wrong += !std::isfinite(v);
      else if (row == 4) wrong += w != poison;
      else wrong += !std::isnan(v);
    }
  }
  report(std::string(kernel == 0 ? "attention" : kernel == 1 ? "attention_split (1 split)"
                     : kernel == 2 ? "attention_split (splits)" : kernel == 3 ? "attention_tiled"
                     : kernel == 4 ? "attention_tc" : kernel == 5 ? "attention_fa"
                     : kernel == 6 ? "attention_split (inline combine)" : kernel == 7 ? "attention_split grouped (1 split)"
                     : "attention_split grouped (splits)")
             + " rules (unowned kept, bad block / inconsistent NaN)", "f16", wrong, 0.0);
}

// Rows of logits with the argmax rules' edge cases (rows 0-5), the rest uniform in [-10, 10).
std::vector<float> argmax_rows(int rows, int vocab) {
  std::uniform_real_distribution<float> dist(-10.f, 10.f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& v : logits) v = dist(g_rng);
  float* r = logits.data();
  r[0 * vocab + 100] = 50.f;  // row 0: a tie, the first index wins
  r[0 * vocab + 4000] = 50.f;
  r[1 * vocab + 900] = NAN;  // row 1: the first NaN wins over everything
  r[1 * vocab + 700] = NAN;
  r[1 * vocab + 5] = INFINITY;
  std::fill(r + 2 * vocab, r + 3 * vocab, -INFINITY);  // row 2: all -inf: index 0
  r[3 * vocab + vocab - 1] = 99.f;                     // row 3: the last index
  r[4 * vocab + 0] = 99.f;                             // row 4: the first index
  r[5 * vocab + 77] = INFINITY;                        // row 5: +inf, no NaN: index 77, log-prob NaN
  return logits;
}

void check_argmax() {
  const int rows = 6, vocab = 50272;
  std::vector<float> logits = argmax_rows(rows, vocab);
  float* r = logits.data();
  DevBuf<float> d_logits(logits);
  DevBuf<int32_t> d_out(rows);
  expect_ok(opt_argmax_f32(d_out.ptr, d_logits.ptr, rows, vocab, g_stream), "argmax");
  const std::vector<int32_t> got = d_out.download();
  int wrong = 0;
  for (int i = 0; i < rows; ++i) wrong += got[i] != ref_argmax(r + static_cast<size_t>(i) * vocab, vocab);

  const int small_vocab = 5;  // fewer elements than threads
  const std::vector<float> small = {1.f, 3.f, 3.f, -2.f, 0.f};
  DevBuf<float> d_small(small);
  expect_ok(opt_argmax_f32(d_out.ptr, d_small.ptr, 1, small_vocab, g_stream), "argmax");
  wrong += d_out.download()[0] != 1;
  report("argmax (rows with a wrong index)", "f32", wrong, 0.0);
}

// log_softmax(row)[token] in double, for a row of finite values: the reference of the log-prob kernels.
double ref_log_softmax_at(const float* row, int vocab, int token) {
  double m = -INFINITY;
  for (int j = 0; j < vocab; ++j) m = std::max(m, static_cast<double>(row[j]));
  double sum = 0.0;
  for (int j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j]) - m);
  return static_cast<double>(row[token]) - (m + std::log(sum));
}

// The pick with its log-prob (opt_argmax_logprob_f32), on check_argmax's rows.
void check_argmax_logprob() {
  const int rows = 6, vocab = 50272;
  std::vector<float> logits = argmax_rows(rows, vocab);
  float* r = logits.data();
  DevBuf<float> d_logits(logits);

  // The pick with its log-prob: the same indexes; log_softmax in double as the reference (rows 0, 3, 4 are
  // finite; row 1 holds NaN, row 2 is all -inf, row 5 holds +inf: NaN).
  DevBuf<int32_t> d_idx(rows);
  DevBuf<float> d_lp(rows);
  expect_ok(opt_argmax_logprob_f32(d_idx.ptr, d_lp.ptr, d_logits.ptr, rows, vocab, g_stream), "argmax_logprob");
  const std::vector<int32_t> idx = d_idx.download();
  const std::vector<float> lp = d_lp.download();
  int wrong_lp = 0;
  double err = 0.0;
  for (int i = 0; i < rows; ++i) {
    const float* row = r + static_cast<size_t>(i) * vocab;
    wrong_lp += idx[i] != ref_argmax(row, vocab);
    if (i == 1 || i == 2 || i == 5) {  // a NaN, all -inf, a +inf: NaN (inf - logsumexp = inf - inf)
      wrong_lp += !std::isnan(lp[i]);
      continue;
    }
    const double want = ref_log_softmax_at(row, vocab, idx[i]);
    err = std::max(err, std::abs(lp[i] - want));
  }
  report("argmax_logprob (wrong indexes or NaN rules)", "f32", wrong_lp, 0.0);
  report("argmax_logprob (log-prob error)", "f32", err, 1e-4);
}

// Given tokens' log-probs (opt_token_logprob_f32), on check_argmax's rows plus one with an out-of-range token:
// log_softmax in double as the reference; NaN where a row holds a NaN, is all -inf, or the token is out of range,
// and inf - inf (the +inf token of row 5) NaN too, while row 5's finite token gets -inf, as on the CPU.
void check_token_logprob() {
  const int rows = 7, vocab = 50272;
  std::vector<float> logits = argmax_rows(rows, vocab);
  const std::vector<int32_t> tokens = {100, 3, 0, 12345, 0, 3, vocab};  // row 5: a finite token next to +inf
  DevBuf<float> d_logits(logits);
  DevBuf<int32_t> d_tokens(tokens);
  DevBuf<float> d_lp(rows);
  expect_ok(opt_token_logprob_f32(d_lp.ptr, d_logits.ptr, d_tokens.ptr, rows, vocab, g_stream), "token_logprob");
  const std::vector<float> lp = d_lp.download();
  int wrong = 0;
  double err = 0.0;
  for (int i = 0; i < rows; ++i) {
    const float* row = logits.data() + static_cast<size_t>(i) * vocab;
    if (i == 1 || i == 2 || i == 6) {  // a NaN in the row, all -inf (-inf - -inf), a token out of range
      wrong += !std::isnan(lp[i]);
      continue;
    }
    if (i == 5) {  // +inf in the row: the finite token's log-prob is -inf
      wrong += !(std::isinf(lp[i]) && lp[i] < 0);
      continue;
    }
    const double want = ref_log_softmax_at(row, vocab, tokens[i]);
    err = std::max(err, std::abs(lp[i] - want));
  }
  report("token_logprob (NaN / -inf rules)", "f32", wrong, 0.0);
  report("token_logprob (log-prob error)", "f32", err, 1e-4);
}

// opt_sample_rows_f32 against its twin's rules: plain, top-k (gathered and, past 2048 tokens, not), top-p, both,
// greedy-like limits, uniform 0, and the -inf / NaN rows; kMinP (group minp, session 20): the same kinds of rows with
// min-p too (alone, after top-k, after top-p, min-p 1: the top token only, a uniform near 1); kTypical (group typical,
// session 23): typical sampling alone and after each other cut (a typical-p so small that one token stays, top-k
// gathered and not, a high temperature, a typical-p of 1e-20 after top-p: the most typical token alone). Random logits: ties and cut boundaries are improbable, so the tokens must
// match exactly. Each group runs the kernel without and with its weights cache (session 21, not yet run on a GPU): the
// two must give the same bits.
enum class SampleCases { kPlain, kMinP, kTypical };
void check_sample_rows(SampleCases kind, int list_k = 0) {
  const int vocab = 50272;
  struct Case {
    float temperature;
    int top_k;
    float top_p;
    float min_p;
    double uniform;
    float typical_p = 1.f;
  };
  const std::vector<Case> plain = {{1.f, 0, 1.f, 0.f, 0.37}, {0.7f, 50, 1.f, 0.f, 0.81}, {1.f, 0, 0.9f, 0.f, 0.52},
                                   {0.8f, 40, 0.95f, 0.f, 0.13}, {1.f, 1, 1.f, 0.f, 0.99}, {1.f, 0, 1e-9f, 0.f, 0.5},
                                   {1.3f, 3000, 1.f, 0.f, 0.66}, {0.9f, 3000, 0.8f, 0.f, 0.05},
                                   {1.f, 20, 1.f, 0.f, 0.0}, {1.f, 0, 1.f, 0.f, 0.5}, {1.f, 0, 1.f, 0.f, 0.5}};
  const std::vector<Case> min_p = {{1.f, 0, 1.f, 0.05f, 0.37}, {0.7f, 50, 1.f, 0.1f, 0.81},
                                   {1.f, 0, 0.9f, 0.02f, 0.52}, {0.8f, 40, 0.95f, 0.2f, 0.13},
                                   {1.f, 0, 1.f, 1.f, 0.99}, {3.f, 0, 1.f, 0.01f, 0.999}, {1.3f, 3000, 1.f, 0.03f, 0.66},
                                   {0.9f, 3000, 0.8f, 0.5f, 0.05}, {2.f, 0, 1.f, 0.001f, 0.0},
                                   {1.f, 0, 1.f, 0.1f, 0.5}, {1.f, 0, 1.f, 0.1f, 0.5}};
  const std::vector<Case> typical = {{1.f, 0, 1.f, 0.f, 0.37, 0.9f}, {0.7f, 50, 1.f, 0.f, 0.81, 0.5f},
                                     {1.f, 0, 0.9f, 0.f, 0.52, 0.2f}, {0.8f, 40, 0.95f, 0.05f, 0.13, 0.95f},
                                     {1.f, 0, 1.f, 0.f, 0.99, 1e-6f}, {3.f, 0, 1.f, 0.01f, 0.999, 0.99f},
                                     {1.3f, 3000, 1.f, 0.f, 0.66, 0.7f}, {0.9f, 1000, 0.8f, 0.f, 0.05, 0.6f},
                                     {2.f, 0, 0.9f, 0.f, 0.3, 1e-20f}, {1.f, 0, 1.f, 0.f, 0.5, 0.9f},
                                     {1.f, 0, 1.f, 0.f, 0.5, 0.9f}};
  const std::vector<Case>& cases = kind == SampleCases::kMinP ? min_p : kind == SampleCases::kTypical ? typical : plain;
  const int rows = static_cast<int>(cases.size());
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& v : logits) v = dist(g_rng);
  std::fill(logits.end() - 2 * static_cast<size_t>(vocab), logits.end() - vocab, -INFINITY);  // all -inf: -1
  logits[static_cast<size_t>(rows - 1) * vocab + 1234] = NAN;                                  // a NaN: -2
  std::vector<float> temperature, top_p, mins, typicals;
  std::vector<int32_t> top_k;
  std::vector<double> uniform;
  for (const Case& c : cases) {
    temperature.push_back(c.temperature);
    top_k.push_back(c.top_k);
    top_p.push_back(c.top_p);
    mins.push_back(c.min_p);
    typicals.push_back(c.typical_p);
    uniform.push_back(c.uniform);
  }
  DevBuf<float> d_logits(logits), d_t(temperature), d_p(top_p), d_min(mins), d_typ(typicals), d_lp(rows);
  DevBuf<int32_t> d_k(top_k), d_tok(rows);
  DevBuf<double> d_u(uniform);
  DevBuf<int32_t> d_ids(static_cast<size_t>(rows) * std::max(list_k, 1));
  DevBuf<float> d_top(static_cast<size_t>(rows) * std::max(list_k, 1));
  // Without and with the weights cache (session 21): the same bits, then the first against the reference.
  DevBuf<float> d_w(static_cast<size_t>(rows) * vocab);
  std::vector<int32_t> tok, ids;
  std::vector<float> lp, top;
  int wrong = 0;
  for (int cached = 0; cached < 2; ++cached) {
    float* w = cached ? d_w.ptr : nullptr;
    if (cached) {  // NaN everywhere first: a write the cached run skipped, or a cache element read unwritten, shows
      cudaMemset(d_w.ptr, 0xff, static_cast<size_t>(rows) * vocab * sizeof(float));
      cudaMemset(d_tok.ptr, 0xff, rows * sizeof(int32_t));
      cudaMemset(d_lp.ptr, 0xff, rows * sizeof(float));
      cudaMemset(d_ids.ptr, 0xff, static_cast<size_t>(rows) * std::max(list_k, 1) * sizeof(int32_t));
      cudaMemset(d_top.ptr, 0xff, static_cast<size_t>(rows) * std::max(list_k, 1) * sizeof(float));
    }
    if (list_k == 0) {
      expect_ok(opt_sample_rows_f32(d_tok.ptr, d_lp.ptr, d_logits.ptr, d_t.ptr, d_k.ptr, d_p.ptr, d_min.ptr,
                                    d_typ.ptr, d_u.ptr, rows, vocab, w, g_stream),
                "sample_rows");
    } else {
      expect_ok(opt_sample_rows_top_f32(d_tok.ptr, d_lp.ptr, d_ids.ptr, d_top.ptr, list_k, d_logits.ptr, d_t.ptr,
                                        d_k.ptr, d_p.ptr, d_min.ptr, d_typ.ptr, d_u.ptr, rows, vocab, w, g_stream),
                "sample_rows_top");
    }
    if (!cached) {
      tok = d_tok.download();
      lp = d_lp.download();
      ids = d_ids.download();
      top = d_top.download();
      continue;
    }
    if (tok != d_tok.download() || ids != d_ids.download() ||
        std::memcmp(lp.data(), d_lp.download().data(), lp.size() * sizeof(float)) != 0 ||
        std::memcmp(top.data(), d_top.download().data(), top.size() * sizeof(float)) != 0) {
      std::fprintf(stderr, "sample_rows: the weights cache changed a token, log-prob or alternative\n");
      ++wrong;
    }
  }
  double err = 0;
  for (int r = 0; r < rows; ++r) {
    const Case& c = cases[r];
    double want_lp = 0;
    std::vector<int32_t> want_ids(std::max(list_k, 1));
    std::vector<double> want_top(std::max(list_k, 1));
    const int want = ref_sample(&logits[static_cast<size_t>(r) * vocab], vocab, c.temperature, c.top_k, c.top_p,
                                c.min_p, c.typical_p, c.uniform, &want_lp, list_k, want_ids.data(), want_top.data());
    if (tok[r] != want) {
      std::fprintf(stderr, "sample_rows row %d: token %d, expected %d\n", r, tok[r], want);
      ++wrong;
    } else if (want >= 0) {
      err = std::max(err, std::abs(lp[r] - want_lp));
    }
    for (int j = 0; j < list_k; ++j) {  // the alternatives: the same ids, log-probs within float32, NaN after
      const int32_t got_id = ids[static_cast<size_t>(r) * list_k + j];
      const float got_lp = top[static_cast<size_t>(r) * list_k + j];
      wrong += got_id != want_ids[j];
      if (want_ids[j] < 0) {
        wrong += !std::isnan(got_lp);
      } else {
        wrong += !std::isfinite(got_lp);
        err = std::max(err, std::abs(got_lp - want_top[j]));
      }
    }
  }
  const std::string name = std::string("sample_rows") +
                           (kind == SampleCases::kMinP ? " min-p" : kind == SampleCases::kTypical ? " typical" : "") +
                           (list_k > 0 ? " top" : "");
  report(name + " (wrong tokens)", "f32", wrong, 0.0);
  report(name + " (log-prob error)", "f32", err, 1e-4);
}

// Chained launches (programmatic dependent launch, common.cuh): a decode-like chain of kernels, queued without a
// host wait in between, must give bit for bit what the same chain gives without chaining (the kernels are
// deterministic). If a kernel touched its predecessor's results before chain_wait, it would read half-written
// data. Ten runs, the buffers poisoned (NaN) before each.
void check_chained() {
  if (!opt_chained_launch_supported()) {
    std::printf("chained launches: not supported on this device or build (compute capability < 9.0): skipped\n");
    return;
  }
  using W = uint16_t;
  const int m = 2, hidden = 2048, ffn = 8192;
  const Host<F16> x = random_tensor<F16>(static_cast<size_t>(m) * hidden, 0.f, 1.f);
  const Host<F16> resid0 = random_tensor<F16>(static_cast<size_t>(m) * hidden, 0.f, 1.f);
  const Host<F16> w1 = random_tensor<F16>(static_cast<size_t>(hidden) * hidden, 0.f, 0.02f);
  const Host<F16> w2 = random_tensor<F16>(static_cast<size_t>(ffn) * hidden, 0.f, 0.02f);
  const Host<F16> w3 = random_tensor<F16>(static_cast<size_t>(hidden) * ffn, 0.f, 0.02f);
  const Host<F16> b1 = random_tensor<F16>(hidden, 0.f, 0.1f);
  const Host<F16> b2 = random_tensor<F16>(ffn, 0.f, 0.1f);
  const Host<F16> gamma = random_tensor<F16>(hidden, 1.f, 0.1f);
  const Host<F16> beta = random_tensor<F16>(hidden, 0.f, 0.1f);
  DevBuf<W> d_x(x.words), d_resid(resid0.words), d_w1(w1.words), d_w2(w2.words), d_w3(w3.words), d_b1(b1.words),
      d_b2(b2.words), d_gamma(gamma.words), d_beta(beta.words), d_y(static_cast<size_t>(m) * hidden),
      d_h(static_cast<size_t>(m) * hidden), d_f(static_cast<size_t>(m) * ffn), d_o(static_cast<size_t>(m) * hidden);
  auto run = [&]() {  // resid restored, intermediates poisoned, then the chain with no host wait inside
    CHECK_CUDA(cudaMemcpyAsync(d_resid.ptr, resid0.words.data(), resid0.words.size() * sizeof(W),
                               cudaMemcpyHostToDevice, g_stream));
    for (DevBuf<W>* b : {&d_y, &d_h, &d_f, &d_o}) CHECK_CUDA(cudaMemsetAsync(b->ptr, 0xff, b->n * sizeof(W), g_stream));
    int st = opt_linear_small_f16(d_y.ptr, d_x.ptr, d_w1.ptr, nullptr, m, hidden, hidden, 0, 1, g_stream);
    st = st ? st : opt_add_layernorm_f16(d_resid.ptr, d_y.ptr, d_b1.ptr, d_h.ptr, d_gamma.ptr, d_beta.ptr, m, hidden,
                                         1e-5f, g_stream);
    st = st ? st : opt_linear_small_f16(d_f.ptr, d_h.ptr, d_w2.ptr, d_b2.ptr, m, hidden, ffn, 1, 1, g_stream);
    st = st ? st : opt_linear_small_f16(d_o.ptr, d_f.ptr, d_w3.ptr, nullptr, m, ffn, hidden, 0, 1, g_stream);
    expect_ok(st, "chained decode-like chain");
    return std::make_pair(d_o.download(), d_resid.download());
  };
  opt_set_chained_launch(0);
  const auto reference = run();
  opt_set_chained_launch(1);
  int differing = 0;
  for (int i = 0; i < 10; ++i) {
    const auto got = run();
    differing += got.first != reference.first || got.second != reference.second;
  }
  opt_set_chained_launch(0);
  report("chained launches (runs differing from unchained)", "f16", differing, 0.0);
}

// Bad sizes give cudaErrorInvalidValue (1) before any launch; empty work gives 0. Null pointers are
// never dereferenced on these paths.
void check_size_validation() {
  int wrong = 0;
  auto expect = [&](int got, int want, const char* what) {
    if (got != want) {
      std::fprintf(stderr, "%s: status %d, expected %d\n", what, got, want);
      ++wrong;
    }
  };
  expect(opt_layernorm_f32(nullptr, nullptr, nullptr, nullptr, -1, 8, 1e-5f, g_stream), 1, "layernorm rows -1");
  expect(opt_layernorm_f16(nullptr, nullptr, nullptr, nullptr, 0, 8, 1e-5f, g_stream), 0, "layernorm rows 0");
  expect(opt_add_layernorm_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, -8, 1e-5f, g_stream), 1,
         "add_layernorm cols -8");
  expect(opt_qkv_append_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 3, -64, 16, g_stream), 1,
         "qkv_append width -64");
  expect(opt_qkv_append_f32(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 64, 16, g_stream), 0,
         "qkv_append n 0");
  expect(opt_add_positions_f32(nullptr, nullptr, nullptr, 3, -1, 10, g_stream), 1, "add_positions dim -1");
  expect(opt_residual_add_f16(nullptr, nullptr, 0, g_stream), 0, "residual_add n 0");
  expect(opt_bias_act_f32(nullptr, nullptr, 4, 4, 0, g_stream), 0, "bias_act no bias, no relu");
  expect(opt_gather_rows_bf16(nullptr, nullptr, nullptr, -2, 4, 4, g_stream), 1, "gather_rows n -2");
  expect(opt_to_f32_f16(nullptr, nullptr, -1, g_stream), 1, "to_f32 n -1");
  expect(opt_kv_append_f32(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 64, 16, g_stream), 0, "kv_append n 0");
  expect(opt_kv_copy_blocks_f16(nullptr, nullptr, nullptr, nullptr, 2, -16, 64, 4, g_stream), 1,
         "kv_copy_blocks block_size -16");
  expect(opt_attention_f32(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 257,
                           16, 1, 1, 1.f, g_stream),
         1, "attention head_dim 257");
  expect(opt_attention_tc_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 1, 1, 2, 72, 16, 1, 1, 1.f, g_stream),
         1, "attention_tc head_dim 72 (not a multiple of 16)");
  expect(opt_attention_tc_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 1, 2, 144, 16, 1, 1, 1.f, g_stream),
         1, "attention_tc head_dim 144");
  expect(opt_attention_f32(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 2, 64,
                           0, 1, 1, 1.f, g_stream),
         1, "attention block_size 0");
  expect(opt_attention_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 0, 2, 64,
                            16, 1, 1, 1.f, g_stream),
         0, "attention no sequences");
  expect(opt_argmax_f32(nullptr, nullptr, 3, 0, g_stream), 1, "argmax vocab 0");
  expect(opt_linear_small_f16(nullptr, nullptr, nullptr, nullptr, 9, 64, 64, 0, 1, g_stream), 1, "linear_small 9 rows");
  expect(opt_linear_small_f32(nullptr, nullptr, nullptr, nullptr, 1, 0, 64, 0, 1, g_stream), 1, "linear_small k 0");
  expect(opt_linear_small_bf16(nullptr, nullptr, nullptr, nullptr, 0, 64, 64, 0, 1, g_stream), 0, "linear_small m 0");
  expect(opt_linear_small_f16(nullptr, nullptr, nullptr, nullptr, 1, 64, 64, 0, 3, g_stream), 1, "linear_small split 3");
  expect(opt_linear_small_f32(nullptr, nullptr, nullptr, nullptr, 1, 64, 64, 0, -1, g_stream), 1,
         "linear_small split -1");
  expect(opt_linear_int8_small_f16(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 24, 64, 0, 1, g_stream), 1,
         "linear_int8_small k not a multiple of 16");
  expect(opt_linear_int8_small_f32(nullptr, nullptr, nullptr, nullptr, nullptr, 9, 64, 64, 0, 1, g_stream), 1,
         "linear_int8_small 9 rows");
  expect(opt_linear_int8_small_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 64, 64, 0, 1, g_stream), 0,
         "linear_int8_small m 0");
  expect(opt_dequant_int8_f16(nullptr, nullptr, nullptr, -1, 4, g_stream), 1, "dequant_int8 rows -1");
  expect(opt_linear_small_qkv_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 64, 0, 4, 1,
                                   g_stream),
         1, "linear_small_qkv width 0");
  expect(opt_argmax_f32(nullptr, nullptr, 0, 0, g_stream), 0, "argmax rows 0");
  report("size validation (wrong statuses)", "-", wrong, 0.0);
}

// opt_attention_fa's size checks (group fa): head dims other than 64, 80, 128 are refused, nothing launched.
void check_fa_validation() {
  int wrong = 0;
  const auto expect = [&](int got, int want, const char* what) {
    if (got != want) {
      std::fprintf(stderr, "%s: status %d, expected %d\n", what, got, want);
      ++wrong;
    }
  };
  expect(opt_attention_fa_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 1, 1, 2, 96, 16, 1, 1, 1.f, g_stream),
         1, "attention_fa head_dim 96");
  expect(opt_attention_fa_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 1, 2, 72, 16, 1, 1, 1.f, g_stream),
         1, "attention_fa head_dim 72");
  expect(opt_attention_fa_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 1, 1, 2, 256, 16, 1, 1, 1.f, g_stream),
         1, "attention_fa head_dim 256");
  expect(opt_attention_fa_f16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 0, 1, 2, 64, 16, 1, 1, 1.f, g_stream),
         0, "attention_fa no tiles");
  expect(opt_attention_fa_bf16(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                               nullptr, 1, 1, 2, 128, 0, 1, 1, 1.f, g_stream),
         1, "attention_fa block_size 0");
  report("attention_fa size validation (wrong statuses)", "-", wrong, 0.0);
}

// The ops verified on a GPU (session 2, docs/perf.md) except attention.
template <class D>
void check_base() {
  check_embedding<D>();
  check_layernorm<D>(5, 1);
  check_layernorm<D>(4, 33);
  check_layernorm<D>(3, 768);
  check_layernorm<D>(2, 5120);
  check_add_layernorm<D>(3, 768, false);
  check_add_layernorm<D>(2, 2560, false);
  check_add_layernorm<D>(3, 768, true);
  check_add_layernorm<D>(7, 83, true);
  check_add_positions<D>();
  check_residual_add<D>();
  check_bias_act<D>(true, false);
  check_bias_act<D>(true, true);
  check_bias_act<D>(false, true);
  check_gather_rows<D>();
  check_to_f32<D>();
  check_kv_append<D>();
  check_qkv_append<D>(false);
  check_qkv_append<D>(true);
  check_kv_copy_blocks<D>();
}

template <class D>
void check_linear_small_all() {
  check_linear_small<D>(1, 2048, 301, true, false, 0);  // odd n: the last warp's tail outputs
  check_linear_small<D>(2, 768, 64, true, true, 0);
  check_linear_small<D>(3, 1024, 130, false, true, 0);   // 4 outputs per warp from 3 rows on
  check_linear_small<D>(8, 520, 9, true, false, 0);      // k not a multiple of 32 chunks: the loop's tail
  check_linear_small<D>(1, 8192, 40, true, true, 0);
  check_linear_small<D>(4, 17, 33, true, true, 0);       // odd k: the one-element path
  check_linear_small<D>(2, 64, 50, true, false, 1);      // x not 16-byte aligned: the one-element path
  check_linear_small_qkv<D>(1, 256, 64, true);
  check_linear_small_qkv<D>(3, 128, 42, true);            // 4 outputs per warp straddle the q/k/v borders (42 % 4)
  check_linear_small_qkv<D>(8, 72, 24, false);
  check_linear_small_qkv<D>(2, 33, 16, true);             // odd k: the one-element path
}

// The split rows of the fast path (session 11; not yet run on a GPU): S = 2 and 4 warps per group, and auto (0).
template <class D>
void check_linear_small_split_all() {
  for (int split : {2, 4, 0}) {
    check_linear_small<D>(1, 2048, 2048, true, false, 0, split);  // opt-1.3b's out_proj
    check_linear_small<D>(1, 8192, 256, true, true, 0, split);    // fc2-like: long rows, few outputs
    check_linear_small<D>(2, 768, 64, true, true, 0, split);      // 96 chunks (fp16): split 4 leaves a warp empty
    check_linear_small<D>(3, 1024, 130, false, true, 0, split);   // R = 4; the last group's tail outputs
    check_linear_small<D>(8, 520, 9, true, false, 0, split);      // one group, 8 rows, the round loop's tail
    check_linear_small<D>(1, 64, 301, true, false, 0, split);     // 4–8 chunks: only the first warp has any
    check_linear_small<D>(1, 2048, 301, false, false, 0, split);  // groups not a multiple of the block's
    check_linear_small<D>(2, 64, 50, true, false, 1, split);      // unaligned: the one-element path ignores split
    check_linear_small_qkv<D>(1, 2048, 256, true, split);
    check_linear_small_qkv<D>(3, 128, 42, true, split);           // R = 4 groups straddle the q/k/v borders
  }
}

template <class D>
void check_attention_kernel(int kernel) {
  check_attention<D>(3, 64, kernel);
  check_attention<D>(2, 80, kernel);
  check_attention<D>(2, 128, kernel);
  check_attention<D>(1, 256, kernel);
  check_attention<D>(4, 17, kernel);  // odd head_dim: partial warps in the dot product; no 16-byte loads
}

// Top log-probs (opt_top_logprobs_f32, session 19): rows 0, 3 and 4 of check_argmax's (finite: ties at 50, the last
// and first index) plus a row of 16-bit-like ties and a row with only 3 finite tokens, k = 5 and 20, against a host
// reference in the same order (value, then the lower id; -inf and NaN never listed): the same ids, log-probs within
// float32 of a double log-softmax, -1 / NaN after the last listed; and a NaN row lists its finite tokens with NaN.
void check_top_logprobs() {
  const int vocab = 50272;
  std::vector<float> base = argmax_rows(6, vocab);
  std::vector<float> logits;
  for (int r : {0, 3, 4, 1}) logits.insert(logits.end(), base.begin() + static_cast<size_t>(r) * vocab,
                                           base.begin() + static_cast<size_t>(r + 1) * vocab);
  std::vector<float> ties(vocab);
  for (int j = 0; j < vocab; ++j) ties[j] = static_cast<float>((j * 7919) % 64) / 8.0f;  // many exact ties
  logits.insert(logits.end(), ties.begin(), ties.end());
  std::vector<float> few(vocab, -INFINITY);
  few[10] = 1.f;
  few[20] = 3.f;
  few[30] = 1.f;
  logits.insert(logits.end(), few.begin(), few.end());
  const int rows = 6;  // rows 0-2 finite, 3 with NaN and +inf, 4 ties, 5 three finite tokens
  DevBuf<float> d_logits(logits);
  int wrong = 0;
  double err = 0.0;
  for (int k : {5, 20}) {
    DevBuf<int32_t> d_ids(static_cast<size_t>(rows) * k);
    DevBuf<float> d_lp(static_cast<size_t>(rows) * k);
    expect_ok(opt_top_logprobs_f32(d_ids.ptr, d_lp.ptr, d_logits.ptr, rows, vocab, k, g_stream), "top_logprobs");
    const std::vector<int32_t> ids = d_ids.download();
    const std::vector<float> lp = d_lp.download();
    for (int r = 0; r < rows; ++r) {
      const float* row = logits.data() + static_cast<size_t>(r) * vocab;
      std::vector<int> order;
      for (int j = 0; j < vocab; ++j) if (row[j] > -INFINITY) order.push_back(j);  // NaN fails the test too
      std::stable_sort(order.begin(), order.end(), [row](int a, int b) { return row[a] > row[b]; });
      for (int j = 0; j < k; ++j) {
        const int got = ids[static_cast<size_t>(r) * k + j];
        const float got_lp = lp[static_cast<size_t>(r) * k + j];
        if (j >= static_cast<int>(order.size())) {
          wrong += got != -1 || !std::isnan(got_lp);
          continue;
        }
        wrong += got != order[j];
        if (r == 3) {  // a NaN in the row: every log-prob NaN
          wrong += !std::isnan(got_lp);
        } else {
          wrong += !std::isfinite(got_lp);  // std::max would let a NaN through
          err = std::max(err, std::abs(got_lp - ref_log_softmax_at(row, vocab, order[j])));
        }
      }
    }
  }
  report("top_logprobs (wrong ids, order or -1/NaN rules)", "f32", wrong, 0.0);
  report("top_logprobs (log-prob error)", "f32", err, 1e-4);
}

// Beam candidates (opt_beam_topk_f32, session 20): 9 beams over 6 rows of 50272 (random with a tie, NaN and +inf,
// all -inf, +inf alone, a grid of exact ties, 3 finite tokens), several beams per row with scores 0, -2.5, -7.25 and -1e9 (where
// every candidate rounds to one of two floats: the lower id must win), k = 8 and 20, against the same float
// operations on the host with the log-sum in double: the same ids in the same order, scores within float32, -inf
// listed after the finite ones, and rows holding a NaN or +inf or all -inf listing nothing (-1, NaN); and the same
// through opt_log_softmax_rows_f32 and log_probs = 1 (the path of beam searches with processors), bit for bit.
void check_beam_topk() {
  const int vocab = 50272;
  std::vector<float> base_rows = argmax_rows(6, vocab);
  std::vector<float> logits;
  for (int r : {0, 1, 2, 5}) logits.insert(logits.end(), base_rows.begin() + static_cast<size_t>(r) * vocab,
                                           base_rows.begin() + static_cast<size_t>(r + 1) * vocab);
  for (int j = 0; j < vocab; ++j) logits.push_back(static_cast<float>((j * 7919) % 64) / 8.0f);
  std::vector<float> few(vocab, -INFINITY);
  few[10] = 1.f;
  few[20] = 3.f;
  few[30] = 1.f;
  logits.insert(logits.end(), few.begin(), few.end());
  // rows: 0 random with a tie, 1 NaN and +inf, 2 all -inf, 3 +inf alone, 4 the grid of ties, 5 three finite tokens
  const std::vector<int32_t> row_of = {0, 0, 4, 4, 5, 1, 2, 0, 3};
  const std::vector<float> base = {0.f, -1e9f, 0.f, -2.5f, -1.f, 0.f, 0.f, -7.25f, 0.f};
  const int n = static_cast<int>(row_of.size());
  DevBuf<float> d_logits(logits);
  DevBuf<int32_t> d_rows(row_of);
  DevBuf<float> d_base(base);
  int wrong = 0;
  double err = 0.0;
  for (int k : {8, 20}) {
    DevBuf<int32_t> d_ids(static_cast<size_t>(n) * k);
    DevBuf<float> d_scores(static_cast<size_t>(n) * k);
    expect_ok(opt_beam_topk_f32(d_ids.ptr, d_scores.ptr, d_logits.ptr, d_rows.ptr, d_base.ptr, n, vocab, k, 0,
                                g_stream), "beam_topk");
    const std::vector<int32_t> ids = d_ids.download();
    const std::vector<float> scores = d_scores.download();
    // The path with processors: the rows' log-softmax (opt_log_softmax_rows_f32), then the candidates of those
    // log-probabilities (log_probs = 1): with no edits in between, the same ids and the same bits as above (one
    // reduction order, the same three roundings).
    const int logit_rows = static_cast<int>(logits.size() / vocab);
    DevBuf<float> d_lp(logits.size());
    expect_ok(opt_log_softmax_rows_f32(d_lp.ptr, d_logits.ptr, logit_rows, vocab, g_stream), "log_softmax_rows");
    expect_ok(opt_beam_topk_f32(d_ids.ptr, d_scores.ptr, d_lp.ptr, d_rows.ptr, d_base.ptr, n, vocab, k, 1, g_stream),
              "beam_topk (log-probs)");
    const std::vector<int32_t> ids_lp = d_ids.download();
    const std::vector<float> scores_lp = d_scores.download();
    for (size_t i = 0; i < ids.size(); ++i) {
      wrong += ids_lp[i] != ids[i];
      wrong += std::memcmp(&scores_lp[i], &scores[i], sizeof(float)) != 0;
    }
    for (int b = 0; b < n; ++b) {
      const float* row = logits.data() + static_cast<size_t>(row_of[b]) * vocab;
      float m = -INFINITY;
      bool nan = false;
      for (int j = 0; j < vocab; ++j) {
        nan |= std::isnan(row[j]);
        m = std::max(m, row[j]);
      }
      const int32_t* got = ids.data() + static_cast<size_t>(b) * k;
      const float* got_s = scores.data() + static_cast<size_t>(b) * k;
      if (nan || !std::isfinite(m)) {
        for (int i = 0; i < k; ++i) wrong += got[i] != -1 || !std::isnan(got_s[i]);
        continue;
      }
      double sum = 0.0;
      for (int j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - m));
      const float log_sum = static_cast<float>(std::log(sum));
      std::vector<float> key(vocab);
      for (int j = 0; j < vocab; ++j) key[j] = ((row[j] - m) - log_sum) + base[b];
      std::vector<int> order(vocab);
      for (int j = 0; j < vocab; ++j) order[j] = j;
      std::stable_sort(order.begin(), order.end(), [&key](int x, int y) { return key[x] > key[y]; });
      for (int i = 0; i < k; ++i) {
        wrong += got[i] != order[i];
        const float want = key[order[i]];
        if (std::isinf(want)) {
          wrong += got_s[i] != want;
        } else {
          wrong += !std::isfinite(got_s[i]);
          err = std::max(err, std::abs(static_cast<double>(got_s[i]) - want) / (1.0 + std::abs(want)));
        }
      }
    }
  }
  report("beam_topk (wrong ids, order or -1/NaN rules)", "f32", wrong, 0.0);
  report("beam_topk (relative score error)", "f32", err, 1e-5);
}

// Logit edits (opt_edit_logits_f32, session 19): random edits of every kind over 3 rows of 50272 (special values
// included), against the same float operations on the host (what backend/LogitEdits.applyTo does in Java): every
// edited logit the same bits, every other logit untouched, an edit outside the logits skipped.
void check_edit_logits() {
  const int rows = 3, vocab = 50272;
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  uint32_t seed = 12345;
  auto next = [&seed]() { seed = seed * 1664525u + 1013904223u; return seed; };
  for (float& v : logits) v = (static_cast<int>(next() >> 8) % 20000 - 10000) / 997.0f;
  logits[7] = INFINITY;
  logits[8] = -INFINITY;
  logits[9] = NAN;
  logits[10] = -0.0f;
  logits[11] = 0.0f;
  const int count = 3000;
  std::vector<int32_t> packed(6 * count);
  std::vector<float> want = logits;
  for (int i = 0; i < count; ++i) {
    const int at = i < 8 ? 4 + i : static_cast<int>(next() % static_cast<uint32_t>(rows * vocab / count)) + i * (rows * vocab / count);
    const int flags = i < 8 ? 7 : static_cast<int>(next() % 16);
    const float bias = (static_cast<int>(next() % 2000) - 1000) / 313.0f;
    const float penalty = 1.0f + (next() % 100) / 57.0f;
    const float freq = -(next() % 100) / 77.0f, presence = -(next() % 100) / 91.0f;
    packed[i] = i == count - 1 ? rows * vocab + 5 : at;  // the last one lies outside: skipped
    packed[count + i] = flags;
    std::memcpy(&packed[2 * count + i], &bias, 4);
    std::memcpy(&packed[3 * count + i], &penalty, 4);
    std::memcpy(&packed[4 * count + i], &freq, 4);
    std::memcpy(&packed[5 * count + i], &presence, 4);
    if (i == count - 1) continue;
    volatile float x = want[at];  // volatile: one rounded operation at a time, as Java and the kernel
    if (flags & 1) x = x + bias;
    if (flags & 2) x = x < 0.f ? x * penalty : x / penalty;
    if (flags & 4) { x = x + freq; x = x + presence; }
    if (flags & 8) x = -INFINITY;
    want[at] = x;
  }
  DevBuf<float> d_logits(logits);
  DevBuf<int32_t> d_packed(packed);
  expect_ok(opt_edit_logits_f32(d_logits.ptr, d_packed.ptr, count, static_cast<long long>(rows) * vocab, g_stream),
            "edit_logits");
  const std::vector<float> got = d_logits.download();
  int differ = 0;
  for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], 4) != 0 && !(std::isnan(got[i]) && std::isnan(want[i]));
  report("edit_logits (logits not the host's bits)", "f32", differ, 0.0);
  expect_ok(opt_edit_logits_f32(d_logits.ptr, d_packed.ptr, 0, 1, g_stream), "edit_logits (nothing to edit)");
}

// One group of checks, by name (one of kGroups). A group runs in its own process when device-check
// names them one by one, so that a kernel that faults (which poisons the CUDA context) costs only its group.
void run_group(const std::string& group) {
  if (group == "base") {  // verified on a GPU: everything but the newer kernels
    check_base<F32>();
    check_base<F16>();
    check_base<BF16>();
    check_attention_kernel<F32>(0);
    check_attention_kernel<F16>(0);
    check_attention_kernel<BF16>(0);
    check_attention_rules(0);
    check_argmax();
    check_size_validation();
  } else if (group == "split") {  // opt_attention_split, one split and several
    for (int kernel : {1, 2}) {
      check_attention_kernel<F32>(kernel);
      check_attention_kernel<F16>(kernel);
      check_attention_kernel<BF16>(kernel);
      check_attention_rules(kernel);
    }
  } else if (group == "combine") {  // opt_attention_split with inline_combine (session 8; not yet run on a GPU)
    for (int kernel : {6}) {
      check_attention_kernel<F32>(kernel);
      check_attention_kernel<F16>(kernel);
      check_attention_kernel<BF16>(kernel);
      check_attention_rules(kernel);
    }
  } else if (group == "vecnorm") {  // opt_set_vector_layernorm (session 12; not yet run on a GPU)
    check_vector_norm_all<F32>();
    check_vector_norm_all<F16>();
    check_vector_norm_all<BF16>();
  } else if (group == "grouped") {  // opt_attention_split with OPT_ATTENTION_GROUPED (session 12; not yet run on a GPU)
    for (int kernel : {7, 8}) {
      check_attention_kernel<F32>(kernel);  // not taken: the per-key kernel (the launcher's fallback)
      check_attention_kernel<F16>(kernel);
      check_attention_kernel<BF16>(kernel);
      check_attention_rules(kernel);
    }
    check_grouped_decode<F16>();
    check_grouped_decode<BF16>();
  } else if (group == "tiled" || group == "tc" || group == "fa") {
    const int kernel = group == "tiled" ? 3 : group == "tc" ? 4 : 5;
    check_attention_kernel<F32>(kernel);
    check_attention_kernel<F16>(kernel);
    check_attention_kernel<BF16>(kernel);
    check_attention_rules(kernel);
    if (kernel == 5) check_fa_validation();
  } else if (group == "gemv") {
    check_linear_small_all<F32>();
    check_linear_small_all<F16>();
    check_linear_small_all<BF16>();
  } else if (group == "int8") {  // opt_linear_int8_small(_qkv), opt_dequant_int8 (session 11; not yet run on a GPU)
    check_int8_all<F32>();
    check_int8_all<F16>();
    check_int8_all<BF16>();
  } else if (group == "tclinear") {  // opt_linear_tc_*, opt_linear_int8_tc_f16 (session 22; not yet run on a GPU)
    check_linear_tc_all<F16>(false);
    check_linear_tc_all<BF16>(false);
    check_linear_tc_all<F16>(true);
  } else if (group == "gemvsplit") {  // opt_linear_small(_qkv) with split rows (session 11; not yet run on a GPU)
    check_linear_small_split_all<F32>();
    check_linear_small_split_all<F16>();
    check_linear_small_split_all<BF16>();
  } else if (group == "logprob") {
    check_argmax_logprob();
  } else if (group == "score") {
    check_token_logprob();
  } else if (group == "sample") {
    check_sample_rows(SampleCases::kPlain);
  } else if (group == "minp") {  // opt_sample_rows_f32's min-p (session 20; passed on an H200 in session 21)
    check_sample_rows(SampleCases::kMinP);
  } else if (group == "sampletop") {  // opt_sample_rows_top_f32 (session 20; passed on an H200 in session 21)
    check_sample_rows(SampleCases::kPlain, 5);
    check_sample_rows(SampleCases::kMinP, 5);
  } else if (group == "typical") {  // opt_sample_rows(_top)_f32's typical cut (session 23; not yet run on a GPU)
    check_sample_rows(SampleCases::kTypical);
    check_sample_rows(SampleCases::kTypical, 5);
  } else if (group == "chained") {
    check_chained();
  } else if (group == "edits") {  // opt_edit_logits_f32 (session 19; not yet run on a GPU)
    check_edit_logits();
  } else if (group == "toplp") {  // opt_top_logprobs_f32 (session 19; not yet run on a GPU)
    check_top_logprobs();
  } else if (group == "beams") {  // opt_beam_topk_f32 (session 20; not yet run on a GPU)
    check_beam_topk();
  }
}

const char* const kGroups[] = {"base", "split", "combine", "grouped", "vecnorm", "tiled", "tc", "fa", "gemv", "gemvsplit", "int8", "tclinear", "logprob", "score",
                               "sample", "minp", "sampletop", "typical", "chained", "edits", "toplp", "beams"};

}  // namespace

// check_ops [GROUP...]: the named groups (base split combine grouped vecnorm tiled tc fa gemv gemvsplit int8 tclinear logprob score sample minp sampletop typical chained edits toplp beams), all of them without arguments.
int main(int argc, char** argv) {
  std::vector<std::string> groups(argv + 1, argv + argc);
  if (groups.empty()) groups.assign(std::begin(kGroups), std::end(kGroups));
  for (const std::string& g : groups) {
    if (std::find(std::begin(kGroups), std::end(kGroups), g) == std::end(kGroups)) {
      std::fprintf(stderr, "check_ops: unknown group '%s' (groups: base split combine grouped vecnorm tiled tc fa gemv gemvsplit int8 tclinear logprob score sample minp sampletop typical chained edits toplp beams)\n", g.c_str());
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "check_ops: no CUDA device\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d), library %s built for %s\n", prop.name, prop.major, prop.minor,
              opt_kernels_version(), opt_kernels_archs());
  CHECK_CUDA(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));

  std::string ran;
  for (const std::string& g : groups) {
    run_group(g);
    ran += (ran.empty() ? "" : " ") + g;
  }

  CHECK_CUDA(cudaStreamDestroy(g_stream));
  std::printf("%s: %d check(s) over tolerance [%s]\n", g_failures == 0 ? "PASS" : "FAIL", g_failures, ran.c_str());
  return g_failures == 0 ? 0 : 1;
}
