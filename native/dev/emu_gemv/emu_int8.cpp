// emu_int8: a CPU emulation of the int8-weight Linear kernels of native/src/linear_int8.cu (linear_int8_kernel<T, R,
// S, M, DenseStore|QkvStore> with widen_int8, accumulate_int8, product_int8 and its launchers launch_int8 /
// launch_int8_rm / launch_qkv; dequant_int8_kernel with launch_dequant), thread by thread and block by block on the
// emulated GPU of ../emu_common/emu.h, against a double-precision reference written from opt_kernels.h and against
// the kernel's sum order written from its description. The parts shared with linear_small.cu (linear_small.cuh:
// the epilogues, weight_rows, split_span, ...) come from linear_small_cuh.h, the checks' helpers from harness.h,
// both beside this file and shared with emu_gemv.cpp. See README.md beside this file.
//
// Build and run (from the repository root; x86-64 only, a hand-written context switch):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_gemv/emu_int8.cpp -o target/emu_int8
//   target/emu_int8 [random cases=80] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 14 (listed below):
//   for N in $(seq 1 14); do g++ -O2 -std=c++17 -ffp-contract=off -DPLANT=$N
//       native/dev/emu_gemv/emu_int8.cpp -o target/emu_int8_p$N && target/emu_int8_p$N 30; done     (one line)
// -ffp-contract=off: the kernel's plain float expressions (the partial sums' `v += ...`, `v * scales[j]`, the bias
// add) stay unfused on the host, as the bit-for-bit comparisons assume.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: widen_int8 without the sign flip (bytes 0x00..0x7f widen to -128..-1, 0x80..0xff to 0..127)
//   2: accumulate_int8 reads x's pieces at c instead of c * kPieces
//   3: the sum multiplied by the scale of the group's first row (scales[j0]) instead of its own (scales[j0 + r])
//   4: each warp's partial sum multiplied by the scale before the parts are added (not the sum after)
//   5: kPieces 2 whatever T (f32 needs 4 pieces of 16 bytes for its 16 values)
//   6: dequant_int8_kernel's scale index i / rows instead of i / cols
//   7: launch_int8 accepts k not a multiple of 16
//   8: launch_int8 takes the one-row kernel (M = 1) for m <= 2
//   9: launch_int8_rm's auto split without its chunk condition (rows too short for a round per warp split)
//  10: launch_int8 accepts null scales
//  11: QkvStore skips the cache only for slot > cache_slots (slot == cache_slots written; linear_small_cuh.h)
//  12: linear_int8_kernel counts chunks as k / Chunk<T>::kSize (the activations' chunk, as linear_small.cu)
//  13: dequant_int8_kernel's grid-stride step blockDim.x instead of gridDim.x * blockDim.x
//  14: launch_dequant's grid not capped at 32 blocks per SM
constexpr int kPlant = PLANT;
// the planted bugs inside the shared code of linear_small_cuh.h
constexpr bool kPlantSpanShare = false;
constexpr bool kPlantSlotEq = kPlant == 11;
constexpr bool kPlantRowsUnclamped = false;

#include "../emu_common/emu.h"
#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)

// ============================================================================================================
// The kernel file, as linear_int8.cu writes it. T* → GPtr<T> (ld / st), const uint4* → GPtr<V16>, __shared__
// arrays → SArr (ld / st), __ldcs / prefetch → ldcs / prefetch_l2 (bounds-checked), <<<...>>> → launch_chained
// (records the launch and runs the grid). kPlant marks the planted bugs.
// ============================================================================================================
#include "../emu_common/common_cuh.h"

#include "linear_small_cuh.h"  // common.cuh and linear_small.cuh: the parts shared with emu_gemv.cpp

namespace opt {

// ---- linear_int8.cu ----
constexpr int kInt8PerChunk = 16;

// byte_perm / bits_to_float as linear_int8.cu's host path (session 18: the float bits of 2^23 + byte).
uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  const uint64_t both = (static_cast<uint64_t>(y) << 32) | x;
  uint32_t r = 0;
  for (int k = 0; k < 4; ++k) r |= static_cast<uint32_t>((both >> (8 * ((s >> (4 * k)) & 7))) & 0xFFu) << (8 * k);
  return r;
}

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// 16 int8 values of one 16-byte chunk, widened to float (exact).
void widen_int8(const V16& v, float* out) {
  uint32_t words[4];  // {v.x, v.y, v.z, v.w}: the chunk's bytes as four little-endian words
  std::memcpy(words, v.b, 16);
  for (int w = 0; w < 4; ++w) {
    // planted bug 1: no sign flip, so bytes 0x80..0xff widen to 0..127 and 0x00..0x7f to -128..-1
    if (kPlant != 1) words[w] ^= 0x80808080u;
    for (int b = 0; b < 4; ++b) {
      out[4 * w + b] = bits_to_float(byte_perm(words[w], 0x4B000000u, 0x7440u | b)) - 8388736.f;
    }
  }
}

template <typename T, int R, int M>
void accumulate_int8(float (&acc)[M][R], const V16 (&wv)[R], GPtr<T> x, int m, int k, int c) {
  constexpr int kPieces = kPlant == 5 ? 2 : kInt8PerChunk / Chunk<T>::kSize;  // 2 (16-bit) or 4
  float wf[R][kInt8PerChunk];
  for (int r = 0; r < R; ++r) widen_int8(wv[r], wf[r]);
  for (int i = 0; i < M; ++i) {
    if (i < m) {
      // A plain load, not __ldg: x is the previous kernel's output (chained launches, common.cuh)
      const GPtr<V16> xp = (x + static_cast<size_t>(i) * k).template as<V16>() +
                           static_cast<size_t>(c) * (kPlant == 2 ? 1 : kPieces);
      float xf[kInt8PerChunk];
      std::fill(xf, xf + kInt8PerChunk, std::nanf(""));  // (emulation only: what no piece sets is NaN, not garbage)
      for (int p = 0; p < kPieces; ++p) widen(xp.ld(p, "x piece"), xf + p * Chunk<T>::kSize, static_cast<const T*>(nullptr));
      for (int r = 0; r < R; ++r) {
        for (int e = 0; e < kInt8PerChunk; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
      }
    }
  }
}

template <typename T, int R, int M>
void product_int8(float (&acc)[M][R], const GPtr<V16> (&wrow)[R], GPtr<T> x, int m, int k, int begin, int end,
                  int lane) {
  constexpr int kUnroll = unroll_for<R>();
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = 0.f;
  }
  int c = begin + lane;
  for (; c + (kUnroll - 1) * kWarp < end; c += kUnroll * kWarp) {
    V16 wv[kUnroll][R];
    for (int u = 0; u < kUnroll; ++u) {
      for (int r = 0; r < R; ++r) wv[u][r] = ldcs(wrow[r] + c + u * kWarp);  // streamed once: evict first
    }
    for (int u = 0; u < kUnroll; ++u) accumulate_int8<T, R, M>(acc, wv[u], x, m, k, c + u * kWarp);
  }
  for (; c < end; c += kWarp) {
    V16 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = ldcs(wrow[r] + c);
    accumulate_int8<T, R, M>(acc, wv, x, m, k, c);
  }
}

template <typename T, int R, int S, int M, class Store>
void linear_int8_kernel(GPtr<T> x, GPtr<int8_t> w, GPtr<float> scales, int m, int k, int n, Store store) {
  static_assert(S >= 1 && kWarpsPerBlock % S == 0, "S warps per group, whole groups per block");
  SHARED(float, partial, kWarpsPerBlock * M * R);  // __shared__ float partial[kWarpsPerBlock][M][R]
  auto at = [](int wp, int i, int r) { return (static_cast<long long>(wp) * M + i) * R + r; };  // [wp][i][r]
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int part = warp % S;
  const long long j0 = (static_cast<long long>(blockIdx.x) * (kWarpsPerBlock / S) + warp / S) * R;
  const int chunks = k / (kPlant == 12 ? Chunk<T>::kSize : kInt8PerChunk);
  const int span = split_span(chunks, S);
  const int begin = part * span < chunks ? part * span : chunks;
  const int end = chunks - begin < span ? chunks : begin + span;
  GPtr<V16> wrow[R];
  weight_rows<int8_t, R>(wrow, w, j0, n, k);
  if (j0 < n) prefetch_first_chunks<R>(wrow, begin + lane, end);
  chain_wait();
  float acc[M][R];
  product_int8<T, R, M>(acc, wrow, x, m, k, begin, end, lane);
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);  // warp-uniform condition: every lane takes part in the shuffles
        if (lane == 0) {
          if (kPlant == 4) partial.st(at(warp, i, r), v * scales.ld(j0 + r < n ? j0 + r : n - 1, "scales"));
          else partial.st(at(warp, i, r), v);
        }
      }
    }
  }
  __syncthreads();
  if (part != 0 || j0 >= n) return;
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m && lane == (i * R + r) % kWarp && j0 + r < n) {
        float v = partial.ld(at(warp, i, r));
        for (int p = 1; p < S; ++p) v += partial.ld(at(warp + p, i, r));
        if (kPlant == 4) store(i, j0 + r, v);
        else store(i, j0 + r, v * scales.ld(kPlant == 3 ? j0 : j0 + r, "scales"));
      }
    }
  }
}

template <typename T, int R, int M, class Store>
int launch_int8_rm(GPtr<T> x, GPtr<int8_t> w, GPtr<float> scales, int m, int k, int n, Store store, int split,
                   int stream) {
  const long long groups = (static_cast<long long>(n) + R - 1) / R;
  int s = split;
  if (s == 0) {  // as linear_small.cu's auto_split: the smallest S that fills one wave, a full round per warp
    const long long wave = static_cast<long long>(resident_blocks(linear_int8_kernel<T, R, 1, M, Store>)) *
                           sm_count() * kWarpsPerBlock;
    const int chunks = k / kInt8PerChunk;
    s = 1;
    while (s < 4 && groups * s < wave && (kPlant == 9 || chunks >= 2LL * s * kWarp * unroll_for<R>())) s *= 2;
  }
  const long long per_block = kWarpsPerBlock / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const Dim3 grid(static_cast<unsigned>(blocks));
  const Dim3 block(kWarp * kWarpsPerBlock);
  switch (s) {
    case 1: return launch_chained(linear_int8_kernel<T, R, 1, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    case 2: return launch_chained(linear_int8_kernel<T, R, 2, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
    default: return launch_chained(linear_int8_kernel<T, R, 4, M, Store>, grid, block, 0, stream, x, w, scales, m, k, n, store);
  }
}

template <typename T, class Store>
int launch_int8(GPtr<T> x, GPtr<int8_t> w, GPtr<float> scales, int m, int k, int n, Store store, int split,
                int stream) {
  if (m < 0 || m > kMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  if ((kPlant != 7 && k % kInt8PerChunk != 0) || x.addr() % 16 != 0 || w.addr() % 16 != 0 ||
      (kPlant != 10 && scales.null())) {
    return kInvalidValue;  // the caller dequantizes instead
  }
  if (kPlant == 8 ? m <= 2 : m == 1) return launch_int8_rm<T, 2, 1>(x, w, scales, m, k, n, store, split, stream);
  return m <= 2 ? launch_int8_rm<T, 2, kMaxRows>(x, w, scales, m, k, n, store, split, stream)
                : launch_int8_rm<T, 4, kMaxRows>(x, w, scales, m, k, n, store, split, stream);
}

template <typename T>
void dequant_int8_kernel(GPtr<T> out, GPtr<int8_t> w, GPtr<float> scales, int rows, int cols) {
  const long long total = static_cast<long long>(rows) * cols;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < total;
       i += (kPlant == 13 ? 1LL : static_cast<long long>(gridDim.x)) * blockDim.x) {
    out.st(i, from_float<T>(static_cast<float>(w.ld(i, "w")) * scales.ld(kPlant == 6 ? i / rows : i / cols, "scales")),
           "out");
  }
}

inline int launch_status() { return kSuccess; }  // cudaGetLastError(): the emulated launches do not fail

template <typename T>
int launch_dequant(GPtr<T> out, GPtr<int8_t> w, GPtr<float> scales, int rows, int cols, int stream) {
  if (rows < 0 || cols < 0) return kInvalidValue;
  if (rows == 0 || cols == 0) return kSuccess;
  const long long total = static_cast<long long>(rows) * cols;
  const long long want = (total + 255) / 256, most = 32LL * sm_count();  // grid-stride beyond that
  const long long blocks = kPlant == 14 || want < most ? want : most;
  // dequant_int8_kernel<T><<<static_cast<unsigned>(blocks), 256, 0, stream>>>(out, w, scales, rows, cols);
  launch_chained(dequant_int8_kernel<T>, Dim3(static_cast<unsigned>(blocks)), Dim3(256), 0, stream, out, w, scales,
                 rows, cols);
  return launch_status();
}

template <typename T>
int launch_qkv(GPtr<T> q_out, GPtr<T> k_cache, GPtr<T> v_cache, GPtr<T> x, GPtr<int8_t> w, GPtr<float> scales,
               GPtr<T> bias, GPtr<int32_t> slots, int m, int k, int width, int cache_slots, int split, int stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_int8(x, w, scales, m, k, 3 * width,
                     QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots}, split, stream);
}

// opt_linear_int8_small_<dt>'s body
template <typename T>
int launch_linear_int8(GPtr<T> out, GPtr<T> x, GPtr<int8_t> w, GPtr<float> scales, GPtr<T> bias, int m, int k, int n,
                       int relu, int split, int stream) {
  return launch_int8(x, w, scales, m, k, n, DenseStore<T>{out, bias, n, relu}, split, stream);
}

}  // namespace opt

// ============================================================================================================
// Reference, sum-order model, cases, checks
// ============================================================================================================
#include "harness.h"  // Ty, put / get, same_bits, model_sum, Case, auto_properties, range_properties, ...

namespace {

struct Stats {
  long long cases = 0, launches = 0, blocks = 0, outputs = 0, s_hist[5] = {}, auto_s[5] = {}, m1_kernel = 0;
  long long model_bits = 0, rerun_bits = 0, empty_ranges = 0;
  long long dq_cases = 0, dq_elements = 0, dq_strided = 0, dq_bits = 0;
  double max_err = 0;
};
Stats g_stats[3];

// The kernel a launch must use, stated independently of launch_int8: R = 2 for m <= 2 else 4; the one-row kernel
// (M = 1) exactly when m == 1; split 1 / 2 / 4: that S; 0: an S that auto_properties accepts.
template <class T, class Store, int R, int M>
int int8_kernel_s(const void* p) {
  if (p == reinterpret_cast<const void*>(&opt::linear_int8_kernel<T, R, 1, M, Store>)) return 1;
  if (p == reinterpret_cast<const void*>(&opt::linear_int8_kernel<T, R, 2, M, Store>)) return 2;
  if (p == reinterpret_cast<const void*>(&opt::linear_int8_kernel<T, R, 4, M, Store>)) return 4;
  return 0;
}
template <class T, class Store>
int int8_kernel_s_for(const void* p, int m) {
  return m == 1 ? int8_kernel_s<T, Store, 2, 1>(p) : m <= 2 ? int8_kernel_s<T, Store, 2, 8>(p)
                                                            : int8_kernel_s<T, Store, 4, 8>(p);
}

// Int8Rows' weights (values in [-127, 127]) and -128 now and then (the kernel must widen any byte); positive row
// scales that keep the outputs near 1, a zero scale (an all-zero row) now and then.
std::vector<int8_t> random_q(std::mt19937& rng, size_t n) {
  std::vector<int8_t> q(n);
  for (auto& v : q) v = rng() % 64 == 0 ? int8_t{-128} : static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  return q;
}
std::vector<float> random_scales(std::mt19937& rng, int n, int k) {
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  std::vector<float> s(n);
  for (auto& v : s) v = rng() % 50 == 0 ? 0.f : u(rng) / (127.f * std::sqrt(static_cast<float>(k)));
  return s;
}

template <class T>
bool run_case(const Case& c, std::mt19937& rng) {
  const int m = c.m, k = c.k, width = c.n, n = c.qkv ? 3 * c.n : c.n;
  const int chunks = k / 16;
  const int R = m <= 2 ? 2 : 4, M = m == 1 ? 1 : 8, U = R == 2 ? 4 : 2;
  const long long groups = (n + R - 1) / R;
  opt::g_sm_count = c.sms;
  opt::g_resident_blocks = c.resident;

  const auto x = random_tensor<T>(rng, static_cast<size_t>(m) * k, 0.f, 1.f);
  const auto q = random_q(rng, static_cast<size_t>(n) * k);
  const auto sc = random_scales(rng, n, k);
  const auto b = random_tensor<T>(rng, n, 0.f, 0.5f);
  const size_t cache_len = c.qkv ? static_cast<size_t>(c.cache_slots) * width : 0;
  CaseIO<T> io(c, random_tensor<T>(rng, cache_len, 0.f, 1.f));
  auto fail = [&](const std::string& s) { io.fail(s); };
  emu::GMem m_x, m_w, m_s, m_b, m_slots;
  put(m_x, "x", x, false);
  put(m_w, "w (int8)", q, false);
  put(m_s, "scales", sc, false);
  put(m_b, "bias", b, false);
  put(m_slots, "slots", c.slots, false);
  const GPtr<T> X{&m_x, 0}, B = c.bias ? GPtr<T>{&m_b, 0} : GPtr<T>{};
  const GPtr<int8_t> W{&m_w, 0};
  const GPtr<float> SC{&m_s, 0};
  const GPtr<int32_t> SL{&m_slots, 0};

  // expected bits: the model's sum order times the row's scale (one float product), then expected_outputs'
  // epilogue and rounding
  std::vector<float> xf(x.size()), qf(q.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = Ty<T>::widen(x[i]);
  for (size_t i = 0; i < q.size(); ++i) qf[i] = static_cast<float>(q[i]);
  auto expected = [&](int S) {
    return expected_outputs(io, b, [&](int i, int j) {
      return model_sum(&xf[static_cast<size_t>(i) * k], &qf[static_cast<size_t>(j) * k], chunks, 16, S) * sc[j];
    });
  };
  // the double reference from opt_kernels.h: act(scales[j] * sum_e x[i, e] * w[j, e] + bias[j])
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double v = 0;
      for (int e = 0; e < k; ++e)
        v += static_cast<double>(xf[static_cast<size_t>(i) * k + e]) * q[static_cast<size_t>(j) * k + e];
      v = v * sc[j] + (c.bias ? Ty<T>::widen(b[j]) : 0.0);
      if (!c.qkv && c.relu) v = std::max(v, 0.0);
      ref[static_cast<size_t>(i) * n + j] = v;
    }

  Stats& s = g_stats[Ty<T>::idx];
  auto launch = [&](int split, Run<T>& run) -> bool {
    auto launcher = [&](GPtr<T> out, GPtr<T> kc, GPtr<T> vc) {
      return c.qkv ? opt::launch_qkv<T>(out, kc, vc, X, W, SC, B, SL, m, k, width, c.cache_slots, split, 0)
                   : opt::launch_linear_int8<T>(out, X, W, SC, B, m, k, n, c.relu ? 1 : 0, split, 0);
    };
    auto kernel = [&](const opt::LaunchRecord& L) {
      ++s.launches;
      s.blocks += L.grid[0];
      const int S = c.qkv ? int8_kernel_s_for<T, opt::QkvStore<T>>(L.kernel, m)
                          : int8_kernel_s_for<T, opt::DenseStore<T>>(L.kernel, m);
      if (S == 0) fail("not the kernel expected for m=" + std::to_string(m) + " (R=" + std::to_string(R) +
                       ", M=" + std::to_string(M) + ")");
      if (split != 0 && S != split) fail("split " + std::to_string(split) + " launched S " + std::to_string(S));
      if (S == 0) return 0;
      const long long per_block = 4 / S;
      const long long want_grid = (groups + per_block - 1) / per_block;
      if (L.grid[0] != want_grid || L.grid[1] != 1 || L.grid[2] != 1 || L.block != 128 || L.smem != 0)
        fail("grid " + std::to_string(L.grid[0]) + " x " + std::to_string(L.block) + " threads, want " +
             std::to_string(want_grid) + " x 128");
      int empty = 0;
      const std::string rp = range_properties(chunks, S, &empty);
      if (!rp.empty()) fail("ranges: " + rp);
      s.empty_ranges += empty;
      if (split == 0) {
        const std::string ap = auto_properties(S, groups, chunks, U, c.sms, c.resident);
        if (!ap.empty()) fail("auto split: " + ap);
      }
      return S;
    };
    return launch_checked(io, run, launcher, kernel);
  };

  Run<T> r1, r2;
  ++s.cases;
  if (launch(c.split, r1)) {
    ++s.s_hist[std::min(r1.S, 4)];
    if (c.split == 0) ++s.auto_s[std::min(r1.S, 4)];
    if (M == 1) ++s.m1_kernel;
    s.outputs += static_cast<long long>(m) * n;
    s.model_bits += compare(io, r1, expected(r1.S), "sum order (S=" + std::to_string(r1.S) + ") vs model");
    check_error(io, r1, ref, &s.max_err);
    // a second launch, another block / thread schedule: the same bits (a fixed sum order)
    if (launch(c.split, r2)) s.rerun_bits += compare(io, r2, r1, "second launch");
  }
  return verdict(io.why, io.errors_before, Ty<T>::name(), c.label);
}

// dequant_int8_kernel through launch_dequant: one launch of min(ceil(rows·cols / 256), 32 · SMs) blocks of 256
// threads; every element written exactly once, none of the 16 poisoned guard elements either side; each element the
// float product static_cast<float>(q) · scales[row] rounded once to the storage dtype, bit for bit.
template <class T>
bool run_dequant(int rows, int cols, int sms, std::mt19937& rng) {
  const long long errors_before = g_log.errors;
  std::vector<std::string> why;
  auto fail = [&](const std::string& s) { why.push_back(s); };
  opt::g_sm_count = sms;
  const size_t total = static_cast<size_t>(rows) * cols;
  const auto q = random_q(rng, total);
  std::vector<float> sc(rows);  // magnitudes 2^-30 .. 2^10: fp16 subnormals and overflow too
  for (auto& v : sc) v = std::ldexp(0.5f + static_cast<float>(rng() % 1000) / 1000.f, -30 + static_cast<int>(rng() % 41));
  emu::GMem m_w, m_s, m_out;
  put(m_w, "w (int8)", q, false);
  put(m_s, "scales", sc, false);
  put(m_out, "out", std::vector<T>(total + 2 * kGuard, poison<T>()), true);
  opt::g_launches.clear();
  const uint32_t op_before = emu::g_op;
  const int st = opt::launch_dequant<T>(GPtr<T>{&m_out, static_cast<long long>(kGuard * sizeof(T))},
                                        GPtr<int8_t>{&m_w, 0}, GPtr<float>{&m_s, 0}, rows, cols, 0);
  const uint32_t op = emu::g_op;
  Stats& s = g_stats[Ty<T>::idx];
  ++s.dq_cases;
  if (st != 0) fail("status " + std::to_string(st));
  if (opt::g_launches.size() != 1 || op != op_before + 1) {
    fail(std::to_string(opt::g_launches.size()) + " launches");
  } else {
    const opt::LaunchRecord& L = opt::g_launches[0];
    const long long want = std::min<long long>((static_cast<long long>(total) + 255) / 256, 32LL * sms);
    if (L.kernel != reinterpret_cast<const void*>(&opt::dequant_int8_kernel<T>)) fail("not dequant_int8_kernel");
    if (L.grid[0] != want || L.grid[1] != 1 || L.grid[2] != 1 || L.block != 256 || L.smem != 0)
      fail("grid " + std::to_string(L.grid[0]) + " x " + std::to_string(L.block) + ", want " + std::to_string(want) +
           " x 256");
    s.dq_strided += static_cast<long long>(L.grid[0]) * 256 < static_cast<long long>(total);
    const long long wo = written(m_out, kGuard, total, op), all = written(m_out, 0, total + 2 * kGuard, op);
    if (wo != static_cast<long long>(total))
      fail(std::to_string(total - wo) + " of " + std::to_string(total) + " elements not written");
    if (all != wo) fail(std::to_string(all - wo) + " guard elements written");
    const std::vector<T> got = get<T>(m_out);
    std::vector<T> want_out(total + 2 * kGuard, poison<T>());
    for (size_t i = 0; i < total; ++i) want_out[kGuard + i] = Ty<T>::narrow(static_cast<float>(q[i]) * sc[i / cols]);
    if (!same_bits(got, want_out))
      fail("element " + std::to_string(static_cast<long long>(first_diff(got, want_out)) - kGuard) +
           " not the float product rounded once");
    else ++s.dq_bits;
    s.dq_elements += static_cast<long long>(total);
  }
  return verdict(why, errors_before, Ty<T>::name(),
                 "dequant rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) + " sms=" + std::to_string(sms));
}

// widen_int8 alone (on the host): every byte value 0x00 .. 0xff in every one of the 16 positions of a chunk (the
// other bytes random) widens to the int8 value it stands for, and the other positions to theirs.
bool widen_check(std::mt19937& rng) {
  long long wrong = 0, n = 0;
  for (int pos = 0; pos < 16; ++pos) {
    for (int byte = 0; byte < 256; ++byte) {
      emu::V16 v;
      for (auto& e : v.b) e = static_cast<uint8_t>(rng());
      v.b[pos] = static_cast<uint8_t>(byte);
      float out[16];
      opt::widen_int8(v, out);
      for (int e = 0; e < 16; ++e) {
        ++n;
        const float want = static_cast<float>(static_cast<int8_t>(v.b[e]));
        if (emu::fbits(out[e]) != emu::fbits(want) && wrong++ < 3)
          std::printf("  widen_int8: byte 0x%02x at position %d widened to %g, want %g\n", v.b[e], e, out[e], want);
      }
    }
  }
  std::printf("widen_int8: 256 byte values x 16 positions (%lld values): %s\n", n, wrong ? "FAIL" : "exact");
  return wrong == 0;
}

// The launchers alone (nothing runs): refusals, the kernel each shape takes, and the auto split over a sweep of
// shapes, SM counts and resident-block counts.
template <class T>
bool launcher_checks(std::mt19937& rng) {
  Expect expect{Ty<T>::name()};
  emu::GMem d;
  d.init("dummy", 64, kBase, true, 4);
  const GPtr<T> P{&d, 0}, Mis{&d, static_cast<long long>(sizeof(T))};
  const GPtr<int8_t> Q{&d, 0}, Q1{&d, 1}, Q8{&d, 8};
  const GPtr<float> SC{&d, 0};
  const GPtr<int32_t> SL{&d, 0};
  using Dn = opt::DenseStore<T>;
  auto dense = [&](GPtr<T> x, GPtr<int8_t> w, GPtr<float> s, int m, int k, int n, int split) {
    opt::g_dry = true;
    opt::g_launches.clear();
    const int st = opt::launch_linear_int8<T>(P, x, w, s, P, m, k, n, 0, split, 0);
    opt::g_dry = false;
    return st;
  };
  auto aligned = [&](int m, int k, int n, int split) { return dense(P, Q, SC, m, k, n, split); };
  dense_refusals(expect, aligned);
  for (int split : {0, 1, 2, 4}) {
    const std::string sp = ", split " + std::to_string(split);
    for (int k : {8, 24, 4, 1, 100, 4104})
      expect(dense(P, Q, SC, 2, k, 8, split) == 1 && nothing_launched(), "k " + std::to_string(k) + " (not a multiple of 16) refused" + sp);
    expect(dense(Mis, Q, SC, 1, 64, 8, split) == 1 && nothing_launched(), "x misaligned by one element refused" + sp);
    expect(dense(P, Q1, SC, 3, 64, 8, split) == 1 && nothing_launched(), "w misaligned by one byte refused" + sp);
    expect(dense(P, Q8, SC, 1, 64, 8, split) == 1 && nothing_launched(), "w misaligned by 8 bytes refused" + sp);
    expect(dense(P, Q, GPtr<float>{}, 1, 64, 8, split) == 1 && nothing_launched(), "null scales refused" + sp);
    for (int m = 1; m <= 8; ++m) {
      const int st = dense(P, Q, SC, m, 64, 8, split);
      const int S = st == 0 && opt::g_launches.size() == 1 ? int8_kernel_s_for<T, Dn>(opt::g_launches[0].kernel, m) : 0;
      expect(S != 0 && (split == 0 || S == split), "m " + std::to_string(m) + ": kernel (R, M, S)" + sp);
    }
  }
  {
    opt::g_dry = true;
    opt::g_launches.clear();
    qkv_refusals(expect, [&](int width, int cache_slots) {
      return opt::launch_qkv<T>(P, P, P, P, Q, SC, P, SL, 1, 64, width, cache_slots, 0, 0);
    });
    int st = opt::launch_qkv<T>(P, P, P, P, Q, SC, P, SL, 1, 40, 8, 4, 0, 0);
    expect(st == 1 && nothing_launched(), "qkv k 40 refused");
    st = opt::launch_dequant<T>(P, Q, SC, -1, 16, 0);
    expect(st == 1 && nothing_launched(), "dequant rows -1 refused");
    st = opt::launch_dequant<T>(P, Q, SC, 16, -1, 0);
    expect(st == 1 && nothing_launched(), "dequant cols -1 refused");
    st = opt::launch_dequant<T>(P, Q, SC, 0, 16, 0);
    expect(st == 0 && nothing_launched(), "dequant rows 0: nothing launched");
    st = opt::launch_dequant<T>(P, Q, SC, 16, 0, 0);
    expect(st == 0 && nothing_launched(), "dequant cols 0: nothing launched");
    opt::g_dry = false;
  }
  launcher_sweep(
      rng, 16, expect, aligned, [](const opt::LaunchRecord& L, int m) { return int8_kernel_s_for<T, Dn>(L.kernel, m); },
      [](const SweepShape&, int, int) {});
  std::printf("launcher %-4s: refusals, kernel choice, auto split sweep: %s\n", Ty<T>::name(), expect.wrong ? "FAIL" : "ok");
  return expect.wrong == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 80;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261127u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  emu::g_resident_choices = {1, 2, 3, 8, 32, 64};
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_int8: linear_int8_kernel and dequant_int8_kernel emulated, fixed cases + %d random, seed %u%s\n",
              cases, seed, kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  bool ok = widen_check(rng);
  ok &= launcher_checks<float>(rng);
  ok &= launcher_checks<emu::Half>(rng);
  ok &= launcher_checks<emu::BF16>(rng);
  int ran = 0, failed = 0;
  auto one = [&](int dtype, Case c) {
    label_case(c);
    ++ran;
    failed += !(dtype == 0 ? run_case<float>(c, rng) : dtype == 1 ? run_case<emu::Half>(c, rng)
                                                                  : run_case<emu::BF16>(c, rng));
  };
  auto dq = [&](int dtype, int rows, int cols, int sms) {
    ++ran;
    failed += !(dtype == 0 ? run_dequant<float>(rows, cols, sms, rng)
                           : dtype == 1 ? run_dequant<emu::Half>(rows, cols, sms, rng)
                                        : run_dequant<emu::BF16>(rows, cols, sms, rng));
  };
  // check_ops' int8 shapes (f16; the largest only at split 0: the emulation's time), then shapes in every dtype
  // that pin the auto split's choices and the edges: one group, idle groups in the last block, empty warp ranges.
  one(1, mk(1, 2048, 2048, 0, true, false));  // opt-1.3b out_proj at 132 SMs x 10: S = 1 (128 chunks)
  for (int split : {1, 2, 4, 0}) {
    one(1, mk(1, 8192, 256, split, true, true));    // fc2-like: long rows, few outputs
    one(1, mk(2, 768, 64, split, false, true));     // 48 chunks: warps 2, 3 empty at split 4
    one(1, mk(3, 1024, 130, split, true, true));    // R = 4; the last group's tail outputs
    one(1, mk(8, 528, 9, split, true, false));      // 33 chunks: the round loop's tail
    one(1, mk(1, 16, 301, split, true, false));     // one chunk: only the first warp has any
    one(1, qkv(1, 2048, 96, split, 4, {2}));
    one(1, qkv(3, 128, 42, split, 5, {4, -1, 5}));  // R = 4 groups straddle the q/k/v borders; slot == cache_slots
  }
  for (int dtype : {0, 1, 2}) {
    one(dtype, mk(1, 8192, 7, 0, true, true));                 // R 2, U 4: 512 chunks, 4 groups → S 4
    one(dtype, mk(1, 4096, 50, 0, true, false));               // 256 chunks → S 2 (the chunk condition)
    one(dtype, mk(2, 8192, 40, 0, false, true, 1, 1));         // wave 4 warps, 20 groups: S 1
    one(dtype, mk(1, 8192, 3, 0, true, false, 1, 1));          // 2 groups, wave 4: S 2 (the wave)
    one(dtype, mk(4, 257 * 16, 21, 0, true, true, 3, 8));      // R 4, U 2: 257 chunks → S 4, last range empty
    one(dtype, mk(5, 130 * 16, 37, 0, true, false, 8, 3));     // S 2
    one(dtype, mk(1, 40 * 16, 400, 0, true, true, 1, 3));      // S 1, M = 1
    one(dtype, mk(1, 16, 5, 4, true, true));                   // one chunk: warps 1-3 empty
    one(dtype, mk(7, 16, 13, 2, false, false));
    one(dtype, mk(2, 33 * 16, 1, 2, true, false));             // n 1: one group, an idle group beside it
    one(dtype, mk(6, 64 * 16, 10, 2, true, true));             // R 4: n not a multiple of R
    one(dtype, mk(8, 96 * 16, 11, 4, true, false));
    one(dtype, mk(3, 100 * 16, 17, 1, true, true));
    one(dtype, qkv(2, 64 * 16, 7, 2, 3, {3, 1}));              // slot == cache_slots, R 2 M 8
    one(dtype, qkv(6, 32 * 16, 5, 4, 6, {0, 9, -1, 5, 2, 6})); // out-of-range and -1 slots
    one(dtype, qkv(1, 300 * 16, 11, 0, 2, {1}, 8, 1));
    // dequant: one element, a partial block, one block, exactly 32 blocks per SM, one more (a second round)
    dq(dtype, 1, 1, 132);
    dq(dtype, 1, 16, 132);
    dq(dtype, 3, 100, 1);
    dq(dtype, 16, 16, 3);
    dq(dtype, 64, 128, 1);   // 8192 = 32 x 256: one element a thread
    dq(dtype, 8193, 1, 1);   // one past: thread 0 takes a second element
    dq(dtype, 37, 1000, 2);  // rows != cols, grid-stride: 37,000 elements over 64 x 256 threads
  }
  // random cases: 1 in 8 a dequant, else random_case's
  const std::vector<int> kChunks = {1, 2, 3, 5, 8, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 255, 256, 257, 300,
                                    511, 512};
  for (int i = 0; i < cases; ++i) {
    const int dtype = static_cast<int>(rng() % 3);
    if (rng() % 8 == 0) {  // dequant
      const int rows = 1 + static_cast<int>(rng() % 300), cols = 1 + static_cast<int>(rng() % (rng() % 2 ? 64 : 2000));
      dq(dtype, rows, std::min(cols, std::max(1, 60000 / rows)), pick_of(rng, kCaseSms));
      continue;
    }
    one(dtype, random_case(rng, 16, kChunks, {0, 0, 1, 2, 4}, false));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %5s %8s %8s %9s %6s %6s %6s %6s %8s %6s %6s %6s %10s %8s %9s %8s %6s\n", "dtype", "cases",
              "launches", "blocks", "outputs", "S=1", "S=2", "S=4", "auto 1/2/4", "one-row", "model", "rerun", "empty",
              "max err", "dequant", "elements", "strided", "bits");
  for (int i = 0; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %5lld %8lld %8lld %9lld %6lld %6lld %6lld %4lld/%lld/%-4lld %8lld %6lld %6lld %6lld %10.2e %8lld %9lld %8lld %6lld\n",
                i == 0 ? "f32" : i == 1 ? "f16" : "bf16", s.cases, s.launches, s.blocks, s.outputs, s.s_hist[1],
                s.s_hist[2], s.s_hist[4], s.auto_s[1], s.auto_s[2], s.auto_s[4], s.m1_kernel, s.model_bits, s.rerun_bits, s.empty_ranges,
                s.max_err, s.dq_cases, s.dq_elements, s.dq_strided, s.dq_bits);
  }
  std::printf("(model / rerun: bit-for-bit equalities (the epilogue's scaled float sums and the stored outputs) with the "
              "model's sum order and with a second launch; empty: warp ranges with no chunk; dequant: launches, "
              "elements, grids that stride, outputs bit-equal to the float product rounded once)\n");
  std::printf("auto split sweep (launcher only, 3 dtypes): %lld launches, S = 1 / 2 / 4: %lld / %lld / %lld\n",
              g_sweep_launches, g_sweep_s[1], g_sweep_s[2], g_sweep_s[4]);
  long long seen[5] = {};
  for (const Stats& s : g_stats)
    for (int j = 0; j < 5; ++j) seen[j] += s.auto_s[j];
  const bool all_s = seen[1] > 0 && seen[2] > 0 && seen[4] > 0;
  if (!all_s) std::printf("FAIL: the auto split did not choose every S (1, 2, 4) in the cases that ran\n");
  return final_verdict(ok && all_s, failed, ran, secs);
}
