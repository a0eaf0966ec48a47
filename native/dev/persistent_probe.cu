// persistent_probe: is a persistent decode kernel worth building? (issue #5, batch-1 roofline targets)
//
// Session 18's ncu table of an opt-1.3b batch-1 step (docs/perf.md) put 28 % of the kernel time in kernels that move
// almost nothing (layer norms, attention, its combine: 4-7 µs each, one launch after another) and the Linears at 68 %
// of the copy rate on average, their ramp and tail included. A persistent kernel would run a layer's work in one
// launch, the phases separated by grid-wide barriers, the layer norms computed again by every block instead of in a
// kernel of their own. Whether that beats a graph of kernels on this GPU is a measurement, not an argument, so this
// program builds both from the same pieces, for an OPT layer's decode step at batch 1 with random fp16 weights:
//   A  the structure of today's default path, one kernel per op in a CUDA graph, 8 per layer: residual add + layer
//      norm (one block), q/k/v matrix-vector, split-KV attention (heads x splits blocks), combine, out_proj, add +
//      norm, fc1 + ReLU, fc2 (our gemv's layout: 2 outputs per warp, S warps per output pair as gemvSplit=auto
//      picks them, 16-byte loads);
//   A2 A captured with programmatic dependent launches (`-Dopt.cuda.chained=true`'s mechanism): each kernel may start
//      while the one before it ends, the matrix-vector kernels asking L2 for their first weight chunks first;
//   launches  A's graph with empty kernels of the same grids: what the launches and their gaps alone cost;
//   B  one cooperative kernel per step, 6 phases per layer and a grid barrier after each: [add + norm in every block,
//      q/k/v] | attention | combine | out_proj | [add + norm in every block, fc1 + ReLU] | fc2; each Linear's output
//      pairs are spread over all warps of the grid, S warps per pair (S from the grid's warps, as gemvSplit=auto);
//   C  B, and before each barrier every warp asks L2 for the first chunks of its rows of the next phase's weight;
//   barrier  the same cooperative kernel with the phases' work left out: what the barriers alone cost.
// Not in either: biases, the layer norms' gamma and beta, the LM head, the KV-cache append (all small next to the
// weights). Both compute the same function; their final hidden states must agree (fp16 rounding, another sum order).
// Prints a line per shape: ms per step (median of 25 timed runs, the variants interleaved run by run), weights + KV
// bytes per step over the time as a fraction of a device-to-device copy's rate measured here.
//
//   nvcc -O3 -arch=sm_90 native/dev/persistent_probe.cu -o target/persistent_probe && target/persistent_probe [1.3b|6.7b|all]
// Exit status 0 when every variant agrees with A, 1 when one does not, 2 on a CUDA error or too small a grid.
// Self-contained on purpose (no project headers): warp_sum, widen8 and the kernels' pieces are short copies of
// common.cuh's and linear_small.cu's, so that the probe builds alone and changing the library cannot change it.
#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace cg = cooperative_groups;

#define CHECK(x)                                                                                     \
  do {                                                                                               \
    cudaError_t e_ = (x);                                                                            \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "persistent_probe: %s failed: %s (line %d)\n", #x, cudaGetErrorString(e_), \
                   __LINE__);                                                                        \
      std::exit(2);                                                                                  \
    }                                                                                                \
  } while (0)

constexpr int kWarp = 32;
constexpr int kUnroll = 4;   // 16-byte chunks per row loaded before use (linear_small.cuh: unroll_for<2>)
constexpr int kSplits = 4;   // split-KV attention: splits per head (the grid (1, 32, 4) of session 18's table)
constexpr int kThreadsB = 256;

struct Shape {
  const char* name;
  int h, ffn, heads, head_dim, layers, ctx;
};

struct Layer {
  const __half *wqkv, *wo, *w1, *w2;  // (3h x h), (h x h), (ffn x h), (h x ffn), row-major
  const __half *kc, *vc;              // (heads, ctx, head_dim) each: the cache the step attends over
};

struct Buffers {
  Layer* layers;       // device array
  int nlayers;
  __half* h[2];        // the residual stream, double-buffered: a norm reads one and writes the other
  __half* xn;          // A: the normalized row
  __half* y;           // A: out_proj / fc2 output, added to the stream by the next norm
  __half* qkv;         // 3h
  __half* att;         // h: attention output
  __half* f;           // ffn: fc1 output
  float* part;         // attention partials: heads x splits x (head_dim + 2)
};

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ void widen8(const uint4& u, float (&f)[8]) {
  const __half2* p = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __half22float2(p[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

// Sum over chunks [c0, c1) of two weight rows times x: lane takes chunks c0 + lane, + 32, ...; kUnroll chunks of
// both rows are loaded before use. x: k fp16 values, in global or shared memory (a generic pointer).
__device__ __forceinline__ void dot2(float& a0, float& a1, const uint4* w0, const uint4* w1, const __half* x,
                                     int c0, int c1, int lane) {
  a0 = 0.f;
  a1 = 0.f;
  int c = c0 + lane;
  for (; c + (kUnroll - 1) * kWarp < c1; c += kUnroll * kWarp) {
    uint4 u0[kUnroll], u1[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      u0[u] = __ldcs(w0 + c + u * kWarp);
      u1[u] = __ldcs(w1 + c + u * kWarp);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float f0[8], f1[8], xv[8];
      widen8(u0[u], f0);
      widen8(u1[u], f1);
      const uint4 xq = reinterpret_cast<const uint4*>(x)[c + u * kWarp];  // one 16-byte load
      widen8(xq, xv);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        a0 = fmaf(xv[i], f0[i], a0);
        a1 = fmaf(xv[i], f1[i], a1);
      }
    }
  }
  for (; c < c1; c += kWarp) {
    float f0[8], f1[8], xv[8];
    const uint4 u0 = __ldcs(w0 + c), u1 = __ldcs(w1 + c);
    widen8(u0, f0);
    widen8(u1, f1);
    const uint4 xq = reinterpret_cast<const uint4*>(x)[c];
    widen8(xq, xv);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      a0 = fmaf(xv[i], f0[i], a0);
      a1 = fmaf(xv[i], f1[i], a1);
    }
  }
  a0 = warp_sum(a0);
  a1 = warp_sum(a1);
}

// ---- shared pieces: the residual add + layer norm of one row, and one (head, split) of attention ----

// s[j] = h_in[j] + y[j] (y null: nothing added), rounded to fp16 as the stream is; xn[j] = the normalized s in fp16
// (no gamma / beta); h_out (may be null) gets s. Block-wide, ends with a barrier. s: h floats of shared memory;
// red: 2 x 32 floats of shared memory; xn: global or shared.
__device__ void add_norm_block(float* s, __half* xn, __half* h_out, const __half* h_in, const __half* y, int h,
                               float* red) {
  float sum = 0.f;
  for (int j = threadIdx.x; j < h; j += blockDim.x) {
    const __half v16 = __float2half(__half2float(h_in[j]) + (y != nullptr ? __half2float(y[j]) : 0.f));
    if (h_out != nullptr) h_out[j] = v16;
    const float v = __half2float(v16);
    s[j] = v;
    sum += v;
  }
  sum = warp_sum(sum);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  if (lane == 0) red[warp] = sum;
  __syncthreads();
  float mean = 0.f;
  for (int w = 0; w < warps; ++w) mean += red[w];
  mean /= h;
  float sq = 0.f;
  for (int j = threadIdx.x; j < h; j += blockDim.x) {
    const float d = s[j] - mean;
    sq += d * d;
  }
  sq = warp_sum(sq);
  if (lane == 0) red[kWarp + warp] = sq;
  __syncthreads();
  float var = 0.f;
  for (int w = 0; w < warps; ++w) var += red[kWarp + w];
  const float rstd = rsqrtf(var / h + 1e-5f);
  for (int j = threadIdx.x; j < h; j += blockDim.x) xn[j] = __float2half((s[j] - mean) * rstd);
  __syncthreads();
}

// One (head, split) of split-KV attention over ctx keys with 4 warps (warp_in_unit 0..3): q = qkv[head * D ..],
// an online softmax per warp, merged in shared memory, written as (max, sum, acc[D]) to part. sm: 4 x (D + 2).
template <int D>
__device__ void attention_unit(int unit, int warp_in_unit, int lane, const __half* qkv, const __half* kc,
                               const __half* vc, int ctx, float* part, float* sm) {
  constexpr int kPer = D / kWarp;  // dims per lane
  const int head = unit / kSplits, split = unit % kSplits;
  const int span = (ctx + kSplits - 1) / kSplits;
  const int k0 = split * span, k1 = min(ctx, k0 + span);
  float q[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) q[i] = __half2float(qkv[head * D + lane * kPer + i]) * rsqrtf(float(D));
  float m = -INFINITY, l = 0.f, acc[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) acc[i] = 0.f;
  const __half* kh = kc + static_cast<size_t>(head) * ctx * D;
  const __half* vh = vc + static_cast<size_t>(head) * ctx * D;
  for (int key = k0 + warp_in_unit; key < k1; key += 4) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) s += q[i] * __half2float(kh[static_cast<size_t>(key) * D + lane * kPer + i]);
    s = warp_sum(s);
    const float mn = fmaxf(m, s);
    const float scale = __expf(m - mn), p = __expf(s - mn);
    l = l * scale + p;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      acc[i] = acc[i] * scale + p * __half2float(vh[static_cast<size_t>(key) * D + lane * kPer + i]);
    }
    m = mn;
  }
  float* mine = sm + warp_in_unit * (D + 2);
  if (lane == 0) {
    mine[0] = m;
    mine[1] = l;
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) mine[2 + lane * kPer + i] = acc[i];
}

// Merges the 4 warps' (m, l, acc) of a unit in sm into part[unit]; called by warp 0 of the unit after a barrier.
template <int D>
__device__ void attention_merge(int unit, int lane, const float* sm, float* part) {
  float m = -INFINITY;
  for (int w = 0; w < 4; ++w) m = fmaxf(m, sm[w * (D + 2)]);
  float l = 0.f;
  for (int w = 0; w < 4; ++w) {
    const float mw = sm[w * (D + 2)];
    l += mw == -INFINITY ? 0.f : sm[w * (D + 2) + 1] * __expf(mw - m);
  }
  float* out = part + static_cast<size_t>(unit) * (D + 2);
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  for (int d = lane; d < D; d += kWarp) {
    float a = 0.f;
    for (int w = 0; w < 4; ++w) {
      const float mw = sm[w * (D + 2)];
      if (mw != -INFINITY) a += sm[w * (D + 2) + 2 + d] * __expf(mw - m);
    }
    out[2 + d] = a;
  }
}

// att[head * D + d] from the splits' partials of one head: d = threadIdx within the first D threads.
template <int D>
__device__ void combine_head(int head, int d, const float* part, __half* att) {
  const float* p = part + static_cast<size_t>(head) * kSplits * (D + 2);
  float m = -INFINITY;
  for (int s = 0; s < kSplits; ++s) m = fmaxf(m, p[s * (D + 2)]);
  float l = 0.f, a = 0.f;
  for (int s = 0; s < kSplits; ++s) {
    const float ms = p[s * (D + 2)];
    if (ms == -INFINITY) continue;
    const float w = __expf(ms - m);
    l += p[s * (D + 2) + 1] * w;
    a += p[s * (D + 2) + 2 + d] * w;
  }
  att[head * D + d] = __float2half(a / l);
}

// ---- A: one kernel per op (A2: the same kernels launched as programmatic dependent launches) ----

// Without the launch attribute both are no-ops, so A and A2 run the same kernels (common.cuh: chain_start/wait).
__device__ __forceinline__ void griddep_launch() { cudaTriggerProgrammaticLaunchCompletion(); }
__device__ __forceinline__ void griddep_wait() { cudaGridDependencySynchronize(); }

__global__ void add_norm_kernel(__half* h_out, __half* xn, const __half* h_in, const __half* y, int h) {
  extern __shared__ float s[];
  __shared__ float red[2 * kWarp];
  griddep_launch();
  griddep_wait();
  add_norm_block(s, xn, h_out, h_in, y, h, red);
}

__global__ void empty_kernel() {}

// S warps per output pair, 4 warps per block; partial sums through shared memory; out = relu?(sum), fp16.
template <int S>
__global__ void gemv_kernel(__half* out, const __half* w, const __half* x, int n, int k, int relu) {
  __shared__ float red[4][2];
  griddep_launch();
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, part = warp % S;
  const int pair = blockIdx.x * (4 / S) + warp / S;
  const int j0 = 2 * pair;
  const int chunks = k / 8, span = (chunks + S - 1) / S;
  const int c0 = min(chunks, part * span), c1 = min(chunks, c0 + span);
  const bool live = j0 < n;
  const int r0 = live ? j0 : 0;
  // the weights are constants: ask L2 for this lane's first chunk of both rows before waiting (A2; harmless in A)
  if (c0 + lane < c1) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(reinterpret_cast<const uint4*>(w + static_cast<size_t>(r0) * k) +
                                                 c0 + lane));
    asm volatile("prefetch.global.L2 [%0];" ::"l"(reinterpret_cast<const uint4*>(w + static_cast<size_t>(r0 + 1) *
                                                                                 k) + c0 + lane));
  }
  griddep_wait();
  float a0 = 0.f, a1 = 0.f;
  dot2(a0, a1, reinterpret_cast<const uint4*>(w + static_cast<size_t>(r0) * k),
       reinterpret_cast<const uint4*>(w + static_cast<size_t>(r0 + 1) * k), x, c0, c1, lane);
  if (S > 1) {
    if (lane == 0) {
      red[warp][0] = a0;
      red[warp][1] = a1;
    }
    __syncthreads();
    if (part != 0) return;
    for (int p = 1; p < S; ++p) {
      a0 += red[warp + p][0];
      a1 += red[warp + p][1];
    }
  }
  if (lane == 0 && live) {
    out[j0] = __float2half(relu && a0 < 0.f ? 0.f : a0);
    out[j0 + 1] = __float2half(relu && a1 < 0.f ? 0.f : a1);
  }
}

template <int D>
__global__ void attention_kernel(const __half* qkv, const __half* kc, const __half* vc, int ctx, float* part) {
  __shared__ float sm[4 * (D + 2)];
  griddep_launch();
  griddep_wait();
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  attention_unit<D>(blockIdx.x, warp, lane, qkv, kc, vc, ctx, part, sm);
  __syncthreads();
  if (warp == 0) attention_merge<D>(blockIdx.x, lane, sm, part);
}

template <int D>
__global__ void combine_kernel(const float* part, __half* att) {
  griddep_launch();
  griddep_wait();
  combine_head<D>(blockIdx.x, threadIdx.x, part, att);
}

// ---- B and C: one cooperative kernel per step ----

// Warps per output pair for a Linear of n outputs over nwarps warps: as many as keep every warp busy, at most 4.
__device__ __forceinline__ int split_for(int n, int nwarps) {
  const int pairs = n / 2;
  return nwarps >= 4 * pairs ? 4 : nwarps >= 2 * pairs ? 2 : 1;
}

// out = relu?(w · x), n outputs, over every warp of the grid: the S warps of a block share an output pair (chunks
// split in S, partial sums added in shared memory in a fixed order, as gemv_kernel<S> does), the grid's pairs taken
// in rounds of nwarps / S. Every warp of the block runs the same rounds (the barrier). red: 8 x 2 floats.
__device__ __forceinline__ void gemv_phase(const __half* w, int n, int k, const __half* x, int relu, __half* out,
                                           int gwarp, int nwarps, int lane, int warp, float (*red)[2]) {
  const int S = split_for(n, nwarps);
  const int chunks = k / 8, span = (chunks + S - 1) / S;
  const int part = gwarp % S;
  const int c0 = min(chunks, part * span), c1 = min(chunks, c0 + span);
  for (int base = 0; base < n / 2; base += nwarps / S) {
    const int pair = base + gwarp / S;
    const bool live = pair < n / 2;
    const int j0 = live ? 2 * pair : 0;
    float a0, a1;
    dot2(a0, a1, reinterpret_cast<const uint4*>(w + static_cast<size_t>(j0) * k),
         reinterpret_cast<const uint4*>(w + static_cast<size_t>(j0 + 1) * k), x, c0, c1, lane);
    if (S > 1) {
      if (lane == 0) {
        red[warp][0] = a0;
        red[warp][1] = a1;
      }
      __syncthreads();
      if (part == 0) {
        for (int p = 1; p < S; ++p) {
          a0 += red[warp + p][0];
          a1 += red[warp + p][1];
        }
      }
      __syncthreads();  // red is written again next round
    }
    if (part == 0 && lane == 0 && live) {
      out[j0] = __float2half(relu && a0 < 0.f ? 0.f : a0);
      out[j0 + 1] = __float2half(relu && a1 < 0.f ? 0.f : a1);
    }
  }
}

// C: L2 prefetch of this warp's first round of a Linear phase (the first kUnroll chunks of both rows per lane).
__device__ __forceinline__ void prefetch_phase(const __half* w, int n, int k, int gwarp, int nwarps, int lane) {
  const int S = split_for(n, nwarps);
  const int pair = gwarp / S;
  if (pair >= n / 2) return;
  const int chunks = k / 8, span = (chunks + S - 1) / S;
  const int c0 = min(chunks, (gwarp % S) * span), c1 = min(chunks, c0 + span);
  for (int r = 0; r < 2; ++r) {
    const uint4* row = reinterpret_cast<const uint4*>(w + static_cast<size_t>(2 * pair + r) * k);
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + lane + u * kWarp;
      if (c < c1) asm volatile("prefetch.global.L2 [%0];" ::"l"(row + c));
    }
  }
}

// mode 0: the work (B), 1: the work and prefetches (C), 2: the barriers alone.
template <int D>
__global__ void __launch_bounds__(kThreadsB, 4) persistent_kernel(Buffers b, int h, int ffn, int heads, int ctx,
                                                                  int mode) {
  extern __shared__ float s[];                  // h floats (the norm's row), then h halves (the normalized row)
  __half* xs = reinterpret_cast<__half*>(s + h);
  __shared__ float red[2 * kWarp];
  __shared__ float red2[kThreadsB / kWarp][2];
  __shared__ float sm[4 * (D + 2)];             // attention: one unit per block (warps 0-3), as A's grid
  cg::grid_group grid = cg::this_grid();
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps_per_block = blockDim.x / kWarp;
  const int gwarp = blockIdx.x * warps_per_block + warp, nwarps = gridDim.x * warps_per_block;
  const bool work = mode != 2, pre = mode == 1;
  int cur = 0;
  for (int L = 0; L < b.nlayers; ++L) {
    const Layer ly = b.layers[L];
    // 1. stream += the previous fc2 (nothing before layer 0) and its norm, in every block; block 0 keeps the stream
    if (work) {
      add_norm_block(s, xs, blockIdx.x == 0 ? b.h[cur ^ 1] : nullptr, b.h[cur], L > 0 ? b.y : nullptr, h, red);
      gemv_phase(ly.wqkv, 3 * h, h, xs, 0, b.qkv, gwarp, nwarps, lane, warp, red2);
    }
    if (pre) prefetch_phase(ly.wo, h, h, gwarp, nwarps, lane);  // attention and combine read little
    grid.sync();
    cur ^= 1;
    // 2. attention: one unit (head, split) per block, warps 0-3, as A's attention kernel
    if (work) {
      const bool mine = blockIdx.x < heads * kSplits && warp < 4;
      if (mine) attention_unit<D>(blockIdx.x, warp, lane, b.qkv, ly.kc, ly.vc, ctx, b.part, sm);
      __syncthreads();
      if (mine && warp == 0) attention_merge<D>(blockIdx.x, lane, sm, b.part);
    }
    grid.sync();
    // 3. combine: one head per block, D threads
    if (work && blockIdx.x < heads && threadIdx.x < D) combine_head<D>(blockIdx.x, threadIdx.x, b.part, b.att);
    grid.sync();
    // 4. out_proj
    if (work) gemv_phase(ly.wo, h, h, b.att, 0, b.y, gwarp, nwarps, lane, warp, red2);
    if (pre) prefetch_phase(ly.w1, ffn, h, gwarp, nwarps, lane);
    grid.sync();
    // 5. stream += out_proj and its norm in every block (block 0 keeps the stream), fc1 + ReLU
    if (work) {
      add_norm_block(s, xs, blockIdx.x == 0 ? b.h[cur ^ 1] : nullptr, b.h[cur], b.y, h, red);
      gemv_phase(ly.w1, ffn, h, xs, 1, b.f, gwarp, nwarps, lane, warp, red2);
    }
    if (pre) prefetch_phase(ly.w2, h, ffn, gwarp, nwarps, lane);
    grid.sync();
    cur ^= 1;
    // 6. fc2 (y was read by every block in phase 5, before the barrier above)
    if (work) gemv_phase(ly.w2, h, ffn, b.f, 0, b.y, gwarp, nwarps, lane, warp, red2);
    if (pre && L + 1 < b.nlayers) prefetch_phase(b.layers[L + 1].wqkv, 3 * h, h, gwarp, nwarps, lane);
    grid.sync();
  }
  // the last fc2 into the stream
  if (work && blockIdx.x == 0) {
    for (int j = threadIdx.x; j < h; j += blockDim.x) {
      b.h[cur ^ 1][j] = __float2half(__half2float(b.h[cur][j]) + __half2float(b.y[j]));
    }
  }
}

// ---- host ----

__global__ void fill_kernel(__half* p, size_t n, float scale, unsigned seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ (seed * 0x9e3779b9u) ^ static_cast<unsigned>(i >> 32);
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    x *= 0x297a2d39u;
    x ^= x >> 15;
    p[i] = __float2half((static_cast<float>(x) / 4294967296.f * 2.f - 1.f) * scale);
  }
}

static void fill(__half* p, size_t n, float scale, unsigned seed) {
  fill_kernel<<<1024, 256>>>(p, n, scale, seed);
  CHECK(cudaGetLastError());
}

static float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

static double copy_gbps() {
  const size_t bytes = size_t(1) << 30;
  void *a, *c;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&c, bytes));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 12; ++i) {
    CHECK(cudaEventRecord(e0));
    CHECK(cudaMemcpy(c, a, bytes, cudaMemcpyDeviceToDevice));
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float t;
    CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);
  }
  CHECK(cudaFree(a));
  CHECK(cudaFree(c));
  return 2.0 * bytes / (median(ms) * 1e-3) / 1e9;
}

// The first error of a launch() since it was last cleared: a capture of A2 that fails is reported, not fatal.
static cudaError_t g_launch_error = cudaSuccess;

// kernel<<<grid, block, smem, stream>>>(args...), as a programmatic dependent launch when pdl is set (A2).
template <typename... Params, typename... Args>
static void launch(void (*kernel)(Params...), int grid, int block, size_t smem, cudaStream_t stream, bool pdl,
                   Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(block);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = pdl ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  if (e != cudaSuccess && g_launch_error == cudaSuccess) g_launch_error = e;
}

// The warps per output pair that linear_small.cu's auto_split picks for n outputs over k inputs at one row.
static int auto_split(int n, int k, int resident_blocks, int sms) {
  const long long wave = static_cast<long long>(resident_blocks) * sms * 4;
  const long long groups = (n + 1) / 2;
  const int chunks = k / 8;
  int s = 1;
  while (s < 4 && groups * s < wave && chunks >= 2 * s * kWarp * kUnroll) s *= 2;
  return s;
}

template <int D>
static int run_shape(const Shape& s, double gbps) {
  const int h = s.h, ffn = s.ffn, L = s.layers;
  const size_t per_layer = (size_t(3) * h * h + size_t(h) * h + 2 * size_t(h) * ffn);
  const size_t kv = size_t(s.heads) * s.ctx * D;
  std::vector<Layer> layers(L);
  std::vector<__half*> owned;
  for (int l = 0; l < L; ++l) {
    __half *w, *k, *v;
    CHECK(cudaMalloc(&w, per_layer * sizeof(__half)));
    CHECK(cudaMalloc(&k, kv * sizeof(__half)));
    CHECK(cudaMalloc(&v, kv * sizeof(__half)));
    owned.push_back(w);
    owned.push_back(k);
    owned.push_back(v);
    fill(w, size_t(4) * h * h, std::sqrt(3.f / h), 11 + 8 * l);  // q/k/v and out_proj: fan-in h
    fill(w + size_t(4) * h * h, size_t(h) * ffn, std::sqrt(3.f / h), 12 + 8 * l);
    fill(w + size_t(4) * h * h + size_t(h) * ffn, size_t(h) * ffn, std::sqrt(3.f / ffn), 13 + 8 * l);
    fill(k, kv, 1.f, 14 + 8 * l);
    fill(v, kv, 1.f, 15 + 8 * l);
    layers[l] = {w, w + size_t(3) * h * h, w + size_t(4) * h * h, w + size_t(4) * h * h + size_t(h) * ffn, k, v};
  }
  Buffers b{};
  b.nlayers = L;
  CHECK(cudaMalloc(&b.layers, L * sizeof(Layer)));
  CHECK(cudaMemcpy(b.layers, layers.data(), L * sizeof(Layer), cudaMemcpyHostToDevice));
  __half* h0;
  CHECK(cudaMalloc(&h0, h * sizeof(__half)));
  fill(h0, h, 1.f, 7);
  CHECK(cudaMalloc(&b.h[0], h * sizeof(__half)));
  CHECK(cudaMalloc(&b.h[1], h * sizeof(__half)));
  CHECK(cudaMalloc(&b.xn, h * sizeof(__half)));
  CHECK(cudaMalloc(&b.y, h * sizeof(__half)));
  CHECK(cudaMalloc(&b.qkv, 3 * h * sizeof(__half)));
  CHECK(cudaMalloc(&b.att, h * sizeof(__half)));
  CHECK(cudaMalloc(&b.f, ffn * sizeof(__half)));
  CHECK(cudaMalloc(&b.part, s.heads * kSplits * (D + 2) * sizeof(float)));
  CHECK(cudaDeviceSynchronize());

  int sms = 0, dev = 0, gemv_resident = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&gemv_resident, gemv_kernel<1>, 128, 0));
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const size_t norm_smem = h * sizeof(float);
  // A matrix-vector kernel of n outputs over k inputs with auto_split's S (empty: an empty kernel of its grid)
  auto gemv = [&](cudaStream_t q, bool pdl, bool empty, __half* out, const __half* w, const __half* x, int n, int k,
                  int relu) {
    const int S = auto_split(n, k, gemv_resident, sms);
    const int grid = (n / 2 + 4 / S - 1) / (4 / S);
    if (empty) return launch(empty_kernel, grid, 128, 0, q, false);
    if (S == 1) launch(gemv_kernel<1>, grid, 128, 0, q, pdl, out, w, x, n, k, relu);
    else if (S == 2) launch(gemv_kernel<2>, grid, 128, 0, q, pdl, out, w, x, n, k, relu);
    else launch(gemv_kernel<4>, grid, 128, 0, q, pdl, out, w, x, n, k, relu);
  };
  // A: the step as a graph of 8 kernels per layer; the stream alternates between h[0] and h[1]. Returns the buffer
  // that holds the final stream.
  auto enqueue_a = [&](cudaStream_t q, bool pdl, bool empty) {
    CHECK(cudaMemcpyAsync(b.h[0], h0, h * sizeof(__half), cudaMemcpyDeviceToDevice, q));
    auto norm = [&](__half* out, const __half* in, const __half* y) {
      if (empty) return launch(empty_kernel, 1, 256, 0, q, false);
      launch(add_norm_kernel, 1, 256, norm_smem, q, pdl, out, b.xn, in, y, h);
    };
    int cur = 0;
    for (int l = 0; l < L; ++l) {
      norm(b.h[cur ^ 1], b.h[cur], l > 0 ? b.y : nullptr);
      cur ^= 1;
      gemv(q, pdl, empty, b.qkv, layers[l].wqkv, b.xn, 3 * h, h, 0);
      if (empty) {
        launch(empty_kernel, s.heads * kSplits, 128, 0, q, false);
        launch(empty_kernel, s.heads, D, 0, q, false);
      } else {
        launch(attention_kernel<D>, s.heads * kSplits, 128, 0, q, pdl, static_cast<const __half*>(b.qkv),
               layers[l].kc, layers[l].vc, s.ctx, b.part);
        launch(combine_kernel<D>, s.heads, D, 0, q, pdl, static_cast<const float*>(b.part), b.att);
      }
      gemv(q, pdl, empty, b.y, layers[l].wo, b.att, h, h, 0);
      norm(b.h[cur ^ 1], b.h[cur], b.y);
      cur ^= 1;
      gemv(q, pdl, empty, b.f, layers[l].w1, b.xn, ffn, h, 1);
      gemv(q, pdl, empty, b.y, layers[l].w2, b.f, h, ffn, 0);
    }
    // the last fc2 into the stream, as B does after its last layer
    norm(b.h[cur ^ 1], b.h[cur], b.y);
    return cur ^ 1;
  };
  // A captured graph, or null (A2 only: its failure is printed, the other variants still run)
  auto capture = [&](bool pdl, bool empty, int* final_buffer) -> cudaGraphExec_t {
    g_launch_error = cudaSuccess;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    *final_buffer = enqueue_a(st, pdl, empty);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(st, &graph);
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = g_launch_error != cudaSuccess ? g_launch_error : ended;
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      cudaGetLastError();
      if (!pdl) CHECK(e);
      std::printf("%s: A2 (programmatic dependent launches) could not be captured: %s\n", s.name,
                  cudaGetErrorString(e));
      return nullptr;
    }
    return exec;
  };
  int final_a = 0, final_a2 = 0, final_empty = 0;
  cudaGraphExec_t exec_a = capture(false, false, &final_a);
  cudaGraphExec_t exec_a2 = capture(true, false, &final_a2);
  cudaGraphExec_t exec_empty = capture(false, true, &final_empty);

  // B / C: one cooperative launch with every block resident
  const size_t smem_b = h * (sizeof(float) + sizeof(__half));
  CHECK(cudaFuncSetAttribute(persistent_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_b)));
  int per_sm = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel<D>, kThreadsB, smem_b));
  per_sm = std::min(per_sm, 8);
  const int blocks = sms * per_sm;
  if (blocks < s.heads * kSplits) {
    std::fprintf(stderr, "persistent_probe: %d blocks are too few for %d attention units\n", blocks,
                 s.heads * kSplits);
    return 2;
  }
  int mode = 0;
  int hh = h, ff = ffn, heads = s.heads, ctx = s.ctx;
  void* args[] = {&b, &hh, &ff, &heads, &ctx, &mode};
  auto launch_b = [&](int m) {
    CHECK(cudaMemcpyAsync(b.h[0], h0, h * sizeof(__half), cudaMemcpyDeviceToDevice, st));
    mode = m;
    CHECK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(persistent_kernel<D>), blocks, kThreadsB, args,
                                      smem_b, st));
  };
  // B's final stream: phases 1 and 5 flip it twice per layer (back at h[0]), then the last add writes h[1]
  const int final_b = 1;

  // Correctness: the final stream and the last layer's fc1 output of A2, B and C against A's.
  auto fetch = [&](int final_buffer, std::vector<__half>& stream_out, std::vector<__half>& f_out) {
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaMemcpy(stream_out.data(), b.h[final_buffer], h * sizeof(__half), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(f_out.data(), b.f, ffn * sizeof(__half), cudaMemcpyDeviceToHost));
  };
  // max |x - y| / max |x|; infinite when either holds a NaN or an infinity
  auto rel = [](const std::vector<__half>& x, const std::vector<__half>& y) {
    double maxa = 0, diff = 0;
    for (size_t j = 0; j < x.size(); ++j) {
      const double u = __half2float(x[j]), v = __half2float(y[j]);
      if (!std::isfinite(u) || !std::isfinite(v)) return double(INFINITY);
      maxa = std::max(maxa, std::fabs(u));
      diff = std::max(diff, std::fabs(u - v));
    }
    return diff / std::max(maxa, 1e-30);
  };
  std::vector<__half> ra(h), fa(ffn), rx(h), fx(ffn);
  CHECK(cudaGraphLaunch(exec_a, st));
  fetch(final_a, ra, fa);
  if (!std::isfinite(rel(ra, ra)) || !std::isfinite(rel(fa, fa))) {
    std::printf("%s: A's own result is not finite\n", s.name);
    return 1;
  }
  int bad = 0;
  double worst = 0;
  const char* names[] = {"A2", "B", "C"};
  for (int v = exec_a2 != nullptr ? 0 : 1; v < 3; ++v) {
    CHECK(cudaMemsetAsync(b.f, 0xff, ffn * sizeof(__half), st));  // NaN unless the variant writes it
    if (v == 0) {
      CHECK(cudaGraphLaunch(exec_a2, st));
    } else {
      launch_b(v - 1);
    }
    fetch(v == 0 ? final_a2 : final_b, rx, fx);
    const double e = std::max(rel(ra, rx), rel(fa, fx));
    worst = std::max(worst, e);
    if (!(e <= 2e-2)) {
      std::printf("%s: %s differs from A: max |diff| / max |A| = %.3g (final stream or last fc1)\n", s.name,
                  names[v], e);
      bad = 1;
    }
  }

  // Timing: 30 rounds, each timing one step of every variant in turn (drift lands on all alike); the first 5 are
  // not kept; the median of the rest.
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::vector<std::vector<float>> ms(6);
  for (int round = 0; round < 30; ++round) {
    for (int v = 0; v < 6; ++v) {
      if (v == 1 && exec_a2 == nullptr) continue;
      CHECK(cudaEventRecord(e0, st));
      switch (v) {
        case 0: CHECK(cudaGraphLaunch(exec_a, st)); break;
        case 1: CHECK(cudaGraphLaunch(exec_a2, st)); break;
        case 2: launch_b(0); break;
        case 3: launch_b(1); break;
        case 4: launch_b(2); break;
        default: CHECK(cudaGraphLaunch(exec_empty, st)); break;
      }
      CHECK(cudaEventRecord(e1, st));
      CHECK(cudaEventSynchronize(e1));
      float t;
      CHECK(cudaEventElapsedTime(&t, e0, e1));
      if (round >= 5) ms[v].push_back(t);
    }
  }
  const float ta = median(ms[0]), ta2 = exec_a2 != nullptr ? median(ms[1]) : NAN, tb = median(ms[2]);
  const float tc = median(ms[3]);
  const float tbar = median(ms[4]), tempty = median(ms[5]);
  const double bytes = double(L) * (per_layer + 2 * kv) * sizeof(__half);
  auto pct = [&](float t) { return 100 * bytes / (t * 1e-3) / 1e9 / gbps; };
  std::printf("%-5s %d layers, %.0f MB, B on %d blocks (%d/SM): A %.3f ms (%.0f%%); A2 %.3f (%.0f%%, %.2fx A); "
              "B %.3f (%.0f%%, %.2fx A); C %.3f (%.0f%%, %.2fx A); launches alone %.3f ms (%.2f us per kernel); "
              "barriers alone %.3f ms (%.2f us each); max rel diff %.1e%s\n",
              s.name, L, bytes / 1e6, blocks, per_sm, ta, pct(ta), ta2, pct(ta2), ta / ta2, tb, pct(tb), ta / tb,
              tc, pct(tc), ta / tc, tempty, 1e3 * tempty / (8.0 * L + 1), tbar, 1e3 * tbar / (6.0 * L), worst,
              bad ? "  MISMATCH" : "");

  CHECK(cudaGraphExecDestroy(exec_a));
  if (exec_a2 != nullptr) CHECK(cudaGraphExecDestroy(exec_a2));
  CHECK(cudaGraphExecDestroy(exec_empty));
  for (__half* p : owned) CHECK(cudaFree(p));
  CHECK(cudaFree(b.layers));
  for (void* p : {static_cast<void*>(h0), static_cast<void*>(b.h[0]), static_cast<void*>(b.h[1]),
                  static_cast<void*>(b.xn), static_cast<void*>(b.y), static_cast<void*>(b.qkv),
                  static_cast<void*>(b.att), static_cast<void*>(b.f), static_cast<void*>(b.part)}) {
    CHECK(cudaFree(p));
  }
  CHECK(cudaEventDestroy(e0));
  CHECK(cudaEventDestroy(e1));
  CHECK(cudaStreamDestroy(st));
  return bad;
}

int main(int argc, char** argv) {
  const char* which = argc > 1 ? argv[1] : "all";
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "persistent_probe: no CUDA device\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const double gbps = copy_gbps();
  std::printf("persistent_probe on %s: copy %.0f GB/s (read + written); ctx 192 keys (a 128+128 run's average); "
              "A: graph of 8 kernels per layer, A2: A with programmatic dependent launches, B: one cooperative kernel "
              "(6 barriers per layer), C: B + L2 prefetch before each barrier\n",
              prop.name, gbps);
  const Shape small{"1.3b", 2048, 8192, 32, 64, 24, 192};
  const Shape large{"6.7b", 4096, 16384, 32, 128, 32, 192};
  int bad = 0;
  if (!std::strcmp(which, "1.3b") || !std::strcmp(which, "all")) bad = std::max(bad, run_shape<64>(small, gbps));
  if (!std::strcmp(which, "6.7b") || !std::strcmp(which, "all")) bad = std::max(bad, run_shape<128>(large, gbps));
  return bad;
}
