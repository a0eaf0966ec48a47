// emu_sample: a CPU emulation of the sampling kernel of native/src/sample.cu (sample_rows_kernel<kList> with its entry
// points opt_sample_rows_f32 / opt_sample_rows_top_f32), thread by thread on emu.h's emulated GPU (512 threads a
// block as coroutines, barriers, warp shuffles and ballots, shared memory with a race / uninitialised-read checker,
// global memory with per-thread store buffers), against ref_sample (native/dev/sample_ref.h: backend/RowSampling
// transliterated, what check_ops compares the kernel with on a GPU). Session 23, written without a GPU: the kernel's
// session-22 changes (top-p's two-bit search, the draw's warp ranges, the scratch row) and session 23's typical cut
// had never run anywhere; this runs their code, not a model of it. It does not replace check_ops on a GPU.
//
// Build and run (from the repository root; x86-64 only, emu.h's hand-written context switch):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_sample/emu_sample.cpp -o target/emu_sample
//   target/emu_sample [random cases=40] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 12 (listed below).
//
// What differs from the kernel, on purpose:
//   - cub::BlockReduce<double>::Sum and cub::BlockScan<int>::ExclusiveSum are emulated through shared arrays (a
//     thread's value stored, a barrier, thread 0 sums; for the scan, warp totals by each warp's lane 0 behind a
//     second barrier). Their sums are in another order than CUB's, so the comparison with ref_sample is as check_ops
//     makes it on a GPU: the same tokens and alternatives, log-probs within 1e-4 (random rows: no cut or cumulative
//     boundary within rounding). Reusing their storage without a barrier between two calls shows as a race, as
//     reusing CUB's TempStorage would be one. The result of Sum is NaN outside thread 0 (CUB's is undefined there).
//   - expf is exp in double rounded to float (the GPU's may differ in the last bit; ref_sample's is the same as this).
//   - for_each_strided's eight loads are made one after another (their order of f calls is the kernel's).
//   - __restrict__, __launch_bounds__ and the kernel's template <bool kList> are kept as a runtime flag.
// Everything else is the kernel's code, line for line, with T* as GPtr<T> (ld / st) and __shared__ as SHARED.
#include <chrono>
#include <climits>
#include <cstdio>
#include <string>
#include <vector>

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: take_top_p_bits, `high` taken and `both` not: takes `low` (bit b - 1 set, bit b clear) instead of `high`
//   2: the top-p passes start at bit 27 (bits 29 and 28 never tested)
//   3: `reduced` without its second __syncthreads (threads read shared_double before thread 0 wrote it)
//   4: the crossing warp takes the last lane of the step past the target, not the first
//   5: the crossing warp walks again from base 0, not from the totals of the warps before it
//   6: the walk does not carry the running sum between steps (run stays 0)
//   7: s_fresh_of reads the scratch row (by token) for gathered rows too, where j is a place in the gathered set
//   8: typical's mean divided by the whole mass W, not the mass left W'
//   9: typical's key from the distance without fabs
//  10: kept() leaves out the typical cut (the draw walks tokens the search removed)
//  11: the alternatives list by top-k's cut alone when typical is on (no_cut forgets filter_typical)
//  12: the gathered pass skips its closing __syncthreads (the scan's storage reused at once)
constexpr int kPlant = PLANT;

#include "../emu_common/emu.h"
#include "../emu_common/intrinsics.h"
#include "../emu_common/row_harness.h"
#include "../sample_ref.h"

namespace {
using emu::GPtr;
using emu::SArr;
using emu::threadIdx;
using emu::blockIdx;
constexpr int kWarp = 32;

// ---- cub, emulated (see the top) ----
struct BlockReduceSum {
  SArr<double>& tmp;
  double Sum(double v) {
    const int tid = static_cast<int>(threadIdx.x);
    tmp.st(tid, v, "BlockReduce store");
    __syncthreads();
    if (tid != 0) return NAN;
    double sum = 0.0;
    for (int i = 0; i < static_cast<int>(tmp.v.size()); ++i) sum += tmp.ld(i, "BlockReduce load");
    return sum;
  }
};
struct BlockScanInt {
  SArr<int>& tmp;     // one per thread
  SArr<int>& warps;   // one per warp
  void ExclusiveSum(int in, int& at, int& total) {
    const int tid = static_cast<int>(threadIdx.x);
    const int n = static_cast<int>(tmp.v.size());
    tmp.st(tid, in, "BlockScan store");
    __syncthreads();
    if (tid % kWarp == 0) {
      int sum = 0;
      for (int i = tid; i < tid + kWarp; ++i) sum += tmp.ld(i, "BlockScan warp load");
      warps.st(tid / kWarp, sum, "BlockScan warp store");
    }
    __syncthreads();
    at = 0;
    total = 0;
    for (int w = 0; w < n / kWarp; ++w) {
      const int x = warps.ld(w, "BlockScan warps load");
      total += x;
      if (w < tid / kWarp) at += x;
    }
    for (int i = tid / kWarp * kWarp; i < tid; ++i) at += tmp.ld(i, "BlockScan lane load");
  }
};

// ============================================================================================================
// sample.cu, from `constexpr int kThreads` to the end of the kernel.
// ============================================================================================================
constexpr int kThreads = 512;
constexpr int kGathered = 2048;

unsigned int ordered(float f) {
  const unsigned int b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct TopPCandidates {
  unsigned int high;
  unsigned int low;
  unsigned int both;
};
TopPCandidates top_p_candidates(unsigned int prefix, int b) {
  return {prefix | (1u << b), prefix | (1u << (b - 1)), prefix | (1u << b) | (1u << (b - 1))};
}
void add_top_p_mass(double w, unsigned int key, const TopPCandidates& c, double& high, double& low, double& both) {
  if (key <= c.high) high += w;
  if (key <= c.low) low += w;
  if (key <= c.both) both += w;
}
void take_top_p_bits(const TopPCandidates& c, double high, double low, double both, double limit, double total,
                     unsigned int& prefix, double& removed) {
  if (high <= limit && high < total) {
    prefix = c.high;
    removed = high;
    if (both <= limit && both < total) {
      prefix = c.both;
      removed = both;
    } else if (kPlant == 1) {
      prefix = c.low;
    }
  } else if (low <= limit && low < total) {
    prefix = c.low;
    removed = low;
  }
}

unsigned int typical_key(float s, float m, double mean) {
  const double d = static_cast<double>(s) - m - mean;
  return 0x7fffffffu - __float_as_uint(static_cast<float>(kPlant == 9 ? d : std::fabs(d)));
}

constexpr int kDrawWarps = kThreads / 32;
void draw_range(int count, int warp, int& lo, int& hi) {
  const int range = ((count + kDrawWarps - 1) / kDrawWarps + 31) / 32 * 32;
  lo = warp * range < count ? warp * range : count;
  hi = lo + range < count ? lo + range : count;
}
int crossing_warp(SArr<double>& totals, double target, double& base) {
  double sum = 0.0;
  for (int w = 0; w < kDrawWarps; ++w) {
    const double t = totals.ld(w, "warp_total");
    if (sum + t > target) {
      base = sum;
      return w;
    }
    sum += t;
  }
  base = sum;
  return -1;
}

void no_alternatives(GPtr<int32_t> out_ids, GPtr<float> out_lps, int row, int k, int from) {
  for (int i = from + static_cast<int>(threadIdx.x); i < k; i += kThreads) {
    out_ids.st(static_cast<size_t>(row) * k + i, -1);
    out_lps.st(static_cast<size_t>(row) * k + i, __int_as_float(0x7fc00000));
  }
}

void sample_rows_kernel(bool kList, GPtr<int32_t> out_token, GPtr<float> out_logprob, GPtr<float> logits,
                        GPtr<float> temperature, GPtr<int32_t> top_k, GPtr<float> top_p, GPtr<float> min_p,
                        GPtr<float> typical_p, GPtr<double> uniform, int vocab, GPtr<int32_t> out_ids,
                        GPtr<float> out_lps, int list_k, GPtr<float> weights) {
  SHARED(double, reduce_tmp, kThreads);
  SHARED(double, shared_double, 1);
  SHARED(unsigned, shared_uint, 1);
  SHARED(int, shared_int, 1);
  SHARED(int, found, 1);
  SHARED(int, last_kept, 1);
  SHARED(int, hist, 256);
  SHARED(int, int_scan_tmp, kThreads);
  SHARED(int, int_scan_warps, kThreads / kWarp);
  SHARED(int, gathered_index, kGathered);
  SHARED(float, gathered_s, kGathered);
  BlockReduceSum reduce{reduce_tmp};
  BlockScanInt scan{int_scan_tmp, int_scan_warps};

  const int row = static_cast<int>(blockIdx.x);
  const int tid = static_cast<int>(threadIdx.x);
  const GPtr<float> z = logits + static_cast<size_t>(row) * vocab;
  const float t = temperature.ld(row);
  const int k = top_k.ld(row);
  const float p = top_p.ld(row);
  const float mp = min_p.ld(row) > 0.f ? std::fmin(min_p.ld(row), 1.f) : 0.f;
  const float tp = typical_p.ld(row);
  const GPtr<float> scratch = !weights.null() ? weights + static_cast<size_t>(row) * vocab : GPtr<float>{};

  // 1.
  int nan = 0;
  float thread_max = -INFINITY;
  for (int i = tid; i < vocab; i += kThreads) {
    const float s = __fdiv_rn(z.ld(i, "logits"), t);
    if (!scratch.null()) scratch.st(i, s, "scratch: s");
    if (s != s) nan = 1;
    thread_max = std::fmax(thread_max, s);
  }
  auto s_at = [&](int i) -> float { return !scratch.null() ? scratch.ld(i, "scratch") : __fdiv_rn(z.ld(i), t); };
  auto for_s = [&](auto&& f) {
    if (!scratch.null()) {
      for_each_strided(scratch, tid, kThreads, vocab, f);
    } else {
      for (int i = tid; i < vocab; i += kThreads) f(i, __fdiv_rn(z.ld(i), t));
    }
  };
  if (tid == 0) {
    shared_int.st(0, 0);
    shared_uint.st(0, 0u);
  }
  __syncthreads();
  if (nan) shared_int.atomic_or(0, 1);
  shared_uint.atomic_max(0, ordered(thread_max));
  __syncthreads();
  if (shared_int.ld(0)) {
    if (kList) no_alternatives(out_ids, out_lps, row, list_k, 0);
    if (tid == 0) {
      out_token.st(row, -2);
      out_logprob.st(row, __int_as_float(0x7fc00000));
    }
    return;
  }
  const unsigned int max_key = shared_uint.ld(0);
  const float m = __uint_as_float((max_key & 0x80000000u) ? (max_key & 0x7fffffffu) : ~max_key);
  if (m == -INFINITY) {
    if (kList) no_alternatives(out_ids, out_lps, row, list_k, 0);
    if (tid == 0) {
      out_token.st(row, -1);
      out_logprob.st(row, -INFINITY);
    }
    return;
  }

  // 2. top-k
  unsigned int kth = 0u;
  if (k > 0 && k < vocab) {
    unsigned int prefix = 0u;
    unsigned int mask = 0u;
    int remaining = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = tid; d < 256; d += kThreads) hist.st(d, 0);
      __syncthreads();
      for_s([&](int, float s) {
        const unsigned int key = ordered(s);
        if ((key & mask) == prefix) hist.atomic_add((key >> shift) & 0xffu, 1);
      });
      __syncthreads();
      if (tid == 0) {
        int above = 0;
        int digit = 0;
        for (int d = 255; d >= 0; --d) {
          if (above + hist.ld(d) >= remaining) {
            digit = d;
            break;
          }
          above += hist.ld(d);
        }
        shared_uint.st(0, static_cast<unsigned int>(digit));
        shared_int.st(0, remaining - above);
      }
      __syncthreads();
      prefix |= shared_uint.ld(0) << shift;
      mask |= 0xffu << shift;
      remaining = shared_int.ld(0);
      __syncthreads();
    }
    kth = prefix;
  }

  int count = vocab;
  bool gathered = false;
  if (kth != 0u) {
    int mine = 0;
    for_s([&](int, float s) { mine += ordered(s) >= kth; });
    if (tid == 0) shared_int.st(0, 0);
    __syncthreads();
    shared_int.atomic_add(0, mine);
    __syncthreads();
    if (shared_int.ld(0) <= kGathered) {
      gathered = true;
      count = 0;
      for (int base = 0; base < vocab; base += kThreads) {
        const int i = base + tid;
        const float s = i < vocab ? s_at(i) : -INFINITY;
        const int in = i < vocab && ordered(s) >= kth;
        int at;
        int chunk;
        scan.ExclusiveSum(in, at, chunk);
        if (in) {
          gathered_index.st(count + at, i);
          gathered_s.st(count + at, s);
        }
        count += chunk;
        if (kPlant != 12) __syncthreads();
      }
    }
  }
  auto token_of = [&](int j) -> int { return gathered ? gathered_index.ld(j) : j; };
  auto s_of = [&](int j) -> float { return gathered ? gathered_s.ld(j) : s_at(j); };
  auto s_fresh_of = [&](int j) -> float {
    if (kPlant == 7 && gathered) return s_at(j);
    return gathered ? gathered_s.ld(j) : __fdiv_rn(z.ld(j), t);
  };

  // 3. weights
  auto compute_weight = [&](int j) -> double {
    const float s = s_of(j);
    if (ordered(s) < kth) return 0.0;
    if (m == INFINITY) return s == INFINITY ? 1.0 : 0.0;
    return static_cast<double>(expf(s - m));
  };
  const GPtr<float> cache = gathered ? GPtr<float>{} : scratch;
  auto weight = [&](int j) -> double {
    return !cache.null() ? static_cast<double>(cache.ld(j, "cache")) : compute_weight(j);
  };
  auto for_weights = [&](auto&& f) {
    if (!cache.null()) {
      for_each_strided(cache, tid, kThreads, count, [&](int j, float w) { f(j, static_cast<double>(w)); });
    } else {
      for (int j = tid; j < count; j += kThreads) f(j, compute_weight(j));
    }
  };
  double part = 0.0;
  for (int j = tid; j < count; j += kThreads) {
    const double w = compute_weight(j);
    if (!cache.null()) cache.st(j, static_cast<float>(w), "cache: weight");
    part += w;
  }
  double total = reduce.Sum(part);
  if (tid == 0) shared_double.st(0, total);
  __syncthreads();
  total = shared_double.ld(0);

  // 4. top-p
  auto reduced = [&](double mass) -> double {
    __syncthreads();
    mass = reduce.Sum(mass);
    if (tid == 0) shared_double.st(0, mass);
    if (kPlant != 3) __syncthreads();
    return shared_double.ld(0);
  };
  bool filter_p = p < 1.f;
  unsigned int tau = 0u;
  double removed = 0.0;
  if (filter_p) {
    const double limit = (1.0 - static_cast<double>(p)) * total;
    unsigned int prefix = 0u;
    for (int b = kPlant == 2 ? 27 : 29; b > 0; b -= 2) {
      const TopPCandidates c = top_p_candidates(prefix, b);
      double high = 0.0;
      double low = 0.0;
      double both = 0.0;
      for_weights([&](int, double w) {
        if (w > 0.0) add_top_p_mass(w, __float_as_uint(static_cast<float>(w)), c, high, low, both);
      });
      high = reduced(high);
      low = reduced(low);
      both = reduced(both);
      take_top_p_bits(c, high, low, both, limit, total, prefix, removed);
    }
    tau = prefix;
  }
  auto cut_p = [&](double w) -> double {
    if (w <= 0.0) return 0.0;
    if (filter_p && __float_as_uint(static_cast<float>(w)) <= tau) return 0.0;
    return w;
  };

  // 4b. min-p
  const bool filter_min = mp > 0.f;
  if (filter_min) {
    double mass = 0.0;
    for_weights([&](int, double w0) {
      const double w = cut_p(w0);
      if (w > 0.0 && static_cast<float>(w) < mp) mass += w;
    });
    __syncthreads();
    mass = reduce.Sum(mass);
    if (tid == 0) shared_double.st(0, mass);
    __syncthreads();
    removed += shared_double.ld(0);
  }
  auto cut_min = [&](double w0) -> double {
    const double w = cut_p(w0);
    if (filter_min && static_cast<float>(w) < mp) return 0.0;
    return w;
  };

  // 4c. typical
  const bool filter_typical = tp > 0.f && tp < 1.f && m != INFINITY;
  unsigned int typical_tau = 0u;
  double mean = 0.0;
  double kept_mass = total - removed;
  if (filter_typical) {
    auto for_kept_s = [&](auto&& f) {
      for_weights([&](int j, double w0) {
        const double w = cut_min(w0);
        if (w > 0.0) f(w, s_fresh_of(j));
      });
    };
    double left = 0.0;
    double sum = 0.0;
    for_kept_s([&](double w, float s) {
      left += w;
      sum += w * (static_cast<double>(s) - m);
    });
    left = reduced(left);
    mean = reduced(sum) / (kPlant == 8 ? total : left);
    const double limit = (1.0 - static_cast<double>(tp)) * left;
    unsigned int prefix = 0u;
    double cut = 0.0;
    for (int b = 31; b > 0; b -= 2) {
      const TopPCandidates c = top_p_candidates(prefix, b);
      double high = 0.0;
      double low = 0.0;
      double both = 0.0;
      for_kept_s([&](double w, float s) { add_top_p_mass(w, typical_key(s, m, mean), c, high, low, both); });
      high = reduced(high);
      low = reduced(low);
      both = reduced(both);
      take_top_p_bits(c, high, low, both, limit, left, prefix, cut);
    }
    typical_tau = prefix;
    kept_mass = left - cut;
  }
  auto kept = [&](int j) -> double {
    const double w = cut_min(weight(j));
    if (kPlant != 10 && filter_typical && w > 0.0 && typical_key(s_fresh_of(j), m, mean) <= typical_tau) return 0.0;
    return w;
  };

  // 5. the draw
  const double target = uniform.ld(row) * kept_mass;
  SHARED(double, warp_total, kDrawWarps);
  SHARED(int, warp_last, kDrawWarps);
  const int dlane = tid % kWarp;
  const int dwarp = tid / kWarp;
  int lo;
  int hi;
  draw_range(count, dwarp, lo, hi);
  auto walk = [&](bool stop, double base, int& last) -> double {
    double run = 0.0;
    double top = 0.0;
    double next = lo + dlane < hi ? kept(lo + dlane) : 0.0;
    for (int b = lo; b < hi; b += kWarp) {
      const int j = b + dlane;
      const double w = next;
      next = j + kWarp < hi ? kept(j + kWarp) : 0.0;
      if (w > 0.0) last = token_of(j);
      double incl = w;
      for (int d = 1; d < kWarp; d *= 2) {
        const double o = __shfl_up_sync(0xffffffffu, incl, d);
        if (dlane >= d) incl += o;
      }
      const double prefix = run + incl;
      if (w > 0.0) top = std::fmax(top, prefix);
      if (stop) {
        const unsigned int hit = __ballot_sync(0xffffffffu, w > 0.0 && base + prefix > target);
        if (hit != 0u) {
          if (dlane == (kPlant == 4 ? 31 - __builtin_clz(hit) : __ffs(hit) - 1)) found.st(0, token_of(j));
          break;
        }
      }
      run = kPlant == 6 ? 0.0 : __shfl_sync(0xffffffffu, prefix, kWarp - 1);
    }
    return top;
  };
  int my_last = -1;
  double total_of_warp = walk(false, 0.0, my_last);
  int warp_max = my_last;
  for (int d = kWarp / 2; d > 0; d /= 2) {
    warp_max = std::max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, d));
    total_of_warp = std::fmax(total_of_warp, __shfl_xor_sync(0xffffffffu, total_of_warp, d));
  }
  if (dlane == 0) {
    warp_total.st(dwarp, total_of_warp);
    warp_last.st(dwarp, warp_max);
  }
  if (tid == 0) found.st(0, INT_MAX);
  __syncthreads();
  double base = 0.0;
  const int crossing = crossing_warp(warp_total, target, base);
  if (dwarp == crossing) {
    int unused = -1;
    walk(true, kPlant == 5 ? 0.0 : base, unused);
  }
  __syncthreads();
  if (tid == 0) {
    if (found.ld(0) == INT_MAX) {
      last_kept.st(0, -1);
      for (int w = 0; w < kDrawWarps; ++w) last_kept.st(0, std::max(last_kept.ld(0), warp_last.ld(w)));
    }
    const int token = found.ld(0) != INT_MAX ? found.ld(0) : last_kept.ld(0);
    out_token.st(row, token);
    const float s = token >= 0 ? __fdiv_rn(z.ld(token), t) : m;
    out_logprob.st(row, static_cast<float>((m == INFINITY ? 0.0 : static_cast<double>(s) - m) - std::log(kept_mass)));
  }
  if (!kList) return;

  // 6b. the alternatives
  SHARED(float, warp_s, kThreads / kWarp);
  SHARED(int, warp_tok, kThreads / kWarp);
  SHARED(float, pick_s, 1);
  SHARED(int, pick_tok, 1);
  const double log_mass = std::log(kept_mass);
  const bool no_cut = !filter_p && !filter_min && (kPlant == 11 || !filter_typical) && m != INFINITY;
  const int lane = tid % kWarp;
  const int warp = tid / kWarp;
  float ps = INFINITY;
  int pt = -1;
  for (int r = 0; r < list_k; ++r) {
    float best_s = -INFINITY;
    int best_t = INT_MAX;
    for (int j = tid; j < count; j += kThreads) {
      const float sj = s_fresh_of(j);
      if (no_cut ? !(sj > -INFINITY && ordered(sj) >= kth) : kept(j) <= 0.0) continue;
      const int tj = token_of(j);
      const bool after = sj < ps || (sj == ps && tj > pt);
      if (after && (sj > best_s || (sj == best_s && tj < best_t))) {
        best_s = sj;
        best_t = tj;
      }
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float os = __shfl_xor_sync(0xffffffffu, best_s, offset);
      const int ot = __shfl_xor_sync(0xffffffffu, best_t, offset);
      if (os > best_s || (os == best_s && ot < best_t)) {
        best_s = os;
        best_t = ot;
      }
    }
    __syncthreads();
    if (lane == 0) {
      warp_s.st(warp, best_s);
      warp_tok.st(warp, best_t);
    }
    __syncthreads();
    if (tid == 0) {
      for (int w = 1; w < kThreads / kWarp; ++w) {
        if (warp_s.ld(w) > best_s || (warp_s.ld(w) == best_s && warp_tok.ld(w) < best_t)) {
          best_s = warp_s.ld(w);
          best_t = warp_tok.ld(w);
        }
      }
      pick_s.st(0, best_s);
      pick_tok.st(0, best_t);
      const bool found_one = best_t != INT_MAX;
      out_ids.st(static_cast<size_t>(row) * list_k + r, found_one ? best_t : -1);
      out_lps.st(static_cast<size_t>(row) * list_k + r,
                 found_one ? static_cast<float>((m == INFINITY ? 0.0 : static_cast<double>(best_s) - m) - log_mass)
                           : __int_as_float(0x7fc00000));
    }
    __syncthreads();
    ps = pick_s.ld(0);
    pt = pick_tok.ld(0);
    if (pt == INT_MAX) {
      no_alternatives(out_ids, out_lps, row, list_k, r + 1);
      return;
    }
  }
}

// ============================================================================================================
// The test: cases, buffers, the comparison with ref_sample
// ============================================================================================================

struct Row {
  float temperature = 1.f;
  int top_k = 0;
  float top_p = 1.f;
  float min_p = 0.f;
  float typical_p = 1.f;
  double uniform = 0.5;
  int special = 0;  // 1: every logit -inf, 2: a NaN, 3: two logits +inf
};

struct Result {
  std::vector<int32_t> tok, ids;
  std::vector<float> lp, lps;
};

// Runs the emulated kernel over the rows (one block each) with or without the scratch row; list_k 0: the plain entry.
Result run(const std::vector<float>& logits, const std::vector<Row>& rows, int vocab, int list_k, bool scratch) {
  const int n = static_cast<int>(rows.size());
  std::vector<float> t, p, mp, tp;
  std::vector<int32_t> k;
  std::vector<double> u;
  for (const Row& r : rows) {
    t.push_back(r.temperature);
    k.push_back(r.top_k);
    p.push_back(r.top_p);
    mp.push_back(r.min_p);
    tp.push_back(r.typical_p);
    u.push_back(r.uniform);
  }
  Buf<float> bl, bt, bp, bmp, btp, blp, blps, bw;
  Buf<int32_t> bk, btok, bids;
  Buf<double> bu;
  bl.init("logits", logits, false, false);
  bt.init("temperature", t, false, false);
  bk.init("top_k", k, false, false);
  bp.init("top_p", p, false, false);
  bmp.init("min_p", mp, false, false);
  btp.init("typical_p", tp, false, false);
  bu.init("uniform", u, false, false);
  btok.init("out_token", std::vector<int32_t>(n, 0x5a5a5a5a), true, true);
  blp.init("out_logprob", std::vector<float>(n, NAN), true, true);
  bids.init("out_ids", std::vector<int32_t>(static_cast<size_t>(n) * std::max(list_k, 1), 0x5a5a5a5a), true, true);
  blps.init("out_lps", std::vector<float>(static_cast<size_t>(n) * std::max(list_k, 1), 1234.f), true, true);
  bw.init("weights", std::vector<float>(scratch ? static_cast<size_t>(n) * vocab : 0, NAN), true, false);
  ++emu::g_op;
  const bool list = list_k > 0;
  emu::run_grid(emu::Dim3(n), kThreads, 0, [&] {
    sample_rows_kernel(list, btok.ptr(), blp.ptr(), bl.ptr(), bt.ptr(), bk.ptr(), bp.ptr(), bmp.ptr(), btp.ptr(),
                       bu.ptr(), vocab, list ? bids.ptr() : GPtr<int32_t>{}, list ? blps.ptr() : GPtr<float>{},
                       list_k, scratch ? bw.ptr() : GPtr<float>{});
  });
  Result r;
  r.tok = btok.get();
  r.lp = blp.get();
  if (list) {
    r.ids = bids.get();
    r.lps = blps.get();
  }
  return r;
}

std::vector<float> make_logits(const std::vector<Row>& rows, int vocab, float sigma, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> logits(rows.size() * static_cast<size_t>(vocab));
  for (float& v : logits) v = dist(rng);
  for (size_t r = 0; r < rows.size(); ++r) {
    float* row = &logits[r * vocab];
    if (rows[r].special == 1) std::fill(row, row + vocab, -INFINITY);
    if (rows[r].special == 2) row[vocab / 3] = NAN;
    if (rows[r].special == 3) row[1] = row[vocab - 2] = INFINITY;
  }
  return logits;
}

// One grid of rows: the emulated kernel with and without the scratch row (the same bits), each row against
// ref_sample; no checker error.
bool check(const std::string& name, const std::vector<Row>& rows, int vocab, int list_k, float sigma,
           std::mt19937& rng) {
  const long long fails = g_fail, checker = emu::g_log.errors;
  const std::vector<float> logits = make_logits(rows, vocab, sigma, rng);
  const Result a = run(logits, rows, vocab, list_k, false);
  const Result b = run(logits, rows, vocab, list_k, true);
  if (a.tok != b.tok || a.ids != b.ids || std::memcmp(a.lp.data(), b.lp.data(), a.lp.size() * 4) != 0 ||
      std::memcmp(a.lps.data(), b.lps.data(), a.lps.size() * 4) != 0) {
    fail(name + ": the scratch row changed a token, log-prob or alternative");
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& c = rows[r];
    double want_lp = 0;
    std::vector<int32_t> want_ids(std::max(list_k, 1));
    std::vector<double> want_lps(std::max(list_k, 1));
    const int want = ref_sample(&logits[r * vocab], vocab, c.temperature, c.top_k, c.top_p, c.min_p, c.typical_p,
                                c.uniform, &want_lp, list_k, want_ids.data(), want_lps.data());
    char what[256];
    std::snprintf(what, sizeof what, "%s row %zu (t %g, top-k %d, top-p %g, min-p %g, typical %g, u %g)", name.c_str(),
                  r, c.temperature, c.top_k, c.top_p, c.min_p, c.typical_p, c.uniform);
    if (a.tok[r] != want) {
      fail(std::string(what) + ": token " + std::to_string(a.tok[r]) + ", ref " + std::to_string(want));
      continue;
    }
    if (want >= 0 ? !(std::abs(a.lp[r] - want_lp) <= 1e-4) : !(std::isnan(a.lp[r]) == std::isnan(want_lp))) {
      fail(std::string(what) + ": log-prob " + std::to_string(a.lp[r]) + ", ref " + std::to_string(want_lp));
    }
    for (int j = 0; j < list_k; ++j) {
      const int32_t id = a.ids[r * list_k + j];
      const float lp = a.lps[r * list_k + j];
      if (id != want_ids[j] || (want_ids[j] < 0 ? !std::isnan(lp) : !(std::abs(lp - want_lps[j]) <= 1e-4))) {
        fail(std::string(what) + ": alternative " + std::to_string(j) + " " + std::to_string(id) + " (" +
             std::to_string(lp) + "), ref " + std::to_string(want_ids[j]) + " (" + std::to_string(want_lps[j]) + ")");
        break;
      }
    }
  }
  if (emu::g_log.errors != checker) fail(name + ": " + std::to_string(emu::g_log.errors - checker) + " checker errors");
  return g_fail == fails;
}

Row random_row(std::mt19937& rng, int vocab) {
  auto pick = [&](std::initializer_list<float> v) { return *(v.begin() + rng() % v.size()); };
  Row r;
  r.temperature = pick({1.f, 0.7f, 1.3f, 2.f, 0.3f});
  r.top_k = rng() % 3 == 0 ? static_cast<int>(1 + rng() % std::min(vocab, 3000)) : 0;
  r.top_p = rng() % 2 == 0 ? pick({0.9f, 0.5f, 0.99f, 1e-9f}) : 1.f;
  r.min_p = rng() % 3 == 0 ? pick({0.01f, 0.05f, 0.2f, 1.f}) : 0.f;
  r.typical_p = rng() % 2 == 0 ? pick({0.9f, 0.2f, 0.5f, 0.99f, 1e-6f, 1e-20f}) : 1.f;
  r.uniform = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  if (rng() % 16 == 0) r.uniform = pick({0.f, 0.999999f});
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 40;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261128u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  emu::g_barrier_flushes = true;  // one block per row, no block reads another's stores: a barrier makes them visible
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_sample: sample_rows_kernel emulated, fixed cases + %d random, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  int ran = 0, failed = 0;
  auto one = [&](const std::string& name, const std::vector<Row>& rows, int vocab, int list_k, float sigma = 3.f) {
    ++ran;
    failed += !check(name, rows, vocab, list_k, sigma, rng);
  };
  // check_ops' rows (group sample, minp, typical) at a smaller vocabulary, then at OPT's for a few; the edge rows
  auto R = [](float t, int k, float p, float mp, double u, float tp = 1.f, int special = 0) {
    Row r;
    r.temperature = t;
    r.top_k = k;
    r.top_p = p;
    r.min_p = mp;
    r.uniform = u;
    r.typical_p = tp;
    r.special = special;
    return r;
  };
  const std::vector<Row> plain = {R(1.f, 0, 1.f, 0.f, 0.37), R(0.7f, 50, 1.f, 0.f, 0.81), R(1.f, 0, 0.9f, 0.f, 0.52),
                                  R(0.8f, 40, 0.95f, 0.f, 0.13), R(1.f, 1, 1.f, 0.f, 0.99), R(1.f, 0, 1e-9f, 0.f, 0.5),
                                  R(1.3f, 3000, 1.f, 0.f, 0.66), R(0.9f, 3000, 0.8f, 0.f, 0.05), R(1.f, 20, 1.f, 0.f, 0.0),
                                  R(1.f, 0, 1.f, 0.f, 0.5, 1.f, 1), R(1.f, 0, 1.f, 0.f, 0.5, 1.f, 2),
                                  R(1.f, 0, 0.9f, 0.f, 0.5, 1.f, 3), R(1.f, 0, 1.f, 0.f, 0.7, 0.5f, 3)};
  const std::vector<Row> minp = {R(1.f, 0, 1.f, 0.05f, 0.37), R(0.7f, 50, 1.f, 0.1f, 0.81), R(1.f, 0, 0.9f, 0.02f, 0.52),
                                 R(0.8f, 40, 0.95f, 0.2f, 0.13), R(1.f, 0, 1.f, 1.f, 0.99), R(3.f, 0, 1.f, 0.01f, 0.999),
                                 R(1.3f, 3000, 1.f, 0.03f, 0.66), R(0.9f, 3000, 0.8f, 0.5f, 0.05),
                                 R(2.f, 0, 1.f, 0.001f, 0.0)};
  const std::vector<Row> typical = {R(1.f, 0, 1.f, 0.f, 0.37, 0.9f), R(0.7f, 50, 1.f, 0.f, 0.81, 0.5f),
                                    R(1.f, 0, 0.9f, 0.f, 0.52, 0.2f), R(0.8f, 40, 0.95f, 0.05f, 0.13, 0.95f),
                                    R(1.f, 0, 1.f, 0.f, 0.99, 1e-6f), R(3.f, 0, 1.f, 0.01f, 0.999, 0.99f),
                                    R(1.3f, 3000, 1.f, 0.f, 0.66, 0.7f), R(0.9f, 1000, 0.8f, 0.f, 0.05, 0.6f),
                                    R(2.f, 0, 1.f, 0.f, 0.0, 0.3f), R(1.f, 0, 0.9f, 0.f, 0.3, 1e-20f),
                                    R(1.f, 0, 0.9f, 0.05f, 0.8, 1e-30f)};
  for (int list_k : {0, 5}) {
    one("plain", plain, 5000, list_k);
    one("min-p", minp, 5000, list_k);
    one("typical", typical, 5000, list_k);
  }
  one("typical, OPT's vocabulary", {typical[0], typical[3], typical[7]}, 50272, 5);
  one("plain, OPT's vocabulary", {plain[2], plain[6], plain[7]}, 50272, 0);
  one("a vocabulary of 33", {R(1.f, 0, 0.9f, 0.f, 0.4, 0.9f), R(1.f, 5, 1.f, 0.f, 0.9), R(1.f, 0, 1.f, 0.f, 0.1)}, 33, 3);
  one("flat rows (sigma 0.01)", {R(1.f, 0, 0.9f, 0.f, 0.4), R(1.f, 0, 1.f, 0.f, 0.6, 0.5f)}, 3000, 2, 0.01f);
  for (int c = 0; c < cases; ++c) {
    const int vocab = rng() % 4 == 0 ? 33 + static_cast<int>(rng() % 600) : 600 + static_cast<int>(rng() % 6000);
    std::vector<Row> rows(1 + rng() % 3);
    for (Row& r : rows) r = random_row(rng, vocab);
    one("random " + std::to_string(c), rows, vocab, rng() % 2 == 0 ? 0 : 1 + static_cast<int>(rng() % 6),
        rng() % 4 == 0 ? 0.3f : 3.f);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return finish(failed, ran, secs);
}
