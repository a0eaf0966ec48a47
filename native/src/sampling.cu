// Sampling helpers over float32 logits.
// Variants:
//   opt_argmax_f32  out_index[r] = the FIRST index of the maximum of logits[r, :], torch.argmax semantics:
//                   NaN counts as larger than every number (the first NaN wins), ties go to the
//                   smallest index, -0.0 and +0.0 tie.
//   opt_argmax_logprob_f32  the same pick, and out_logprob[r] = log_softmax(logits[r, :])[pick] = max - logsumexp
//                   (float32; NaN when the row holds a NaN or is all -inf): a greedy step's score without
//                   copying the logits to the host.
//   opt_token_logprob_f32  out_logprob[r] = log_softmax(logits[r, :])[tokens[r]] (float32) for given tokens: an
//                   echoed prompt's scores (row i - 1 scores token i) without copying its rows of logits to the
//                   host. log-sum-exp as RowMath.logSumExp: NaN when the row holds a NaN, -inf when every entry
//                   is -inf, +inf when one is +inf; a token outside [0, vocab) gives NaN.
// CPU twin: engine/Sampler.argmax (the greedy pick; same first-index and NaN rules); backend/RowMath.
//
// One block per row: each thread scans a strided share of the row in index order, then the block
// reduces (value, index) pairs with warp shuffles and one pair per warp in shared memory. The pair order
// is total, so the result is the same whatever the thread count. A thread loads kScanRound of its values before
// comparing (or summing) them, in the same index order as one at a time: the row is the previous kernel's output,
// read from L2, and one load at a time waited a whole L2 round trip per value (ncu on an H100, session 18: 24.6 µs
// per decode step for one 50272-wide row with 512 threads, 98 loads each). native/dev/argmax_scan_test.cu checks the
// scans on the CPU against the one-at-a-time loops, bit for bit.
#include <limits.h>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxThreads = 512;

constexpr int kScanRound = 8;  // values a thread loads before using them

// Does (v, i) come before (best_v, best_i) in argmax order?
__host__ __device__ __forceinline__ bool beats(float v, int i, float best_v, int best_i) {
  const bool v_nan = isnan(v);
  const bool best_nan = isnan(best_v);
  if (v_nan || best_nan) return v_nan && (!best_nan || i < best_i);
  return v > best_v || (v == best_v && i < best_i);
}

// visit(row[j], j) for j = start, start + stride, ... below n, in index order, the values loaded kScanRound at a time
// before they are visited: the same calls, in the same order, as loading one at a time.
template <class Visit>
__host__ __device__ __forceinline__ void scan_rounds(const float* row, int n, int start, int stride, Visit& visit) {
  int i = start;
  for (; static_cast<long long>(i) + static_cast<long long>(kScanRound - 1) * stride < n; i += kScanRound * stride) {
    float v[kScanRound];
OPT_UNROLL
    for (int u = 0; u < kScanRound; ++u) v[u] = row[i + u * stride];
OPT_UNROLL
    for (int u = 0; u < kScanRound; ++u) visit(v[u], i + u * stride);
  }
  for (; i < n; i += stride) visit(row[i], i);
}

// (best_v, best_i) updated with row[start], row[start + stride], ... below n: the same pair as comparing them one at
// a time.
__host__ __device__ __forceinline__ void scan_argmax(const float* row, int n, int start, int stride, float& best_v,
                                                     int& best_i) {
  auto visit = [&](float v, int i) {
    if (beats(v, i, best_v, best_i)) {
      best_v = v;
      best_i = i;
    }
  };
  scan_rounds(row, n, start, stride, visit);
}

// sum + the sum of expf(row[j] - m) over j = start, start + stride, ... below n, added in index order: the same float
// as adding them one at a time.
__host__ __device__ __forceinline__ float scan_exp_sum(const float* row, int n, int start, int stride, float m,
                                                       float sum) {
  auto visit = [&](float v, int) { sum += expf(v - m); };
  scan_rounds(row, n, start, stride, visit);
  return sum;
}

// Reduces the pair over the warp's 32 lanes; every lane ends with the warp's best pair.
__device__ __forceinline__ void warp_argmax(float& v, int& i) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other_v = __shfl_xor_sync(0xffffffffu, v, offset);
    const int other_i = __shfl_xor_sync(0xffffffffu, i, offset);
    if (beats(other_v, other_i, v, i)) {
      v = other_v;
      i = other_i;
    }
  }
}

// grid.x = rows; out_index (rows), out_logprob (rows) or null, logits (rows, vocab); blockDim.x a multiple of 32.
__global__ void argmax_kernel(int32_t* __restrict__ out_index, float* __restrict__ out_logprob,
                              const float* __restrict__ logits, int vocab) {
  __shared__ float warp_v[kWarp];
  __shared__ int warp_i[kWarp];
  __shared__ float max_s;
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;

  // Sentinel: loses to every real element (-inf ties with a real -inf and loses on the index).
  float best_v = -INFINITY;
  int best_i = INT_MAX;
  scan_argmax(row, vocab, threadIdx.x, blockDim.x, best_v, best_i);
  warp_argmax(best_v, best_i);

  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  if (lane == 0) {
    warp_v[warp] = best_v;
    warp_i[warp] = best_i;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    best_v = lane < warps ? warp_v[lane] : -INFINITY;
    best_i = lane < warps ? warp_i[lane] : INT_MAX;
    warp_argmax(best_v, best_i);
    if (lane == 0) {
      out_index[blockIdx.x] = best_i;
      max_s = best_v;
    }
  }
  if (out_logprob == nullptr) return;  // uniform across the block
  __syncthreads();
  const float m = max_s;
  // log_softmax(pick) = m - (m + log(sum exp(x - m))) = -log(sum exp(x - m)); every thread sums its share.
  float sum = 0.f;
  if (isfinite(m)) sum = scan_exp_sum(row, vocab, threadIdx.x, blockDim.x, m, sum);
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    // A non-finite max gives NaN, as inf - logsumexp = inf - inf does on the CPU (and in torch).
    out_logprob[blockIdx.x] = isfinite(m) ? -logf(sum) : __int_as_float(0x7fc00000);
  }
}

// grid.x = rows; out_logprob (rows), logits (rows, vocab), tokens (rows); blockDim.x a multiple of 32.
__global__ void token_logprob_kernel(float* __restrict__ out_logprob, const float* __restrict__ logits,
                                     const int32_t* __restrict__ tokens, int vocab) {
  __shared__ float max_s;
  __shared__ int nan_s;
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  const int t = tokens[blockIdx.x];
  if (t < 0 || t >= vocab) {  // a row nobody scores (-1) or a bad token: the same for the whole block
    if (threadIdx.x == 0) out_logprob[blockIdx.x] = __int_as_float(0x7fc00000);
    return;
  }
  if (threadIdx.x == 0) nan_s = 0;
  __syncthreads();
  float m = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (isnan(v)) nan_s = 1;  // every writer writes 1
    m = fmaxf(m, v);
  }
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  __shared__ float warp_m[kWarp];
  if (threadIdx.x % kWarp == 0) warp_m[threadIdx.x / kWarp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float all = -INFINITY;
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) all = fmaxf(all, warp_m[w]);
    max_s = all;
  }
  __syncthreads();
  m = max_s;
  float sum = 0.f;
  if (isfinite(m)) {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(row[i] - m);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    const float lse = isfinite(m) ? m + logf(sum) : m;  // -inf: every entry -inf; +inf: one is +inf
    out_logprob[blockIdx.x] = nan_s != 0 ? __int_as_float(0x7fc00000) : row[t] - lse;
  }
}

}  // namespace

extern "C" {

OPT_API int opt_argmax_f32(int32_t* out_index, const float* logits, int rows, int vocab, cudaStream_t stream) {
  if (rows < 0 || vocab < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;  // an empty row has no argmax
  argmax_kernel<<<rows, threads_for(vocab, kMaxThreads), 0, stream>>>(out_index, nullptr, logits, vocab);
  return launch_status();
}

OPT_API int opt_argmax_logprob_f32(int32_t* out_index, float* out_logprob, const float* logits, int rows, int vocab,
                                   cudaStream_t stream) {
  if (rows < 0 || vocab < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  argmax_kernel<<<rows, threads_for(vocab, kMaxThreads), 0, stream>>>(out_index, out_logprob, logits, vocab);
  return launch_status();
}

OPT_API int opt_token_logprob_f32(float* out_logprob, const float* logits, const int32_t* tokens, int rows, int vocab,
                                  cudaStream_t stream) {
  if (rows < 0 || vocab < 0) return kInvalidValue;
  if (rows == 0) return kSuccess;
  if (vocab == 0) return kInvalidValue;
  token_logprob_kernel<<<rows, threads_for(vocab, kMaxThreads), 0, stream>>>(out_logprob, logits, tokens, vocab);
  return launch_status();
}

}  // extern "C"
