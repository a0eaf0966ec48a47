// emu_split: a CPU emulation of native/src/attention_split.cu (opt_attention_split_{f32,f16,bf16}), thread by
// thread and block by block, against an independent double-precision reference of causal paged attention. See
// README.md beside this file.
//
// What is modelled, as the kernel file is written (same names, same statements, in the same order):
//   - the launcher (launch_split_attention): split count from the SM count and the table width, split_len, the
//     workspace layout (64 KiB of counters, then the partials), the options (inline combine; the grouped kernel is
//     ../emu_grouped's: its launch is an error here), the kernel template it picks, the
//     second launch of split_combine_kernel with threads_for(head_dim, 256) threads;
//   - every thread a coroutine with its own registers (a hand-written x86-64 context switch); __syncthreads a
//     barrier of the block; __shfl_xor_sync a collective of the 32 lanes of a warp; threads switch in a random
//     order at every barrier, shuffle, atomic, fence and workspace access;
//   - several blocks resident at once (1 .. 128, random), dispatched in linear, reversed, random or
//     splits-together order, their threads interleaved at random with the other blocks' threads;
//   - global memory with a store buffer per thread: a plain store becomes visible to other threads when its thread
//     runs __threadfence, at random later times, or at the end of the grid; never earlier than the thread's own
//     program order allows (FIFO). Atomics act on memory directly (relaxed). __ldcg reads memory; a plain load of
//     workspace data another block wrote in the same grid is an error (L1 is not coherent);
//   - __expf as expf rounded to float (the GPU's approximation differs in the last bits: not what is tested),
//     fmaf exact, IEEE division (no --use_fast_math in cmake/OptCuda.cmake), fp16/bf16 round to nearest even.
// Checks: shared-memory races (two threads, one barrier interval, a write and another access; same-value writes
// such as bad_s = 1 are allowed), reads of uninitialised shared memory, shared and global bounds and alignment,
// divergent barriers and shuffles, a global read of another thread's store that is not yet visible (a missing
// fence), reads of workspace partials not written by the current operation, out / partial elements written twice
// in one operation, atomics outside the counter area; then the numbers (double reference from the contract in
// opt_kernels.h), the NaN / unwritten rules, inline combine == combine kernel bit for bit, <T,64>/<T,128> ==
// <T,0> bit for bit, the counters zero after every launch (one workspace for the whole run).
// Not modelled: nvcc's contraction of a*b + c into fma (the kernel's plain float expressions are evaluated here
// with -ffp-contract=off), the exact bits of __expf, timing, registers / spills, __launch_bounds__, chained
// launches (PDL), the reader-side __threadfence of the last block (reads here always see memory).
//
// Build and run (from the repository root):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_split/emu_split.cpp -o target/emu_split
//   target/emu_split [cases=400] [seed]
// Planted bugs:  add -DPLANT=N (N = 1 .. 15, see kPlant below); each must end in FAIL.
#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include <chrono>

#ifdef CUDA_HOST_CONVERSIONS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#if !defined(__x86_64__)
#error "emu_split's context switch is written for x86-64"
#endif

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none):
//   1: the last block does not reset the (row, head) counter
//   2: a block counts for the inline combine only when its key range is not empty (begin < end)
//   3: the value loop of the head_dim kernels (kHeadDim > 0) adds p * v with two roundings instead of fmaf
//   4: no __syncthreads at the end of the tile loop (the next tile overwrites p_s and slot_s)
//   5: the value loop drops the last, partial round of a tile (j0 + kRound <= n_keys)
//   6: combine_splits reads the partials with stride head_dim + 1
//   7: inline combine, inconsistent sequence: the odd splits count (atomicAdd) before returning
//   8: no __threadfence before thread 0 counts
//   9: combine_splits reads the partials with plain loads instead of __ldcg
//  10: no __syncthreads between thread 0's atomicAdd and the reads of last_s
//  11: launcher: the inline combine without the pairs <= kCounters limit
//  12: the row owner by a plain store (seq_s = s) instead of atomicMax
//  13: tile_reduce without its closing __syncthreads (red_s reused by the next call)
//  14: launcher: split_len not rounded to whole tiles of 64 keys
//  15: the value loop of the head_dim kernels adds a round's keys in reverse order (same fmaf, other order)
constexpr int kPlant = PLANT;

#include "../emu_common/emu.h"

#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)
#define __threadfence() emu::threadfence()
#define __expf(x) emu::expf_(x)
#define __ldcg(p) emu::ldcg(p)

// ============================================================================================================
// The kernel file, as attention_split.cu writes it. T* → GPtr<T>, __shared__ arrays → SArr (ld / st).
// ============================================================================================================
#include "../emu_common/common_cuh.h"

#define OPT_ATTENTION_INLINE_COMBINE 1  // opt_kernels.h
#define OPT_ATTENTION_GROUPED 2

namespace opt {
// common.cuh (the rest: ../emu_common/common_cuh.h)
long long kv_slot(GPtr<int32_t> table, int key, int block_size, int num_blocks) {
  const int block = table.ld(key / block_size, "block_tables");
  return block >= 0 && block < num_blocks ? static_cast<long long>(block) * block_size + key % block_size : -1;
}
using std::isnan;
using std::min;
float fmaxf(float a, float b) { return std::fmax(a, b); }  // NaN loses, as CUDA's

constexpr int kMaxHeadDim = 256;
constexpr int kT = 64;
constexpr int kDimsPerThread = kMaxHeadDim / kT;
constexpr size_t kCounterBytes = 64 * 1024;
constexpr long long kCounters = static_cast<long long>(kCounterBytes / sizeof(int));

float quiet_nan() { return emu::bitsf(0x7fc00000u); }

struct float2_ { float x, y; };
struct float4_ { float x, y, z, w; };

float dot16(GPtr<float> k, SPtr<float> q) {
  const V16 u = k.ld16(0);
  float4_ v;
  std::memcpy(&v, u.b, 16);
  return v.x * q.ld(0) + v.y * q.ld(1) + v.z * q.ld(2) + v.w * q.ld(3);
}
float dot16(GPtr<Half> k, SPtr<float> q) {
  const V16 u = k.ld16(0);
  uint16_t h[8];
  std::memcpy(h, u.b, 16);
  float s = 0.f;
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::half_to_float(h[2 * i]), emu::half_to_float(h[2 * i + 1])};  // __half22float2(h[i])
    s += f.x * q.ld(2 * i) + f.y * q.ld(2 * i + 1);
  }
  return s;
}
float dot16(GPtr<BF16> k, SPtr<float> q) {
  const V16 u = k.ld16(0);
  uint16_t h[8];
  std::memcpy(h, u.b, 16);
  float s = 0.f;
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::bf16_to_float(h[2 * i]), emu::bf16_to_float(h[2 * i + 1])};  // __bfloat1622float2(h[i])
    s += f.x * q.ld(2 * i) + f.y * q.ld(2 * i + 1);
  }
  return s;
}

struct MaxOp {
  float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  float operator()(float a, float b) const { return a + b; }
};

template <class Op>
float tile_reduce(float v, SArr<float>& red, Op op) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (threadIdx.x % kWarp == 0) red.st(threadIdx.x / kWarp, v);
  __syncthreads();
  float r = red.ld(0);
  for (int w = 1; w < kT / kWarp; ++w) r = op(r, red.ld(w));
  if (kPlant != 13) __syncthreads();
  return r;
}

constexpr int kValueRound = 8;

template <typename T, int kDims, int kRound = kValueRound>
void accumulate_values(float (&acc)[kDims], SArr<long long>& slot_s, SArr<float>& p_s, int n_keys,
                       GPtr<T> v_cache, size_t width, size_t head_offset, int tid, int head_dim) {
  for (int j0 = 0; kPlant == 5 ? j0 + kRound <= n_keys : j0 < n_keys; j0 += kRound) {
    float v[kRound][kDims];
    float p[kRound];
    for (int u = 0; u < kRound; ++u) {
      const int j = j0 + u;
      const long long sj = j < n_keys ? slot_s.ld(j) : -1;
      p[u] = sj >= 0 ? p_s.ld(j) : 0.f;
      const GPtr<T> v_row = v_cache + static_cast<size_t>(sj >= 0 ? sj : 0) * width + head_offset;
      for (int k = 0; k < kDims; ++k) {
        const int d = tid + k * kT;
        v[u][k] = sj >= 0 && d < head_dim ? to_float(v_row.ld(d, "v_cache")) : 0.f;
      }
    }
    for (int uu = 0; uu < kRound; ++uu) {
      const int u = kPlant == 15 && kDims != kDimsPerThread ? kRound - 1 - uu : uu;
      if (j0 + u < n_keys && slot_s.ld(j0 + u) >= 0) {
        for (int k = 0; k < kDims; ++k) {
          if (tid + k * kT < head_dim) {
            if (kPlant == 3 && kDims != kDimsPerThread) acc[k] = acc[k] + p[u] * v[u][k];
            else acc[k] = fmaf(p[u], v[u][k], acc[k]);
          }
        }
      }
    }
  }
}

template <typename T>
void combine_splits(GPtr<T> out_row, GPtr<float> base, int head_dim, int splits) {
  const size_t stride = static_cast<size_t>(head_dim) + (kPlant == 6 ? 1 : 2);
  auto load = [](GPtr<float> p) { return kPlant == 9 ? p.ld(0, "combine (plain load)") : __ldcg(p); };
  float m = -INFINITY;
  bool nan = false;
  for (int sp = 0; sp < splits; ++sp) {
    const float ms = load(base + sp * stride);
    if (isnan(ms)) nan = true;
    else m = fmaxf(m, ms);
  }
  if (nan || m == -INFINITY) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out_row.st(d, from_float<T>(quiet_nan()), "out (combine NaN)");
    return;
  }
  float total = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    const float ms = load(base + sp * stride);
    if (ms != -INFINITY) total += load(base + sp * stride + 1) * __expf(ms - m);
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0.f;
    for (int sp = 0; sp < splits; ++sp) {
      const float ms = load(base + sp * stride);
      if (ms != -INFINITY) a += load(base + sp * stride + 2 + d) * __expf(ms - m);
    }
    out_row.st(d, from_float<T>(a / total), "out (combine)");
  }
}

template <typename T, int kHeadDim>
void split_attention_kernel(GPtr<T> out, GPtr<float> partial, GPtr<int> counters, GPtr<T> q, GPtr<T> k_cache,
                            GPtr<T> v_cache, GPtr<int32_t> block_tables, GPtr<int32_t> query_start,
                            GPtr<int32_t> query_count, GPtr<int32_t> context_len, int num_seqs, int heads,
                            int head_dim_arg, int block_size, int max_blocks, int num_blocks, float scale, int splits,
                            int split_len, bool vec) {
  static_assert(kHeadDim == 0 || (kHeadDim % kT == 0 && kHeadDim <= kMaxHeadDim), "whole dimensions per thread");
  constexpr int kDims = kHeadDim > 0 ? kHeadDim / kT : kDimsPerThread;
  constexpr int kRound = kHeadDim > 0 ? 16 : kValueRound;
  const int head_dim = kHeadDim > 0 ? kHeadDim : head_dim_arg;
  SHARED(float, q_s, kMaxHeadDim);
  SHARED(float, p_s, kT);
  SHARED(long long, slot_s, kT);
  SHARED(float, red_s, kT / kWarp);
  SHARED(int, seq_s, 1);
  SHARED(int, bad_s, 1);
  chain_start();
  chain_wait();

  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const int sp = blockIdx.z;
  const int tid = threadIdx.x;
  const int width = heads * head_dim;
  GPtr<float> part = partial.null()
      ? GPtr<float>()
      : partial + ((static_cast<size_t>(row) * heads + h) * splits + sp) * static_cast<size_t>(head_dim + 2);

  // 1. The sequence that owns this row.
  if (tid == 0) {
    seq_s.st(0, -1);
    bad_s.st(0, 0);
  }
  __syncthreads();
  for (int s = tid; s < num_seqs; s += kT) {
    const long long offset = static_cast<long long>(row) - query_start.ld(s, "query_start");
    if (offset >= 0 && offset < query_count.ld(s, "query_count")) {
      if (kPlant == 12) seq_s.st(0, s);
      else seq_s.atomic_max(0, s);
    }
  }
  __syncthreads();
  const int s = seq_s.ld(0);
  if (s < 0) {
    if (!part.null() && tid == 0) part.st(1, -1.f, "part[1] (unowned)");
    return;
  }
  GPtr<T> out_row = out + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  const int count = query_count.ld(s, "query_count");
  const int context = context_len.ld(s, "context_len");
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    if (!part.null() && counters.null()) {
      if (tid == 0) {
        part.st(0, quiet_nan(), "part[0] (inconsistent)");
        part.st(1, 0.f, "part[1] (inconsistent)");
      }
    } else if (part.null() || sp == 0) {
      for (int d = tid; d < head_dim; d += kT) out_row.st(d, from_float<T>(quiet_nan()), "out (inconsistent)");
    }
    if (kPlant == 7 && !counters.null() && sp % 2 == 1 && tid == 0)
      emu::atomicAdd(counters + static_cast<size_t>(row) * heads + h, 1);
    return;
  }
  const int visible = context - count + (row - query_start.ld(s, "query_start")) + 1;
  const int begin = sp * split_len;
  const int end = min(visible, begin + split_len);

  // 2. The query, scaled, as float.
  const GPtr<T> q_row = q + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  for (int d = tid; d < head_dim; d += kT) q_s.st(d, to_float(q_row.ld(d, "q")) * scale);
  __syncthreads();

  const GPtr<int32_t> table = block_tables + static_cast<size_t>(s) * max_blocks;
  const size_t head_offset = static_cast<size_t>(h) * head_dim;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  float running_max = -INFINITY;
  float running_sum = 0.f;
  float acc[kDims];
  for (int k = 0; k < kDims; ++k) acc[k] = 0.f;

  for (int tile = begin; tile < end; tile += kT) {
    // 3a. One key per thread: its slot and score.
    const int key = tile + tid;
    float score = -INFINITY;
    long long slot = -1;
    if (key < end) {
      slot = kv_slot(table, key, block_size, num_blocks);
      if (slot >= 0) {
        const GPtr<T> k_row = k_cache + static_cast<size_t>(slot) * width + head_offset;
        float dot = 0.f;
        if (kHeadDim > 0) {
          for (int d = 0; d < kHeadDim; d += kVec) dot += dot16(k_row + d, q_s + d);
        } else if (vec) {
          for (int d = 0; d < head_dim; d += kVec) dot += dot16(k_row + d, q_s + d);
        } else {
          for (int d = 0; d < head_dim; ++d) dot += to_float(k_row.ld(d, "k_cache")) * q_s.ld(d);
        }
        score = dot;
        if (isnan(dot)) bad_s.st(0, 1);
      } else {
        bad_s.st(0, 1);
      }
    }
    slot_s.st(tid, slot);

    // 3b. Online softmax over the tile: two block reductions.
    const float new_max = fmaxf(running_max, tile_reduce(score, red_s, MaxOp()));
    const float weight = (slot >= 0 && new_max != -INFINITY) ? __expf(score - new_max) : 0.f;
    p_s.st(tid, weight);
    const float sum = tile_reduce(weight, red_s, SumOp());
    const float correction = running_max == -INFINITY ? 0.f : __expf(running_max - new_max);
    running_sum = running_sum * correction + sum;
    for (int k = 0; k < kDims; ++k) acc[k] *= correction;

    // 3c. Values.
    accumulate_values<T, kDims, kRound>(acc, slot_s, p_s, min(kT, end - tile), v_cache, width, head_offset, tid,
                                        head_dim);
    running_max = new_max;
    if (kPlant != 4) __syncthreads();
  }
  __syncthreads();
  const bool bad = bad_s.ld(0) != 0;

  // 4. One split: normalise and store. Several: leave the pieces to the combine kernel.
  if (part.null()) {
    for (int k = 0; k < kDims; ++k) {
      const int d = tid + k * kT;
      if (d < head_dim) out_row.st(d, from_float<T>(bad ? quiet_nan() : acc[k] / running_sum), "out (1 split)");
    }
  } else {
    if (tid == 0) {
      part.st(0, bad ? quiet_nan() : running_max, "part[0]");
      part.st(1, running_sum, "part[1]");
    }
    for (int k = 0; k < kDims; ++k) {
      const int d = tid + k * kT;
      if (d < head_dim) part.st(2 + d, acc[k], "part[2 + d]");
    }
    if (!counters.null() && !(kPlant == 2 && !(begin < end))) {
      // 5. Inline combine.
      SHARED(bool, last_s, 1);
      if (kPlant != 8) __threadfence();
      __syncthreads();
      GPtr<int> counter = counters + static_cast<size_t>(row) * heads + h;
      if (tid == 0) last_s.st(0, emu::atomicAdd(counter, 1) == splits - 1);
      if (kPlant != 10) __syncthreads();
      if (last_s.ld(0)) {
        __threadfence();
        const GPtr<float> base = partial + (static_cast<size_t>(row) * heads + h) * splits * static_cast<size_t>(head_dim + 2);
        combine_splits(out_row, base, head_dim, splits);
        if (tid == 0 && kPlant != 1) counter.st(0, 0, "counter reset");
      }
    }
  }
}

template <typename T>
void split_combine_kernel(GPtr<T> out, GPtr<float> partial, int heads, int head_dim, int splits) {
  chain_start();
  chain_wait();
  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const GPtr<float> base = partial + (static_cast<size_t>(row) * heads + h) * splits * (static_cast<size_t>(head_dim) + 2);
  if (__ldcg(base + 1) < 0.f) return;
  GPtr<T> out_row = out + static_cast<size_t>(row) * heads * head_dim + static_cast<size_t>(h) * head_dim;
  combine_splits(out_row, base, head_dim, splits);
}

// ---- launcher ----
int g_sm_count = 132;
int sm_count() { return g_sm_count; }

// What the launcher chose (emulation only: read by the checks).
struct Choice {
  int splits = 0, split_len = 0, variant = -1, combine_threads = 0;  // variant: kHeadDim of the kernel
  bool vec = false, inline_merge = false, partial = false;
};
Choice g_choice;
bool g_force_generic = false;  // emulation only: take <T, 0> where the launcher would take <T, 64> / <T, 128>
bool g_dry_run = false;        // emulation only: record the choices, launch nothing

template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t, int, Args... args) {
  emu::run_grid(grid, block.x, 0, [=] { kernel(static_cast<Params>(args)...); });
  return kSuccess;
}

// attention_grouped.cu's side of the launcher. The grouped kernel is ../emu_grouped's scope: here the launcher's
// choice of it is copied, and a launch of it is an error (emu_split passes options 0 and 1 only).
bool grouped_split_applies(int head_dim, size_t element_bytes, uintptr_t q, uintptr_t k_cache, uintptr_t v_cache) {
  constexpr uintptr_t kAlign = 16;
  return element_bytes == 2 && (head_dim == 64 || head_dim == 128) && q % kAlign == 0 && k_cache % kAlign == 0 &&
         v_cache % kAlign == 0;
}
template <typename T>
bool grouped_split_applies(int head_dim, size_t element_bytes, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache) {
  return grouped_split_applies(head_dim, element_bytes, q.addr(), k_cache.addr(), v_cache.addr());
}
template <typename T>
int launch_grouped_split(GPtr<T>, GPtr<float>, GPtr<T>, GPtr<T>, GPtr<T>, GPtr<int32_t>, GPtr<int32_t>,
                         GPtr<int32_t>, GPtr<int32_t>, int, int, int, int, int, int, int, float, int, int, int) {
  emu::g_log.add("launch_split_attention took the grouped kernel (OPT_ATTENTION_GROUPED: emu_grouped's scope)");
  return kSuccess;
}

template <typename T>
int launch_split_attention(GPtr<T> out, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache, GPtr<int32_t> block_tables,
                           GPtr<int32_t> query_start, GPtr<int32_t> query_count, GPtr<int32_t> context_len,
                           int num_seqs, int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                           int num_blocks, float scale, GPtr<float> workspace, size_t workspace_bytes,
                           int options, int stream) {
  g_choice = Choice();
  if (num_seqs < 0 || total_queries < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || head_dim > kMaxHeadDim || heads > 65535 ||
      (options & ~(OPT_ATTENTION_INLINE_COMBINE | OPT_ATTENTION_GROUPED)) != 0) {
    return kInvalidValue;
  }
  if (num_seqs == 0 || total_queries == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  if (static_cast<long long>(max_blocks) * block_size > (1LL << 30)) return kInvalidValue;
  const long long max_context = static_cast<long long>(max_blocks) * block_size;
  const long long tiles = max_context < kT ? 1 : (max_context + kT - 1) / kT;
  const long long pairs = static_cast<long long>(total_queries) * heads;
  long long splits = 1;
  if (!workspace.null() && workspace_bytes > kCounterBytes) {
    splits = (4LL * sm_count() + pairs - 1) / pairs;
    if (splits > tiles) splits = tiles;
    if (splits > 65535) splits = 65535;
    const size_t per_split = static_cast<size_t>(pairs) * (head_dim + 2) * sizeof(float);
    while (splits > 1 && per_split * static_cast<size_t>(splits) > workspace_bytes - kCounterBytes) --splits;
  }
  const long long split_len =
      kPlant == 14 ? (max_context + splits - 1) / splits : (tiles + splits - 1) / splits * kT;
  splits = max_context <= split_len ? 1 : (max_context + split_len - 1) / split_len;
  const int n_splits = static_cast<int>(splits);
  constexpr size_t kVecBytes = 16;
  const bool vec = (static_cast<size_t>(head_dim) * sizeof(T)) % kVecBytes == 0 && k_cache.addr() % kVecBytes == 0;
  GPtr<float> partial = n_splits > 1 ? workspace + static_cast<long long>(kCounterBytes / sizeof(float)) : GPtr<float>();
  bool grouped = false;
  if constexpr (sizeof(T) == 2) {
    grouped = (options & OPT_ATTENTION_GROUPED) != 0 && grouped_split_applies(head_dim, sizeof(T), q, k_cache, v_cache);
  }
  const bool inline_merge = !grouped && !partial.null() && (options & OPT_ATTENTION_INLINE_COMBINE) != 0 &&
                            (kPlant == 11 || pairs <= kCounters);
  GPtr<int> counters = inline_merge ? workspace.template as<int>() : GPtr<int>();
  const Dim3 grid(total_queries, heads, n_splits);
  auto kernel = split_attention_kernel<T, 0>;
  int variant = 0;
  if constexpr (sizeof(T) == 2) {
    if (vec && head_dim == 64) kernel = split_attention_kernel<T, 64>, variant = 64;
    if (vec && head_dim == 128) kernel = split_attention_kernel<T, 128>, variant = 128;
  }
  if (g_force_generic) kernel = split_attention_kernel<T, 0>, variant = 0;
  g_choice.splits = n_splits;
  g_choice.split_len = static_cast<int>(split_len);
  g_choice.variant = variant;
  g_choice.vec = vec;
  g_choice.inline_merge = inline_merge;
  g_choice.partial = !partial.null();
  if (g_dry_run) return kSuccess;  // (emulation only)
  ++emu::g_op;
  int st = kSuccess;
  if constexpr (sizeof(T) == 2) {
    if (grouped) {
      st = launch_grouped_split(out, partial, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                                num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                n_splits, static_cast<int>(split_len), stream);
    }
  }
  if (!grouped) {
    st = launch_chained(kernel, grid, Dim3(kT), 0, stream, out, partial, counters, q, k_cache, v_cache, block_tables,
                        query_start, query_count, context_len, num_seqs, heads, head_dim, block_size, max_blocks,
                        num_blocks, scale, n_splits, static_cast<int>(split_len), vec);
  }
  if (st == kSuccess && !partial.null() && !inline_merge) {
    g_choice.combine_threads = threads_for(head_dim, 256);
    st = launch_chained(split_combine_kernel<T>, Dim3(total_queries, heads), Dim3(threads_for(head_dim, 256)), 0,
                        stream, out, partial, heads, head_dim, n_splits);
  }
  return st;
}

}  // namespace opt

// ============================================================================================================
// Reference, cases, checks (Ty, Batch, the reference, fill_tables, check_ops' batches: ../emu_common/attention_ref.h)
// ============================================================================================================
#include "../emu_common/attention_ref.h"

namespace {
using emu::g_log;

// ---- the device memory of a case ---------------------------------------------------------------------------

constexpr size_t kWsBytes = 8u << 20;  // CudaOps' ATTENTION_WORKSPACE_BYTES
constexpr size_t kCounterBytes = 64 * 1024;
emu::GMem g_ws;  // one workspace for the whole run, as CudaOps keeps one: the counters must stay zero throughout

void poison_partials() { std::memset(g_ws.bytes.data() + kCounterBytes, 0xff, g_ws.bytes.size() - kCounterBytes); }
long long nonzero_counters() {
  long long n = 0;
  for (size_t i = 0; i < kCounterBytes / 4; ++i) {
    int c;
    std::memcpy(&c, &g_ws.bytes[i * 4], 4);
    n += c != 0;
  }
  return n;
}

struct Stats {
  long long cases = 0, launches = 0, rows = 0, nan_rows = 0, unwritten_rows = 0;
  double max_err = 0;      // check_ops' measure: |got - ref| / max(1, |ref|)
  double max_rel_head = 0; // relative to the (row, head)'s max |ref|
};
Stats g_stats[3];
long long g_variant_launches[3][3] = {};  // [dtype][0 / 64 / 128]
long long g_inline_launches = 0, g_combine_launches = 0, g_one_split_launches = 0, g_max_splits = 0;
long long g_bit_inline = 0, g_bit_fixed = 0;  // bit-for-bit comparisons made
long long g_counter_checks = 0;

template <class T>
struct Dev {  // one case's inputs on the "device"
  emu::GMem q, k, v, tab, qs, qc, cl;
};

template <class T>
void make_inputs(const Batch& b, std::mt19937& rng, float qstd, int nan_keys, bool misalign_k, Dev<T>& dv,
                 std::vector<float>& qf, std::vector<float>& kf, std::vector<float>& vf) {
  const int width = b.heads * b.head_dim;
  const size_t cache_rows = static_cast<size_t>(b.num_blocks) * b.block_size;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<T> qw(static_cast<size_t>(b.total_rows) * width), kw(cache_rows * width), vw(cache_rows * width);
  qf.resize(qw.size());
  kf.resize(kw.size());
  vf.resize(vw.size());
  for (size_t i = 0; i < qw.size(); ++i) qf[i] = Ty<T>::widen(qw[i] = Ty<T>::narrow(nd(rng) * qstd));
  for (size_t i = 0; i < kw.size(); ++i) kf[i] = Ty<T>::widen(kw[i] = Ty<T>::narrow(nd(rng)));
  for (size_t i = 0; i < vw.size(); ++i) vf[i] = Ty<T>::widen(vw[i] = Ty<T>::narrow(nd(rng)));
  for (int n = 0; n < nan_keys && cache_rows > 0; ++n) {
    const size_t at = (rng() % cache_rows) * width + rng() % width;
    kw[at] = Ty<T>::narrow(NAN);
    kf[at] = NAN;
  }
  auto put = [](emu::GMem& m, const char* name, const void* src, size_t bytes, uintptr_t addr, size_t lead) {
    m.init(name, bytes + lead, addr, false, 4);
    if (bytes) std::memcpy(m.bytes.data() + lead, src, bytes);
  };
  put(dv.q, "q", qw.data(), qw.size() * sizeof(T), 0x10000000, 0);
  // k_cache: sometimes one element past a 16-byte boundary (the launcher then takes no 16-byte loads)
  const size_t lead = misalign_k ? sizeof(T) : 0;
  put(dv.k, "k_cache", kw.data(), kw.size() * sizeof(T), 0x20000000, lead);
  put(dv.v, "v_cache", vw.data(), vw.size() * sizeof(T), 0x30000000, 0);
  put(dv.tab, "block_tables", b.tables.data(), b.tables.size() * 4, 0x40000000, 0);
  put(dv.qs, "query_start", b.query_start.data(), b.query_start.size() * 4, 0x50000000, 0);
  put(dv.qc, "query_count", b.query_count.data(), b.query_count.size() * 4, 0x60000000, 0);
  put(dv.cl, "context_len", b.context_len.data(), b.context_len.size() * 4, 0x70000000, 0);
}

template <class T>
std::vector<T> launch_once(const Batch& b, Dev<T>& dv, bool misalign_k, float ws_frac_unused, size_t ws_bytes,
                           bool ws_null, int inline_combine, T poison, int* status) {
  (void)ws_frac_unused;
  const int width = b.heads * b.head_dim;
  emu::GMem out;
  out.init("out", static_cast<size_t>(b.total_rows) * width * sizeof(T), 0x80000000, true, sizeof(T));
  out.once_from = 0;
  for (size_t i = 0; i < static_cast<size_t>(b.total_rows) * width; ++i) std::memcpy(&out.bytes[i * sizeof(T)], &poison, sizeof(T));
  using opt::GPtr;
  GPtr<T> k{&dv.k, misalign_k ? static_cast<long long>(sizeof(T)) : 0};
  const int before = static_cast<int>(emu::g_launch);
  *status = opt::launch_split_attention<T>(
      GPtr<T>{&out, 0}, GPtr<T>{&dv.q, 0}, k, GPtr<T>{&dv.v, 0}, GPtr<int32_t>{&dv.tab, 0},
      GPtr<int32_t>{&dv.qs, 0}, GPtr<int32_t>{&dv.qc, 0}, GPtr<int32_t>{&dv.cl, 0},
      static_cast<int>(b.query_count.size()), b.total_rows, b.heads, b.head_dim, b.block_size, b.max_blocks,
      b.num_blocks, b.scale, ws_null ? GPtr<float>() : GPtr<float>{&g_ws, 0}, ws_bytes, inline_combine, 0);
  const int grids = static_cast<int>(emu::g_launch) - before;
  Stats& st = g_stats[Ty<T>::idx];
  st.launches += grids;
  if (grids > 0) {
    g_variant_launches[Ty<T>::idx][opt::g_choice.variant == 0 ? 0 : opt::g_choice.variant == 64 ? 1 : 2]++;
    if (opt::g_choice.inline_merge) ++g_inline_launches;
    else if (opt::g_choice.partial) ++g_combine_launches;
    else ++g_one_split_launches;
    g_max_splits = std::max<long long>(g_max_splits, opt::g_choice.splits);
  }
  std::vector<T> got(static_cast<size_t>(b.total_rows) * width);
  if (!got.empty()) std::memcpy(got.data(), out.bytes.data(), got.size() * sizeof(T));
  return got;
}

// The launcher's choices, checked against what they must be (independently of how it computes them).
bool check_choice(const Batch& b, size_t ws_bytes, bool ws_null, int inline_combine, const char* label) {
  const opt::Choice& c = opt::g_choice;
  const long long max_context = static_cast<long long>(b.max_blocks) * b.block_size;
  const long long pairs = static_cast<long long>(b.total_rows) * b.heads;
  bool ok = true;
  auto fail = [&](const char* what) {
    ok = false;
    g_log.add("%s: launcher choice: %s (splits %d split_len %d)", label, what, c.splits, c.split_len);
  };
  if (c.splits < 1) fail("no splits");
  if (c.split_len % 64 != 0 || c.split_len <= 0) fail("split_len not a positive multiple of 64");
  if (static_cast<long long>(c.splits) * c.split_len < max_context) fail("the splits do not cover the table");
  if (c.splits > 1 && static_cast<long long>(c.splits - 1) * c.split_len >= max_context) fail("a split past the table");
  if (c.splits > 1 && ws_null) fail("splits without a workspace");
  if (c.splits > 1 && pairs * c.splits * (b.head_dim + 2) * 4 > static_cast<long long>(ws_bytes) - 65536)
    fail("partials past the workspace");
  if (c.splits > std::max(1LL, (4LL * opt::g_sm_count + pairs - 1) / pairs)) fail("more splits than 4 blocks per SM ask");
  if (c.inline_merge != (c.splits > 1 && inline_combine != 0 && pairs <= 16384)) fail("inline combine on/off");
  if (c.partial != (c.splits > 1)) fail("partials on/off");
  if (c.splits > 1 && !c.inline_merge && c.combine_threads != std::min(256, std::max(32, (b.head_dim + 31) / 32 * 32)))
    fail("combine kernel threads");
  return ok;
}

struct CaseOpts {
  float qstd = 1.f;
  int nan_keys = 0;
  bool misalign_k = false;
  size_t ws_bytes = kWsBytes;
  bool ws_null = false;
  int sm = 132;
};

long long g_failed_cases = 0;

template <class T>
bool run_case(const Batch& b, std::mt19937& rng, const CaseOpts& o, const std::string& label) {
  opt::g_sm_count = o.sm;
  Dev<T> dv;
  std::vector<float> qf, kf, vf;
  make_inputs<T>(b, rng, o.qstd, o.nan_keys, o.misalign_k, dv, qf, kf, vf);
  const long long errors_before = g_log.errors;
  const T poison = Ty<T>::narrow(1234.5f);
  std::vector<std::string> why;
  int status = 0;
  // 1. the inline combine (with a workspace), or one split (without)
  if (rng() % 2) poison_partials();
  const std::vector<T> a = launch_once<T>(b, dv, o.misalign_k, 0, o.ws_bytes, o.ws_null, 1, poison, &status);
  if (status != 0) why.push_back("launcher status " + std::to_string(status));
  const opt::Choice choice = opt::g_choice;
  check_choice(b, o.ws_bytes, o.ws_null, 1, label.c_str());
  ++g_counter_checks;
  if (const long long nz = nonzero_counters()) {
    why.push_back(std::to_string(nz) + " counters not zero after the inline launch");
    std::memset(g_ws.bytes.data(), 0, kCounterBytes);  // so later cases are not failed by this one
  }
  // 2. the combine kernel: the same bits
  if (choice.partial) {
    if (rng() % 2) poison_partials();
    const std::vector<T> c = launch_once<T>(b, dv, o.misalign_k, 0, o.ws_bytes, o.ws_null, 0, poison, &status);
    check_choice(b, o.ws_bytes, o.ws_null, 0, label.c_str());
    ++g_bit_inline;
    if (!same_bits(a, c)) why.push_back("inline combine != combine kernel (bits)");
    ++g_counter_checks;
    if (nonzero_counters()) why.push_back("counters not zero after the combine-kernel launch");
  }
  // 3. the head_dim kernels: the same bits as <T, 0>
  if (choice.variant != 0) {
    opt::g_force_generic = true;
    const std::vector<T> g = launch_once<T>(b, dv, o.misalign_k, 0, o.ws_bytes, o.ws_null, 1, poison, &status);
    opt::g_force_generic = false;
    ++g_bit_fixed;
    if (!same_bits(a, g)) why.push_back("<T," + std::to_string(choice.variant) + "> != <T,0> (bits)");
    ++g_counter_checks;
    if (nonzero_counters()) {
      why.push_back("counters not zero after the generic launch");
      std::memset(g_ws.bytes.data(), 0, kCounterBytes);
    }
  }
  // 4. numbers and rules
  std::vector<Want> want;
  std::vector<double> ref;
  reference(b, qf, kf, vf, want, ref);
  Stats& st = g_stats[Ty<T>::idx];
  ++st.cases;
  const int D = b.head_dim, width = b.heads * D;
  double case_err = 0;
  int bad_rows = 0;
  for (int row = 0; row < b.total_rows; ++row) {
    const T* r = &a[static_cast<size_t>(row) * width];
    if (want[row] == Want::Unwritten) {
      ++st.unwritten_rows;
      if (std::memcmp(r, std::vector<T>(width, poison).data(), width * sizeof(T)) != 0) ++bad_rows;
      continue;
    }
    if (want[row] == Want::NaN) {
      ++st.nan_rows;
      for (int j = 0; j < width; ++j)
        if (!std::isnan(Ty<T>::widen(r[j]))) { ++bad_rows; break; }
      continue;
    }
    ++st.rows;
    for (int h = 0; h < b.heads; ++h) {
      const double r0 = ref[static_cast<size_t>(row) * width + h * D];
      if (std::isnan(r0)) {  // a NaN score: the whole (row, head) NaN
        for (int d = 0; d < D; ++d)
          if (!std::isnan(Ty<T>::widen(r[h * D + d]))) { ++bad_rows; break; }
        continue;
      }
      double mx = 0, err_abs = 0;
      for (int d = 0; d < D; ++d) {
        const double rv = ref[static_cast<size_t>(row) * width + h * D + d];
        const double g = Ty<T>::widen(r[h * D + d]);
        if (!std::isfinite(g)) { err_abs = INFINITY; case_err = INFINITY; continue; }
        mx = std::max(mx, std::fabs(rv));
        err_abs = std::max(err_abs, std::fabs(g - rv));
        case_err = std::max(case_err, std::fabs(g - rv) / std::max(1.0, std::fabs(rv)));
      }
      st.max_rel_head = std::max(st.max_rel_head, err_abs / std::max(mx, 1e-30));
    }
  }
  st.max_err = std::max(st.max_err, std::isfinite(case_err) ? case_err : st.max_err);
  if (!(case_err <= Ty<T>::tol)) why.push_back("error " + std::to_string(case_err) + " > tol");
  if (bad_rows) why.push_back(std::to_string(bad_rows) + " rows break the NaN / unwritten rules");
  if (g_log.errors != errors_before) why.push_back(std::to_string(g_log.errors - errors_before) + " checker errors");
  if (!why.empty()) {
    if (++g_failed_cases <= 8) {
      std::string w;
      for (const auto& s : why) w += (w.empty() ? "" : "; ") + s;
      std::printf("  FAIL %s [splits %d split_len %d kernel <%s,%d> %s]: %s\n", label.c_str(), choice.splits,
                  choice.split_len, Ty<T>::name(), choice.variant,
                  choice.inline_merge ? "inline" : choice.partial ? "combine kernel" : "1 split", w.c_str());
    }
    return false;
  }
  return true;
}

// ---- batches ------------------------------------------------------------------------------------------------

// Random batches (attention_ref.h's random_batch): decode at batch 1 and 32, mixed prefill + decode rows; a table
// sometimes much wider than the contexts (a graph captured for a longer width); rule cases now and then.
Batch random_batch(std::mt19937& rng, int head_dim, int family) {
  static const BatchMix kMix = {pick_context, 32, 32, 4, {1, 1, 2, 5, 15, 16, 63, 64, 65, 130}, 300, {1024, 2048}, 12};
  return random_batch(rng, head_dim, family, kMix);
}

template <class T>
bool run_typed(const Batch& b, std::mt19937& rng, const CaseOpts& o, const std::string& label) {
  return run_case<T>(b, rng, o, label);
}
bool run_any(int dtype, const Batch& b, std::mt19937& rng, const CaseOpts& o, const std::string& label) {
  return dtype == 0 ? run_typed<float>(b, rng, o, label)
       : dtype == 1 ? run_typed<emu::Half>(b, rng, o, label)
                    : run_typed<emu::BF16>(b, rng, o, label);
}

// check_ops' rules check, literally: rows 0-2 and 7-22 finite, row 4 the poison, the others NaN; in each mode
// (1 split, splits, inline combine), and for the inline combine a second launch (partials poisoned) with the
// same words and the counters zero.
bool rules_exact(std::mt19937& rng) {
  const Batch b = rules_batch();
  Dev<emu::Half> dv;
  std::vector<float> qf, kf, vf;
  make_inputs<emu::Half>(b, rng, 1.f, 0, false, dv, qf, kf, vf);
  const emu::Half poison = Ty<emu::Half>::narrow(1234.5f);
  int wrong = 0;
  for (int mode : {1, 2, 6}) {
    opt::g_sm_count = 132;
    const long long errors_before = g_log.errors;
    int status = 0;
    const size_t ws = (static_cast<size_t>(1) << 20) * sizeof(float);
    const std::vector<emu::Half> out =
        launch_once<emu::Half>(b, dv, false, 0, mode >= 2 ? ws : 0, mode == 1, mode == 6, poison, &status);
    if (mode >= 2 && opt::g_choice.splits < 2) ++wrong;  // the batch must take several splits here
    if (mode == 6) {
      poison_partials();
      const std::vector<emu::Half> again = launch_once<emu::Half>(b, dv, false, 0, ws, false, 1, poison, &status);
      for (size_t i = 0; i < out.size(); ++i) {
        const float x = Ty<emu::Half>::widen(out[i]), y = Ty<emu::Half>::widen(again[i]);
        wrong += out[i].x != again[i].x && !(std::isnan(x) && std::isnan(y));
      }
      wrong += static_cast<int>(nonzero_counters());
    }
    for (int row = 0; row < b.total_rows; ++row)
      for (int j = 0; j < b.heads * b.head_dim; ++j) {
        const emu::Half w = out[static_cast<size_t>(row) * b.heads * b.head_dim + j];
        const float v = Ty<emu::Half>::widen(w);
        if (row <= 2 || (row >= 7 && row <= 22)) wrong += !std::isfinite(v);
        else if (row == 4) wrong += w.x != poison.x;
        else wrong += !std::isnan(v);
      }
    wrong += static_cast<int>(g_log.errors - errors_before);
  }
  std::printf("check_ops rules batch (1 split, splits, inline + second launch): %s (%d wrong)\n",
              wrong == 0 ? "ok" : "FAIL", wrong);
  return wrong == 0;
}

// A few of the launcher's size checks.
bool validation() {
  int wrong = 0;
  emu::GMem dummy;
  dummy.init("dummy", 64, 0x90000000, false, 4);
  using opt::GPtr;
  auto call = [&](int num_seqs, int total, int heads, int head_dim, int bs, int max_blocks, int num_blocks,
                  int options = 1) {
    const uint32_t launches = emu::g_launch;
    const int st = opt::launch_split_attention<emu::Half>(
        GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0},
        GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0},
        num_seqs, total, heads, head_dim, bs, max_blocks, num_blocks, 0.125f, GPtr<float>{&g_ws, 0}, kWsBytes,
        options, 0);
    if (emu::g_launch != launches) ++wrong;  // none of these may launch
    return st;
  };
  wrong += call(1, 1, 1, 257, 16, 1, 1) != 1;
  wrong += call(1, 1, 1, 64, 16, 1, 1, 4) != 1;   // options: bits other than inline combine and grouped
  wrong += call(1, 1, 1, 64, 16, 1, 1, -1) != 1;
  wrong += call(1, 1, 65536, 64, 16, 1, 1) != 1;
  wrong += call(1, 1, 1, 64, 0, 1, 1) != 1;
  wrong += call(1, 1, 1, 64, 1 << 16, (1 << 14) + 1, 1) != 1;
  wrong += call(-1, 1, 1, 64, 16, 1, 1) != 1;
  wrong += call(0, 1, 1, 64, 16, 1, 1) != 0;
  wrong += call(1, 0, 1, 64, 16, 1, 1) != 0;
  wrong += call(1, 1, 1, 0, 16, 1, 1) != 0;
  std::printf("launcher size checks: %s\n", wrong == 0 ? "ok" : "FAIL");
  return wrong == 0;
}

// The launcher's choices for OPT's decode shapes (printed for the report; the launcher copy, nothing launched).
void print_choices() {
  std::printf("launcher choices, decode (block 16, workspace 8 MiB): splits x split_len <kernel> [inline]\n");
  struct S { const char* model; int heads, hd, batch, max_blocks; };
  const S shapes[] = {{"125m", 12, 64, 1, 128}, {"1.3b", 32, 64, 1, 128}, {"1.3b", 32, 64, 32, 128},
                      {"2.7b", 32, 80, 1, 128}, {"6.7b", 32, 128, 1, 128}, {"6.7b", 32, 128, 8, 128},
                      {"1.3b", 32, 64, 1, 16}};
  emu::GMem k;
  k.init("k", 16, 0x20000000, false, 4);
  using opt::GPtr;
  opt::g_dry_run = true;
  for (int sm : {132, 8, 1024}) {
    std::printf("  SMs %4d:", sm);
    for (const S& s : shapes) {
      opt::g_sm_count = sm;
      opt::launch_split_attention<emu::Half>(
          GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0},
          GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, s.batch, s.batch,
          s.heads, s.hd, 16, s.max_blocks, 1, 0.125f, GPtr<float>{&g_ws, 0}, kWsBytes, 1, 0);
      const opt::Choice& c = opt::g_choice;
      std::printf(" %s b%d ctx%d %dx%d<%d>%s;", s.model, s.batch, s.max_blocks * 16, c.splits, c.split_len, c.variant,
                  c.inline_merge ? "i" : "");
    }
    std::printf("\n");
  }
  opt::g_dry_run = false;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 400;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261127u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_split: attention_split.cu emulated, %d random cases, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  bool conv_ok = true;
#ifdef CUDA_HOST_CONVERSIONS
  conv_ok = emu::check_conversions(7);
#endif
  g_ws.init("workspace", kWsBytes, 0xa0000000, true, 4);  // zeroed once, as the contract asks
  g_ws.fresh_from = kCounterBytes;
  g_ws.once_from = kCounterBytes;
  g_ws.atomic_end = kCounterBytes;
  poison_partials();
  if (kPlant == 0) print_choices();
  bool ok = validation();
  ok &= rules_exact(rng);
  int ran = 0, failed = 0;
  // check_ops' attention batch, its heads / head dims, each dtype (workspace 4 MiB as check_ops, SMs 132)
  for (int dtype = 0; dtype < 3; ++dtype) {
    for (auto hd : {std::make_pair(3, 64), std::make_pair(2, 80), std::make_pair(2, 128), std::make_pair(1, 256),
                    std::make_pair(4, 17)}) {
      const Batch b = check_ops_batch(rng, hd.first, hd.second);
      CaseOpts o;
      o.qstd = 2.f;
      o.ws_bytes = (static_cast<size_t>(1) << 20) * sizeof(float);
      const std::string label = "check_ops batch " + std::string(dtype == 0 ? "f32" : dtype == 1 ? "f16" : "bf16") +
                                " heads " + std::to_string(hd.first) + " D=" + std::to_string(hd.second);
      ++ran;
      failed += !run_any(dtype, b, rng, o, label);
    }
  }
  // the counter boundary: 8192 decode rows x 2 heads = 16384 (row, head) pairs (inline, every counter used) and
  // 8193 x 2 (over: the combine kernel), with an SM count large enough to split them. head_dim 17: at 64, two
  // splits of 16384 pairs would not fit in 8 MiB (the launcher would take one split and never reach the limit).
  if (cases >= 100 || kPlant == 11) {
    for (int rows : {8192, 8193}) {
      Batch b;
      b.kind = "counter boundary";
      b.heads = 2;
      b.head_dim = 17;
      b.block_size = 16;
      for (int s = 0; s < rows; ++s) {
        b.query_start.push_back(s);
        b.query_count.push_back(1);
        b.context_len.push_back(1 + static_cast<int>(rng() % 80));
      }
      b.total_rows = rows;
      b.max_blocks = 6;
      fill_tables(b, rng, 2);
      b.scale = 0.125f;
      CaseOpts o;
      o.sm = 8192;
      ++ran;
      failed += !run_any(1, b, rng, o, "counter boundary rows " + std::to_string(rows) + " heads 2 SMs 8192");
    }
  }
  // random cases
  for (int c = 0; c < cases; ++c) {
    const int dtype = rng() % 4 == 0 ? 0 : rng() % 3 == 0 ? 2 : 1;  // f16 most
    static const int kDims[] = {64, 64, 64, 128, 128, 128, 17, 80, 256};
    const int d = kDims[rng() % 9];
    const int family = static_cast<int>(rng() % 3);
    const Batch b = random_batch(rng, d, family);
    CaseOpts o;
    static const int kSms[] = {132, 132, 132, 8, 1024, 1, 78};
    o.sm = kSms[rng() % 7];
    o.qstd = std::vector<float>{0.5f, 1.f, 2.f, 4.f}[rng() % 4];
    o.nan_keys = rng() % 12 == 0 ? 1 : 0;
    o.misalign_k = rng() % 10 == 0;
    const unsigned w = rng() % 10;
    o.ws_bytes = w < 5 ? kWsBytes : w < 7 ? (static_cast<size_t>(1) << 22) : w < 8 ? kCounterBytes
               : kCounterBytes + 4096 + rng() % 60000;  // small: the split count cut to what fits
    o.ws_null = w == 9 && rng() % 2;
    char label[200];
    int rows = 0;
    for (int n : b.query_count) rows += n;
    std::snprintf(label, sizeof label, "case %d: %s %s D=%d heads=%d bs=%d seqs=%zu rows=%d width=%d SMs=%d ws=%zu%s%s%s",
                  c, dtype == 0 ? "f32" : dtype == 1 ? "f16" : "bf16", b.kind.c_str(), d, b.heads, b.block_size,
                  b.query_count.size(), rows, b.max_blocks * b.block_size, o.sm, o.ws_null ? 0 : o.ws_bytes,
                  o.nan_keys ? " NaN-key" : "", o.misalign_k ? " k-misaligned" : "", "");
    ++ran;
    failed += !run_any(dtype, b, rng, o, label);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %6s %8s %8s %9s %10s %14s %18s\n", "dtype", "cases", "launches", "rows", "NaN rows",
              "unwritten", "max err (ops)", "max rel (row,head)");
  for (int i = 0; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %6lld %8lld %8lld %9lld %10lld %14.3g %18.3g\n", i == 0 ? "f32" : i == 1 ? "f16" : "bf16",
                s.cases, s.launches, s.rows, s.nan_rows, s.unwritten_rows, s.max_err, s.max_rel_head);
  }
  std::printf("attention launches by kernel: f16 <0>/<64>/<128> %lld/%lld/%lld, bf16 %lld/%lld/%lld, f32 <0> %lld "
              "(<64>/<128>: %lld/%lld)\n",
              g_variant_launches[1][0], g_variant_launches[1][1], g_variant_launches[1][2], g_variant_launches[2][0],
              g_variant_launches[2][1], g_variant_launches[2][2], g_variant_launches[0][0], g_variant_launches[0][1],
              g_variant_launches[0][2]);
  std::printf("inline combine %lld, combine kernel %lld, one split %lld launches; most splits %lld; bit-for-bit "
              "comparisons: inline = combine kernel %lld, <T,64|128> = <T,0> %lld; counter checks %lld\n",
              g_inline_launches, g_combine_launches, g_one_split_launches, g_max_splits, g_bit_inline, g_bit_fixed,
              g_counter_checks);
  std::printf("checker errors (races, uninitialised reads, bounds, visibility, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  const bool pass = ok && failed == 0 && g_log.errors == 0 && conv_ok && (g_variant_launches[0][1] + g_variant_launches[0][2] == 0);
  std::printf("%s: %d of %d cases failed (%.1f s)%s\n", pass ? "PASS" : "FAIL", failed, ran, secs,
              conv_ok ? "" : " (conversions differ from CUDA's)");
  return pass ? 0 : 1;
}
