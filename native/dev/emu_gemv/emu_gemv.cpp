// emu_gemv: a CPU emulation of the split-row matrix-vector kernel of native/src/linear_small.cu
// (linear_small_split_kernel<T, R, S, M, DenseStore|QkvStore> with its launcher: launch_small, launch_r,
// launch_split, auto_split, split_span; opt_linear_small_{f32,f16,bf16} and opt_linear_small_qkv_*), thread by thread
// and block by block on the emulated GPU of ../emu_common/emu.h, against a double-precision reference written from
// opt_kernels.h and against the kernel's sum order written from its description. See README.md beside this file.
//
// Build and run (from the repository root; x86-64 only, a hand-written context switch):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_gemv/emu_gemv.cpp -o target/emu_gemv
//   target/emu_gemv [random cases=120] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 14 (listed below):
//   for N in $(seq 1 14); do g++ -O2 -std=c++17 -ffp-contract=off -DPLANT=$N
//       native/dev/emu_gemv/emu_gemv.cpp -o target/emu_gemv_p$N && target/emu_gemv_p$N 30; done     (one line)
// -ffp-contract=off: the kernel's plain float expressions (the partial sums' `v += ...`, the bias add) stay unfused
// on the host, as the bit-for-bit comparisons assume.
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
//   1: split_span not rounded up to a multiple of 32 (an equal share only)
//   2: a warp's range ends one chunk early (end = begin + span - 1)
//   3: the partial sums indexed by group (warp / S) instead of by warp
//   4: the partial sums added in reverse order (part S-1 + ... + part 0)
//   5: no __syncthreads between the partial sums' writes and the first warp's reads
//   6: a group past n returns before the barrier (as linear_small_vec_kernel does)
//   7: the group's last warp (part S - 1) adds the partials and stores, instead of part 0
//   8: j0 from kWarpsPerBlock groups per block instead of kWarpsPerBlock / S
//   9: auto_split without its chunk condition (splits rows too short for a round per warp)
//  10: QkvStore skips the cache only for slot > cache_slots (slot == cache_slots written)
//  11: launch_r takes the one-row kernel (M = 1) for m <= 2
//  12: launch_split sizes the grid with kWarpsPerBlock groups per block, whatever S
//  13: weight_rows does not clamp the rows past n to n - 1
//  14: the first warp stores without the j0 + r < n test (S > 1)
constexpr int kPlant = PLANT;
// the planted bugs inside the shared code of linear_small_cuh.h
constexpr bool kPlantSpanShare = kPlant == 1;
constexpr bool kPlantSlotEq = kPlant == 10;
constexpr bool kPlantRowsUnclamped = kPlant == 13;

#include "../emu_common/emu.h"
#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)

// ============================================================================================================
// The kernel file, as common.cuh and linear_small.cu write it. T* → GPtr<T> (ld / st), const uint4* → GPtr<V16>,
// __shared__ arrays → SArr (ld / st), __ldcs / prefetch → ldcs / prefetch_l2 (bounds-checked). kPlant marks the
// planted bugs.
// ============================================================================================================
#include "../emu_common/common_cuh.h"

#include "linear_small_cuh.h"  // common.cuh and linear_small.cuh: the parts shared with emu_int8.cpp

namespace opt {

// ---- linear_small.cu ----
template <typename T, int R, int M>
void accumulate(float (&acc)[M][R], const V16 (&wv)[R], GPtr<T> x, int m, int k, int c) {
  constexpr int kC = Chunk<T>::kSize;
  float wf[R][kC];
  for (int r = 0; r < R; ++r) widen(wv[r], wf[r], static_cast<const T*>(nullptr));
  for (int i = 0; i < M; ++i) {
    if (i < m) {
      const V16 xv = (x + static_cast<size_t>(i) * k).template as<V16>().ld(c, "x chunk");
      float xf[kC];
      widen(xv, xf, static_cast<const T*>(nullptr));
      for (int r = 0; r < R; ++r) {
        for (int e = 0; e < kC; ++e) acc[i][r] = fmaf(xf[e], wf[r][e], acc[i][r]);
      }
    }
  }
}

template <typename T, int R, int M>
void product_chunks(float (&acc)[M][R], const GPtr<V16> (&wrow)[R], GPtr<T> x, int m, int k, int begin, int end,
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
    for (int u = 0; u < kUnroll; ++u) accumulate<T, R, M>(acc, wv[u], x, m, k, c + u * kWarp);
  }
  for (; c < end; c += kWarp) {
    V16 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = ldcs(wrow[r] + c);
    accumulate<T, R, M>(acc, wv, x, m, k, c);
  }
}

// (verified on an H100; here as the split = 1 path of launch_r, whose bits the model's S = 1 must equal)
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
  product_chunks<T, R>(acc, wrow, x, m, k, 0, chunks, lane);
  for (int i = 0; i < kMaxRows; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);
        if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
      }
    }
  }
}
template <typename T, int R, int S, int M, class Store>
void linear_small_split_kernel(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store) {
  static_assert(S >= 1 && kWarpsPerBlock % S == 0, "S warps per group, whole groups per block");
  static_assert(M == 1 || M == kMaxRows, "one row, or up to kMaxRows");
  SHARED(float, partial, kWarpsPerBlock * M * R);  // __shared__ float partial[kWarpsPerBlock][M][R]
  auto at = [](int wp, int i, int r) { return (static_cast<long long>(wp) * M + i) * R + r; };  // [wp][i][r]
  chain_start();
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int part = warp % S;
  const long long j0 =
      (static_cast<long long>(blockIdx.x) * (kPlant == 8 ? kWarpsPerBlock : kWarpsPerBlock / S) + warp / S) * R;
  if (kPlant == 6 && j0 >= n) return;
  const int chunks = k / Chunk<T>::kSize;
  const int span = split_span(chunks, S);
  const int begin = part * span < chunks ? part * span : chunks;
  const int end = chunks - begin < span ? chunks : begin + span - (kPlant == 2 ? 1 : 0);
  GPtr<V16> wrow[R];
  weight_rows<T, R>(wrow, w, j0, n, k);
  if (j0 < n) prefetch_first_chunks<R>(wrow, begin + lane, end);
  chain_wait();
  float acc[M][R];
  product_chunks<T, R, M>(acc, wrow, x, m, k, begin, end, lane);
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m) {
        const float v = warp_sum(acc[i][r]);  // warp-uniform condition: every lane takes part in the shuffles
        if (S == 1) {
          if (lane == (i * R + r) % kWarp && j0 + r < n) store(i, j0 + r, v);
        } else if (lane == 0) {
          partial.st(at(kPlant == 3 ? warp / S : warp, i, r), v);
        }
      }
    }
  }
  if (S == 1) return;
  if (kPlant != 5) __syncthreads();
  if ((kPlant == 7 ? part != S - 1 : part != 0) || j0 >= n) return;
  for (int i = 0; i < M; ++i) {
    for (int r = 0; r < R; ++r) {
      if (i < m && lane == (i * R + r) % kWarp && (kPlant == 14 || j0 + r < n)) {
        float v;
        if (kPlant == 4) {
          v = partial.ld(at(warp + S - 1, i, r));
          for (int p = S - 2; p >= 0; --p) v += partial.ld(at(warp + p, i, r));
        } else {
          v = partial.ld(at(warp, i, r));
          for (int p = 1; p < S; ++p) v += partial.ld(at(warp + p, i, r));
        }
        store(i, j0 + r, v);
      }
    }
  }
}

// The one-element path: not emulated (no case here takes it; the launcher checks only see that it is picked).
template <typename T, int R, class Store>
void linear_small_scalar_kernel(GPtr<T>, GPtr<T>, int, int, int, Store) {
  if (threadIdx.x == 0 && blockIdx.x == 0) emu::g_log.add("emulation: linear_small_scalar_kernel is not emulated");
}
template <typename T, int R, int M, class Store>
int auto_split(long long groups, int chunks) {
  const long long wave = static_cast<long long>(resident_blocks(linear_small_split_kernel<T, R, 1, M, Store>)) *
                         sm_count() * kWarpsPerBlock;  // warps
  int s = 1;
  while (s < 4 && groups * s < wave && (kPlant == 9 || chunks >= 2LL * s * kWarp * unroll_for<R>())) s *= 2;
  return s;
}

template <typename T, int R, int M, class Store>
int launch_split(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store, int split, int stream) {
  const long long groups = (static_cast<long long>(n) + R - 1) / R;
  const int s = split == 0 ? auto_split<T, R, M, Store>(groups, k / Chunk<T>::kSize) : split;
  const long long per_block = kPlant == 12 ? kWarpsPerBlock : kWarpsPerBlock / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const Dim3 grid(static_cast<unsigned>(blocks));
  const Dim3 block(kWarp * kWarpsPerBlock);
  switch (s) {
    case 1: return launch_chained(linear_small_split_kernel<T, R, 1, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
    case 2: return launch_chained(linear_small_split_kernel<T, R, 2, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
    default: return launch_chained(linear_small_split_kernel<T, R, 4, M, Store>, grid, block, 0, stream, x, w, m, k, n, store);
  }
}

template <typename T, int R, class Store>
int launch_r(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store, bool vec, int split, int stream) {
  if (vec && split != 1) {
    if constexpr (R == 2) {  // (m <= 2: R = 4 never sees one row)
      if (kPlant == 11 ? m <= 2 : m == 1) return launch_split<T, R, 1, Store>(x, w, m, k, n, store, split, stream);
    }
    return launch_split<T, R, kMaxRows, Store>(x, w, m, k, n, store, split, stream);
  }
  const long long warps = (static_cast<long long>(n) + R - 1) / R;
  const long long blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  const Dim3 grid(static_cast<unsigned>(blocks));
  const Dim3 block(kWarp * kWarpsPerBlock);
  return vec ? launch_chained(linear_small_vec_kernel<T, R, Store>, grid, block, 0, stream, x, w, m, k, n, store)
             : launch_chained(linear_small_scalar_kernel<T, R, Store>, grid, block, 0, stream, x, w, m, k, n, store);
}

template <typename T, class Store>
int launch_small(GPtr<T> x, GPtr<T> w, int m, int k, int n, Store store, int split, int stream) {
  if (m < 0 || m > kMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  const bool vec = k % Chunk<T>::kSize == 0 && x.addr() % 16 == 0 && w.addr() % 16 == 0;
  return m <= 2 ? launch_r<T, 2>(x, w, m, k, n, store, vec, split, stream)
                : launch_r<T, 4>(x, w, m, k, n, store, vec, split, stream);
}

template <typename T>
int launch_linear_small(GPtr<T> out, GPtr<T> x, GPtr<T> w, GPtr<T> bias, int m, int k, int n, int relu, int split,
                        int stream) {
  return launch_small(x, w, m, k, n, DenseStore<T>{out, bias, n, relu}, split, stream);
}

template <typename T>
int launch_linear_small_qkv(GPtr<T> q_out, GPtr<T> k_cache, GPtr<T> v_cache, GPtr<T> x, GPtr<T> w, GPtr<T> bias,
                            GPtr<int32_t> slots, int m, int k, int width, int cache_slots, int split, int stream) {
  if (width < 1 || cache_slots < 0 || static_cast<long long>(width) * 3 > 0x7fffffffLL) return kInvalidValue;
  return launch_small(x, w, m, k, 3 * width, QkvStore<T>{q_out, k_cache, v_cache, bias, slots, width, cache_slots},
                      split, stream);
}

}  // namespace opt

// ============================================================================================================
// Reference, sum-order model, cases, checks
// ============================================================================================================
#include "harness.h"  // Ty, put / get, same_bits, model_sum, Case, auto_properties, range_properties, ...

namespace {
struct Stats {
  long long cases = 0, launches = 0, blocks = 0, outputs = 0, s_hist[5] = {}, auto_cases = 0, m1_kernel = 0;
  long long model_bits = 0, rerun_bits = 0, vec_bits = 0, idle_groups = 0, empty_ranges = 0;
  double max_err = 0;
};
Stats g_stats[3];

// The kernel a launch must use, stated independently of launch_r: R = 2 for m <= 2 else 4; the one-row kernel
// (M = 1) exactly when m == 1; split 1: linear_small_vec_kernel; 2 / 4: the split kernel with that S; 0: a split
// kernel whose S auto_properties accepts.
template <class T, class Store, int R, int M>
int split_kernel_s(const void* p) {
  if (p == reinterpret_cast<const void*>(&opt::linear_small_split_kernel<T, R, 1, M, Store>)) return 1;
  if (p == reinterpret_cast<const void*>(&opt::linear_small_split_kernel<T, R, 2, M, Store>)) return 2;
  if (p == reinterpret_cast<const void*>(&opt::linear_small_split_kernel<T, R, 4, M, Store>)) return 4;
  return 0;
}
template <class T, class Store>
int split_kernel_s_for(const void* p, int m) {
  return m == 1 ? split_kernel_s<T, Store, 2, 1>(p) : m <= 2 ? split_kernel_s<T, Store, 2, 8>(p)
                                                             : split_kernel_s<T, Store, 4, 8>(p);
}
template <class T, class Store>
const void* vec_kernel(int R) {
  return R == 2 ? reinterpret_cast<const void*>(&opt::linear_small_vec_kernel<T, 2, Store>)
                : reinterpret_cast<const void*>(&opt::linear_small_vec_kernel<T, 4, Store>);
}
template <class T, class Store>
const void* scalar_kernel(int R) {
  return R == 2 ? reinterpret_cast<const void*>(&opt::linear_small_scalar_kernel<T, 2, Store>)
                : reinterpret_cast<const void*>(&opt::linear_small_scalar_kernel<T, 4, Store>);
}
template <class T>
bool run_case(const Case& c, std::mt19937& rng) {
  const int m = c.m, k = c.k, width = c.n, n = c.qkv ? 3 * c.n : c.n;
  constexpr int kC = 16 / sizeof(T);
  const int chunks = k / kC;
  const int R = m <= 2 ? 2 : 4, M = R == 2 && m == 1 ? 1 : 8, U = R == 2 ? 4 : 2;
  const long long groups = (n + R - 1) / R;
  opt::g_sm_count = c.sms;
  opt::g_resident_blocks = c.resident;

  const auto x = random_tensor<T>(rng, static_cast<size_t>(m) * k, 0.f, 1.f);
  const auto w = random_tensor<T>(rng, static_cast<size_t>(n) * k, 0.f, 1.f / std::sqrt(static_cast<float>(k)));
  const auto b = random_tensor<T>(rng, n, 0.f, 0.5f);
  const size_t cache_len = c.qkv ? static_cast<size_t>(c.cache_slots) * width : 0;
  CaseIO<T> io(c, random_tensor<T>(rng, cache_len, 0.f, 1.f));
  auto fail = [&](const std::string& s) { io.fail(s); };
  emu::GMem m_x, m_w, m_b, m_slots;
  put(m_x, "x", x, false);
  put(m_w, "w", w, false);
  put(m_b, "bias", b, false);
  put(m_slots, "slots", c.slots, false);
  const GPtr<T> X{&m_x, 0}, W{&m_w, 0}, B = c.bias ? GPtr<T>{&m_b, 0} : GPtr<T>{};
  const GPtr<int32_t> SL{&m_slots, 0};

  // expected bits: the model's sum order, then expected_outputs' epilogue and rounding
  std::vector<float> xf(x.size()), wf(w.size());
  for (size_t i = 0; i < x.size(); ++i) xf[i] = Ty<T>::widen(x[i]);
  for (size_t i = 0; i < w.size(); ++i) wf[i] = Ty<T>::widen(w[i]);
  auto expected = [&](int S) {
    return expected_outputs(io, b, [&](int i, int j) {
      return model_sum(&xf[static_cast<size_t>(i) * k], &wf[static_cast<size_t>(j) * k], chunks, kC, S);
    });
  };
  // the double reference from opt_kernels.h, on the written elements
  std::vector<double> ref(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double v = c.bias ? Ty<T>::widen(b[j]) : 0.0;
      for (int e = 0; e < k; ++e)
        v += static_cast<double>(xf[static_cast<size_t>(i) * k + e]) * wf[static_cast<size_t>(j) * k + e];
      if (!c.qkv && c.relu) v = std::max(v, 0.0);
      ref[static_cast<size_t>(i) * n + j] = v;
    }

  Stats& s = g_stats[Ty<T>::idx];
  // One launcher call on fresh output buffers, with every check of the launch; split as given.
  auto launch = [&](int split, Run<T>& run) -> bool {
    auto launcher = [&](GPtr<T> out, GPtr<T> kc, GPtr<T> vc) {
      return c.qkv ? opt::launch_linear_small_qkv<T>(out, kc, vc, X, W, B, SL, m, k, width, c.cache_slots, split, 0)
                   : opt::launch_linear_small<T>(out, X, W, B, m, k, n, c.relu ? 1 : 0, split, 0);
    };
    auto kernel = [&](const opt::LaunchRecord& L) {
      ++s.launches;
      s.blocks += L.grid[0];
      // the kernel
      int S = 0;
      if (c.qkv) {
        using St = opt::QkvStore<T>;
        S = split_kernel_s_for<T, St>(L.kernel, m);
        if (split == 1 && L.kernel == vec_kernel<T, St>(R)) S = -1;
      } else {
        using St = opt::DenseStore<T>;
        S = split_kernel_s_for<T, St>(L.kernel, m);
        if (split == 1 && L.kernel == vec_kernel<T, St>(R)) S = -1;
      }
      if (S == 0) fail("not the kernel expected for m=" + std::to_string(m) + " split=" + std::to_string(split) +
                       " (R=" + std::to_string(R) + ", M=" + std::to_string(M) + ")");
      if (split == 1 && S != -1) fail("split 1 did not launch linear_small_vec_kernel");
      if ((split == 2 || split == 4) && S != split) fail("split " + std::to_string(split) + " launched S " + std::to_string(S));
      const int S_eff = S == -1 ? 1 : S;
      const long long per_block = S == -1 ? 4 : 4 / std::max(S, 1);
      const long long want_grid = (groups + per_block - 1) / per_block;
      if (L.grid[0] != want_grid || L.grid[1] != 1 || L.grid[2] != 1 || L.block != 128 || L.smem != 0)
        fail("grid " + std::to_string(L.grid[0]) + " x " + std::to_string(L.block) + " threads, want " +
             std::to_string(want_grid) + " x 128");
      if (S > 0) {
        int empty = 0;
        const std::string rp = range_properties(chunks, S, &empty);
        if (!rp.empty()) fail("ranges: " + rp);
        s.empty_ranges += empty;
        if (split == 0) {
          const std::string ap = auto_properties(S, groups, chunks, U, c.sms, c.resident);
          if (!ap.empty()) fail("auto_split: " + ap);
        }
        if (S > 1 && groups % per_block != 0) ++s.idle_groups;
      }
      return S == 0 ? 0 : S_eff;
    };
    return launch_checked(io, run, launcher, kernel);
  };

  Run<T> r1, r2;
  ++s.cases;
  if (launch(c.split, r1)) {
    ++s.s_hist[std::min(r1.S, 4)];
    if (c.split == 0) ++s.auto_cases;
    if (M == 1) ++s.m1_kernel;
    s.outputs += static_cast<long long>(m) * n;
    s.model_bits += compare(io, r1, expected(r1.S), "sum order (S=" + std::to_string(r1.S) + ") vs model");
    // numbers against the double reference (check_ops' measure)
    check_error(io, r1, ref, &s.max_err);
    // a second launch, another block / thread schedule: the same bits (a fixed sum order)
    if (launch(c.split, r2)) s.rerun_bits += compare(io, r2, r1, "second launch");
    // linear_small_vec_kernel (split 1, verified on a GPU) against the model's S = 1 order
    if (c.vec_too && c.split != 1) {
      Run<T> r3;
      if (launch(1, r3)) {
        s.vec_bits += compare(io, r3, expected(1), "linear_small_vec_kernel vs model S=1");
        if (r1.S == 1 && !same_bits(r1.out, r3.out)) fail("S = 1 split kernel differs from linear_small_vec_kernel");
      }
    }
  }
  return verdict(io.why, io.errors_before, Ty<T>::name(), c.label);
}

bool run_any(int dtype, const Case& c, std::mt19937& rng) {
  return dtype == 0 ? run_case<float>(c, rng) : dtype == 1 ? run_case<emu::Half>(c, rng) : run_case<emu::BF16>(c, rng);
}

// The launcher alone (nothing runs): refusals, the kernel each shape takes, and auto_split's choice over a sweep
// of shapes, SM counts and resident-block counts (launcher_sweep); the sweep's auto choices with S > 1 whose last
// warp range is empty or shorter than one round.
long long g_sweep_empty = 0, g_sweep_short = 0;
std::string g_sweep_example;
template <class T>
bool launcher_checks(std::mt19937& rng) {
  constexpr int kC = 16 / sizeof(T);
  Expect expect{Ty<T>::name()};
  emu::GMem d;
  d.init("dummy", 64, kBase, true, 4);
  const GPtr<T> P{&d, 0}, Mis{&d, static_cast<long long>(sizeof(T))};
  const GPtr<int32_t> SL{&d, 0};
  using Dn = opt::DenseStore<T>;
  auto dense = [&](GPtr<T> x, GPtr<T> w, int m, int k, int n, int split) {
    opt::g_dry = true;
    opt::g_launches.clear();
    const int st = opt::launch_linear_small<T>(P, x, w, P, m, k, n, 0, split, 0);
    opt::g_dry = false;
    return st;
  };
  auto aligned = [&](int m, int k, int n, int split) { return dense(P, P, m, k, n, split); };
  dense_refusals(expect, aligned);
  opt::g_dry = true;
  opt::g_launches.clear();
  qkv_refusals(expect, [&](int width, int cache_slots) {
    return opt::launch_linear_small_qkv<T>(P, P, P, P, P, P, SL, 1, 64, width, cache_slots, 0, 0);
  });
  opt::g_dry = false;
  for (int split : {0, 2, 4, 1}) {
    expect(dense(Mis, P, 1, 64, 8, split) == 0 && opt::g_launches.size() == 1 &&
               opt::g_launches[0].kernel == scalar_kernel<T, Dn>(2), "x misaligned: the one-element kernel, split " + std::to_string(split));
    expect(dense(P, Mis, 3, 64, 8, split) == 0 && opt::g_launches.size() == 1 &&
               opt::g_launches[0].kernel == scalar_kernel<T, Dn>(4), "w misaligned: the one-element kernel");
    if (kC > 1)
      expect(dense(P, P, 2, kC + 1, 8, split) == 0 && opt::g_launches.size() == 1 &&
                 opt::g_launches[0].kernel == scalar_kernel<T, Dn>(2), "k not a multiple of the chunk: the one-element kernel");
    expect(dense(P, P, 5, 64, 8, 1) == 0 && opt::g_launches.size() == 1 &&
               opt::g_launches[0].kernel == vec_kernel<T, Dn>(4), "split 1: linear_small_vec_kernel");
  }
  // the sweep: every m, n and k from small to large, SM and resident counts
  launcher_sweep(
      rng, kC, expect, aligned, [](const opt::LaunchRecord& L, int m) { return split_kernel_s_for<T, Dn>(L.kernel, m); },
      [&](const SweepShape& sh, int S, int empty) {
        if (sh.split == 0 && S > 1) {
          const int span = opt::split_span(sh.chunks, S);
          const int last_begin = std::min((S - 1) * span, sh.chunks);
          const int last = std::min(last_begin + span, sh.chunks) - last_begin;
          if (empty) {
            if (g_sweep_empty++ == 0) g_sweep_example = sh.what;
          } else if (last < 32 * sh.U) {
            ++g_sweep_short;
          }
        }
      });
  std::printf("launcher %-4s: refusals, kernel choice, auto_split sweep: %s\n", Ty<T>::name(), expect.wrong ? "FAIL" : "ok");
  return expect.wrong == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 120;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261127u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  emu::g_resident_choices = {1, 2, 3, 8, 32, 64};
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_gemv: linear_small_split_kernel emulated, fixed cases + %d random, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  bool ok = launcher_checks<float>(rng);
  ok &= launcher_checks<emu::Half>(rng);
  ok &= launcher_checks<emu::BF16>(rng);
  int ran = 0, failed = 0;
  auto one = [&](int dtype, Case c) {
    label_case(c);
    ++ran;
    failed += !run_any(dtype, c, rng);
  };
  // check_ops' gemvsplit shapes (f16; the largest only at split 0: the emulation's time), then shapes in every dtype
  // that pin auto_split's choices and the edges: one group, idle groups in the last block, empty warp ranges.
  {
    Case big = mk(1, 2048, 2048, 0, true, false);  // opt-1.3b out_proj at 132 SMs x 10: S = 2
    one(1, big);
    for (int split : {2, 4, 0}) {
      one(1, mk(1, 8192, 256, split, true, true));    // fc2-like: long rows, few outputs
      one(1, mk(2, 768, 64, split, true, true));      // 96 chunks: split 4 leaves a warp empty
      one(1, mk(3, 1024, 130, split, false, true));   // R = 4; the last group's tail outputs
      one(1, mk(8, 520, 9, split, true, false));      // one group, 8 rows, the round loop's tail
      one(1, mk(1, 64, 301, split, true, false));     // 8 chunks: only the first warp has any
      one(1, mk(1, 2048, 301, split, false, false));  // groups not a multiple of the block's
      one(1, qkv(1, 2048, 256, split, 4, {2}));
      one(1, qkv(3, 128, 42, split, 5, {4, -1, 5}));  // R = 4 groups straddle the q/k/v borders; slot == cache_slots
    }
  }
  for (int dtype : {0, 1, 2}) {
    const int kC = dtype == 0 ? 4 : 8;
    // auto_split: S = 4 (few groups, long rows), 2 (the chunk condition stops it), 1 (the grid fills a wave)
    one(dtype, mk(1, 1024 * kC, 7, 0, true, true));                       // S 4, 2 groups: idle groups, one block
    one(dtype, mk(1, 256 * kC, 50, 0, true, false));                      // R 2, U 4: 256 chunks → S 2
    one(dtype, mk(2, 512 * kC, 40, 0, false, true, 1, 1));                // wave 4 warps: S 1 (20 groups)
    one(dtype, mk(1, 512 * kC, 3, 0, true, false, 1, 1));                 // 2 groups, wave 4: S 2
    one(dtype, mk(4, 257 * kC, 21, 0, true, true, 3, 8));                 // R 4, U 2: 257 chunks → S 4, last range empty
    one(dtype, mk(5, 130 * kC, 37, 0, true, false, 8, 3));                // S 2
    one(dtype, mk(1, 40 * kC, 400, 0, true, true, 1, 3));                 // S 1, M = 1
    // forced S with empty warp ranges and a single chunk
    one(dtype, mk(1, kC, 5, 4, true, true));                              // one chunk: warps 1-3 empty
    one(dtype, mk(7, kC, 13, 2, false, false));
    one(dtype, mk(2, 33 * kC, 1, 2, true, false));                        // n 1: one group, an idle group beside it
    one(dtype, mk(6, 64 * kC, 10, 2, true, true));                        // R 4: n not a multiple of R
    one(dtype, mk(8, 96 * kC, 11, 4, true, false));
    one(dtype, qkv(2, 64 * kC, 7, 2, 3, {3, 1}));                         // slot == cache_slots, R 2 M 8
    one(dtype, qkv(6, 32 * kC, 5, 4, 6, {0, 9, -1, 5, 2, 6}));            // out-of-range and -1 slots
    one(dtype, qkv(1, 300 * kC, 11, 0, 2, {1}, 8, 1));
  }
  // random cases
  const std::vector<int> kChunks = {1, 2, 3, 5, 8, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 255, 256, 257, 300,
                                    511, 512, 513, 1000, 1024, 2047, 2048};
  for (int i = 0; i < cases; ++i) {
    const int dtype = static_cast<int>(rng() % 3);
    one(dtype, random_case(rng, dtype == 0 ? 4 : 8, kChunks, {0, 0, 2, 4}, true));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %5s %8s %8s %9s %6s %6s %6s %6s %8s %6s %6s %6s %6s %10s\n", "dtype", "cases", "launches",
              "blocks", "outputs", "S=1", "S=2", "S=4", "auto", "one-row", "model", "rerun", "vec", "empty",
              "max err");
  for (int i = 0; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %5lld %8lld %8lld %9lld %6lld %6lld %6lld %6lld %8lld %6lld %6lld %6lld %6lld %10.2e\n",
                i == 0 ? "f32" : i == 1 ? "f16" : "bf16", s.cases, s.launches, s.blocks, s.outputs, s.s_hist[1],
                s.s_hist[2], s.s_hist[4], s.auto_cases, s.m1_kernel, s.model_bits, s.rerun_bits, s.vec_bits,
                s.empty_ranges, s.max_err);
  }
  std::printf("(model / rerun / vec: bit-for-bit equalities (the epilogue's float sums and the stored outputs) with the "
              "model's sum order, with a second launch, and of linear_small_vec_kernel with the model's S = 1; empty: "
              "warp ranges with no chunk)\n");
  std::printf("auto_split sweep (launcher only, 3 dtypes): %lld launches, S = 1 / 2 / 4: %lld / %lld / %lld; with S > 1, "
              "%lld had an empty last warp range (first: %s), %lld a last range shorter than one round\n",
              g_sweep_launches, g_sweep_s[1], g_sweep_s[2], g_sweep_s[4], g_sweep_empty,
              g_sweep_example.empty() ? "none" : g_sweep_example.c_str(), g_sweep_short);
  long long seen[5] = {};
  for (const Stats& s : g_stats)
    for (int j = 0; j < 5; ++j) seen[j] += s.s_hist[j];
  bool all_s = seen[1] > 0 && seen[2] > 0 && seen[4] > 0;
  if (!all_s) std::printf("FAIL: not every S (1, 2, 4) ran\n");
  return final_verdict(ok && all_s, failed, ran, secs);
}
