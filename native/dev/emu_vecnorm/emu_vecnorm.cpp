// emu_vecnorm: a CPU emulation of the vector layer norm of native/src/layernorm.cu (layernorm_vec_kernel<T, C, kAdd>
// and its launcher launch_vec, taken by launch_layernorm / launch_add_layernorm under opt_set_vector_layernorm(1)),
// thread by thread, against line-by-line copies of the scalar layernorm_kernel / add_layernorm_kernel (the residual's
// bits) and a double-precision reference written from opt_kernels.h. See README.md beside this file.
//
// Build and run (from the repository root; x86-64 only, emu.h's hand-written context switch):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_vecnorm/emu_vecnorm.cpp -o target/emu_vecnorm
//   target/emu_vecnorm [random cases=200] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 11 (listed below).
// -DCONTRACT=0 evaluates `sq += d * d` and the output's `... * gamma + beta` as written (two roundings) instead of as
// the fma.rn that nvcc emits for them (read off `nvcc -O3 -arch=sm_90 -ptx`, for both kernels alike).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: the vector kernel strides its chunks by C instead of blockDim.x (c = threadIdx.x + j * C)
//   2: no `c < chunks` check before the stores (threads past the row's last chunk store)
//   3: the bias added after the residual add (x + y rounded, then + bias), not y + bias first
//   4: the mean divided by chunks instead of cols
//   5: gamma and beta swapped in the output
//   6: the launcher takes per_thread 5 (the C = 4 instantiation then misses chunks)
//   7: the launcher's alignment check leaves out y
//   8: the variance as E[x²] - E[x]² (one pass) instead of the mean of squared deviations
//   9: block_sum without its first __syncthreads (a second call's writes race the first call's reads)
//  10: the launcher leaves out the whole-chunk check (cols % kV)
//  11: the row's base counted in elements (blockIdx.x * cols) where the kernel indexes chunks
constexpr int kPlant = PLANT;
#ifndef CONTRACT
#define CONTRACT 1
#endif
constexpr bool kContract = CONTRACT != 0;

#include "../emu_common/emu.h"
#include "../emu_common/ty.h"  // Ty<T>: the storage types' traits
#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)

// ============================================================================================================
// The kernel file, as common.cuh and layernorm.cu write it. T* → GPtr<T> (ld / st), uint4 → V16 (16-byte loads
// and stores checked for bounds and alignment against the emulated device address), __shared__ → SHARED.
// kPlant marks the planted bugs.
// ============================================================================================================
#include "../emu_common/common_cuh.h"

namespace opt {
inline float sqrtf(float v) { return std::sqrt(v); }  // sqrt.rn (no fast math)
// a * b + c where nvcc contracts the kernel's plain expression into fma.rn (see CONTRACT above)
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
  if (kPlant != 9) __syncthreads();
  if (lane == 0) partial.st(warp, v);
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) total += partial.ld(w);
  return total;
}

// reinterpret_cast<uint4*>(p)[i] = v: bounds and 16-byte alignment checked on the whole word, then stored as two
// 8-byte halves (emu.h's store buffer holds at most 8 bytes a store; nothing reads them in between)
void st16(GPtr<V16> p, long long i, const V16& v, const char* what) {
  if (p.null()) {
    emu::g_log.add("%s: null pointer", what);
    return;
  }
  const long long off = p.off + i * 16;
  if (!p.m->in(off, 16, 16, what)) return;
  p.m->write(off, 8, v.b, what);
  p.m->write(off + 8, 8, v.b + 8, what);
}

// What the last launch ran (the checks compare it with the launcher's rule stated independently).
const void* g_last_kernel = nullptr;
unsigned g_last_threads = 0, g_last_blocks = 0;

template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t smem, int, Args... args) {
  g_last_kernel = reinterpret_cast<const void*>(kernel);
  g_last_threads = block.x;
  g_last_blocks = grid.x;
  ++emu::g_op;  // one operation per grid: every output element written at most once in it
  emu::run_grid(grid, block.x, smem, [=] { kernel(static_cast<Params>(args)...); });
  return kSuccess;
}
// kernel<<<grid, block, smem, stream>>>(args...) followed by launch_status()
template <typename... Params, typename... Args>
int launch_plain(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t smem, int stream, Args... args) {
  return launch_chained(kernel, grid, block, smem, stream, args...);
}

// ---- layernorm.cu ----
constexpr int kMaxThreads = 512;
constexpr int kMaxChunksPerThread = 4;

int g_vector_norm = 0;  // (std::atomic<int> in the source; one host thread here)

template <typename T>
void normalize_row(GPtr<T> out, GPtr<T> row, GPtr<T> gamma, GPtr<T> beta, int cols, float eps, float partial_sum) {
  const float mean = block_sum(partial_sum) / cols;
  float partial_sq = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = to_float(row.ld(i, "x (scalar)")) - mean;
    partial_sq = mad(d, d, partial_sq);  // partial_sq += d * d
  }
  const float var = block_sum(partial_sq) / cols;
  const float inv_std = 1.f / sqrtf(var + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float normed = (to_float(row.ld(i, "x (scalar)")) - mean) * inv_std;
    out.st(i, from_float<T>(mad(normed, to_float(gamma.ld(i, "gamma")), to_float(beta.ld(i, "beta")))), "out (scalar)");
  }
}

template <typename T>
void layernorm_kernel(GPtr<T> out, GPtr<T> x, GPtr<T> gamma, GPtr<T> beta, int cols, float eps) {
  const size_t base = static_cast<size_t>(blockIdx.x) * cols;
  const GPtr<T> row = x + base;
  float sum = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) sum += to_float(row.ld(i, "x (scalar)"));
  normalize_row(out + base, row, gamma, beta, cols, eps, sum);
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
    const float y_biased = bias.null() ? to_float(y_row.ld(i, "y")) : to_float(y_row.ld(i, "y")) + to_float(bias.ld(i, "bias"));
    const T stored = from_float<T>(to_float(row.ld(i, "x (scalar)")) + y_biased);
    row.st(i, stored, "x (scalar)");
    sum += to_float(stored);
  }
  normalize_row(out + base, row, gamma, beta, cols, eps, sum);
}

template <typename T>
struct Vec {
  static constexpr int kSize = 16 / static_cast<int>(sizeof(T));
  // (u by value, as the source; the source calls common.cuh's widen, which converts pairs with __half22float2 /
  // __bfloat1622float2: the same exact conversions as one element at a time)
  static void widen(const V16 u, float (&f)[kSize]) {
    for (int i = 0; i < kSize; ++i) {
      T e;
      std::memcpy(&e, u.b + i * sizeof(T), sizeof(T));  // reinterpret_cast<const T*>(&u)[i]
      f[i] = to_float(e);
    }
  }
  static V16 narrow(const float (&f)[kSize]) {
    V16 u;
    for (int i = 0; i < kSize; ++i) {
      const T e = from_float<T>(f[i]);
      std::memcpy(u.b + i * sizeof(T), &e, sizeof(T));
    }
    return u;
  }
};

template <typename T, int C, bool kAdd>
void layernorm_vec_kernel(GPtr<T> x, GPtr<T> y, GPtr<T> bias, GPtr<T> out, GPtr<T> gamma, GPtr<T> beta, int cols,
                          float eps) {
  constexpr int kV = Vec<T>::kSize;
  chain_start();
  const int stride = kPlant == 1 ? C : static_cast<int>(blockDim.x);
  const int chunks = cols / kV;
  const size_t base = static_cast<size_t>(blockIdx.x) * (kPlant == 11 ? cols : chunks);
  V16 g_raw[C], b_raw[C];
  for (int j = 0; j < C; ++j) {  // constants: loaded while a chained predecessor finishes
    const int c = threadIdx.x + j * stride;
    if (c < chunks) {
      g_raw[j] = gamma.template as<V16>().ld(c, "gamma chunk");
      b_raw[j] = beta.template as<V16>().ld(c, "beta chunk");
    }
  }
  chain_wait();
  float v[C][kV];
  float sum = 0.f;
  for (int j = 0; j < C; ++j) {
    const int c = threadIdx.x + j * stride;
    if (c < chunks) {
      Vec<T>::widen(x.template as<V16>().ld(base + c, "x chunk"), v[j]);
      if (kAdd) {
        float yf[kV];
        Vec<T>::widen(y.template as<V16>().ld(base + c, "y chunk"), yf);
        float bf[kV];
        if (!bias.null()) Vec<T>::widen(bias.template as<V16>().ld(c, "bias chunk"), bf);
        for (int e = 0; e < kV; ++e) {
          // add_layernorm_kernel's expression: y + bias first, then the residual add, rounded to T
          if (kPlant == 3) {
            const float r = to_float(from_float<T>(v[j][e] + yf[e]));
            v[j][e] = bias.null() ? r : to_float(from_float<T>(r + bf[e]));
          } else {
            const float y_biased = bias.null() ? yf[e] : yf[e] + bf[e];
            v[j][e] = to_float(from_float<T>(v[j][e] + y_biased));
          }
        }
      }
      for (int e = 0; e < kV; ++e) sum += v[j][e];
    }
  }
  const float mean = block_sum(sum) / (kPlant == 4 ? chunks : cols);
  float sq = 0.f;
  for (int j = 0; j < C; ++j) {
    if (threadIdx.x + j * stride < static_cast<unsigned>(chunks)) {
      for (int e = 0; e < kV; ++e) {
        if (kPlant == 8) {
          sq = mad(v[j][e], v[j][e], sq);
        } else {
          const float d = v[j][e] - mean;
          sq = mad(d, d, sq);  // sq += d * d
        }
      }
    }
  }
  const float var = kPlant == 8 ? block_sum(sq) / cols - mean * mean : block_sum(sq) / cols;
  const float inv_std = 1.f / sqrtf(var + eps);
  for (int j = 0; j < C; ++j) {
    const int c = threadIdx.x + j * stride;
    if (kPlant == 2 || c < chunks) {
      if (kAdd) st16(x.template as<V16>(), base + c, Vec<T>::narrow(v[j]), "x chunk (store)");
      float gf[kV], bf[kV], o[kV];
      Vec<T>::widen(kPlant == 5 ? b_raw[j] : g_raw[j], gf);
      Vec<T>::widen(kPlant == 5 ? g_raw[j] : b_raw[j], bf);
      for (int e = 0; e < kV; ++e) o[e] = mad((v[j][e] - mean) * inv_std, gf[e], bf[e]);
      st16(out.template as<V16>(), base + c, Vec<T>::narrow(o), "out chunk (store)");
    }
  }
}

template <typename T>
bool aligned16(GPtr<T> p) { return p.addr() % 16 == 0; }  // (a null pointer is address 0: aligned)

template <typename T, bool kAdd>
bool launch_vec(GPtr<T> x, GPtr<T> y, GPtr<T> bias, GPtr<T> out, GPtr<T> gamma, GPtr<T> beta, int rows, int cols,
                float eps, int stream, int* status) {
  constexpr int kV = Vec<T>::kSize;
  if (g_vector_norm == 0 || (kPlant != 10 && cols % kV != 0) || !aligned16(x) || !aligned16(out) ||
      !aligned16(gamma) || !aligned16(beta) ||
      (kAdd && ((kPlant != 7 && !aligned16(y)) || (!bias.null() && !aligned16(bias))))) {
    return false;
  }
  const int chunks = cols / kV;
  const int per_thread = (chunks + kMaxThreads - 1) / kMaxThreads;
  if (per_thread > kMaxChunksPerThread + (kPlant == 6 ? 1 : 0)) return false;
  const int threads = threads_for((chunks + per_thread - 1) / per_thread, kMaxThreads);
  switch (per_thread) {
    case 1:
      *status = launch_chained(layernorm_vec_kernel<T, 1, kAdd>, Dim3(rows), Dim3(threads), 0, stream, x, y, bias,
                               out, gamma, beta, cols, eps);
      break;
    case 2:
      *status = launch_chained(layernorm_vec_kernel<T, 2, kAdd>, Dim3(rows), Dim3(threads), 0, stream, x, y, bias,
                               out, gamma, beta, cols, eps);
      break;
    default:
      *status = launch_chained(layernorm_vec_kernel<T, kMaxChunksPerThread, kAdd>, Dim3(rows), Dim3(threads), 0,
                               stream, x, y, bias, out, gamma, beta, cols, eps);
  }
  return true;
}

template <typename T>
int launch_layernorm(GPtr<T> out, GPtr<T> x, GPtr<T> gamma, GPtr<T> beta, int rows, int cols, float eps, int stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  int status = kSuccess;
  if (launch_vec<T, false>(x, GPtr<T>{}, GPtr<T>{}, out, gamma, beta, rows, cols, eps, stream, &status)) {
    return status;
  }
  return launch_plain(layernorm_kernel<T>, Dim3(rows), Dim3(threads_for(cols, kMaxThreads)), 0, stream, out, x,
                      gamma, beta, cols, eps);
}

template <typename T>
int launch_add_layernorm(GPtr<T> x, GPtr<T> y, GPtr<T> bias, GPtr<T> out, GPtr<T> gamma, GPtr<T> beta, int rows,
                         int cols, float eps, int stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  int status = kSuccess;
  if (launch_vec<T, true>(x, y, bias, out, gamma, beta, rows, cols, eps, stream, &status)) return status;
  return launch_chained(add_layernorm_kernel<T>, Dim3(rows), Dim3(threads_for(cols, kMaxThreads)), 0, stream, x, y,
                        bias, out, gamma, beta, cols, eps);
}

}  // namespace opt

// ============================================================================================================
// Reference, cases, checks
// ============================================================================================================
namespace {
using emu::g_log;
using opt::GPtr;



constexpr uintptr_t kBase = 0x10000000;  // every buffer's emulated address (16-byte aligned; offsets misalign)

enum Which { kNone, kX, kY, kBias, kOut, kGamma, kBeta };
const char* const kWhich[] = {"", "x", "y", "bias", "out", "gamma", "beta"};

struct Case {
  int rows = 1, cols = 768;
  bool add = true, bias = true, inplace = false, vec_on = true;
  Which misalign = kNone;  // this pointer one element past a 16-byte boundary
  float x_mean = 0.5f;
};

// A device buffer of n elements of T, one element in when `mis` (its own address then misaligned); every element
// of a writable one written at most once per grid (GMem's once_from).
template <class T>
struct Buf {
  emu::GMem m;
  long long first = 0;  // elements before the tensor (0 or 1)
  size_t n = 0;
  void init(const char* name, const std::vector<T>& v, bool writable, bool mis) {
    first = mis ? 1 : 0;
    n = v.size();
    m.init(name, (v.size() + first) * sizeof(T), kBase, writable, sizeof(T));
    std::memset(m.bytes.data(), 0xee, m.bytes.size());
    if (!v.empty()) std::memcpy(m.bytes.data() + first * sizeof(T), v.data(), v.size() * sizeof(T));
    if (writable) m.once_from = 0;
  }
  GPtr<T> ptr() { return GPtr<T>{&m, first * static_cast<long long>(sizeof(T))}; }
  std::vector<T> get() const {
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), m.bytes.data() + first * sizeof(T), n * sizeof(T));
    return v;
  }
  // elements of the tensor written by operation op, and whether anything outside it was written
  long long written(uint32_t op) const {
    long long c = 0;
    for (size_t e = 0; e < n; ++e) c += m.meta[first + e].w_op == op;
    return c;
  }
  bool outside_written(uint32_t op) const { return first == 1 && m.meta[0].w_op == op; }
};


// The kernel the launcher must pick, stated from the rule in the brief: the vector kernel when the switch is on,
// cols is whole chunks, every pointer it touches is 16-byte aligned and the row needs at most 4 chunks per thread
// of 512; C = 1, 2, or 4 (for 3 and 4 chunks per thread); threads_for(ceil(chunks / per_thread), 512) threads.
// Else the scalar kernel with threads_for(cols, 512).
template <class T>
const void* expected_kernel(bool add, int per_thread) {
  using namespace opt;
  if (per_thread == 0) return add ? reinterpret_cast<const void*>(add_layernorm_kernel<T>)
                                  : reinterpret_cast<const void*>(layernorm_kernel<T>);
  if (add) return per_thread == 1 ? reinterpret_cast<const void*>(layernorm_vec_kernel<T, 1, true>)
                  : per_thread == 2 ? reinterpret_cast<const void*>(layernorm_vec_kernel<T, 2, true>)
                                    : reinterpret_cast<const void*>(layernorm_vec_kernel<T, 4, true>);
  return per_thread == 1 ? reinterpret_cast<const void*>(layernorm_vec_kernel<T, 1, false>)
         : per_thread == 2 ? reinterpret_cast<const void*>(layernorm_vec_kernel<T, 2, false>)
                           : reinterpret_cast<const void*>(layernorm_vec_kernel<T, 4, false>);
}

struct Stats {
  long long cases = 0, vec_cases = 0, fallback_cases = 0, residual_bits = 0, out_words = 0, out_differ = 0;
  long long max_ulps = 0;
  double max_abs_diff = 0;  // (f32 words far apart in ulps are values near zero: the absolute difference says so)
  double max_out_ref = 0, max_scalar_ref = 0, max_x_ref = 0;
};
Stats g_stats[3];
long long g_failed = 0;

std::string describe(const char* dt, const Case& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s %s rows=%d cols=%d%s%s%s%s%s%s", dt, c.add ? "add" : "ln", c.rows, c.cols,
                c.add && !c.bias ? " no-bias" : "", c.inplace ? " in-place" : "", c.misalign ? " misaligned " : "",
                kWhich[c.misalign], c.vec_on ? "" : " vector-off", c.x_mean > 1 ? " x-mean-40" : "");
  return buf;
}

template <class T>
bool run_case(const Case& c, std::mt19937& rng) {
  constexpr int kV = 16 / sizeof(T);
  const int rows = c.rows, cols = c.cols;
  const size_t n = static_cast<size_t>(rows) * cols;
  const float eps = 1e-5f;
  const long long errors_before = g_log.errors;
  std::vector<std::string> why;
  auto fail = [&](const std::string& s) { why.push_back(s); };
  const auto x = random_tensor<T>(rng, n, c.x_mean, 1.f);
  const auto y = random_tensor<T>(rng, n, 0.f, 1.f);
  const auto b = random_tensor<T>(rng, cols, 0.f, 0.3f);
  const auto g = random_tensor<T>(rng, cols, 1.f, 0.2f);
  const auto be = random_tensor<T>(rng, cols, 0.f, 0.2f);
  std::vector<T> poison(n);
  std::memset(poison.data(), 0xff, n * sizeof(T));
  Buf<T> my, mb, mg, mbe;
  my.init("y", y, false, c.misalign == kY);
  mb.init("bias", b, false, c.misalign == kBias);
  mg.init("gamma", g, false, c.misalign == kGamma);
  mbe.init("beta", be, false, c.misalign == kBeta);
  const GPtr<T> Y = c.add ? my.ptr() : GPtr<T>{}, B = c.add && c.bias ? mb.ptr() : GPtr<T>{}, G = mg.ptr(),
                BE = mbe.ptr();
  // x is written by the add, and by the output of an in-place norm; out poisoned
  const bool x_writable = c.add || c.inplace;
  const bool out_mis = c.inplace ? c.misalign == kX : c.misalign == kOut;
  auto launch = [&](Buf<T>& bx, Buf<T>& bo) {
    const GPtr<T> X = bx.ptr(), O = c.inplace ? bx.ptr() : bo.ptr();
    return c.add ? opt::launch_add_layernorm<T>(X, Y, B, O, G, BE, rows, cols, eps, 0)
                 : opt::launch_layernorm<T>(O, X, G, BE, rows, cols, eps, 0);
  };

  // 1. The scalar kernel (vector switch off): the reference for the residual's bits
  Buf<T> rx, ro;
  rx.init("x (scalar run)", x, x_writable, c.misalign == kX);
  ro.init("out (scalar run)", poison, true, out_mis);
  opt::g_vector_norm = 0;
  if (launch(rx, ro) != 0) fail("scalar run: status");
  if (opt::g_last_kernel != expected_kernel<T>(c.add, 0)) fail("scalar run: not the scalar kernel");
  const std::vector<T> r_x = rx.get(), r_out = c.inplace ? rx.get() : ro.get();

  // 2. The launcher as the case sets the switch
  Buf<T> fx, fo;
  fx.init("x", x, x_writable, c.misalign == kX);
  fo.init("out", poison, true, out_mis);
  opt::g_vector_norm = c.vec_on ? 1 : 0;
  const int st = launch(fx, fo);
  opt::g_vector_norm = 0;
  const uint32_t op = emu::g_op;
  if (st != 0) fail("status " + std::to_string(st));
  const std::vector<T> f_x = fx.get(), f_out = c.inplace ? fx.get() : fo.get();

  // the launcher's choice against the rule stated independently
  const int chunks = cols / kV;
  const int per_thread = (chunks + 511) / 512;
  const bool aligned = c.misalign == kNone || (c.misalign == kY && !c.add) || (c.misalign == kBias && !(c.add && c.bias)) ||
                       (c.misalign == kOut && c.inplace);
  const bool vec = c.vec_on && cols % kV == 0 && aligned && per_thread <= 4;
  const int want_threads = vec ? opt::threads_for((chunks + per_thread - 1) / per_thread, 512) : opt::threads_for(cols, 512);
  if (opt::g_last_kernel != expected_kernel<T>(c.add, vec ? per_thread : 0))
    fail(std::string("launched the wrong kernel (want ") + (vec ? "vector C=" + std::to_string(per_thread > 2 ? 4 : per_thread) : "scalar") + ")");
  else if (opt::g_last_threads != static_cast<unsigned>(want_threads) || opt::g_last_blocks != static_cast<unsigned>(rows))
    fail("launch shape " + std::to_string(opt::g_last_blocks) + " x " + std::to_string(opt::g_last_threads));
  if (vec && static_cast<long long>(want_threads) * (per_thread > 2 ? 4 : per_thread) < chunks) fail("rule: chunks uncovered");

  // every element of out (and of x when the kernel writes it) written once by the launch, nothing outside
  const Buf<T>& ob = c.inplace ? fx : fo;
  if (ob.written(op) != static_cast<long long>(n) || ob.outside_written(op))
    fail("out: " + std::to_string(ob.written(op)) + " of " + std::to_string(n) + " elements written");
  if (c.add && (fx.written(op) != static_cast<long long>(n) || fx.outside_written(op)))
    fail("x: " + std::to_string(fx.written(op)) + " of " + std::to_string(n) + " elements written");

  Stats& s = g_stats[Ty<T>::idx];
  ++s.cases;
  ++(vec ? s.vec_cases : s.fallback_cases);
  // the residual: the scalar kernel's bits
  if (c.add) {
    ++s.residual_bits;
    if (!same_bits(f_x, r_x)) fail("residual x differs from add_layernorm_kernel's bits");
  }
  if (!vec && !same_bits(f_out, r_out)) fail("fallback: out differs from the scalar kernel's");
  // out against the double reference of LN(x as stored): the kernel's own stored x for the add
  const std::vector<T>& xs = c.add ? f_x : x;
  std::vector<double> xref(n), oref(n);
  for (int r = 0; r < rows; ++r) {
    const size_t o = static_cast<size_t>(r) * cols;
    double mean = 0, var = 0;
    for (int i = 0; i < cols; ++i) {
      xref[o + i] = static_cast<double>(Ty<T>::widen(x[o + i])) +
                    (c.add ? Ty<T>::widen(y[o + i]) + (c.bias ? Ty<T>::widen(b[i]) : 0.0) : 0.0);
      mean += Ty<T>::widen(xs[o + i]);
    }
    mean /= cols;
    for (int i = 0; i < cols; ++i) var += (Ty<T>::widen(xs[o + i]) - mean) * (Ty<T>::widen(xs[o + i]) - mean);
    var /= cols;
    for (int i = 0; i < cols; ++i)
      oref[o + i] = (Ty<T>::widen(xs[o + i]) - mean) / std::sqrt(var + eps) * Ty<T>::widen(g[i]) + Ty<T>::widen(be[i]);
  }
  const double eo = max_error(wide(f_out), oref), es = max_error(wide(r_out), oref);
  const double ex = c.add ? max_error(wide(f_x), xref) : 0;
  s.max_out_ref = std::max(s.max_out_ref, eo);
  s.max_scalar_ref = std::max(s.max_scalar_ref, es);
  s.max_x_ref = std::max(s.max_x_ref, ex);
  if (!(eo <= Ty<T>::tol)) fail("out vs reference " + std::to_string(eo));
  if (!(es <= Ty<T>::tol)) fail("scalar out vs reference " + std::to_string(es));
  if (!(ex <= Ty<T>::tol)) fail("x vs reference " + std::to_string(ex));
  // out against the scalar kernel's out: reported (the statistics sum in another order), not required equal
  for (size_t i = 0; i < n; ++i) {
    const long long d = std::llabs(Ty<T>::key(f_out[i]) - Ty<T>::key(r_out[i]));
    s.out_differ += d != 0;
    s.max_ulps = std::max(s.max_ulps, d);
    s.max_abs_diff = std::max(s.max_abs_diff, std::fabs(static_cast<double>(Ty<T>::widen(f_out[i])) - Ty<T>::widen(r_out[i])));
  }
  s.out_words += n;
  if (g_log.errors != errors_before) fail(std::to_string(g_log.errors - errors_before) + " checker errors");
  if (!why.empty()) {
    if (++g_failed <= 10) {
      std::string all;
      for (const auto& e : why) all += (all.empty() ? "" : "; ") + e;
      std::printf("  FAIL %s: %s\n", describe(Ty<T>::name(), c).c_str(), all.c_str());
    }
    return false;
  }
  return true;
}

bool run_any(int dtype, const Case& c, std::mt19937& rng) {
  return dtype == 0 ? run_case<float>(c, rng) : dtype == 1 ? run_case<emu::Half>(c, rng) : run_case<emu::BF16>(c, rng);
}

// Sizes the launchers refuse or skip: nothing launched.
bool sizes() {
  emu::GMem d;
  d.init("dummy", 64, kBase, true, 4);
  const GPtr<float> P{&d, 0};
  int wrong = 0;
  opt::g_vector_norm = 1;
  for (int add = 0; add < 2; ++add) {
    auto call = [&](int rows, int cols) {
      const uint32_t l = emu::g_launch;
      const int st = add ? opt::launch_add_layernorm<float>(P, P, P, P, P, P, rows, cols, 1e-5f, 0)
                         : opt::launch_layernorm<float>(P, P, P, P, rows, cols, 1e-5f, 0);
      return emu::g_launch != l ? -1 : st;
    };
    wrong += call(-1, 4) != 1;
    wrong += call(1, -4) != 1;
    wrong += call(0, 4) != 0;
    wrong += call(1, 0) != 0;
  }
  opt::g_vector_norm = 0;
  std::printf("sizes (rows or cols < 0: invalid, 0: nothing launched): %s\n", wrong == 0 ? "ok" : "FAIL");
  return wrong == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 200;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261130u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // (a planted bug may crash the run: keep what it printed)
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_vecnorm: layernorm_vec_kernel emulated, fixed cases + %d random, seed %u%s%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "", kContract ? "" : ", CONTRACT=0");
  bool ok = sizes();
  int ran = 0, failed = 0;
  auto one = [&](int dtype, const Case& c) {
    ++ran;
    failed += !run_any(dtype, c, rng);
  };
  auto mk = [](int rows, int cols, bool add, bool bias, bool inplace = false) {
    Case c;
    c.rows = rows;
    c.cols = cols;
    c.add = add;
    c.bias = bias;
    c.inplace = inplace;
    return c;
  };
  for (int dtype : {1, 2, 0}) {
    const int kV = dtype == 0 ? 4 : 8;
    // OPT's widths (opt-125m .. opt-175b), 1-5 rows, each mode: plain, plain in place, add + bias, add without bias
    static const int kOpt[] = {768, 2048, 2560, 4096, 5120, 7168, 9216, 12288};
    int i = 0;
    for (int w : kOpt) {
      for (int mode = 0; mode < 4; ++mode, ++i) one(dtype, mk(1 + i % 5, w, mode >= 2, mode == 2, mode == 1));
    }
    // the per-thread edges in chunks: C = 1 up to 512 chunks, 2 up to 1024, 4 (for 3 and 4) up to 2048, then the
    // fallback; rows of one chunk and of a warp +- 1
    for (int ch : {1, 2, 31, 32, 33, 512, 513, 1024, 1025, 1536, 1537, 2048, 2049}) {
      one(dtype, mk(2, ch * kV, true, true));
      one(dtype, mk(1, ch * kV, false, false));
    }
    if (dtype == 0) one(dtype, mk(1, 16384, true, true));  // f32 16384: 4,096 chunks, scalar
    for (int w : {33, 83, kV + 1, kV / 2}) {                 // not whole chunks: scalar
      one(dtype, mk(2, w, true, true));
      one(dtype, mk(3, w, false, false, w == 33));
    }
    for (int m = kX; m <= kBeta; ++m) {  // one pointer misaligned by one element: scalar (y / bias only for the add)
      Case c = mk(2, 768, true, true);
      c.misalign = static_cast<Which>(m);
      one(dtype, c);
      c.add = false;
      one(dtype, c);
      if (m == kX) {
        c.inplace = true;
        one(dtype, c);
      }
    }
    Case nb = mk(2, 768, true, false);  // a misaligned bias pointer that is null: nothing to misalign, vector
    nb.misalign = kBias;
    one(dtype, nb);
    Case off = mk(3, 2048, true, true);  // the switch off: scalar
    off.vec_on = false;
    one(dtype, off);
    Case big = mk(2, 4096, true, true);  // a residual of mean 40
    big.x_mean = 40.f;
    one(dtype, big);
    big.add = false;
    one(dtype, big);
  }
  // random cases: widths whole chunks mostly (OPT's and any up to the fallback), sometimes odd or misaligned
  static const int kOptW[] = {768, 2048, 2560, 4096, 5120, 7168, 9216, 12288};
  for (int i = 0; i < cases; ++i) {
    const int dtype = static_cast<int>(rng() % 3);
    const int kV = dtype == 0 ? 4 : 8;
    Case c;
    c.rows = 1 + static_cast<int>(rng() % 5);
    const unsigned pick = rng() % 8;
    c.cols = pick < 3 ? kOptW[rng() % 8] : pick < 7 ? kV * (1 + static_cast<int>(rng() % 2100))
                                                    : 1 + static_cast<int>(rng() % 3000);
    if (dtype == 0 && c.cols > 9216) c.cols = 9216;  // (f32 past 8,192 floats: the scalar kernel; time)
    c.add = rng() % 3 != 0;
    c.bias = rng() % 3 != 0;
    c.inplace = !c.add && rng() % 2 == 0;
    c.misalign = rng() % 8 == 0 ? static_cast<Which>(1 + rng() % 6) : kNone;
    c.vec_on = rng() % 16 != 0;
    c.x_mean = rng() % 6 == 0 ? 40.f : 0.5f;
    one(dtype, c);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %5s %5s %8s %9s %11s %11s %11s  %s\n", "dtype", "cases", "vec", "fallback", "residual",
              "out vs ref", "scalar ref", "x vs ref", "out vs scalar kernel's out");
  for (int i = 0; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %5lld %5lld %8lld %9lld %11.2e %11.2e %11.2e  %lld of %lld words differ, max %lld ulps, max |diff| %.2g\n",
                i == 0 ? "f32" : i == 1 ? "f16" : "bf16", s.cases, s.vec_cases, s.fallback_cases, s.residual_bits,
                s.max_out_ref, s.max_scalar_ref, s.max_x_ref, s.out_differ, s.out_words, s.max_ulps, s.max_abs_diff);
  }
  std::printf("grids run %u\n", emu::g_launch);
  std::printf("checker errors (races, uninitialised reads, bounds, alignment, double writes, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  const bool pass = ok && failed == 0 && g_log.errors == 0;
  std::printf("%s: %d of %d cases failed (%.1f s)\n", pass ? "PASS" : "FAIL", failed, ran, secs);
  return pass ? 0 : 1;
}
