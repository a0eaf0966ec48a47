// emu_toplp: a CPU emulation of native/src/top_logprobs.cu (top_logprobs_kernel, beam_topk_kernel and
// log_softmax_rows_kernel with their entry points), thread by thread on emu.h's emulated GPU, against host references
// written from opt_kernels.h and the CPU twins (backend/RowMath.topK, beamTopK, logSoftmaxRows): a greedy request's
// log-prob alternatives and beam search's candidates, both on by default. Session 23, written without a GPU: session
// 22 gave every pass of these kernels eight loads in flight and had not run them anywhere. It does not replace check_ops
// groups `toplp` and `beams` on a GPU.
//
// Build and run (from the repository root; x86-64 only):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_toplp/emu_toplp.cpp -o target/emu_toplp
//   target/emu_toplp [random cases=60] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 8 (listed below).
//
// What differs from the kernels: expf / logf are the exact results rounded to float (the GPU's may differ in the last
// bit, so log-probs are compared with check_ops' tolerances, ids exactly); for_each_strided makes its eight loads one
// after another. The block size is the launchers' (threads_for(vocab, 512)): 32 to 512 threads.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: row_max without its first __syncthreads (thread 0's nan_s = 0 races a NaN thread's nan_s = 1)
//   2: after() takes equal values with a lower id too (a tie listed twice or skipped)
//   3: top_k_rounds lists -inf keys in the top log-probs (kListNegInf ignored)
//   4: the k rounds' warp 0 reads warp_v of every lane, not only lanes below the block's warps
//   5: for_row strides by 32 instead of blockDim.x
//   6: beam_topk's key adds the beam score before subtracting the log-sum (another rounding)
//   7: a NaN row's top log-probs listed with finite log-probs (lse not NaN)
//   8: list_nothing starts at `from + 1`
constexpr int kPlant = PLANT;

#include "../emu_common/emu.h"
#include "../emu_common/intrinsics.h"
#include "../emu_common/row_harness.h"

namespace {
using emu::GPtr;
using emu::SArr;
using emu::threadIdx;
using emu::blockIdx;
using emu::blockDim;
constexpr int kWarp = 32;

// ---- common.cuh ----
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
int threads_for(int n, int max_threads) {
  const long long rounded = (static_cast<long long>(n) + kWarp - 1) / kWarp * kWarp;
  return rounded < kWarp ? kWarp : (rounded > max_threads ? max_threads : static_cast<int>(rounded));
}

// ============================================================================================================
// top_logprobs.cu, from kMaxThreads to the end of log_softmax_rows_kernel
// ============================================================================================================
constexpr int kMaxThreads = 512;

bool before(float v, int i, float best_v, int best_i) { return v > best_v || (v == best_v && i < best_i); }
bool after(float v, int i, float pv, int pi) { return v < pv || (v == pv && (kPlant == 2 ? i != pi : i > pi)); }

void warp_best(float& v, int& i) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other_v = __shfl_xor_sync(0xffffffffu, v, offset);
    const int other_i = __shfl_xor_sync(0xffffffffu, i, offset);
    if (before(other_v, other_i, v, i)) {
      v = other_v;
      i = other_i;
    }
  }
}

template <class F>
void for_row(GPtr<float> row, int vocab, F&& f) {
  for_each_strided(row, static_cast<int>(threadIdx.x), kPlant == 5 ? kWarp : static_cast<int>(blockDim.x), vocab, f);
}

float row_max(GPtr<float> row, int vocab, bool& has_nan) {
  SHARED(float, warp_m, kWarp);
  SHARED(int, nan_s, 1);
  if (threadIdx.x == 0) nan_s.st(0, 0);
  if (kPlant != 1) __syncthreads();
  float m = -INFINITY;
  bool nan = false;
  for_row(row, vocab, [&](int, float v) {
    nan = nan || std::isnan(v);
    m = std::fmax(m, v);
  });
  if (nan) nan_s.st(0, 1);
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = std::fmax(m, __shfl_xor_sync(0xffffffffu, m, offset));
  const int lane = threadIdx.x % kWarp;
  if (lane == 0) warp_m.st(threadIdx.x / kWarp, m);
  __syncthreads();
  float all = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) all = std::fmax(all, warp_m.ld(w));
  has_nan = nan_s.ld(0) != 0;
  __syncthreads();
  return all;
}

void list_nothing(GPtr<int32_t> out_ids, GPtr<float> out_val, int from, int k) {
  for (int rest = from + (kPlant == 8 ? 1 : 0) + threadIdx.x; rest < k; rest += blockDim.x) {
    out_ids.st(rest, -1);
    out_val.st(rest, __int_as_float(0x7fc00000));
  }
}

template <bool kListNegInf, class Key>
void top_k_rounds(GPtr<int32_t> out_ids, GPtr<float> out_val, GPtr<float> row, int vocab, int k, const Key& key,
                  float shift) {
  SHARED(float, warp_v, kWarp);
  SHARED(int, warp_i, kWarp);
  SHARED(float, pick_v, 1);
  SHARED(int, pick_i, 1);
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  float pv = INFINITY;
  int pi = -1;
  for (int r = 0; r < k; ++r) {
    float best_v = -INFINITY;
    int best_i = INT_MAX;
    for_row(row, vocab, [&](int i, float raw) {
      const float v = key(raw);
      if ((kListNegInf || kPlant == 3 || v > -INFINITY) && after(v, i, pv, pi) && before(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
      }
    });
    warp_best(best_v, best_i);
    __syncthreads();
    if (lane == 0) {
      warp_v.st(warp, best_v);
      warp_i.st(warp, best_i);
    }
    __syncthreads();
    if (warp == 0) {
      best_v = lane < warps || kPlant == 4 ? warp_v.ld(lane) : -INFINITY;
      best_i = lane < warps || kPlant == 4 ? warp_i.ld(lane) : INT_MAX;
      warp_best(best_v, best_i);
      if (lane == 0) {
        pick_v.st(0, best_v);
        pick_i.st(0, best_i);
        const bool found = best_i != INT_MAX;
        out_ids.st(r, found ? best_i : -1);
        out_val.st(r, found ? best_v - shift : __int_as_float(0x7fc00000));
      }
    }
    __syncthreads();
    pv = pick_v.ld(0);
    pi = pick_i.ld(0);
    if (pi == INT_MAX) {
      list_nothing(out_ids, out_val, r + 1, k);
      return;
    }
  }
}

void top_logprobs_kernel(GPtr<int32_t> out_ids, GPtr<float> out_lp, GPtr<float> logits, int vocab, int k) {
  const GPtr<float> row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  float sum = 0.f;
  if (std::isfinite(m)) for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  sum = block_sum(sum);
  const float lse = has_nan && kPlant != 7 ? __int_as_float(0x7fc00000) : std::isfinite(m) ? m + logf(sum) : m;
  top_k_rounds<false>(out_ids + static_cast<size_t>(blockIdx.x) * k, out_lp + static_cast<size_t>(blockIdx.x) * k,
                      row, vocab, k, [](float v) { return v; }, lse);
}

void beam_topk_kernel(GPtr<int32_t> out_ids, GPtr<float> out_scores, GPtr<float> logits, GPtr<int32_t> row_of,
                      GPtr<float> base, int vocab, int k, int log_probs) {
  const GPtr<float> row = logits + static_cast<size_t>(row_of.ld(blockIdx.x)) * vocab;
  const GPtr<int32_t> ids = out_ids + static_cast<size_t>(blockIdx.x) * k;
  const GPtr<float> scores = out_scores + static_cast<size_t>(blockIdx.x) * k;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  if (has_nan || (!log_probs && !std::isfinite(m))) {
    list_nothing(ids, scores, 0, k);
    return;
  }
  const float b = base.ld(blockIdx.x);
  if (log_probs) {
    top_k_rounds<true>(ids, scores, row, vocab, k, [b](float v) { return __fadd_rn(v, b); }, 0.f);
    return;
  }
  float sum = 0.f;
  for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  const float log_sum = logf(block_sum(sum));
  top_k_rounds<true>(ids, scores, row, vocab, k, [m, log_sum, b](float v) {
    return kPlant == 6 ? __fsub_rn(__fadd_rn(__fsub_rn(v, m), b), log_sum)
                       : __fadd_rn(__fsub_rn(__fsub_rn(v, m), log_sum), b);
  }, 0.f);
}

void log_softmax_rows_kernel(GPtr<float> out, GPtr<float> logits, int vocab) {
  const GPtr<float> row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  const GPtr<float> o = out + static_cast<size_t>(blockIdx.x) * vocab;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  if (has_nan || !std::isfinite(m)) {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) o.st(i, __int_as_float(0x7fc00000));
    return;
  }
  float sum = 0.f;
  for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  const float log_sum = logf(block_sum(sum));
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) o.st(i, __fsub_rn(__fsub_rn(row.ld(i), m), log_sum));
}

// ============================================================================================================
// The test
// ============================================================================================================

// Rows of every kind: 0 random, 1 random with a tie of its maximum, 2 a grid of exact ties, 3 few finite (the rest
// -inf), 4 a NaN and +inf, 5 all -inf, 6 +inf alone among finite values, 7 a NaN alone among finite values
std::vector<float> make_row(int kind, int vocab, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> row(vocab);
  for (float& v : row) v = dist(rng);
  switch (kind) {
    case 1: row[vocab - 1] = row[vocab / 2] = *std::max_element(row.begin(), row.end()) + 1.f; break;
    case 2: for (int j = 0; j < vocab; ++j) row[j] = static_cast<float>((j * 7919) % 64) / 8.0f; break;
    case 3:
      std::fill(row.begin(), row.end(), -INFINITY);
      for (int j = 0; j < std::min(vocab, 3); ++j) row[(j * 7 + 1) % vocab] = static_cast<float>(j % 2);
      break;
    case 4: row[vocab / 3] = NAN; row[vocab / 4] = INFINITY; break;
    case 5: std::fill(row.begin(), row.end(), -INFINITY); break;
    case 6: row[vocab / 5] = INFINITY; break;
    case 7: row[vocab / 2] = NAN; break;
    default: break;
  }
  return row;
}

// The host references: order by key (larger first, then the lower id), log-sum-exp in double.
std::vector<int> order_by(const std::vector<float>& key, bool neg_inf) {
  std::vector<int> order;
  for (int j = 0; j < static_cast<int>(key.size()); ++j) {
    if (!std::isnan(key[j]) && (neg_inf || key[j] > -INFINITY)) order.push_back(j);
  }
  std::stable_sort(order.begin(), order.end(), [&key](int a, int b) { return key[a] > key[b]; });
  return order;
}

struct Stats {
  long long rows = 0, listed = 0;
  double max_err = 0;
};

// opt_top_logprobs_f32 over `rows` rows of the given kinds: the ids of RowMath.topK, log-probs within 1e-4 of a double
// log-softmax (NaN for a NaN row; an +inf row's finite tokens NaN, the +inf ones... as lse = +inf gives: +inf - +inf =
// NaN, and finite - inf = -inf), -1 / NaN after the last.
void check_top_logprobs(const std::vector<int>& kinds, int vocab, int k, std::mt19937& rng, Stats& st) {
  const int rows = static_cast<int>(kinds.size());
  std::vector<float> logits;
  for (int kind : kinds) {
    std::vector<float> r = make_row(kind, vocab, rng);
    logits.insert(logits.end(), r.begin(), r.end());
  }
  Buf<float> bl, blp;
  Buf<int32_t> bids;
  bl.init("logits", logits, false, false);
  bids.init("out_ids", std::vector<int32_t>(static_cast<size_t>(rows) * k, 0x5a5a5a5a), true, true);
  blp.init("out_lp", std::vector<float>(static_cast<size_t>(rows) * k, 1234.f), true, true);
  ++emu::g_op;
  emu::run_grid(emu::Dim3(rows), threads_for(vocab, kMaxThreads), 0,
                [&] { top_logprobs_kernel(bids.ptr(), blp.ptr(), bl.ptr(), vocab, k); });
  const std::vector<int32_t> ids = bids.get();
  const std::vector<float> lp = blp.get();
  for (int r = 0; r < rows; ++r) {
    std::vector<float> row(logits.begin() + static_cast<size_t>(r) * vocab,
                           logits.begin() + static_cast<size_t>(r + 1) * vocab);
    const std::vector<int> order = order_by(row, false);
    bool nan = false;
    double m = -INFINITY;
    for (float v : row) {
      nan |= std::isnan(v);
      if (!std::isnan(v)) m = std::max(m, static_cast<double>(v));
    }
    double sum = 0;
    for (float v : row) sum += std::isfinite(m) && !std::isnan(v) ? std::exp(static_cast<double>(v) - m) : 0.0;
    const double lse = nan ? NAN : std::isfinite(m) ? m + std::log(sum) : m;
    ++st.rows;
    for (int j = 0; j < k; ++j) {
      const int got = ids[static_cast<size_t>(r) * k + j];
      const float got_lp = lp[static_cast<size_t>(r) * k + j];
      char what[200];
      std::snprintf(what, sizeof what, "top_logprobs vocab %d k %d row kind %d place %d", vocab, k, kinds[r], j);
      if (j >= static_cast<int>(order.size())) {
        if (got != -1 || !std::isnan(got_lp)) fail(std::string(what) + ": expected -1 / NaN, got " + std::to_string(got));
        continue;
      }
      ++st.listed;
      if (got != order[j]) {
        fail(std::string(what) + ": id " + std::to_string(got) + ", expected " + std::to_string(order[j]));
        break;
      }
      const double want = static_cast<double>(row[order[j]]) - lse;
      if (std::isnan(want) || std::isinf(want)) {
        if (!(std::isnan(want) ? std::isnan(got_lp) : got_lp == want)) fail(std::string(what) + ": log-prob special");
      } else if (!(std::abs(got_lp - want) <= 1e-4 * (1 + std::abs(want)))) {
        fail(std::string(what) + ": log-prob " + std::to_string(got_lp) + ", expected " + std::to_string(want));
      } else {
        st.max_err = std::max(st.max_err, std::abs(got_lp - want));
      }
    }
  }
}

// opt_beam_topk_f32 (both modes) and opt_log_softmax_rows_f32: n beams over the rows with their scores; the ids of
// RowMath.beamTopK (key = ((x - m) - log_sum) + base in float, log_sum from a double sum; -inf listed after the finite
// ones); a row holding a NaN or +inf, or all -inf, lists nothing; the log-probability mode over the log-softmax rows
// gives the same bits.
void check_beams(const std::vector<int>& kinds, int vocab, int k, std::mt19937& rng, Stats& st) {
  const int rows = static_cast<int>(kinds.size());
  std::vector<float> logits;
  for (int kind : kinds) {
    std::vector<float> r = make_row(kind, vocab, rng);
    logits.insert(logits.end(), r.begin(), r.end());
  }
  const int n = rows + 2;
  std::vector<int32_t> row_of(n);
  std::vector<float> base(n);
  for (int b = 0; b < n; ++b) {
    row_of[b] = static_cast<int32_t>(rng() % rows);
    base[b] = b % 3 == 0 ? 0.f : b % 3 == 1 ? -2.5f : -1e9f;
  }
  Buf<float> bl, bbase, bscore, bls, bscore2;
  Buf<int32_t> brow, bids, bids2;
  bl.init("logits", logits, false, false);
  brow.init("row_of", row_of, false, false);
  bbase.init("base", base, false, false);
  bids.init("out_ids", std::vector<int32_t>(static_cast<size_t>(n) * k, 0x5a5a5a5a), true, true);
  bscore.init("out_scores", std::vector<float>(static_cast<size_t>(n) * k, 1234.f), true, true);
  const int threads = threads_for(vocab, kMaxThreads);
  ++emu::g_op;
  emu::run_grid(emu::Dim3(n), threads, 0, [&] {
    beam_topk_kernel(bids.ptr(), bscore.ptr(), bl.ptr(), brow.ptr(), bbase.ptr(), vocab, k, 0);
  });
  bls.init("log_softmax", std::vector<float>(logits.size(), 1234.f), true, true);
  ++emu::g_op;
  emu::run_grid(emu::Dim3(rows), threads, 0, [&] { log_softmax_rows_kernel(bls.ptr(), bl.ptr(), vocab); });
  Buf<float> bls_in;
  bls_in.init("log_softmax (in)", bls.get(), false, false);
  bids2.init("out_ids (log-probs)", std::vector<int32_t>(static_cast<size_t>(n) * k, 0x5a5a5a5a), true, true);
  bscore2.init("out_scores (log-probs)", std::vector<float>(static_cast<size_t>(n) * k, 1234.f), true, true);
  ++emu::g_op;
  emu::run_grid(emu::Dim3(n), threads, 0, [&] {
    beam_topk_kernel(bids2.ptr(), bscore2.ptr(), bls_in.ptr(), brow.ptr(), bbase.ptr(), vocab, k, 1);
  });
  const std::vector<int32_t> ids = bids.get(), ids2 = bids2.get();
  const std::vector<float> scores = bscore.get(), scores2 = bscore2.get(), ls = bls.get();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != ids2[i] || std::memcmp(&scores[i], &scores2[i], 4) != 0) {
      fail("beam_topk: the log-probability mode differs from the logits mode at " + std::to_string(i));
      break;
    }
  }
  for (int b = 0; b < n; ++b) {
    const float* row = logits.data() + static_cast<size_t>(row_of[b]) * vocab;
    float m = -INFINITY;
    bool nan = false;
    for (int j = 0; j < vocab; ++j) {
      nan |= std::isnan(row[j]);
      m = std::max(m, row[j]);
    }
    char what[200];
    std::snprintf(what, sizeof what, "beam_topk vocab %d k %d beam %d (row kind %d, base %g)", vocab, k, b,
                  kinds[row_of[b]], base[b]);
    const int32_t* got = ids.data() + static_cast<size_t>(b) * k;
    const float* got_s = scores.data() + static_cast<size_t>(b) * k;
    ++st.rows;
    if (nan || !std::isfinite(m)) {
      for (int i = 0; i < k; ++i) {
        if (got[i] != -1 || !std::isnan(got_s[i])) {
          fail(std::string(what) + ": a row that lists nothing listed " + std::to_string(got[i]));
          break;
        }
      }
      const float* o = ls.data() + static_cast<size_t>(row_of[b]) * vocab;
      for (int j = 0; j < vocab; ++j) {
        if (!std::isnan(o[j])) {
          fail(std::string(what) + ": its log-softmax row is not NaN");
          break;
        }
      }
      continue;
    }
    double sum = 0.0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j] - m));
    const float log_sum = static_cast<float>(std::log(sum));
    std::vector<float> key(vocab);
    for (int j = 0; j < vocab; ++j) key[j] = ((row[j] - m) - log_sum) + base[b];
    const std::vector<int> order = order_by(key, true);
    for (int i = 0; i < k; ++i) {
      if (i >= static_cast<int>(order.size())) {
        if (got[i] != -1) fail(std::string(what) + ": expected -1 after the last");
        continue;
      }
      ++st.listed;
      // ids: where the float keys of two tokens are within rounding of each other (a log_sum an ulp off moves a
      // key by an ulp), another order is the kernel's right; only a clear difference fails
      if (got[i] != order[i]) {
        const float kg = got[i] >= 0 && got[i] < vocab ? key[got[i]] : NAN;
        if (!(std::abs(kg - key[order[i]]) <= 1e-6f * (1 + std::abs(key[order[i]])))) {
          fail(std::string(what) + ": place " + std::to_string(i) + " id " + std::to_string(got[i]) + ", expected " +
               std::to_string(order[i]));
          break;
        }
      }
      const float want = key[order[i]];
      if (std::isinf(want)) {
        if (got_s[i] != want) fail(std::string(what) + ": score not -inf");
      } else if (!(std::abs(static_cast<double>(got_s[i]) - want) / (1.0 + std::abs(want)) <= 1e-5)) {
        fail(std::string(what) + ": score " + std::to_string(got_s[i]) + ", expected " + std::to_string(want));
        break;
      } else {
        st.max_err = std::max(st.max_err, std::abs(static_cast<double>(got_s[i]) - want) / (1.0 + std::abs(want)));
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 60;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261128u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  emu::g_barrier_flushes = true;  // one block per row; no block reads another's stores
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_toplp: top_logprobs.cu emulated, fixed cases + %d random, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  Stats top, beams;
  int ran = 0, failed = 0;
  auto one = [&](auto&& f) {
    const long long before = g_fail, checker = emu::g_log.errors;
    ++ran;
    f();
    if (emu::g_log.errors != checker) fail(std::to_string(emu::g_log.errors - checker) + " checker errors");
    failed += g_fail != before;
  };
  const std::vector<int> every = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int vocab : {5, 33, 700, 5000}) {
    for (int k : {1, 5, 20}) {
      one([&] { check_top_logprobs(every, vocab, k, rng, top); });
      one([&] { check_beams(every, vocab, k, rng, beams); });
    }
  }
  one([&] { check_top_logprobs({0, 2, 4}, 50272, 20, rng, top); });
  one([&] { check_beams({0, 2, 3}, 50272, 8, rng, beams); });
  for (int c = 0; c < cases; ++c) {
    const int vocab = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 64) : 64 + static_cast<int>(rng() % 3000);
    const int k = 1 + static_cast<int>(rng() % 24);
    std::vector<int> kinds(1 + rng() % 4);
    for (int& x : kinds) x = static_cast<int>(rng() % 8);
    if (c % 2 == 0) {
      one([&] { check_top_logprobs(kinds, vocab, k, rng, top); });
    } else {
      one([&] { check_beams(kinds, vocab, k, rng, beams); });
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("top log-probs: %lld rows, %lld listed, max log-prob error %.2g\n", top.rows, top.listed, top.max_err);
  std::printf("beam candidates: %lld beams, %lld listed, max relative score error %.2g\n", beams.rows, beams.listed,
              beams.max_err);
  return finish(failed, ran, secs);
}
