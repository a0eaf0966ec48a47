// The k best tokens of a row without copying the row to the host:
// - opt_top_logprobs_f32: the k most likely tokens of each row with their log-softmax, a greedy request's log-prob
//   alternatives (logprobs > 0). CPU twin: backend/RowMath.topK (engine/LogProbs.topK): most likely first, ties to
//   the lower token id, NaN and -inf never listed (fewer than k when fewer are left: id -1, log-prob NaN after the
//   last); log-prob = logit - lse, with lse as RowMath.logSumExp (NaN when the row holds a NaN, the maximum when it
//   is infinite).
// - opt_beam_topk_f32: beam search's candidates, per beam the k best of float32 log_softmax(row) + beam score (HF's
//   next_token_scores before its topk over all beams); with log_probs, of rows that are log-probabilities already
//   (opt_log_softmax_rows_f32's, after a beam's processors applied as edits: HF applies them to log-probabilities). CPU twin: backend/RowMath.beamTopK: best first, ties to the
//   lower id, -inf listed too; a row whose log-softmax is NaN (a NaN or +inf logit) or that is all -inf lists nothing.
//
// One block per output row: a pass for the row's maximum and sum of exponentials (as opt_token_logprob_f32 computes
// them), then k rounds, each a scan of the whole row for the best token after the previous round's pick in that
// order (the row is the previous kernel's output, in L2: k ≤ 20 scans of 200 KB, a few µs each, eight loads in
// flight per thread since session 22), reduced over the block with warp shuffles.
#include <limits.h>
#include <math.h>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxThreads = 512;

// Is (v, i) before (best_v, best_i): larger value, then lower id? (Neither is NaN here.)
__device__ __forceinline__ bool before(float v, int i, float best_v, int best_i) {
  return v > best_v || (v == best_v && i < best_i);
}

// Is (v, i) after the previous pick (pv, pi) in that order? (NaN never is.)
__device__ __forceinline__ bool after(float v, int i, float pv, int pi) {
  return v < pv || (v == pv && i > pi);
}

// (sampling.cu's warp_argmax does the same with its NaN-aware order; it lives in that file's anonymous namespace,
// and moving it into common.cuh would touch kernels already verified on a GPU, so this file has its own.)
__device__ __forceinline__ void warp_best(float& v, int& i) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other_v = __shfl_xor_sync(0xffffffffu, v, offset);
    const int other_i = __shfl_xor_sync(0xffffffffu, i, offset);
    if (before(other_v, other_i, v, i)) {
      v = other_v;
      i = other_i;
    }
  }
}

// f(i, row[i]) for this thread's elements of the row in order (i = threadIdx.x, + blockDim.x, ...), eight loads in
// flight (common.cuh's for_each_strided, session 22). The order per thread is the loop's, so sums keep their bits and
// picks their ties.
template <class F>
__device__ __forceinline__ void for_row(const float* row, int vocab, F&& f) {
  for_each_strided(row, static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), vocab, f);
}

// The row's maximum (fmaxf: NaN entries skipped) and whether it holds a NaN, for every thread of the block.
__device__ __forceinline__ float row_max(const float* __restrict__ row, int vocab, bool& has_nan) {
  __shared__ float warp_m[kWarp];
  __shared__ int nan_s;
  if (threadIdx.x == 0) nan_s = 0;
  __syncthreads();
  float m = -INFINITY;
  bool nan = false;
  for_row(row, vocab, [&](int, float v) {
    nan = nan || isnan(v);
    m = fmaxf(m, v);
  });
  if (nan) nan_s = 1;  // every writer writes 1
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  const int lane = threadIdx.x % kWarp;
  if (lane == 0) warp_m[threadIdx.x / kWarp] = m;
  __syncthreads();
  float all = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) all = fmaxf(all, warp_m[w]);
  has_nan = nan_s != 0;
  __syncthreads();  // a second call's writes wait for this call's readers
  return all;
}

// Writes ids -1 and values NaN to out_ids / out_val [from, k) (the threads of the block share the work).
__device__ __forceinline__ void list_nothing(int32_t* out_ids, float* out_val, int from, int k) {
  for (int rest = from + threadIdx.x; rest < k; rest += blockDim.x) {
    out_ids[rest] = -1;
    out_val[rest] = __int_as_float(0x7fc00000);
  }
}

// k rounds, each the best (key(row[i]), i) after the previous round's pick that is listable (kListNegInf: -inf keys
// too, else only keys above -inf); out_ids[r] = i, out_val[r] = key - shift; -1 and NaN after the last listed.
template <bool kListNegInf, class Key>
__device__ void top_k_rounds(int32_t* __restrict__ out_ids, float* __restrict__ out_val, const float* __restrict__ row,
                             int vocab, int k, const Key& key, float shift) {
  __shared__ float warp_v[kWarp];
  __shared__ int warp_i[kWarp];
  __shared__ float pick_v;
  __shared__ int pick_i;
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  float pv = INFINITY;
  int pi = -1;
  for (int r = 0; r < k; ++r) {
    float best_v = -INFINITY;  // the sentinel: every listable token comes before it (id INT_MAX)
    int best_i = INT_MAX;
    for_row(row, vocab, [&](int i, float raw) {
      const float v = key(raw);
      if ((kListNegInf || v > -INFINITY) && after(v, i, pv, pi) && before(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
      }
    });
    warp_best(best_v, best_i);
    __syncthreads();  // the previous round's readers of warp_v / pick_* are done
    if (lane == 0) {
      warp_v[warp] = best_v;
      warp_i[warp] = best_i;
    }
    __syncthreads();
    if (warp == 0) {
      best_v = lane < warps ? warp_v[lane] : -INFINITY;
      best_i = lane < warps ? warp_i[lane] : INT_MAX;
      warp_best(best_v, best_i);
      if (lane == 0) {
        pick_v = best_v;
        pick_i = best_i;
        const bool found = best_i != INT_MAX;
        out_ids[r] = found ? best_i : -1;
        out_val[r] = found ? best_v - shift : __int_as_float(0x7fc00000);
      }
    }
    __syncthreads();
    pv = pick_v;
    pi = pick_i;
    if (pi == INT_MAX) {  // nothing left to list: the same for every thread
      list_nothing(out_ids, out_val, r + 1, k);
      return;
    }
  }
}

// grid.x = rows; out_ids / out_lp (rows, k); logits (rows, vocab); blockDim.x a multiple of 32.
__global__ void top_logprobs_kernel(int32_t* __restrict__ out_ids, float* __restrict__ out_lp,
                                    const float* __restrict__ logits, int vocab, int k) {
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  // The log-sum-exp (RowMath.logSumExp's rules).
  float sum = 0.f;
  if (isfinite(m)) for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  sum = block_sum(sum);
  const float lse = has_nan ? __int_as_float(0x7fc00000) : isfinite(m) ? m + logf(sum) : m;
  top_k_rounds<false>(out_ids + static_cast<size_t>(blockIdx.x) * k, out_lp + static_cast<size_t>(blockIdx.x) * k,
                      row, vocab, k, [](float v) { return v; }, lse);
}

// grid.x = n beams; beam j reads logits row row_of[j] with its score base[j]; out_ids / out_scores (n, k).
// log_probs: the rows are log-probabilities already (log_softmax_rows_kernel's, then a beam's processors as edits):
// the keys are row + base, every value but NaN is listed.
__global__ void beam_topk_kernel(int32_t* __restrict__ out_ids, float* __restrict__ out_scores,
                                 const float* __restrict__ logits, const int32_t* __restrict__ row_of,
                                 const float* __restrict__ base, int vocab, int k, int log_probs) {
  const float* row = logits + static_cast<size_t>(row_of[blockIdx.x]) * vocab;
  int32_t* ids = out_ids + static_cast<size_t>(blockIdx.x) * k;
  float* scores = out_scores + static_cast<size_t>(blockIdx.x) * k;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  if (has_nan || (!log_probs && !isfinite(m))) {  // the same for every thread: NaN, +inf (a NaN log-softmax), all -inf
    list_nothing(ids, scores, 0, k);
    return;
  }
  const float b = base[blockIdx.x];
  if (log_probs) {
    top_k_rounds<true>(ids, scores, row, vocab, k, [b](float v) { return __fadd_rn(v, b); }, 0.f);
    return;
  }
  float sum = 0.f;
  for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  const float log_sum = logf(block_sum(sum));
  // torch's float32 log_softmax, (x - max) - log(sum), then + the beam's score: three float roundings, no fma.
  top_k_rounds<true>(ids, scores, row, vocab, k,
                     [m, log_sum, b](float v) { return __fadd_rn(__fsub_rn(__fsub_rn(v, m), log_sum), b); }, 0.f);
}

// grid.x = rows: out = log_softmax(logits) per row in float32 ((x - max) - log(sum(exp(x - max)))); a row holding a
// NaN or +inf, or all -inf, becomes NaN (beam search then reports it, as its host path does).
__global__ void log_softmax_rows_kernel(float* __restrict__ out, const float* __restrict__ logits, int vocab) {
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  float* o = out + static_cast<size_t>(blockIdx.x) * vocab;
  bool has_nan;
  const float m = row_max(row, vocab, has_nan);
  if (has_nan || !isfinite(m)) {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) o[i] = __int_as_float(0x7fc00000);
    return;
  }
  float sum = 0.f;
  for_row(row, vocab, [&](int, float v) { sum += expf(v - m); });
  const float log_sum = logf(block_sum(sum));
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) o[i] = __fsub_rn(__fsub_rn(row[i], m), log_sum);
}

}  // namespace

extern "C" {

OPT_API int opt_top_logprobs_f32(int32_t* out_ids, float* out_lp, const float* logits, int rows, int vocab, int k,
                                 cudaStream_t stream) {
  if (rows < 0 || vocab < 0 || k < 0) return kInvalidValue;
  if (rows == 0 || k == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  top_logprobs_kernel<<<rows, threads_for(vocab, kMaxThreads), 0, stream>>>(out_ids, out_lp, logits, vocab, k);
  return launch_status();
}

OPT_API int opt_beam_topk_f32(int32_t* out_ids, float* out_scores, const float* logits, const int32_t* row_of,
                              const float* base, int n, int vocab, int k, int log_probs, cudaStream_t stream) {
  if (n < 0 || vocab < 0 || k < 0) return kInvalidValue;
  if (n == 0 || k == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  beam_topk_kernel<<<n, threads_for(vocab, kMaxThreads), 0, stream>>>(out_ids, out_scores, logits, row_of, base,
                                                                       vocab, k, log_probs);
  return launch_status();
}

OPT_API int opt_log_softmax_rows_f32(float* out, const float* logits, int rows, int vocab, cudaStream_t stream) {
  if (rows < 0 || vocab < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  log_softmax_rows_kernel<<<rows, threads_for(vocab, kMaxThreads), 0, stream>>>(out, logits, vocab);
  return launch_status();
}

}  // extern "C"
