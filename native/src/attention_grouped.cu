// The split-KV decode attention with a group of threads per key row (session 12; verified on an H100 and made the
// default in session 17: opt_attention_split's OPT_ATTENTION_GROUPED option, which CudaOps sets unless
// -Dopt.cuda.groupedSplit=false). Same function, same splits,
// same partial records and combine kernel as split_attention_kernel (attention_split.cu); only how a block walks
// its range of keys differs. CPU twin: CpuOps.attention.
//
// Why: on the H100 (session 11, ncu) split_attention_kernel took ≈ 23 µs per layer at batch 1 over 192 positions,
// 18 % of an opt-1.3b decode step, where its bytes (≈ 1 MB) take < 1 µs: it waits on a chain of dependent steps.
// Per 64-key tile it loads the keys (one key per thread), reduces the tile's max and sum over the block (four
// barriers), then reads the values one dimension per thread (2-byte loads, 16 keys per round: four rounds of
// memory latency per tile). At batch 32 (one split per (row, head), four tiles per block) that chain repeats per
// tile with few warps per SM to hide it.
//
// How: a key's row (head_dim values, 128 or 256 bytes) is read by a group of kLanes = head_dim · sizeof(T) / 16
// threads, each taking one 16-byte chunk of its key and the same chunk of its value, so a round issues the key
// AND value loads of kKeys keys per group at once (one memory latency per round instead of five). The group's
// partial dot products meet by shuffles (every lane of the group gets the same bits: xor pairs add the same two
// operands), and each group keeps its own online softmax (running max, sum, and its 8 output dimensions per
// lane) over the keys it visits, so no block barrier is needed until the end. There the groups are merged as the
// combine kernel merges splits (max over groups, each rescaled by exp(m_g - m), summed in group order) and the
// block writes the normalised row (one split) or its (max, sum, accumulator) record (several: the combine kernel
// of attention_split.cu merges them, never the inline combine).
//
// Numerics: float32, __expf, another order of sums than split_attention_kernel (per group, then across groups):
// not its bits; the same tolerances against CpuOps. Rows no sequence owns are not written; inconsistent rows and
// rows reaching a bad block id or a NaN score are NaN, as in split_attention_kernel.
// Limits: fp16/bf16, head_dim 64 or 128 (OPT's), 16-byte aligned key and value rows; the launcher in
// attention_split.cu falls back to split_attention_kernel otherwise.
#include "attention_grouped.cuh"

namespace {
using namespace opt;

constexpr int kThreads = 128;  // per block: 4 warps
constexpr int kKeys = 4;       // keys per group per round (their key and value loads are all in flight together)

// grid = (total_queries, heads, splits), block = kThreads. Arguments as split_attention_kernel's (partial: null for
// one split, else the records the combine kernel reads). No __restrict__ on what earlier kernels write (chained
// launches, common.cuh).
template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kThreads)
grouped_split_kernel(T* out, float* partial, const T* q, const T* k_cache, const T* v_cache,
                     const int32_t* __restrict__ block_tables, const int32_t* __restrict__ query_start,
                     const int32_t* __restrict__ query_count, const int32_t* __restrict__ context_len, int num_seqs,
                     int heads, int block_size, int max_blocks, int num_blocks, float scale, int splits,
                     int split_len) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // values per 16-byte chunk: 8
  constexpr int kLanes = kHeadDim / kVec;                 // threads per key row: 8 (head_dim 64) or 16 (128)
  constexpr int kGroups = kThreads / kLanes;              // keys read at once per round step: 16 or 8
  constexpr int kRoundKeys = kGroups * kKeys;             // keys per round of the block: 64 or 32
  static_assert(kVec == 8 && kWarp % kLanes == 0 && kThreads % kLanes == 0, "16-byte chunks, groups inside warps");
  __shared__ float m_s[kGroups];             // each group's running max, then its rescaled sum
  __shared__ float acc_s[kGroups][kHeadDim]; // each group's rescaled accumulator
  __shared__ int seq_s;
  __shared__ int bad_s;  // a bad block id or a NaN score: the row is NaN
  chain_start();
  chain_wait();

  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const int sp = blockIdx.z;
  const int tid = threadIdx.x;
  const int group = tid / kLanes;
  const int lane = tid % kLanes;  // this thread's chunk of every key and value row
  const int width = heads * kHeadDim;
  float* part = partial == nullptr
      ? nullptr
      : partial + ((static_cast<size_t>(row) * heads + h) * splits + sp) * static_cast<size_t>(kHeadDim + 2);
  const size_t head_offset = static_cast<size_t>(h) * kHeadDim + static_cast<size_t>(lane) * kVec;

  // The query chunk does not depend on the owner: its load overlaps the owner lookup.
  const uint4 q_raw = *reinterpret_cast<const uint4*>(q + static_cast<size_t>(row) * width + head_offset);

  // 1. The sequence that owns this row (as split_attention_kernel: the largest s whose range holds the row).
  if (tid == 0) {
    seq_s = -1;
    bad_s = 0;
  }
  __syncthreads();
  for (int s = tid; s < num_seqs; s += kThreads) {
    const long long offset = static_cast<long long>(row) - query_start[s];
    if (offset >= 0 && offset < query_count[s]) atomicMax(&seq_s, s);
  }
  __syncthreads();
  const int s = seq_s;
  if (s < 0) {  // not written; the combine kernel sees a negative sum
    if (part != nullptr && tid == 0) part[1] = -1.f;
    return;
  }
  T* out_row = out + static_cast<size_t>(row) * width + static_cast<size_t>(h) * kHeadDim;
  const int count = query_count[s];
  const int context = context_len[s];
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    if (part != nullptr) {  // the combine kernel writes the NaN row
      if (tid == 0) {
        part[0] = quiet_nan();
        part[1] = 0.f;
      }
    } else {
      for (int d = tid; d < kHeadDim; d += kThreads) out_row[d] = from_float<T>(quiet_nan());
    }
    return;
  }
  const int visible = context - count + (row - query_start[s]) + 1;  // causal: positions 0 .. visible - 1
  const int begin = sp * split_len;
  const int end = min(visible, begin + split_len);

  float qf[kVec];
  widen(q_raw, qf, static_cast<const T*>(nullptr));
#pragma unroll
  for (int e = 0; e < kVec; ++e) qf[e] *= scale;

  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;
  float running_max = -INFINITY;  // the same in every lane of the group
  float running_sum = 0.f;
  float acc[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) acc[e] = 0.f;
  bool bad = false;

  // 2. Rounds: group g takes keys base + g, base + g + kGroups, ... (kKeys of them); all their key and value chunks
  // are loaded before the first is used.
  for (int base = begin; base < end; base += kRoundKeys) {  // the same bounds for the whole block
    long long slot[kKeys];
    uint4 kr[kKeys];
    uint4 vr[kKeys];
#pragma unroll
    for (int i = 0; i < kKeys; ++i) {
      const int key = base + i * kGroups + group;
      slot[i] = key < end ? kv_slot(table, key, block_size, num_blocks) : -2;  // -2: past the range, -1: bad block
    }
#pragma unroll
    for (int i = 0; i < kKeys; ++i) {
      if (slot[i] >= 0) {
        const size_t at = static_cast<size_t>(slot[i]) * width + head_offset;
        kr[i] = *reinterpret_cast<const uint4*>(k_cache + at);
        vr[i] = *reinterpret_cast<const uint4*>(v_cache + at);
      } else {
        kr[i] = make_uint4(0, 0, 0, 0);
        vr[i] = make_uint4(0, 0, 0, 0);
      }
    }
    float score[kKeys];
    float round_max = -INFINITY;
#pragma unroll
    for (int i = 0; i < kKeys; ++i) {
      float kf[kVec];
      widen(kr[i], kf, static_cast<const T*>(nullptr));
      float dot = 0.f;
#pragma unroll
      for (int e = 0; e < kVec; ++e) dot += kf[e] * qf[e];
#pragma unroll
      for (int offset = kLanes / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      if (slot[i] == -1 || (slot[i] >= 0 && isnan(dot))) bad = true;  // NaN data makes the row NaN
      score[i] = slot[i] >= 0 ? dot : -INFINITY;
      round_max = fmaxf(round_max, score[i]);
    }
    // Online softmax over the group's keys of this round (flash attention's rescaling).
    const float new_max = fmaxf(running_max, round_max);
    const float correction = running_max == -INFINITY ? 0.f : __expf(running_max - new_max);
    running_sum *= correction;
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[e] *= correction;
#pragma unroll
    for (int i = 0; i < kKeys; ++i) {
      if (slot[i] >= 0) {  // keys past the range or at a bad block add nothing (not even a +0 to a -0)
        const float p = new_max == -INFINITY ? 0.f : __expf(score[i] - new_max);
        running_sum += p;
        float vf[kVec];
        widen(vr[i], vf, static_cast<const T*>(nullptr));
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[e] = fmaf(p, vf[e], acc[e]);
      }
    }
    running_max = new_max;
  }
  if (bad) bad_s = 1;  // every writer writes 1

  // 3. Merge the groups: the block's max, each group rescaled to it, summed in group order.
  if (lane == 0) m_s[group] = running_max;
  __syncthreads();
  float block_max = -INFINITY;
#pragma unroll
  for (int g = 0; g < kGroups; ++g) block_max = fmaxf(block_max, m_s[g]);
  const float factor = running_max == -INFINITY ? 0.f : __expf(running_max - block_max);
#pragma unroll
  for (int e = 0; e < kVec; ++e) acc_s[group][lane * kVec + e] = acc[e] * factor;
  __syncthreads();  // every group has read m_s
  if (lane == 0) m_s[group] = running_sum * factor;
  __syncthreads();
  const bool row_bad = bad_s != 0;
  float total = 0.f;
#pragma unroll
  for (int g = 0; g < kGroups; ++g) total += m_s[g];
  for (int d = tid; d < kHeadDim; d += kThreads) {
    float a = 0.f;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) a += acc_s[g][d];
    if (part == nullptr) {
      out_row[d] = from_float<T>(row_bad ? quiet_nan() : a / total);
    } else {
      part[2 + d] = a;
    }
  }
  if (part != nullptr && tid == 0) {
    part[0] = row_bad ? quiet_nan() : block_max;  // -inf for an empty range (keys past the row's end)
    part[1] = total;
  }
}

template <typename T>
int launch_grouped(T* out, float* partial, const T* q, const T* k_cache, const T* v_cache,
                   const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                   const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                   int block_size, int max_blocks, int num_blocks, float scale, int splits, int split_len,
                   cudaStream_t stream) {
  const dim3 grid(total_queries, heads, splits);
  auto kernel = head_dim == 64 ? grouped_split_kernel<T, 64> : grouped_split_kernel<T, 128>;
  return launch_chained(kernel, grid, dim3(kThreads), 0, stream, out, partial, q, k_cache, v_cache, block_tables,
                        query_start, query_count, context_len, num_seqs, heads, block_size, max_blocks, num_blocks,
                        scale, splits, split_len);
}

}  // namespace

namespace opt {

bool grouped_split_applies(int head_dim, size_t element_bytes, const void* q, const void* k_cache,
                           const void* v_cache) {
  constexpr uintptr_t kAlign = 16;
  return element_bytes == 2 && (head_dim == 64 || head_dim == 128) && reinterpret_cast<uintptr_t>(q) % kAlign == 0 &&
         reinterpret_cast<uintptr_t>(k_cache) % kAlign == 0 && reinterpret_cast<uintptr_t>(v_cache) % kAlign == 0;
}

int launch_grouped_split(__half* out, float* partial, const __half* q, const __half* k_cache, const __half* v_cache,
                         const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                         const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                         int block_size, int max_blocks, int num_blocks, float scale, int splits, int split_len,
                         cudaStream_t stream) {
  return launch_grouped(out, partial, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                        num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale, splits,
                        split_len, stream);
}

int launch_grouped_split(__nv_bfloat16* out, float* partial, const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                         const __nv_bfloat16* v_cache, const int32_t* block_tables, const int32_t* query_start,
                         const int32_t* query_count, const int32_t* context_len, int num_seqs, int total_queries,
                         int heads, int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                         int splits, int split_len, cudaStream_t stream) {
  return launch_grouped(out, partial, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                        num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale, splits,
                        split_len, stream);
}

}  // namespace opt
