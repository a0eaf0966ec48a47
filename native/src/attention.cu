// Causal multi-head attention of one step's queries over the paged KV cache, prefill and decode alike:
// per head, out = softmax(q · Kᵀ · scale) · V over the visible key positions, in float32.
// Variants: opt_attention_{f32,f16,bf16} (storage type of q, the caches and out; the math is float32).
// CPU twin: CpuOps.attention, with the batch description of backend/AttentionBatch.java.
//
// Batch description (ragged, no padding): sequence s owns the query rows
// [query_start[s], query_start[s] + query_count[s]); its query i sits at position
// context_len[s] - query_count[s] + i and attends to positions 0 .. that position. Position p of
// sequence s lives in cache slot block_tables[s][p / block_size] * block_size + p % block_size.
//
// Algorithm (first version: simple and correct; a split-KV variant for long decode contexts is later
// work): one thread block per (query row, head). The block finds its sequence by scanning query_start /
// query_count (rows need not be sorted by sequence), keeps its query in shared memory as float, then walks
// the visible key positions in tiles of kTile with an online softmax (flash-attention style): a running
// max m, running sum l and a float accumulator per output dimension, rescaled by exp(m_old - m_new) when
// the max grows. No T × T score matrix exists anywhere.
//   scores of a tile: one warp per key position, lanes across head_dim, warp-shuffle sum;
//   softmax update:   every thread reads the tile's scores from shared memory and updates its own copy of
//                     m and l (identical in every thread, so no broadcast is needed);
//   values:           thread t accumulates output dimensions t, t + kThreads (coalesced reads of V rows).
// Limits: head_dim <= kMaxHeadDim (256; OPT uses 64, 80 and 128), heads <= 65535 (grid.y).
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxHeadDim = 256;
constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / kWarp;
constexpr int kDimsPerThread = kMaxHeadDim / kThreads;  // output dimensions one thread accumulates
constexpr int kTile = 64;                               // key positions per online-softmax step

// grid = (total_queries, heads), block = kThreads.
//   out, q            (total_queries, heads × head_dim)
//   k_cache, v_cache  (num_blocks × block_size, heads × head_dim)
//   block_tables      (num_seqs, max_blocks) row-major
//   query_start, query_count, context_len  (num_seqs)
// A row whose sequence description is inconsistent (more queries than context, a context longer than
// its block table) or whose block table names a block outside the cache gets NaN in every element:
// loud in any parity test, and no memory outside the tensors is read.
template <typename T>
__global__ void __launch_bounds__(kThreads)
attention_kernel(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k_cache,
                 const T* __restrict__ v_cache, const int32_t* __restrict__ block_tables,
                 const int32_t* __restrict__ query_start, const int32_t* __restrict__ query_count,
                 const int32_t* __restrict__ context_len, int num_seqs, int heads, int head_dim, int block_size,
                 int max_blocks, int num_blocks, float scale) {
  __shared__ float q_s[kMaxHeadDim];  // this head's query row, as float
  __shared__ float scores[kTile];     // q · k × scale of the tile's key positions
  __shared__ long long slots[kTile];  // cache slot of the tile's key positions, -1 for a bad block id
  __shared__ int seq_s;
  __shared__ int bad_block_s;

  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const int width = heads * head_dim;
  const int warp = threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;

  // 1. The sequence that owns this query row.
  if (threadIdx.x == 0) {
    seq_s = -1;
    bad_block_s = 0;
  }
  __syncthreads();
  for (int s = threadIdx.x; s < num_seqs; s += blockDim.x) {
    const long long offset = static_cast<long long>(row) - query_start[s];
    if (offset >= 0 && offset < query_count[s]) seq_s = s;
  }
  __syncthreads();
  const int s = seq_s;
  if (s < 0) return;  // a row no sequence covers is left as it is (as CpuOps does)

  T* out_row = out + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  const int count = query_count[s];
  const int context = context_len[s];
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out_row[d] = from_float<T>(quiet_nan());
    return;
  }
  const int visible = context - count + (row - query_start[s]) + 1;  // causal: positions 0 .. visible - 1

  // 2. The query, as float.
  const T* q_row = q + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = to_float(q_row[d]);
  __syncthreads();

  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;
  const size_t head_offset = static_cast<size_t>(h) * head_dim;
  float running_max = -INFINITY;
  float running_sum = 0.f;
  float acc[kDimsPerThread];
#pragma unroll
  for (int k = 0; k < kDimsPerThread; ++k) acc[k] = 0.f;

  for (int tile_start = 0; tile_start < visible; tile_start += kTile) {
    const int tile_len = min(kTile, visible - tile_start);

    // 3a. Scores of the tile: warp w takes key positions w, w + kWarps, ...
    for (int j = warp; j < tile_len; j += kWarps) {
      const int p = tile_start + j;
      const int block = table[p / block_size];
      float dot = 0.f;
      long long slot = -1;
      if (block >= 0 && block < num_blocks) {  // uniform across the warp: warp_sum sees all 32 lanes
        slot = static_cast<long long>(block) * block_size + p % block_size;
        const T* key = k_cache + static_cast<size_t>(slot) * width + head_offset;
        for (int d = lane; d < head_dim; d += kWarp) dot += q_s[d] * to_float(key[d]);
        dot = warp_sum(dot);
      }
      if (lane == 0) {
        scores[j] = dot * scale;
        slots[j] = slot;
        if (slot < 0) bad_block_s = 1;
      }
    }
    __syncthreads();

    // 3b. Online softmax: rescale what was accumulated to the new max, then add this tile.
    float tile_max = -INFINITY;
    for (int j = 0; j < tile_len; ++j) tile_max = fmaxf(tile_max, scores[j]);
    const float new_max = fmaxf(running_max, tile_max);
    const float correction = expf(running_max - new_max);  // 0 on the first tile (exp(-inf))
    running_sum *= correction;
#pragma unroll
    for (int k = 0; k < kDimsPerThread; ++k) acc[k] *= correction;
    for (int j = 0; j < tile_len; ++j) {
      const float weight = expf(scores[j] - new_max);
      running_sum += weight;
      if (slots[j] < 0) continue;
      const T* value = v_cache + static_cast<size_t>(slots[j]) * width + head_offset;
#pragma unroll
      for (int k = 0; k < kDimsPerThread; ++k) {
        const int d = threadIdx.x + k * kThreads;
        if (d < head_dim) acc[k] += weight * to_float(value[d]);
      }
    }
    running_max = new_max;
    __syncthreads();  // the next tile overwrites scores and slots
  }

  // 4. Normalise and store.
  const bool bad = bad_block_s != 0;
#pragma unroll
  for (int k = 0; k < kDimsPerThread; ++k) {
    const int d = threadIdx.x + k * kThreads;
    if (d < head_dim) out_row[d] = from_float<T>(bad ? quiet_nan() : acc[k] / running_sum);
  }
}

template <typename T>
int launch_attention(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
                     const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
                     int num_seqs, int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                     int num_blocks, float scale, cudaStream_t stream) {
  if (num_seqs < 0 || total_queries < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || head_dim > kMaxHeadDim || heads > 65535) {
    return kInvalidValue;
  }
  if (num_seqs == 0 || total_queries == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  const dim3 grid(total_queries, heads);
  attention_kernel<T><<<grid, kThreads, 0, stream>>>(out, q, k_cache, v_cache, block_tables, query_start,
                                                     query_count, context_len, num_seqs, heads, head_dim,
                                                     block_size, max_blocks, num_blocks, scale);
  return launch_status();
}

}  // namespace

extern "C" {

OPT_API int opt_attention_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                              const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                              const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                              int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_attention(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len, num_seqs,
                          total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale, stream);
}

OPT_API int opt_attention_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                              const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                              const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                              int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_attention(as_f16(out), as_f16(q), as_f16(k_cache), as_f16(v_cache), block_tables, query_start,
                          query_count, context_len, num_seqs, total_queries, heads, head_dim, block_size,
                          max_blocks, num_blocks, scale, stream);
}

OPT_API int opt_attention_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                               const int32_t* block_tables, const int32_t* query_start,
                               const int32_t* query_count, const int32_t* context_len, int num_seqs,
                               int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                               int num_blocks, float scale, cudaStream_t stream) {
  return launch_attention(as_bf16(out), as_bf16(q), as_bf16(k_cache), as_bf16(v_cache), block_tables,
                          query_start, query_count, context_len, num_seqs, total_queries, heads, head_dim,
                          block_size, max_blocks, num_blocks, scale, stream);
}

}  // extern "C"
