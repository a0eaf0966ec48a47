// The k most likely tokens of each row with their log-softmax: a greedy request's log-prob alternatives
// (logprobs > 0) without copying its row of logits to the host.
// Variant: opt_top_logprobs_f32.
// CPU twin: backend/RowMath.topK (engine/LogProbs.topK): most likely first, ties to the lower token id, NaN and -inf
// never listed (fewer than k when fewer are left: id -1, log-prob NaN after the last); log-prob = logit - lse, with
// lse as RowMath.logSumExp (NaN when the row holds a NaN, the maximum when it is infinite).
//
// One block per row: a pass for the row's log-sum-exp (as opt_token_logprob_f32 computes it), then k rounds, each a
// scan of the whole row for the best token after the previous round's pick in that order (the row is the previous
// kernel's output, in L2: k ≤ 20 scans of 200 KB, a few µs each), reduced over the block with warp shuffles.
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

// Is (v, i) after the previous pick (pv, pi) in that order, and listable (finite or +inf)?
__device__ __forceinline__ bool after(float v, int i, float pv, int pi) {
  return v > -INFINITY && (v < pv || (v == pv && i > pi));  // NaN fails the first test
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

// grid.x = rows; out_ids / out_lp (rows, k); logits (rows, vocab); blockDim.x a multiple of 32.
__global__ void top_logprobs_kernel(int32_t* __restrict__ out_ids, float* __restrict__ out_lp,
                                    const float* __restrict__ logits, int vocab, int k) {
  __shared__ float warp_v[kWarp];
  __shared__ int warp_i[kWarp];
  __shared__ float lse_s;
  __shared__ float pick_v;
  __shared__ int pick_i;
  __shared__ int nan_s;
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;

  // The log-sum-exp (RowMath.logSumExp's rules).
  if (threadIdx.x == 0) nan_s = 0;
  __syncthreads();
  float m = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (isnan(v)) nan_s = 1;  // every writer writes 1
    m = fmaxf(m, v);
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  if (lane == 0) warp_v[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float all = -INFINITY;
    for (int w = 0; w < warps; ++w) all = fmaxf(all, warp_v[w]);
    lse_s = all;  // the maximum, for now
  }
  __syncthreads();
  m = lse_s;
  float sum = 0.f;
  if (isfinite(m)) {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(row[i] - m);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) lse_s = nan_s != 0 ? __int_as_float(0x7fc00000) : isfinite(m) ? m + logf(sum) : m;
  __syncthreads();
  const float lse = lse_s;

  // k rounds, each the best token after the previous pick.
  float pv = INFINITY;
  int pi = -1;
  for (int r = 0; r < k; ++r) {
    float best_v = -INFINITY;  // the sentinel: every listable token comes before it
    int best_i = INT_MAX;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float v = row[i];
      if (after(v, i, pv, pi) && before(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
      }
    }
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
        out_ids[static_cast<size_t>(blockIdx.x) * k + r] = found ? best_i : -1;
        out_lp[static_cast<size_t>(blockIdx.x) * k + r] = found ? best_v - lse : __int_as_float(0x7fc00000);
      }
    }
    __syncthreads();
    pv = pick_v;
    pi = pick_i;
    if (pi == INT_MAX) {  // nothing left to list: the same for every thread
      for (int rest = r + 1 + threadIdx.x; rest < k; rest += blockDim.x) {
        out_ids[static_cast<size_t>(blockIdx.x) * k + rest] = -1;
        out_lp[static_cast<size_t>(blockIdx.x) * k + rest] = __int_as_float(0x7fc00000);
      }
      return;
    }
  }
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

}  // extern "C"
