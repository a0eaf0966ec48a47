// emu_grouped: a CPU emulation of native/src/attention_grouped.cu (grouped_split_kernel, opt_attention_split with
// OPT_ATTENTION_GROUPED), thread by thread and block by block, against an independent double-precision reference of
// causal paged attention. See README.md beside this file.
//
// What is modelled, as the source files are written (same names, same statements, in the same order):
//   - the launcher (launch_split_attention of attention_split.cu): the split count from the SM count and the table
//     width, split_len, the workspace layout (64 KiB of counters, then the partials), the grouped choice
//     (grouped_split_applies: fp16/bf16, head_dim 64/128, q and both caches 16-byte aligned), inline_merge off for
//     the grouped kernel, and the second launch of split_combine_kernel. Where it falls back to
//     split_attention_kernel (../emu_split's scope) the emulation records the fallback and launches nothing;
//   - grouped_split_kernel<T, 64|128> with 128 threads a block, and split_combine_kernel / combine_splits;
//   - every thread a coroutine (../emu_common/emu.h); __syncthreads a block barrier; __shfl_xor_sync a collective of
//     the 32 lanes of a warp, each lane reading lane ^ offset (the group reduction's offsets kLanes/2 .. 1);
//     atomicMax on shared seq_s; threads switch in a random order at barriers, shuffles, atomics and (at random)
//     global accesses; 1 .. 128 blocks resident at once, dispatched in random orders; per-thread store buffers;
//   - __expf as exp rounded to float, fmaf exact, IEEE division, fp16/bf16 round to nearest even (storage.h).
// Checks: shared-memory races (a write and another thread's access in one barrier interval; bad_s = 1 by several
// writers allowed), reads of shared elements never written (m_s, acc_s, seq_s, bad_s), bounds of every shared and
// global access, 16-byte alignment of the uint4 loads (q, k_cache, v_cache rows) against the emulated device
// address, table reads past the table, out / partial elements written twice in one call, partials read that the
// call did not write; the numbers against the reference (check_ops' measure, 1e-2 f16, 4e-2 bf16); the rules
// (unowned rows keep their poison, inconsistent rows and rows reaching a bad block id are NaN, a NaN score makes
// its (row, head) NaN); the same bits from two runs with different schedules; the launcher's choices.
// Not modelled: nvcc's contraction of a*b + c into fma (-ffp-contract=off here), the exact bits of __expf, timing,
// registers, chained launches (PDL: no-ops), real lockstep inside a warp (no statement relies on it).
//
// Build and run (from the repository root):
//   g++ -O2 -std=c++17 -ffp-contract=off native/dev/emu_grouped/emu_grouped.cpp -o target/emu_grouped
//   target/emu_grouped [cases=200] [seed]
// Planted bugs: add -DPLANT=N (N = 1 .. 16, see kPlant below); each must end in FAIL.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none), mutations of the copied kernel and launcher:
//   1: the group reduction's xor offsets start at kLanes (the first step adds another group's partial dot)
//   2: the group reduction stops at offset 2 (lanes keep half sums: the last xor step missing)
//   3: no correction rescale of acc when a round raises the group's running max
//   4: the group merge does not rescale to the block max (factor 1 for every group with keys)
//   5: no __syncthreads between the block-max reads of m_s and its overwrite with the sums
//   6: a group's key index off by one group (base + (i + 1) * kGroups + group: a split's first kGroups keys lost)
//   7: the bad flag is not set for a bad block id (slot -1)
//   8: keys past the range score 0 (their zero key row) and add their weight to the sum
//   9: the partial record of (row, head, split) at ((row * splits + sp) * heads + h), not the combine kernel's slot
//  10: q not multiplied by scale
//  11: the value chunks loaded from k_cache instead of v_cache
//  12: no __syncthreads between the m_s writes (each group's max) and the block-max reads
//  13: acc_s written transposed within a group ([group][e * kLanes + lane] instead of [group][lane * kVec + e])
//  14: thread 0 does not reset bad_s at the start
//  15: launcher: grouped_split_applies without the q alignment check
//  16: rows no sequence owns return without marking their partial record (part[1] = -1)
constexpr int kPlant = PLANT;

#include "../emu_common/emu.h"

#define __syncthreads() emu::syncthreads(__LINE__)
#define __shfl_xor_sync(mask, v, off) emu::shfl_xor(mask, v, off, __LINE__)
#define __expf(x) emu::expf_(x)
#define __ldcg(p) emu::ldcg(p)

#include "../emu_common/common_cuh.h"

#define OPT_ATTENTION_INLINE_COMBINE 1  // opt_kernels.h
#define OPT_ATTENTION_GROUPED 2

// ============================================================================================================
// The kernel files, as attention_grouped.cu and attention_split.cu write them. T* → GPtr<T>, uint4 → V16,
// __shared__ arrays → SArr (ld / st; 2-D arrays flattened row-major).
// ============================================================================================================
namespace opt {
// common.cuh
long long kv_slot(GPtr<int32_t> table, int key, int block_size, int num_blocks) {
  const int block = table.ld(key / block_size, "block_tables");
  return block >= 0 && block < num_blocks ? static_cast<long long>(block) * block_size + key % block_size : -1;
}
using std::isnan;
using std::min;
float fmaxf(float a, float b) { return std::fmax(a, b); }  // NaN loses, as CUDA's
float quiet_nan() { return emu::bitsf(0x7fc00000u); }

// ---- attention_split.cu: the combine kernel ----
constexpr int kMaxHeadDim = 256;
constexpr int kT = 64;
constexpr size_t kCounterBytes = 64 * 1024;
constexpr long long kCounters = static_cast<long long>(kCounterBytes / sizeof(int));

template <typename T>
void combine_splits(GPtr<T> out_row, GPtr<float> base, int head_dim, int splits) {
  const size_t stride = static_cast<size_t>(head_dim) + 2;
  float m = -INFINITY;
  bool nan = false;
  for (int sp = 0; sp < splits; ++sp) {
    const float ms = __ldcg(base + sp * stride);
    if (isnan(ms)) nan = true;
    else m = fmaxf(m, ms);
  }
  if (nan || m == -INFINITY) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out_row.st(d, from_float<T>(quiet_nan()), "out (combine NaN)");
    return;
  }
  float total = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    const float ms = __ldcg(base + sp * stride);
    if (ms != -INFINITY) total += __ldcg(base + sp * stride + 1) * __expf(ms - m);
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float a = 0.f;
    for (int sp = 0; sp < splits; ++sp) {
      const float ms = __ldcg(base + sp * stride);
      if (ms != -INFINITY) a += __ldcg(base + sp * stride + 2 + d) * __expf(ms - m);
    }
    out_row.st(d, from_float<T>(a / total), "out (combine)");
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

// ---- attention_grouped.cu ----
constexpr int kThreads = 128;
constexpr int kKeys = 4;

void widen8(const V16& u, float (&f)[8], const Half*) {
  uint16_t h[8];
  std::memcpy(h, u.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float p_x = emu::half_to_float(h[2 * i]), p_y = emu::half_to_float(h[2 * i + 1]);  // __half22float2
    f[2 * i] = p_x;
    f[2 * i + 1] = p_y;
  }
}
void widen8(const V16& u, float (&f)[8], const BF16*) {
  uint16_t h[8];
  std::memcpy(h, u.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float p_x = emu::bf16_to_float(h[2 * i]), p_y = emu::bf16_to_float(h[2 * i + 1]);  // __bfloat1622float2
    f[2 * i] = p_x;
    f[2 * i + 1] = p_y;
  }
}

template <typename T, int kHeadDim>
void grouped_split_kernel(GPtr<T> out, GPtr<float> partial, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache,
                          GPtr<int32_t> block_tables, GPtr<int32_t> query_start, GPtr<int32_t> query_count,
                          GPtr<int32_t> context_len, int num_seqs, int heads, int block_size, int max_blocks,
                          int num_blocks, float scale, int splits, int split_len) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  constexpr int kLanes = kHeadDim / kVec;
  constexpr int kGroups = kThreads / kLanes;
  constexpr int kRoundKeys = kGroups * kKeys;
  static_assert(kVec == 8 && kWarp % kLanes == 0 && kThreads % kLanes == 0, "16-byte chunks, groups inside warps");
  SHARED(float, m_s, kGroups);
  SHARED(float, acc_s, kGroups * kHeadDim);  // acc_s[g][d] at g * kHeadDim + d
  SHARED(int, seq_s, 1);
  SHARED(int, bad_s, 1);
  chain_start();
  chain_wait();

  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const int sp = blockIdx.z;
  const int tid = threadIdx.x;
  const int group = tid / kLanes;
  const int lane = tid % kLanes;
  const int width = heads * kHeadDim;
  GPtr<float> part = partial.null()
      ? GPtr<float>()
      : partial + (kPlant == 9 ? (static_cast<size_t>(row) * splits + sp) * heads + h
                               : (static_cast<size_t>(row) * heads + h) * splits + sp) *
                      static_cast<size_t>(kHeadDim + 2);
  const size_t head_offset = static_cast<size_t>(h) * kHeadDim + static_cast<size_t>(lane) * kVec;

  const V16 q_raw = q.ld16(static_cast<size_t>(row) * width + head_offset, "q (uint4)");

  // 1. The sequence that owns this row.
  if (tid == 0) {
    seq_s.st(0, -1);
    if (kPlant != 14) bad_s.st(0, 0);
  }
  __syncthreads();
  for (int s = tid; s < num_seqs; s += kThreads) {
    const long long offset = static_cast<long long>(row) - query_start.ld(s, "query_start");
    if (offset >= 0 && offset < query_count.ld(s, "query_count")) seq_s.atomic_max(0, s);
  }
  __syncthreads();
  const int s = seq_s.ld(0);
  if (s < 0) {
    if (!part.null() && tid == 0 && kPlant != 16) part.st(1, -1.f, "part[1] (unowned)");
    return;
  }
  GPtr<T> out_row = out + static_cast<size_t>(row) * width + static_cast<size_t>(h) * kHeadDim;
  const int count = query_count.ld(s, "query_count");
  const int context = context_len.ld(s, "context_len");
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    if (!part.null()) {
      if (tid == 0) {
        part.st(0, quiet_nan(), "part[0] (inconsistent)");
        part.st(1, 0.f, "part[1] (inconsistent)");
      }
    } else {
      for (int d = tid; d < kHeadDim; d += kThreads) out_row.st(d, from_float<T>(quiet_nan()), "out (inconsistent)");
    }
    return;
  }
  const int visible = context - count + (row - query_start.ld(s, "query_start")) + 1;
  const int begin = sp * split_len;
  const int end = min(visible, begin + split_len);

  float qf[kVec];
  widen8(q_raw, qf, static_cast<const T*>(nullptr));
  for (int e = 0; e < kVec; ++e) qf[e] *= (kPlant == 10 ? 1.f : scale);

  const GPtr<int32_t> table = block_tables + static_cast<size_t>(s) * max_blocks;
  float running_max = -INFINITY;
  float running_sum = 0.f;
  float acc[kVec];
  for (int e = 0; e < kVec; ++e) acc[e] = 0.f;
  bool bad = false;

  // 2. Rounds.
  for (int base = begin; base < end; base += kRoundKeys) {
    long long slot[kKeys];
    V16 kr[kKeys];
    V16 vr[kKeys];
    for (int i = 0; i < kKeys; ++i) {
      const int key = base + (kPlant == 6 ? i + 1 : i) * kGroups + group;
      slot[i] = key < end ? kv_slot(table, key, block_size, num_blocks) : -2;
    }
    for (int i = 0; i < kKeys; ++i) {
      if (slot[i] >= 0) {
        const size_t at = static_cast<size_t>(slot[i]) * width + head_offset;
        kr[i] = k_cache.ld16(at, "k_cache (uint4)");
        vr[i] = (kPlant == 11 ? k_cache : v_cache).ld16(at, "v_cache (uint4)");
      } else {
        kr[i] = V16{};
        vr[i] = V16{};
      }
    }
    float score[kKeys];
    float round_max = -INFINITY;
    for (int i = 0; i < kKeys; ++i) {
      float kf[kVec];
      widen8(kr[i], kf, static_cast<const T*>(nullptr));
      float dot = 0.f;
      for (int e = 0; e < kVec; ++e) dot += kf[e] * qf[e];
      for (int offset = kPlant == 1 ? kLanes : kLanes / 2; offset > (kPlant == 2 ? 1 : 0); offset /= 2)
        dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if ((kPlant != 7 && slot[i] == -1) || (slot[i] >= 0 && isnan(dot))) bad = true;
      if (kPlant == 8) score[i] = slot[i] != -1 ? dot : -INFINITY;
      else score[i] = slot[i] >= 0 ? dot : -INFINITY;
      round_max = fmaxf(round_max, score[i]);
    }
    const float new_max = fmaxf(running_max, round_max);
    const float correction = running_max == -INFINITY ? 0.f : __expf(running_max - new_max);
    running_sum *= correction;
    if (kPlant != 3) {
      for (int e = 0; e < kVec; ++e) acc[e] *= correction;
    }
    for (int i = 0; i < kKeys; ++i) {
      if (kPlant == 8 ? slot[i] != -1 : slot[i] >= 0) {
        const float p = new_max == -INFINITY ? 0.f : __expf(score[i] - new_max);
        running_sum += p;
        float vf[kVec];
        widen8(vr[i], vf, static_cast<const T*>(nullptr));
        for (int e = 0; e < kVec; ++e) acc[e] = fmaf(p, vf[e], acc[e]);
      }
    }
    running_max = new_max;
  }
  if (bad) bad_s.st(0, 1);

  // 3. Merge the groups.
  if (lane == 0) m_s.st(group, running_max);
  if (kPlant != 12) __syncthreads();
  float block_max = -INFINITY;
  for (int g = 0; g < kGroups; ++g) block_max = fmaxf(block_max, m_s.ld(g));
  const float factor = running_max == -INFINITY ? 0.f : kPlant == 4 ? 1.f : __expf(running_max - block_max);
  for (int e = 0; e < kVec; ++e)
    acc_s.st(group * kHeadDim + (kPlant == 13 ? e * kLanes + lane : lane * kVec + e), acc[e] * factor);
  if (kPlant != 5) __syncthreads();
  if (lane == 0) m_s.st(group, running_sum * factor);
  __syncthreads();
  const bool row_bad = bad_s.ld(0) != 0;
  float total = 0.f;
  for (int g = 0; g < kGroups; ++g) total += m_s.ld(g);
  for (int d = tid; d < kHeadDim; d += kThreads) {
    float a = 0.f;
    for (int g = 0; g < kGroups; ++g) a += acc_s.ld(g * kHeadDim + d);
    if (part.null()) {
      out_row.st(d, from_float<T>(row_bad ? quiet_nan() : a / total), "out (1 split)");
    } else {
      part.st(2 + d, a, "part[2 + d]");
    }
  }
  if (!part.null() && tid == 0) {
    part.st(0, row_bad ? quiet_nan() : block_max, "part[0]");
    part.st(1, total, "part[1]");
  }
}

// ---- launches ----
int g_sm_count = 132;
int sm_count() { return g_sm_count; }

// What the launcher chose (emulation only: read by the checks).
struct Choice {
  int splits = 0, split_len = 0, combine_threads = 0, head_dim = 0;
  bool grouped = false, inline_merge = false, partial = false, fallback = false;
};
Choice g_choice;
bool g_dry_run = false;  // emulation only: record the choices, launch nothing
constexpr int kNotEmulated = -100;  // emulation only: the status of the per-key kernel's launch (not run here)

template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t, int, Args... args) {
  emu::run_grid(grid, block.x, 0, [=] { kernel(static_cast<Params>(args)...); });
  return kSuccess;
}

template <typename T>
int launch_grouped(GPtr<T> out, GPtr<float> partial, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache,
                   GPtr<int32_t> block_tables, GPtr<int32_t> query_start, GPtr<int32_t> query_count,
                   GPtr<int32_t> context_len, int num_seqs, int total_queries, int heads, int head_dim,
                   int block_size, int max_blocks, int num_blocks, float scale, int splits, int split_len,
                   int stream) {
  const Dim3 grid(total_queries, heads, splits);
  auto kernel = head_dim == 64 ? grouped_split_kernel<T, 64> : grouped_split_kernel<T, 128>;
  return launch_chained(kernel, grid, Dim3(kThreads), 0, stream, out, partial, q, k_cache, v_cache, block_tables,
                        query_start, query_count, context_len, num_seqs, heads, block_size, max_blocks, num_blocks,
                        scale, splits, split_len);
}

bool grouped_split_applies(int head_dim, size_t element_bytes, uintptr_t q, uintptr_t k_cache, uintptr_t v_cache) {
  constexpr uintptr_t kAlign = 16;
  return element_bytes == 2 && (head_dim == 64 || head_dim == 128) && (kPlant == 15 || q % kAlign == 0) &&
         k_cache % kAlign == 0 && v_cache % kAlign == 0;
}
template <typename T>
bool grouped_split_applies(int head_dim, size_t element_bytes, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache) {
  return grouped_split_applies(head_dim, element_bytes, q.addr(), k_cache.addr(), v_cache.addr());
}

template <typename T>
int launch_grouped_split(GPtr<T> out, GPtr<float> partial, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache,
                         GPtr<int32_t> block_tables, GPtr<int32_t> query_start, GPtr<int32_t> query_count,
                         GPtr<int32_t> context_len, int num_seqs, int total_queries, int heads, int head_dim,
                         int block_size, int max_blocks, int num_blocks, float scale, int splits, int split_len,
                         int stream) {
  return launch_grouped(out, partial, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                        num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale, splits,
                        split_len, stream);
}

// attention_split.cu's launcher. Emulation only: the g_choice records; the per-key kernel (split_attention_kernel,
// ../emu_split's scope) is not run: its launch returns kNotEmulated, so no combine kernel follows it.
template <typename T>
int launch_split_attention(GPtr<T> out, GPtr<T> q, GPtr<T> k_cache, GPtr<T> v_cache, GPtr<int32_t> block_tables,
                           GPtr<int32_t> query_start, GPtr<int32_t> query_count, GPtr<int32_t> context_len,
                           int num_seqs, int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                           int num_blocks, float scale, GPtr<float> workspace, size_t workspace_bytes, int options,
                           int stream) {
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
  const long long split_len = (tiles + splits - 1) / splits * kT;
  splits = max_context <= split_len ? 1 : (max_context + split_len - 1) / split_len;
  const int n_splits = static_cast<int>(splits);
  GPtr<float> partial = n_splits > 1 ? workspace + static_cast<long long>(kCounterBytes / sizeof(float)) : GPtr<float>();
  bool grouped = false;
  if constexpr (sizeof(T) == 2) {
    grouped = (options & OPT_ATTENTION_GROUPED) != 0 && grouped_split_applies(head_dim, sizeof(T), q, k_cache, v_cache);
  }
  const bool inline_merge =
      !grouped && !partial.null() && (options & OPT_ATTENTION_INLINE_COMBINE) != 0 && pairs <= kCounters;
  g_choice.splits = n_splits;
  g_choice.split_len = static_cast<int>(split_len);
  g_choice.head_dim = head_dim;
  g_choice.grouped = grouped;
  g_choice.inline_merge = inline_merge;
  g_choice.partial = !partial.null();
  if (g_dry_run) return kSuccess;
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
    g_choice.fallback = true;  // launch_chained(split_attention_kernel<...>, ...): not emulated here
    st = kNotEmulated;
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

constexpr size_t kWsBytes = 8u << 20;  // CudaOps' ATTENTION_WORKSPACE_BYTES
constexpr size_t kOpsWsBytes = (static_cast<size_t>(4) << 20) * sizeof(float);  // check_ops' workspace
emu::GMem g_ws;  // one workspace for the whole run, as CudaOps keeps one

void poison_partials() {
  std::memset(g_ws.bytes.data() + opt::kCounterBytes, 0xff, g_ws.bytes.size() - opt::kCounterBytes);
}

struct Stats {
  long long cases = 0, launches = 0, rows = 0, nan_rows = 0, unwritten_rows = 0;
  double max_err = 0;       // check_ops' measure: |got - ref| / max(1, |ref|)
  double max_rel_head = 0;  // relative to the (row, head)'s max |ref|
};
Stats g_stats[3];
long long g_grouped_launches[2] = {};  // head_dim 64 / 128
long long g_one_split = 0, g_with_combine = 0, g_fallbacks = 0, g_max_splits = 0, g_bit_compares = 0;

template <class T>
struct Dev {  // one case's inputs on the "device"
  emu::GMem q, k, v, tab, qs, qc, cl;
  size_t lead_q = 0, lead_k = 0, lead_v = 0;  // bytes before element 0 (a misaligned buffer)
};

// misalign: bit 0 q, bit 1 k_cache, bit 2 v_cache start one element past a 16-byte boundary.
template <class T>
void make_inputs(const Batch& b, std::mt19937& rng, float qstd, int nan_keys, int misalign, Dev<T>& dv,
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
  dv.lead_q = misalign & 1 ? sizeof(T) : 0;
  dv.lead_k = misalign & 2 ? sizeof(T) : 0;
  dv.lead_v = misalign & 4 ? sizeof(T) : 0;
  put(dv.q, "q", qw.data(), qw.size() * sizeof(T), 0x10000000, dv.lead_q);
  put(dv.k, "k_cache", kw.data(), kw.size() * sizeof(T), 0x20000000, dv.lead_k);
  put(dv.v, "v_cache", vw.data(), vw.size() * sizeof(T), 0x30000000, dv.lead_v);
  put(dv.tab, "block_tables", b.tables.data(), b.tables.size() * 4, 0x40000000, 0);
  put(dv.qs, "query_start", b.query_start.data(), b.query_start.size() * 4, 0x50000000, 0);
  put(dv.qc, "query_count", b.query_count.data(), b.query_count.size() * 4, 0x60000000, 0);
  put(dv.cl, "context_len", b.context_len.data(), b.context_len.size() * 4, 0x70000000, 0);
}

// One launcher call into an output full of `poison`; returns the output.
template <class T>
std::vector<T> launch_once(const Batch& b, Dev<T>& dv, size_t ws_bytes, bool ws_null, int options, T poison,
                           int* status) {
  const int width = b.heads * b.head_dim;
  emu::GMem out;
  out.init("out", static_cast<size_t>(b.total_rows) * width * sizeof(T), 0x80000000, true, sizeof(T));
  out.once_from = 0;  // every element written at most once per call
  for (size_t i = 0; i < static_cast<size_t>(b.total_rows) * width; ++i)
    std::memcpy(&out.bytes[i * sizeof(T)], &poison, sizeof(T));
  using opt::GPtr;
  const int before = static_cast<int>(emu::g_launch);
  *status = opt::launch_split_attention<T>(
      GPtr<T>{&out, 0}, GPtr<T>{&dv.q, static_cast<long long>(dv.lead_q)},
      GPtr<T>{&dv.k, static_cast<long long>(dv.lead_k)}, GPtr<T>{&dv.v, static_cast<long long>(dv.lead_v)},
      GPtr<int32_t>{&dv.tab, 0}, GPtr<int32_t>{&dv.qs, 0}, GPtr<int32_t>{&dv.qc, 0}, GPtr<int32_t>{&dv.cl, 0},
      static_cast<int>(b.query_count.size()), b.total_rows, b.heads, b.head_dim, b.block_size, b.max_blocks,
      b.num_blocks, b.scale, ws_null ? GPtr<float>() : GPtr<float>{&g_ws, 0}, ws_bytes, options, 0);
  const int grids = static_cast<int>(emu::g_launch) - before;
  g_stats[Ty<T>::idx].launches += grids;
  const opt::Choice& c = opt::g_choice;
  if (c.fallback) ++g_fallbacks;
  if (grids > 0) {
    ++g_grouped_launches[c.head_dim == 64 ? 0 : 1];
    if (c.partial) ++g_with_combine;
    else ++g_one_split;
    g_max_splits = std::max<long long>(g_max_splits, c.splits);
  }
  std::vector<T> got(static_cast<size_t>(b.total_rows) * width);
  if (!got.empty()) std::memcpy(got.data(), out.bytes.data(), got.size() * sizeof(T));
  return got;
}

// The launcher's choices, checked against what they must be (stated independently of how it computes them).
template <class T>
bool check_choice(const Batch& b, size_t ws_bytes, bool ws_null, int options, int misalign, int status,
                  const char* label) {
  const opt::Choice& c = opt::g_choice;
  const long long max_context = static_cast<long long>(b.max_blocks) * b.block_size;
  const long long pairs = static_cast<long long>(b.total_rows) * b.heads;
  const bool want_grouped = (options & OPT_ATTENTION_GROUPED) != 0 && sizeof(T) == 2 &&
                            (b.head_dim == 64 || b.head_dim == 128) && misalign == 0;
  bool ok = true;
  auto fail = [&](const char* what) {
    ok = false;
    g_log.add("%s: launcher choice: %s (splits %d split_len %d)", label, what, c.splits, c.split_len);
  };
  if (b.total_rows == 0 || b.query_count.empty()) {  // nothing to do: success before any choice
    if (status != opt::kSuccess || c.splits != 0) fail("an empty batch");
    return ok;
  }
  if (c.grouped != want_grouped) fail("grouped on/off");
  if (c.fallback == c.grouped) fail("fallback on/off");
  if (status != (c.grouped ? opt::kSuccess : opt::kNotEmulated)) fail("status");
  if (c.splits < 1) fail("no splits");
  if (c.split_len % 64 != 0 || c.split_len <= 0) fail("split_len not a positive multiple of 64");
  if (static_cast<long long>(c.splits) * c.split_len < max_context) fail("the splits do not cover the table");
  if (c.splits > 1 && static_cast<long long>(c.splits - 1) * c.split_len >= max_context) fail("a split past the table");
  if (c.splits > 1 && ws_null) fail("splits without a workspace");
  if (c.splits > 1 && pairs * c.splits * (b.head_dim + 2) * 4 > static_cast<long long>(ws_bytes) - 65536)
    fail("partials past the workspace");
  if (c.splits > std::max(1LL, (4LL * opt::g_sm_count + pairs - 1) / pairs)) fail("more splits than 4 blocks per SM ask");
  if (c.grouped && c.inline_merge) fail("inline combine with the grouped kernel");
  if (c.partial != (c.splits > 1)) fail("partials on/off");
  if (c.grouped && c.splits > 1 && c.combine_threads != std::min(256, std::max(32, (b.head_dim + 31) / 32 * 32)))
    fail("combine kernel threads");
  return ok;
}

struct CaseOpts {
  float qstd = 1.f;
  int nan_keys = 0;
  int misalign = 0;
  size_t ws_bytes = kWsBytes;
  bool ws_null = false;
  int sm = 132;
  int options = OPT_ATTENTION_GROUPED;
  bool twice = true;  // a second run (another schedule) must give the same bits
};

long long g_failed_cases = 0;

template <class T>
bool run_case(const Batch& b, std::mt19937& rng, const CaseOpts& o, const std::string& label) {
  opt::g_sm_count = o.sm;
  Dev<T> dv;
  std::vector<float> qf, kf, vf;
  make_inputs<T>(b, rng, o.qstd, o.nan_keys, o.misalign, dv, qf, kf, vf);
  const long long errors_before = g_log.errors;
  const T poison = Ty<T>::narrow(1234.5f);
  std::vector<std::string> why;
  int status = 0;
  if (rng() % 2) poison_partials();
  const std::vector<T> a = launch_once<T>(b, dv, o.ws_bytes, o.ws_null, o.options, poison, &status);
  const opt::Choice choice = opt::g_choice;
  check_choice<T>(b, o.ws_bytes, o.ws_null, o.options, o.misalign, status, label.c_str());
  ++g_stats[Ty<T>::idx].cases;
  if (choice.grouped) {
    // another schedule (the random generator has moved on: other block orders, resident counts, thread orders)
    if (o.twice) {
      poison_partials();
      const std::vector<T> a2 = launch_once<T>(b, dv, o.ws_bytes, o.ws_null, o.options, poison, &status);
      ++g_bit_compares;
      if (!same_bits(a, a2)) why.push_back("two schedules, different bits");
    }
    std::vector<Want> want;
    std::vector<double> ref;
    reference(b, qf, kf, vf, want, ref);
    Stats& st = g_stats[Ty<T>::idx];
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
        if (std::isnan(ref[static_cast<size_t>(row) * width + h * D])) {  // a NaN score: the (row, head) NaN
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
    if (std::isfinite(case_err)) st.max_err = std::max(st.max_err, case_err);
    if (!(case_err <= Ty<T>::tol)) why.push_back("error " + std::to_string(case_err) + " > tol");
    if (bad_rows) why.push_back(std::to_string(bad_rows) + " rows break the NaN / unwritten rules");
  }
  if (g_log.errors != errors_before) why.push_back(std::to_string(g_log.errors - errors_before) + " checker errors");
  if (!why.empty()) {
    if (++g_failed_cases <= 8) {
      std::string w;
      for (const auto& s : why) w += (w.empty() ? "" : "; ") + s;
      std::printf("  FAIL %s [splits %d split_len %d %s%s]: %s\n", label.c_str(), choice.splits, choice.split_len,
                  choice.grouped ? "grouped" : "fallback", choice.partial ? " + combine kernel" : "", w.c_str());
    }
    return false;
  }
  return true;
}

bool run_any(int dtype, const Batch& b, std::mt19937& rng, const CaseOpts& o, const std::string& label) {
  return dtype == 1 ? run_case<emu::Half>(b, rng, o, label) : run_case<emu::BF16>(b, rng, o, label);
}

// ---- batches ------------------------------------------------------------------------------------------------

// Contexts near the rounds' edges (64 keys a round at head_dim 64, 32 at 128) and the 64-key split lengths.
int round_context(std::mt19937& rng) {
  static const int kEdges[] = {1, 2, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129, 191, 192, 193, 255, 256, 257,
                               300, 383, 384, 385, 511, 700};
  return rng() % 2 == 0 ? kEdges[rng() % (sizeof kEdges / sizeof kEdges[0])] : 1 + static_cast<int>(rng() % 700);
}

// Random ragged batches (attention_ref.h's random_batch): decode at batch 2..32, contexts at the rounds' edges.
Batch random_batch(std::mt19937& rng, int head_dim, int family) {
  static const BatchMix kMix = {round_context, 2, 32, 3, {1, 1, 2, 5, 15, 16, 33, 63, 64, 65}, 200, {256, 1024}, 8};
  return random_batch(rng, head_dim, family, kMix);
}

// check_ops' check_grouped_decode shapes (OPT's decode): `seqs` rows of one query, sequence 0 at max_context, the
// others 1 .. max_context, tables table_blocks x 16 wide.
Batch decode_batch(std::mt19937& rng, int seqs, int heads, int head_dim, int max_context, int table_blocks) {
  Batch b;
  b.kind = "OPT decode";
  b.heads = heads;
  b.head_dim = head_dim;
  b.block_size = 16;
  for (int s = 0; s < seqs; ++s) {
    b.query_start.push_back(s);
    b.query_count.push_back(1);
    b.context_len.push_back(s == 0 ? max_context : 1 + static_cast<int>(rng() % max_context));
  }
  b.total_rows = seqs;
  b.max_blocks = table_blocks;
  fill_tables(b, rng, 5);
  b.scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  return b;
}

// check_ops' rules check, literally, in its grouped modes (7: no workspace, one split; 8: a workspace, splits):
// rows 0-2 and 7-22 finite, row 4 the poison, the others NaN.
bool rules_exact(std::mt19937& rng) {
  const Batch b = rules_batch();
  Dev<emu::Half> dv;
  std::vector<float> qf, kf, vf;
  make_inputs<emu::Half>(b, rng, 1.f, 0, 0, dv, qf, kf, vf);
  const emu::Half poison = Ty<emu::Half>::narrow(1234.5f);
  int wrong = 0;
  for (int kernel : {7, 8}) {
    opt::g_sm_count = 132;
    const long long errors_before = g_log.errors;
    int status = 0;
    const size_t ws = (static_cast<size_t>(1) << 20) * sizeof(float);
    poison_partials();
    const std::vector<emu::Half> out =
        launch_once<emu::Half>(b, dv, kernel == 8 ? ws : 0, kernel == 7, OPT_ATTENTION_GROUPED, poison, &status);
    wrong += status != 0 || !opt::g_choice.grouped;
    if ((kernel == 8) != (opt::g_choice.splits > 1)) ++wrong;  // mode 8 must take several splits
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
  std::printf("check_ops rules batch (grouped, 1 split and splits): %s (%d wrong)\n", wrong == 0 ? "ok" : "FAIL",
              wrong);
  return wrong == 0;
}

// The launcher's option check and its fallbacks, without launching anything that is not grouped.
bool validation() {
  int wrong = 0;
  emu::GMem dummy;
  dummy.init("dummy", 64, 0x90000000, false, 4);
  using opt::GPtr;
  const uint32_t launches = emu::g_launch;
  for (int options : {4, 8, -1, 1 | 4}) {
    const int st = opt::launch_split_attention<emu::Half>(
        GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0}, GPtr<emu::Half>{&dummy, 0},
        GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, 1, 1,
        1, 64, 16, 1, 1, 0.125f, GPtr<float>{&g_ws, 0}, kWsBytes, options, 0);
    wrong += st != opt::kInvalidValue;
  }
  // f32 never takes the grouped kernel; nor head_dim 80, nor options without the bit
  opt::g_dry_run = true;
  emu::GMem fdummy;
  fdummy.init("fdummy", 64, 0x90000000, false, 4);
  opt::launch_split_attention<float>(GPtr<float>{&fdummy, 0}, GPtr<float>{&fdummy, 0}, GPtr<float>{&fdummy, 0},
                                     GPtr<float>{&fdummy, 0}, GPtr<int32_t>{&fdummy, 0}, GPtr<int32_t>{&fdummy, 0},
                                     GPtr<int32_t>{&fdummy, 0}, GPtr<int32_t>{&fdummy, 0}, 1, 1, 1, 64, 16, 1, 1,
                                     0.125f, GPtr<float>{&g_ws, 0}, kWsBytes, OPT_ATTENTION_GROUPED, 0);
  wrong += opt::g_choice.grouped;
  for (int hd : {80, 64}) {
    opt::launch_split_attention<emu::BF16>(
        GPtr<emu::BF16>{&dummy, 0}, GPtr<emu::BF16>{&dummy, 0}, GPtr<emu::BF16>{&dummy, 0}, GPtr<emu::BF16>{&dummy, 0},
        GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, GPtr<int32_t>{&dummy, 0}, 1, 1,
        1, hd, 16, 1, 1, 0.125f, GPtr<float>{&g_ws, 0}, kWsBytes, hd == 64 ? OPT_ATTENTION_INLINE_COMBINE : 3, 0);
    wrong += opt::g_choice.grouped;
  }
  opt::g_dry_run = false;
  wrong += emu::g_launch != launches;
  std::printf("launcher option checks and fallbacks: %s\n", wrong == 0 ? "ok" : "FAIL");
  return wrong == 0;
}

// The launcher's choices for OPT's decode shapes with OPT_ATTENTION_GROUPED (printed for the report).
void print_choices() {
  std::printf("launcher choices, grouped decode (block 16, workspace 8 MiB): splits x split_len\n");
  struct S { const char* model; int heads, hd, batch, max_blocks; };
  const S shapes[] = {{"1.3b", 32, 64, 1, 16}, {"1.3b", 32, 64, 1, 128}, {"1.3b", 32, 64, 32, 20},
                      {"6.7b", 32, 128, 4, 16}, {"6.7b", 32, 128, 1, 128}};
  emu::GMem k;
  k.init("k", 16, 0x20000000, false, 4);
  using opt::GPtr;
  opt::g_dry_run = true;
  for (int sm : {132, 8, 1}) {
    std::printf("  SMs %3d:", sm);
    for (const S& s : shapes) {
      opt::g_sm_count = sm;
      opt::launch_split_attention<emu::Half>(
          GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0}, GPtr<emu::Half>{&k, 0},
          GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, GPtr<int32_t>{&k, 0}, s.batch, s.batch,
          s.heads, s.hd, 16, s.max_blocks, 1, 0.125f, GPtr<float>{&g_ws, 0}, kWsBytes, OPT_ATTENTION_GROUPED, 0);
      const opt::Choice& c = opt::g_choice;
      std::printf(" %s b%d D%d w%d %dx%d%s;", s.model, s.batch, s.hd, s.max_blocks * 16, c.splits, c.split_len,
                  c.grouped ? "" : " (not grouped)");
    }
    std::printf("\n");
  }
  opt::g_dry_run = false;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 200;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261212u;
  std::mt19937 rng(seed);
  emu::g_rng = &rng;
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("emu_grouped: attention_grouped.cu emulated, %d random cases, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  g_ws.init("workspace", kWsBytes, 0xa0000000, true, 4);  // zeroed once, as the contract asks
  g_ws.fresh_from = opt::kCounterBytes;  // partials: read only what this call wrote
  g_ws.once_from = opt::kCounterBytes;   // partials: written at most once per call
  g_ws.atomic_end = 0;                   // no atomics on the workspace (the grouped path never counts)
  poison_partials();
  if (kPlant == 0) print_choices();
  bool ok = validation();
  ok &= rules_exact(rng);
  int ran = 0, failed = 0;
  auto dname = [](int dtype) { return std::string(dtype == 1 ? "f16" : "bf16"); };
  // check_ops' attention batch (make_batch) at head_dim 64 and 128, and OPT's decode shapes (check_grouped_decode),
  // each dtype, with check_ops' 16 MiB workspace
  for (int dtype = 1; dtype <= 2; ++dtype) {
    for (auto hd : {std::make_pair(3, 64), std::make_pair(2, 128)}) {
      CaseOpts o;
      o.qstd = 2.f;
      o.ws_bytes = kOpsWsBytes;
      ++ran;
      failed += !run_any(dtype, check_ops_batch(rng, hd.first, hd.second), rng, o,
                         "check_ops batch " + dname(dtype) + " heads " + std::to_string(hd.first) + " D=" +
                             std::to_string(hd.second));
    }
    struct Shape { int seqs, heads, head_dim, max_context, table_blocks, sm; bool ws; };
    const Shape shapes[] = {{1, 32, 64, 192, 16, 132, true},  {1, 32, 64, 192, 16, 8, true},
                            {1, 32, 64, 192, 16, 1, true},    {1, 32, 64, 192, 16, 132, false},
                            {32, 32, 64, 300, 20, 132, true}, {4, 32, 128, 130, 16, 132, true},
                            {4, 32, 128, 130, 16, 8, true},   {3, 4, 64, 1000, 64, 132, true}};
    for (const Shape& s : shapes) {
      CaseOpts o;
      o.qstd = 2.f;
      o.ws_bytes = kOpsWsBytes;
      o.ws_null = !s.ws;
      o.sm = s.sm;
      o.twice = s.seqs < 32;  // (batch 32 at 32 heads: 1,024 blocks of 128 threads, the longest case; once)
      char label[160];
      std::snprintf(label, sizeof label, "OPT decode %s batch %d heads %d D=%d context <= %d width %d SMs %d%s",
                    dname(dtype).c_str(), s.seqs, s.heads, s.head_dim, s.max_context, s.table_blocks * 16, s.sm,
                    s.ws ? "" : " no workspace");
      ++ran;
      failed += !run_any(dtype, decode_batch(rng, s.seqs, s.heads, s.head_dim, s.max_context, s.table_blocks), rng,
                         o, label);
    }
  }
  // the launcher's fallbacks: q, k_cache or v_cache one element past a 16-byte boundary, head_dim 80 (the per-key
  // kernel, not run here: only the choice is checked)
  for (int misalign : {1, 2, 4, 0}) {
    CaseOpts o;
    o.misalign = misalign;
    const int hd = misalign == 0 ? 80 : 64;
    ++ran;
    failed += !run_any(1, decode_batch(rng, 2, 2, hd, 100, 8), rng, o,
                       "fallback: misaligned " + std::to_string(misalign) + " D=" + std::to_string(hd));
  }
  // random cases
  for (int c = 0; c < cases; ++c) {
    const int dtype = rng() % 3 == 0 ? 2 : 1;  // f16 most
    static const int kDims[] = {64, 64, 64, 128, 128, 80};
    const int d = kDims[rng() % 6];
    const Batch b = random_batch(rng, d, static_cast<int>(rng() % 3));
    CaseOpts o;
    static const int kSms[] = {132, 132, 8, 1};
    o.sm = kSms[rng() % 4];
    o.qstd = std::vector<float>{0.5f, 1.f, 2.f, 4.f}[rng() % 4];
    o.nan_keys = rng() % 12 == 0 ? 1 : 0;
    o.misalign = rng() % 12 == 0 ? 1 << (rng() % 3) : 0;
    o.options = rng() % 4 == 0 ? (OPT_ATTENTION_GROUPED | OPT_ATTENTION_INLINE_COMBINE) : OPT_ATTENTION_GROUPED;
    const unsigned w = rng() % 10;
    o.ws_bytes = w < 5 ? kWsBytes : w < 7 ? kOpsWsBytes : w < 8 ? opt::kCounterBytes
               : opt::kCounterBytes + 4096 + rng() % 60000;  // small: the split count cut to what fits
    o.ws_null = w == 9 && rng() % 2;
    char label[220];
    int rows = 0;
    for (int n : b.query_count) rows += n;
    std::snprintf(label, sizeof label,
                  "case %d: %s %s D=%d heads=%d bs=%d seqs=%zu rows=%d width=%d SMs=%d ws=%zu options=%d%s%s", c,
                  dname(dtype).c_str(), b.kind.c_str(), d, b.heads, b.block_size, b.query_count.size(), rows,
                  b.max_blocks * b.block_size, o.sm, o.ws_null ? 0 : o.ws_bytes, o.options,
                  o.nan_keys ? " NaN-key" : "", o.misalign ? (" misaligned " + std::to_string(o.misalign)).c_str() : "");
    ++ran;
    failed += !run_any(dtype, b, rng, o, label);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%-5s %6s %8s %8s %9s %10s %14s %18s\n", "dtype", "cases", "launches", "rows", "NaN rows",
              "unwritten", "max err (ops)", "max rel (row,head)");
  for (int i = 1; i < 3; ++i) {
    const Stats& s = g_stats[i];
    std::printf("%-5s %6lld %8lld %8lld %9lld %10lld %14.3g %18.3g\n", i == 1 ? "f16" : "bf16", s.cases, s.launches,
                s.rows, s.nan_rows, s.unwritten_rows, s.max_err, s.max_rel_head);
  }
  std::printf("grouped launcher calls: head_dim 64 %lld, 128 %lld; one split %lld, with the combine kernel %lld; most "
              "splits %lld; fallbacks (not run) %lld; two-schedule bit comparisons %lld\n",
              g_grouped_launches[0], g_grouped_launches[1], g_one_split, g_with_combine, g_max_splits, g_fallbacks,
              g_bit_compares);
  std::printf("checker errors (races, uninitialised reads, bounds, alignment, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  const bool pass = ok && failed == 0 && g_log.errors == 0;
  std::printf("%s: %d of %d cases failed (%.1f s)\n", pass ? "PASS" : "FAIL", failed, ran, secs);
  return pass ? 0 : 1;
}
