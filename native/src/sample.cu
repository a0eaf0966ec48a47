// Sampling on the device: one token per row of float32 logits, drawn from softmax(logits / temperature) after
// top-k, top-p, min-p and typical filtering, with the uniform number the host's per-sequence random stream drew. The engine's
// host path (engine/Sampler + the Temperature/TopK/TopP processors) does the same with HF's exact numerics;
// this kernel's rules are those of its CPU twin, backend/RowSampling (Ops.sampleRows' default, which the parity
// test compares it with; the engine uses the twin for such sequences whenever the model samples on the device,
// so a seeded request's tokens do not depend on what shares its batch, up to rounding: expf here and Math.exp
// there may differ by an ulp, and CUB sums in another order than the twin, so a uniform number within ~1e-7 of a
// cumulative boundary, or two f32 logits an ulp apart at top-p's cut, can pick another token; a CPU emulation of
// this kernel against the Java twin (session 5) saw it only for draws placed on a boundary on purpose, and in 0 of
// 2,000 random draws at OPT's vocabulary).
// Variants: opt_sample_rows_f32, opt_sample_rows_top_f32 (also the alternatives).
//
// Why: a sampled decode step otherwise copies every row of the vocabulary to the host (200 KB per sequence in
// float32) and spends a vocabulary of host work per sequence; here 8 bytes per sequence come back.
//
// How, one block per row (kThreads threads):
//   1. s_i = logits_i / temperature; a NaN anywhere: token -2 (the host reports it). The maximum m.
//   2. top-k (0 < k < vocab): the k-th largest s, found exactly by a radix select over the order-preserving
//      bit patterns of s (four 8-bit histogram passes); tokens below it are out. Ties at the k-th value stay (as
//      HF). The tokens left (k plus ties, when at most 2048) are then gathered in token order into shared memory,
//      and the passes below read only them instead of the whole row.
//   3. w_i = expf(s_i - m) for the tokens left (with m = +inf: 1 for the +inf tokens, 0 for the others; with
//      every token at -inf: token -1, nothing to sample). W = the sum, in double. With a scratch row (sessions 21-22,
//      -Dopt.cuda.samplerWeights), pass 1 keeps s there and this pass the weights, for the later passes.
//   4. top-p (p < 1): the largest weight tau whose tokens, with every lighter one, hold at most (1 - p) W of
//      the mass, and less than all of it (a search over the bits of the weights' bit patterns, two bits per pass
//      since session 22, masses in double):
//      tokens with w <= tau are out (HF removes the ascending prefix of cumulative probability <= 1 - p; equal
//      weights at the cut go together here). The heaviest tokens always stay, even for a p so small that
//      1 - p rounds to 1.
//   4b. min-p (min_p > 0, session 20): of the tokens left, those whose float weight w is below min_p go (their
//      probability is below min_p times the top token's, whose weight is expf(0) = 1; HF compares w / W with
//      min_p * 1 / W in float32, the same cut but for rounding). The top tokens always stay (min_p <= 1).
//   4c. typical (0 < typical_p < 1, session 23): over the tokens left (W' their mass), a token's distance from the
//      typical is |-log p - H| = |(s - m) - E| with E = sum w (s - m) / W' (one pass); the most distant go, as many
//      as hold at most (1 - typical_p) W' and never all: top-p's search (4) over keys 0x7fffffff - bits(distance)
//      (a larger distance, a smaller key) instead of the weights' bits, 16 passes (bits 31..0). HF keeps the most
//      typical tokens until their cumulative probability reaches typical_p: the same set but for rounding.
//   5. target = u W' (W' the mass kept): the first token, in token-id order, whose inclusive prefix sum of kept
//      weights exceeds it (the host's walk through the cumulative weights; summed per warp range since session 22,
//      see step 5 below); rounding past the end gives the last kept token.
//   6. log-prob = (s_tok - m) - log W' (the processed distribution's, as the host's Sampler reports it).
//   6b. opt_sample_rows_top_f32 (session 20): the k best listable tokens by s, then the lower token, with the same
//      log-prob: a sampled request's log-prob alternatives (CPU twin: RowSampling.sample with k). Listable: not
//      removed by a cut, as HF lists what its warpers left above -inf: with top-p or min-p on, the kept tokens
//      (those cuts remove zero weights too, as HF's do); without them, every token at or above top-k's cut, even one
//      whose float weight underflows to 0 (at a low temperature a token 110 below the top still has a log-prob).
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <limits.h>
#include <math.h>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kThreads = 512;
constexpr int kGathered = 2048;  // tokens in play kept in shared memory after a top-k (16 KB)

// Order-preserving key of a float (larger float, larger key); NaN is excluded before.
__device__ __forceinline__ unsigned int ordered(float f) {
  const unsigned int b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Top-p's search over the bits of tau (step 4), two bits per pass: the three candidates the one-bit search could test
// at bits b and b - 1 above prefix (the higher bit; then, taken, both bits; else the lower one). Host and device:
// native/dev/topp_search_test.cu runs these against the one-bit search.
struct TopPCandidates {
  unsigned int high;
  unsigned int low;
  unsigned int both;
};
__host__ __device__ inline TopPCandidates top_p_candidates(unsigned int prefix, int b) {
  return {prefix | (1u << b), prefix | (1u << (b - 1)), prefix | (1u << b) | (1u << (b - 1))};
}
// Adds weight w (its float bits: key) to the mass of each candidate it is at or below: a thread's partial masses.
__host__ __device__ inline void add_top_p_mass(double w, unsigned int key, const TopPCandidates& c, double& high,
                                               double& low, double& both) {
  if (key <= c.high) high += w;
  if (key <= c.low) low += w;
  if (key <= c.both) both += w;
}
// The one-bit search's two decisions, from the three candidates' masses over the row: a candidate is taken when the
// tokens at or below it hold at most limit of the mass, and less than all of it (the heaviest tokens stay).
__host__ __device__ inline void take_top_p_bits(const TopPCandidates& c, double high, double low, double both,
                                                double limit, double total, unsigned int& prefix, double& removed) {
  if (high <= limit && high < total) {
    prefix = c.high;
    removed = high;
    if (both <= limit && both < total) {
      prefix = c.both;
      removed = both;
    }
  } else if (low <= limit && low < total) {
    prefix = c.low;
    removed = low;
  }
}

// Typical sampling's key of a token (step 4c): 0x7fffffff minus the float bits of its distance |(s - m) - mean|,
// computed in double and rounded to float as the twin does (RowSampling.typicalKey): the most distant, the smallest.
__device__ __forceinline__ unsigned int typical_key(float s, float m, double mean) {
  return 0x7fffffffu - __float_as_uint(static_cast<float>(fabs(static_cast<double>(s) - m - mean)));
}

// The draw (step 5), session 22: the tokens in play are cut into kDrawWarps contiguous ranges, one per warp, each a
// whole number of 32-element steps; the warps' totals, added in warp order, find the warp where the prefix sum crosses
// the target. Host and device: native/dev/draw_test.cu runs them.
constexpr int kDrawWarps = kThreads / 32;
__host__ __device__ inline void draw_range(int count, int warp, int& lo, int& hi) {
  const int range = ((count + kDrawWarps - 1) / kDrawWarps + 31) / 32 * 32;
  lo = warp * range < count ? warp * range : count;
  hi = lo + range < count ? lo + range : count;
}
// The first warp w whose base (the totals of warps 0 .. w - 1, added in that order) plus its own total exceeds target,
// with that base; -1 when none does (rounding past the end).
__host__ __device__ inline int crossing_warp(const double* totals, double target, double& base) {
  double sum = 0.0;
  for (int w = 0; w < kDrawWarps; ++w) {
    if (sum + totals[w] > target) {
      base = sum;
      return w;
    }
    sum += totals[w];
  }
  base = sum;
  return -1;
}

using Reduce = cub::BlockReduce<double, kThreads>;
using IntScan = cub::BlockScan<int, kThreads>;

// Fills row `row`'s k alternatives with -1 / NaN from `from` on (the threads of the block share the work).
__device__ __forceinline__ void no_alternatives(int32_t* out_ids, float* out_lps, int row, int k, int from) {
  for (int i = from + static_cast<int>(threadIdx.x); i < k; i += kThreads) {
    out_ids[static_cast<size_t>(row) * k + i] = -1;
    out_lps[static_cast<size_t>(row) * k + i] = __int_as_float(0x7fc00000);
  }
}

// kList (opt_sample_rows_top_f32): also the k best kept tokens (by s, then the lower id) with the draw's log-prob,
// into out_ids / out_lps (rows, k); the plain entry point compiles the kernel without that part.
template <bool kList>
// (minimum 1 block per SM: ptxas otherwise held the plain variant at 40 registers with spills, session 22)
__global__ void __launch_bounds__(kThreads, 1)
sample_rows_kernel(int32_t* __restrict__ out_token, float* __restrict__ out_logprob, const float* __restrict__ logits,
                   const float* __restrict__ temperature, const int32_t* __restrict__ top_k,
                   const float* __restrict__ top_p, const float* __restrict__ min_p,
                   const float* __restrict__ typical_p, const double* __restrict__ uniform, int vocab, int32_t* __restrict__ out_ids, float* __restrict__ out_lps, int list_k,
                   float* __restrict__ weights) {
  __shared__ typename Reduce::TempStorage reduce_tmp;
  __shared__ double shared_double;
  __shared__ unsigned int shared_uint;
  __shared__ int shared_int;
  __shared__ int found;
  __shared__ int last_kept;
  __shared__ int hist[256];
  __shared__ typename IntScan::TempStorage int_scan_tmp;
  __shared__ int gathered_index[kGathered];
  __shared__ float gathered_s[kGathered];

  const int row = blockIdx.x;
  const int tid = threadIdx.x;
  const float* z = logits + static_cast<size_t>(row) * vocab;
  const float t = temperature[row];
  const int k = top_k[row];
  const float p = top_p[row];
  const float mp = min_p[row] > 0.f ? fminf(min_p[row], 1.f) : 0.f;  // above 1 it is 1 (the top tokens stay); NaN: off
  const float tp = typical_p[row];
  // The scratch row (weights not null: -Dopt.cuda.samplerWeights, sessions 21-22): s_i from pass 1 until the weights
  // pass, then (the whole row in play) the weights. Until the draw each thread reads back only the elements it wrote
  // (every pass strides by kThreads from tid; the gather's chunks start at multiples of kThreads), so those reads need
  // no barrier; the draw's warp ranges (step 5) read other threads' weights, after the reductions' barriers (a
  // __syncthreads makes a block's global stores visible to the block). Every value is a float either way (s, or 0, 1
  // or an expf), so the draw is the same bit for bit. native/dev/emu_sample runs this kernel on an emulated GPU.
  float* const scratch = weights != nullptr ? weights + static_cast<size_t>(row) * vocab : nullptr;

  // 1. NaN and the maximum of s (per thread, then the block).
  int nan = 0;
  float thread_max = -INFINITY;
  for (int i = tid; i < vocab; i += kThreads) {
    const float s = __fdiv_rn(z[i], t);  // IEEE division whatever the compiler flags: the twin divides the same way
    if (scratch != nullptr) scratch[i] = s;
    if (s != s) nan = 1;
    thread_max = fmaxf(thread_max, s);
  }
  // s_i before the weights pass (step 3), from the scratch row when there is one (a division saved per pass).
  auto s_at = [&](int i) -> float { return scratch != nullptr ? scratch[i] : __fdiv_rn(z[i], t); };
  // f(i, s_i) for this thread's elements of the row in order (i = tid, tid + kThreads, ...): from the scratch row
  // eight loads at a time (in flight together: one at a time, a pass waits on L2's latency ~100 times), else divided.
  auto for_s = [&](auto&& f) {
    if (scratch != nullptr) {
      for_each_strided(scratch, tid, kThreads, vocab, f);
    } else {
      for (int i = tid; i < vocab; i += kThreads) f(i, __fdiv_rn(z[i], t));
    }
  };
  if (tid == 0) {
    shared_int = 0;
    shared_uint = 0u;
  }
  __syncthreads();
  if (nan) atomicOr(&shared_int, 1);
  atomicMax(&shared_uint, ordered(thread_max));
  __syncthreads();
  if (shared_int) {
    if (kList) no_alternatives(out_ids, out_lps, row, list_k, 0);
    if (tid == 0) {
      out_token[row] = -2;
      out_logprob[row] = __int_as_float(0x7fc00000);
    }
    return;
  }
  const unsigned int max_key = shared_uint;
  const float m = __uint_as_float((max_key & 0x80000000u) ? (max_key & 0x7fffffffu) : ~max_key);
  if (m == -INFINITY) {
    if (kList) no_alternatives(out_ids, out_lps, row, list_k, 0);
    if (tid == 0) {
      out_token[row] = -1;
      out_logprob[row] = -INFINITY;
    }
    return;
  }

  // 2. top-k: the key of the k-th largest s, by an 8-bit radix select (4 histogram passes).
  unsigned int kth = 0u;  // every key >= 0: nothing is out
  if (k > 0 && k < vocab) {
    unsigned int prefix = 0u;
    unsigned int mask = 0u;
    int remaining = k;  // the rank of the k-th largest among the keys that match prefix
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = tid; d < 256; d += kThreads) hist[d] = 0;
      __syncthreads();
      for_s([&](int, float s) {
        const unsigned int key = ordered(s);
        if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffu], 1);
      });
      __syncthreads();
      if (tid == 0) {  // the digit, from the largest down, in which the remaining-th key lies
        int above = 0;
        int digit = 0;
        for (int d = 255; d >= 0; --d) {
          if (above + hist[d] >= remaining) {
            digit = d;
            break;
          }
          above += hist[d];
        }
        shared_uint = static_cast<unsigned int>(digit);
        shared_int = remaining - above;
      }
      __syncthreads();
      prefix |= shared_uint << shift;
      mask |= 0xffu << shift;
      remaining = shared_int;
      __syncthreads();  // every thread has read shared_uint / shared_int before they are written again (after the
                        // last digit: by the count of the tokens left, just below)
    }
    kth = prefix;
  }

  // The tokens still in play, in token order: after a top-k they are usually few (k, plus ties), so they are
  // gathered into shared memory once and every later pass reads only them; otherwise (no top-k, or more than
  // kGathered) the passes walk the whole row.
  int count = vocab;
  bool gathered = false;
  if (kth != 0u) {
    int mine = 0;
    for_s([&](int, float s) { mine += ordered(s) >= kth; });
    if (tid == 0) shared_int = 0;
    __syncthreads();
    atomicAdd(&shared_int, mine);
    __syncthreads();
    if (shared_int <= kGathered) {
      gathered = true;
      count = 0;
      for (int base = 0; base < vocab; base += kThreads) {
        const int i = base + tid;
        const float s = i < vocab ? s_at(i) : -INFINITY;
        const int in = i < vocab && ordered(s) >= kth;
        int at;
        int chunk;
        IntScan(int_scan_tmp).ExclusiveSum(in, at, chunk);
        if (in) {
          gathered_index[count + at] = i;
          gathered_s[count + at] = s;
        }
        count += chunk;
        __syncthreads();  // int_scan_tmp is reused
      }
    }
  }
  // Element j of the tokens in play: its token and its s (the whole row: token j, kept when at or above kth). s_of
  // reads the scratch row, so it serves until the weights pass; s_fresh_of divides again (after it: typical's passes
  // and cut, step 4c, the draw's kept(), the alternatives, step 6b).
  auto token_of = [&](int j) -> int { return gathered ? gathered_index[j] : j; };
  auto s_of = [&](int j) -> float { return gathered ? gathered_s[j] : s_at(j); };
  auto s_fresh_of = [&](int j) -> float { return gathered ? gathered_s[j] : __fdiv_rn(z[j], t); };

  // 3. weights of the tokens left, and their mass W.
  // Weights in float (expf of a value <= 0: no overflow), summed in double; recomputed by every pass, the same value
  // each time, or (the scratch row, the whole row in play) computed once into it over s and read back: top-p's
  // rounds, min-p and the draw each pass over them, and on a whole row of 50,272 the division and expf of every
  // pass made a batch-1 top-p draw cost ~0.7 ms on an H200 (session 21).
  auto compute_weight = [&](int j) -> double {
    const float s = s_of(j);
    if (ordered(s) < kth) return 0.0;
    if (m == INFINITY) return s == INFINITY ? 1.0 : 0.0;
    return static_cast<double>(expf(s - m));
  };
  float* const cache = gathered ? nullptr : scratch;
  auto weight = [&](int j) -> double {
    return cache != nullptr ? static_cast<double>(cache[j]) : compute_weight(j);
  };
  // f(j, w) for this thread's elements in order (j = tid, tid + kThreads, ...) with their weights: from the cache
  // eight loads at a time (a pass is a read of 200 KB from L2 by one multiprocessor: its latency, not its bytes,
  // would bound a loop with one load in flight), else computed.
  auto for_weights = [&](auto&& f) {
    if (cache != nullptr) {
      for_each_strided(cache, tid, kThreads, count, [&](int j, float w) { f(j, static_cast<double>(w)); });
    } else {
      for (int j = tid; j < count; j += kThreads) f(j, compute_weight(j));
    }
  };
  double part = 0.0;
  for (int j = tid; j < count; j += kThreads) {
    const double w = compute_weight(j);  // (reads the scratch row's s_j, then overwrites it with w_j)
    if (cache != nullptr) cache[j] = static_cast<float>(w);
    part += w;
  }
  double total = Reduce(reduce_tmp).Sum(part);
  if (tid == 0) shared_double = total;
  __syncthreads();
  total = shared_double;

  // 4. top-p: the largest weight key tau with mass(w <= tau) <= (1 - p) W; tokens with w <= tau are out.
  // A search over the bits of tau from the top, two bits per pass over the weights (session 22; one bit per pass
  // before): a pass sums the masses of the three candidates the one-bit search could test at those two bits (the
  // higher bit; then, taken, both; else the lower one), each per thread in the same element order and reduced by
  // the same CUB reduction as that search did, so every mass, and so tau, has the same bits. Bits 31 and 30 are never
  // taken (every weight is at most 1.0f, 0x3f800000: those candidates hold every weight, W itself), so the passes
  // cover bits 29..0.
  auto reduced = [&](double mass) -> double {  // the block's sum, in every thread
    __syncthreads();  // reduce_tmp and shared_double are reused
    mass = Reduce(reduce_tmp).Sum(mass);
    if (tid == 0) shared_double = mass;
    __syncthreads();
    return shared_double;
  };
  bool filter_p = p < 1.f;
  unsigned int tau = 0u;
  double removed = 0.0;
  if (filter_p) {
    const double limit = (1.0 - static_cast<double>(p)) * total;
    unsigned int prefix = 0u;
    for (int b = 29; b > 0; b -= 2) {
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
    // Nothing at or below the smallest weight fits: tau = 0 removes only zero weights (removed stays 0).
  }
  auto cut_p = [&](double w) -> double {
    if (w <= 0.0) return 0.0;
    if (filter_p && __float_as_uint(static_cast<float>(w)) <= tau) return 0.0;
    return w;
  };

  // 4b. min-p: of the tokens top-p left, those with a float weight below min_p go.
  const bool filter_min = mp > 0.f;
  if (filter_min) {
    double mass = 0.0;
    for_weights([&](int, double w0) {
      const double w = cut_p(w0);
      if (w > 0.0 && static_cast<float>(w) < mp) mass += w;
    });
    __syncthreads();  // reduce_tmp and shared_double are reused
    mass = Reduce(reduce_tmp).Sum(mass);
    if (tid == 0) shared_double = mass;
    __syncthreads();
    removed += shared_double;
  }
  auto cut_min = [&](double w0) -> double {  // a weight after top-p and min-p
    const double w = cut_p(w0);
    if (filter_min && static_cast<float>(w) < mp) return 0.0;
    return w;
  };

  // 4c. typical: W' and E, then the largest key tau_t with mass(key <= tau_t) <= (1 - typical_p) W' (and < W');
  // tokens with key <= tau_t are out. Each pass walks the weights as top-p's do and takes s from the gathered set, or
  // divides again (the scratch row holds the weights by now). W' is summed here, in the order and by the reduction of
  // the search's masses (total - removed can differ from it by rounding): the candidate that holds every token sums to
  // exactly W', so no typical_p, however small, removes them all.
  const bool filter_typical = tp > 0.f && tp < 1.f && m != INFINITY;  // m = +inf: every kept token is at +inf
  unsigned int typical_tau = 0u;
  double mean = 0.0;
  double kept_mass = total - removed;
  if (filter_typical) {
    auto for_kept_s = [&](auto&& f) {  // f(w, s) over this thread's tokens left by the cuts before
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
    mean = reduced(sum) / left;
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
    if (filter_typical && w > 0.0 && typical_key(s_fresh_of(j), m, mean) <= typical_tau) return 0.0;
    return w;
  };

  // 5. the first token whose inclusive prefix sum of kept weights exceeds u * W' (session 22: warp ranges; before, a
  // block-wide scan per chunk of 512 with three barriers each, up to ~100 chunks on a whole row). Each warp walks its
  // range (draw_range) 32 elements a step: a warp scan of the step's weights, added to a running sum that starts at 0.
  // A kept element's prefix is its warp's base plus (the running sum before its step + its scan value); a warp's
  // total is the largest prefix of its kept elements (rounded sums need not rise element by element), and its base
  // the totals of the warps before it, added in warp order (crossing_warp). The warp whose base + total first exceeds
  // the target walks its range again with the same steps, so the same sums, and takes its first kept element past the
  // target: one exists (the element of that largest prefix), and no earlier warp has one. Other orders of sums than
  // the twin's, as before: a uniform within ~1e-12 (relative) of a boundary may pick the neighbour.
  const double target = uniform[row] * kept_mass;
  __shared__ double warp_total[kDrawWarps];
  __shared__ int warp_last[kDrawWarps];
  const int dlane = tid % kWarp;
  const int dwarp = tid / kWarp;
  int lo;
  int hi;
  draw_range(count, dwarp, lo, hi);
  // The warp's walk over [lo, hi): returns this lane's largest kept prefix; with stop, the first kept element whose
  // base + prefix exceeds the target ends it (its token in found).
  auto walk = [&](bool stop, double base, int& last) -> double {
    double run = 0.0;
    double top = 0.0;
    double next = lo + dlane < hi ? kept(lo + dlane) : 0.0;  // each step's weight loaded during the previous step
    for (int b = lo; b < hi; b += kWarp) {
      const int j = b + dlane;
      const double w = next;
      next = j + kWarp < hi ? kept(j + kWarp) : 0.0;
      if (w > 0.0) last = token_of(j);  // tokens rise with j
      double incl = w;
#pragma unroll
      for (int d = 1; d < kWarp; d *= 2) {
        const double o = __shfl_up_sync(0xffffffffu, incl, d);
        if (dlane >= d) incl += o;
      }
      const double prefix = run + incl;
      if (w > 0.0) top = fmax(top, prefix);
      if (stop) {
        const unsigned int hit = __ballot_sync(0xffffffffu, w > 0.0 && base + prefix > target);
        if (hit != 0u) {
          if (dlane == __ffs(hit) - 1) found = token_of(j);
          break;
        }
      }
      run = __shfl_sync(0xffffffffu, prefix, kWarp - 1);
    }
    return top;
  };
  int my_last = -1;  // this lane's last kept token
  double total_of_warp = walk(false, 0.0, my_last);
  int warp_max = my_last;
#pragma unroll
  for (int d = kWarp / 2; d > 0; d /= 2) {
    warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, d));
    total_of_warp = fmax(total_of_warp, __shfl_xor_sync(0xffffffffu, total_of_warp, d));
  }
  if (dlane == 0) {
    warp_total[dwarp] = total_of_warp;
    warp_last[dwarp] = warp_max;
  }
  if (tid == 0) found = INT_MAX;
  __syncthreads();
  double base = 0.0;
  const int crossing = crossing_warp(warp_total, target, base);  // every thread, the same answer
  if (dwarp == crossing) {
    int unused = -1;
    walk(true, base, unused);
  }
  __syncthreads();
  if (tid == 0) {
    if (found == INT_MAX) {  // no prefix sum exceeds u W' (rounding past the end): the last kept token
      last_kept = -1;
      for (int w = 0; w < kDrawWarps; ++w) last_kept = max(last_kept, warp_last[w]);
    }
    const int token = found != INT_MAX ? found : last_kept;  // last_kept >= 0: the heaviest tokens stay
    out_token[row] = token;
    const float s = token >= 0 ? __fdiv_rn(z[token], t) : m;
    out_logprob[row] = static_cast<float>(
        (m == INFINITY ? 0.0 : static_cast<double>(s) - m) - log(kept_mass));
  }
  if (!kList) return;

  // 6b. The alternatives: list_k rounds, each the best kept (s, token) after the previous round's pick (larger s,
  // then the lower token), reduced over the block with warp shuffles; every kept token has s > -inf.
  __shared__ float warp_s[kThreads / kWarp];
  __shared__ int warp_tok[kThreads / kWarp];
  __shared__ float pick_s;
  __shared__ int pick_tok;
  const double log_mass = log(kept_mass);
  const bool no_cut = !filter_p && !filter_min && !filter_typical && m != INFINITY;  // then list by top-k's cut alone
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
    __syncthreads();  // the previous round's readers of warp_* / pick_* are done
    if (lane == 0) {
      warp_s[warp] = best_s;
      warp_tok[warp] = best_t;
    }
    __syncthreads();
    if (tid == 0) {
      for (int w = 1; w < kThreads / kWarp; ++w) {
        if (warp_s[w] > best_s || (warp_s[w] == best_s && warp_tok[w] < best_t)) {
          best_s = warp_s[w];
          best_t = warp_tok[w];
        }
      }
      pick_s = best_s;
      pick_tok = best_t;
      const bool found_one = best_t != INT_MAX;
      out_ids[static_cast<size_t>(row) * list_k + r] = found_one ? best_t : -1;
      out_lps[static_cast<size_t>(row) * list_k + r] = found_one
          ? static_cast<float>((m == INFINITY ? 0.0 : static_cast<double>(best_s) - m) - log_mass)
          : __int_as_float(0x7fc00000);
    }
    __syncthreads();
    ps = pick_s;
    pt = pick_tok;
    if (pt == INT_MAX) {  // fewer kept tokens than list_k: the same for every thread
      no_alternatives(out_ids, out_lps, row, list_k, r + 1);
      return;
    }
  }
}

}  // namespace

extern "C" {

OPT_API int opt_sample_rows_f32(int32_t* out_token, float* out_logprob, const float* logits, const float* temperature,
                                const int32_t* top_k, const float* top_p, const float* min_p, const float* typical_p,
                                const double* uniform, int rows, int vocab, float* weights, cudaStream_t stream) {
  if (rows < 0 || vocab < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  sample_rows_kernel<false><<<rows, kThreads, 0, stream>>>(out_token, out_logprob, logits, temperature, top_k, top_p,
                                                            min_p, typical_p, uniform, vocab, nullptr, nullptr, 0,
                                                            weights);
  return launch_status();
}

OPT_API int opt_sample_rows_top_f32(int32_t* out_token, float* out_logprob, int32_t* out_ids, float* out_lps, int k,
                                    const float* logits, const float* temperature, const int32_t* top_k,
                                    const float* top_p, const float* min_p, const float* typical_p,
                                    const double* uniform, int rows, int vocab, float* weights, cudaStream_t stream) {
  if (rows < 0 || vocab < 0 || k < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  if (k == 0) {
    return opt_sample_rows_f32(out_token, out_logprob, logits, temperature, top_k, top_p, min_p, typical_p, uniform,
                               rows, vocab, weights, stream);
  }
  sample_rows_kernel<true><<<rows, kThreads, 0, stream>>>(out_token, out_logprob, logits, temperature, top_k, top_p,
                                                           min_p, typical_p, uniform, vocab, out_ids, out_lps, k,
                                                           weights);
  return launch_status();
}

}  // extern "C"
