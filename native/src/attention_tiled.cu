// Query-tiled causal attention for prefill over the paged KV cache: the function of opt_attention
// (attention.cu) for the rows the tile map names, organised so that the keys and values read from memory
// serve 16 query rows instead of one. Variants: opt_attention_tiled_{f32,f16,bf16}. CPU twin:
// CpuOps.attention.
//
// Why: opt_attention and opt_attention_split give each query row its own thread block, so a prefill of T
// tokens reads every key and value about T/2 times (the H100 profile of 2026-11-26 put attention at 91 % of
// a 2047-token prefill).
//
// How: the caller cuts each sequence's query rows into tiles of up to 16 consecutive rows (the tile map:
// tile_seq[t], tile_first[t] = the sequence and its first query index). Grid (tile, head), 128 threads:
//   1. the tile's queries (pre-scaled) go to shared memory as float;
//   2. the keys 0 .. (position of the tile's last row) are walked in tiles of 32: their slots (through the
//      block table), then the K and V rows, go to shared memory as float;
//   3. scores S = Q · Kᵀ (16 × 32, causal mask per row), an online-softmax update per row (one thread per
//      row), then every thread updates its share of the 16 × head_dim accumulator with P · V.
// CUDA cores only (no tensor cores yet); float32 throughout. Rows no tile names are not written; rows of an
// inconsistent sequence, rows that reach a bad block id and rows with NaN scores are NaN (as opt_attention).
// Limits: head_dim <= 128 (OPT: 64, 80, 128), heads <= 65535.
#include <limits.h>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kQT = 16;       // query rows per tile
constexpr int kKT = 32;       // keys per key tile
constexpr int kThreads = 128;
constexpr int kMaxHeadDim = 128;
constexpr int kAccPerThread = kQT * kMaxHeadDim / kThreads;  // 16 accumulator elements per thread
constexpr int kPad = kMaxHeadDim + 1;                        // row stride in shared memory: no bank conflicts

template <typename T>
__global__ void __launch_bounds__(kThreads)
tiled_attention_kernel(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k_cache,
                       const T* __restrict__ v_cache, const int32_t* __restrict__ block_tables,
                       const int32_t* __restrict__ query_start, const int32_t* __restrict__ query_count,
                       const int32_t* __restrict__ context_len, const int32_t* __restrict__ tile_seq,
                       const int32_t* __restrict__ tile_first, int num_seqs, int heads, int head_dim,
                       int block_size, int max_blocks, int num_blocks, float scale) {
  __shared__ float q_s[kQT][kPad];
  __shared__ float k_s[kKT][kPad];
  __shared__ float v_s[kKT][kPad];
  __shared__ float p_s[kQT][kKT + 1];  // scores, then softmax weights
  __shared__ long long slot_s[kKT];
  __shared__ float m_s[kQT];           // running max per row
  __shared__ float l_s[kQT];           // running sum per row
  __shared__ float corr_s[kQT];        // this key tile's rescaling per row
  __shared__ int first_bad_s;          // the first key position with a bad block id: rows at or past it are NaN

  const int tile = blockIdx.x;
  const int h = blockIdx.y;
  const int tid = threadIdx.x;
  const int width = heads * head_dim;
  const int s = tile_seq[tile];
  const int first = tile_first[tile];
  if (s < 0 || s >= num_seqs) return;
  const int count = query_count[s];
  const int context = context_len[s];
  if (first < 0 || first >= count) return;  // a tile past the sequence's rows names nothing
  const int rows = min(kQT, count - first);
  const int row0 = query_start[s] + first;
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    for (int e = tid; e < rows * head_dim; e += kThreads) {
      out[static_cast<size_t>(row0 + e / head_dim) * width + static_cast<size_t>(h) * head_dim + e % head_dim] =
          from_float<T>(quiet_nan());
    }
    return;
  }
  const int pos0 = context - count + first;  // position of the tile's first row
  const int key_end = pos0 + rows;           // keys 0 .. key_end - 1 are visible to some row of the tile
  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;
  const size_t head_offset = static_cast<size_t>(h) * head_dim;

  for (int e = tid; e < rows * head_dim; e += kThreads) {
    const int i = e / head_dim;
    const int d = e % head_dim;
    q_s[i][d] = to_float(q[static_cast<size_t>(row0 + i) * width + head_offset + d]) * scale;
  }
  if (tid < kQT) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  if (tid == 0) first_bad_s = INT_MAX;
  float acc[kAccPerThread];
#pragma unroll
  for (int k = 0; k < kAccPerThread; ++k) acc[k] = 0.f;
  __syncthreads();

  for (int kt = 0; kt < key_end; kt += kKT) {
    const int nk = min(kKT, key_end - kt);
    // Slots of the key tile.
    if (tid < kKT) {
      long long slot = -1;
      if (tid < nk) {
        const int key = kt + tid;
        slot = kv_slot(table, key, block_size, num_blocks);
        if (slot < 0) {
          atomicMin(&first_bad_s, key);
        }
      }
      slot_s[tid] = slot;
    }
    __syncthreads();
    // K and V rows of the tile (coalesced over head_dim); a missing key reads as 0 and is masked below.
    for (int e = tid; e < nk * head_dim; e += kThreads) {
      const int j = e / head_dim;
      const int d = e % head_dim;
      const long long slot = slot_s[j];
      float kv = 0.f;
      float vv = 0.f;
      if (slot >= 0) {
        const size_t at = static_cast<size_t>(slot) * width + head_offset + d;
        kv = to_float(k_cache[at]);
        vv = to_float(v_cache[at]);
      }
      k_s[j][d] = kv;
      v_s[j][d] = vv;
    }
    __syncthreads();
    // Scores: row i sees key kt + j when kt + j <= pos0 + i.
    for (int pair = tid; pair < kQT * kKT; pair += kThreads) {
      const int i = pair / kKT;
      const int j = pair % kKT;
      float score = -INFINITY;
      if (i < rows && j < nk && slot_s[j] >= 0 && kt + j <= pos0 + i) {
        float dot = 0.f;
        for (int d = 0; d < head_dim; ++d) dot += q_s[i][d] * k_s[j][d];
        score = dot;  // NaN stays NaN: its weight, then the row's sum and output, become NaN (as opt_attention)
      }
      p_s[i][j] = score;
    }
    __syncthreads();
    // Online softmax, one thread per row: the tile's max, the weights, the running sum.
    if (tid < rows) {
      const int i = tid;
      const float m_old = m_s[i];
      float m_new = m_old;
      for (int j = 0; j < nk; ++j) m_new = fmaxf(m_new, p_s[i][j]);
      float sum = 0.f;
      for (int j = 0; j < kKT; ++j) {
        const float w = (j < nk && p_s[i][j] != -INFINITY) ? __expf(p_s[i][j] - m_new) : 0.f;
        p_s[i][j] = w;
        sum += w;
      }
      const float corr = m_old == -INFINITY ? 0.f : __expf(m_old - m_new);
      corr_s[i] = corr;
      l_s[i] = l_s[i] * corr + sum;
      m_s[i] = m_new;
    }
    __syncthreads();
    // Accumulators: element e = tid + k * kThreads of the rows × head_dim output.
#pragma unroll
    for (int k = 0; k < kAccPerThread; ++k) {
      const int e = tid + k * kThreads;
      if (e < rows * head_dim) {
        const int i = e / head_dim;
        const int d = e % head_dim;
        float a = acc[k] * corr_s[i];
        // Only the keys row i sees: a later key's weight is 0, but 0 · inf in its V row would be NaN.
        const int visible = min(nk, pos0 + i - kt + 1);
        for (int j = 0; j < visible; ++j) a += p_s[i][j] * v_s[j][d];
        acc[k] = a;
      }
    }
    __syncthreads();  // the next key tile overwrites slot_s, k_s, v_s and p_s
  }

  const int first_bad = first_bad_s;
#pragma unroll
  for (int k = 0; k < kAccPerThread; ++k) {
    const int e = tid + k * kThreads;
    if (e < rows * head_dim) {
      const int i = e / head_dim;
      const int d = e % head_dim;
      const bool bad = first_bad <= pos0 + i;  // the row reached a bad block id
      out[static_cast<size_t>(row0 + i) * width + head_offset + d] =
          from_float<T>(bad ? quiet_nan() : acc[k] / l_s[i]);
    }
  }
}

template <typename T>
int launch_tiled_attention(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
                           const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
                           const int32_t* tile_seq, const int32_t* tile_first, int num_tiles, int num_seqs,
                           int heads, int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                           cudaStream_t stream) {
  if (num_tiles < 0 || num_seqs < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || head_dim > kMaxHeadDim || heads > 65535) {
    return kInvalidValue;
  }
  if (num_tiles == 0 || num_seqs == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  const dim3 grid(num_tiles, heads);
  tiled_attention_kernel<T><<<grid, kThreads, 0, stream>>>(out, q, k_cache, v_cache, block_tables, query_start,
                                                           query_count, context_len, tile_seq, tile_first, num_seqs,
                                                           heads, head_dim, block_size, max_blocks, num_blocks,
                                                           scale);
  return launch_status();
}

}  // namespace

extern "C" {

OPT_API int opt_attention_tiled_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                                    const int32_t* block_tables, const int32_t* query_start,
                                    const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                    const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                    int block_size, int max_blocks, int num_blocks, float scale,
                                    cudaStream_t stream) {
  return launch_tiled_attention(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                                tile_seq, tile_first, num_tiles, num_seqs, heads, head_dim, block_size, max_blocks,
                                num_blocks, scale, stream);
}

OPT_API int opt_attention_tiled_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                    const uint16_t* v_cache, const int32_t* block_tables,
                                    const int32_t* query_start, const int32_t* query_count,
                                    const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                    int num_tiles, int num_seqs, int heads, int head_dim, int block_size,
                                    int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_tiled_attention(as_f16(out), as_f16(q), as_f16(k_cache), as_f16(v_cache), block_tables, query_start,
                                query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs, heads, head_dim,
                                block_size, max_blocks, num_blocks, scale, stream);
}

OPT_API int opt_attention_tiled_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                     const uint16_t* v_cache, const int32_t* block_tables,
                                     const int32_t* query_start, const int32_t* query_count,
                                     const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                     int num_tiles, int num_seqs, int heads, int head_dim, int block_size,
                                     int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_tiled_attention(as_bf16(out), as_bf16(q), as_bf16(k_cache), as_bf16(v_cache), block_tables,
                                query_start, query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs,
                                heads, head_dim, block_size, max_blocks, num_blocks, scale, stream);
}

}  // extern "C"
