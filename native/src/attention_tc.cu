// Tensor-core causal attention for prefill over the paged KV cache: the function of opt_attention
// (attention.cu) for the rows the tile map names, with Q·Kᵀ and P·V on tensor cores (WMMA 16×16×16, fp16 or
// bf16 in, float32 accumulate). Variants: opt_attention_tc_{f16,bf16}. CPU twin: CpuOps.attention.
//
// Why: attention_tiled.cu shares each key/value tile among 16 query rows but multiplies on CUDA cores; a
// 2047-token prefill spends most of its attention time in those multiplies. Tensor cores do them at many
// times the rate (flash-attention's organisation, on WMMA rather than hand-written mma.sync).
//
// How: the caller cuts each sequence's query rows into tiles of up to 64 consecutive rows (the tile map, as
// attention_tiled.cu but 64 rows). Grid (tile, head), 4 warps; warp w owns the tile's rows 16w .. 16w+15.
//   1. the tile's queries go to shared memory in their storage type (rows past the sequence's: zero);
//   2. the keys 0 .. (position of the tile's last row) are walked in tiles of 64: their slots (through the
//      block table), then the K and V rows (16-byte copies; a missing key's rows are zero);
//   3. each warp computes its 16 × 64 scores S = Q·Kᵀ on tensor cores into shared memory (float), scales and
//      masks them (causal, missing keys), updates its rows' running max and sum (online softmax, one row at
//      a time, lanes over the keys) and writes the weights P in the storage type;
//   4. each warp rescales its rows of the float accumulator O (shared memory) and adds P·V on tensor cores.
// At the end O / sum is written. Rows no tile names are not written; rows of an inconsistent sequence, rows
// that reach a bad block id and rows with NaN scores are NaN (as opt_attention).
// Differences from opt_attention, within the fp16/bf16 tolerances: the weights P are rounded to the storage
// type before P·V (as flash-attention does); and a non-finite value in the V row of a key a row does not see
// can still reach that row through 0 · inf when the key lies in the same 16-key block as a key some row of the
// row's warp sees (opt_attention skips every unseen key; this kernel skips unseen 16-key blocks per warp).
// Limits: fp16/bf16 only, head_dim a multiple of 16 up to 128 (OPT: 64, 80, 128), heads <= 65535; q, k_cache
// and v_cache 16-byte aligned (cudaMalloc'd buffers are).
#include <limits.h>
#include <mma.h>

#include "common.cuh"

namespace {
using namespace opt;
using namespace nvcuda;

constexpr int kRows = 64;  // query rows per tile: 4 warps × 16
constexpr int kKeys = 64;  // keys per key tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarp;
constexpr int kMaxHeadDim = 128;
constexpr int kHalfPad = 8;    // storage-type elements of padding per row (16 bytes): wmma alignment, fewer conflicts
constexpr int kFloatPad = 8;   // floats of padding per row (32 bytes): 8 mod 32 banks, no 2-way conflicts
constexpr int kScoreLd = kKeys + kFloatPad;
constexpr int kWeightLd = kKeys + kHalfPad;

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Where each array lives in the dynamic shared memory, for a head dim d (every offset 128-byte aligned; every
// row stride a multiple of 16 bytes, every 16-row or 16-column step a multiple of 32 bytes: WMMA's rules).
// The queries pass through the K array into registers, so head_dim 128 needs 98,688 bytes: under the 99 KB a
// block may opt into on sm_86/sm_89 (sm_80: 163 KB, sm_90: 227 KB).
struct Smem {
  int ld;   // row stride of Q, K, V in elements (d + 8)
  int ldo;  // row stride of O in floats (d + 8)
  size_t k, v, s, p, o, m, l, corr, slot, bad, total;
};

__host__ __device__ inline Smem smem_for(int d) {
  Smem m{};
  m.ld = d + kHalfPad;
  m.ldo = d + kFloatPad;
  const size_t kv = align128(static_cast<size_t>(kKeys) * m.ld * 2);  // also holds the 64 query rows at first
  m.k = 0;
  m.v = m.k + kv;
  m.s = m.v + kv;
  m.p = m.s + align128(static_cast<size_t>(kRows) * kScoreLd * sizeof(float));
  m.o = m.p + align128(static_cast<size_t>(kRows) * kWeightLd * 2);
  m.m = m.o + align128(static_cast<size_t>(kRows) * m.ldo * sizeof(float));
  m.l = m.m + align128(kRows * sizeof(float));
  m.corr = m.l + align128(kRows * sizeof(float));
  m.slot = m.corr + align128(kRows * sizeof(float));
  m.bad = m.slot + align128(kKeys * sizeof(long long));
  m.total = m.bad + 128;
  return m;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
tc_attention_kernel(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k_cache,
                    const T* __restrict__ v_cache, const int32_t* __restrict__ block_tables,
                    const int32_t* __restrict__ query_start, const int32_t* __restrict__ query_count,
                    const int32_t* __restrict__ context_len, const int32_t* __restrict__ tile_seq,
                    const int32_t* __restrict__ tile_first, int num_seqs, int heads, int head_dim, int block_size,
                    int max_blocks, int num_blocks, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Smem L = smem_for(head_dim);
  T* q_s = reinterpret_cast<T*>(smem + L.k);  // staging only: aliases k_s until the queries are in registers
  T* k_s = reinterpret_cast<T*>(smem + L.k);
  T* v_s = reinterpret_cast<T*>(smem + L.v);
  float* s_s = reinterpret_cast<float*>(smem + L.s);
  T* p_s = reinterpret_cast<T*>(smem + L.p);
  float* o_s = reinterpret_cast<float*>(smem + L.o);
  float* m_s = reinterpret_cast<float*>(smem + L.m);
  float* l_s = reinterpret_cast<float*>(smem + L.l);
  float* corr_s = reinterpret_cast<float*>(smem + L.corr);
  long long* slot_s = reinterpret_cast<long long*>(smem + L.slot);
  int* first_bad_s = reinterpret_cast<int*>(smem + L.bad);  // rows at or past this key position are NaN

  const int tile = blockIdx.x;
  const int h = blockIdx.y;
  const int tid = threadIdx.x;
  const int warp = tid / kWarp;
  const int lane = tid % kWarp;
  const int width = heads * head_dim;
  const int s = tile_seq[tile];
  const int first = tile_first[tile];
  if (s < 0 || s >= num_seqs) return;
  const int count = query_count[s];
  const int context = context_len[s];
  if (first < 0 || first >= count) return;  // a tile past the sequence's rows names nothing
  const int rows = min(kRows, count - first);
  const int row0 = query_start[s] + first;
  const size_t head_offset = static_cast<size_t>(h) * head_dim;
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    for (int e = tid; e < rows * head_dim; e += kThreads) {
      out[static_cast<size_t>(row0 + e / head_dim) * width + head_offset + e % head_dim] = from_float<T>(quiet_nan());
    }
    return;
  }
  const int pos0 = context - count + first;  // position of the tile's first row
  const int key_end = pos0 + rows;           // keys 0 .. key_end - 1 are visible to some row of the tile
  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;
  const int ld = L.ld;
  const int ldo = L.ldo;
  const int chunks = head_dim / 8;  // 16-byte pieces of a row (8 elements of 2 bytes)
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);  // +0.0 in fp16 and bf16

  // 1. queries (zero past the sequence's rows), accumulators, running max and sum
  for (int e = tid; e < kRows * chunks; e += kThreads) {
    const int i = e / chunks;
    const int c = e % chunks;
    *reinterpret_cast<uint4*>(q_s + i * ld + c * 8) =
        i < rows ? *reinterpret_cast<const uint4*>(q + static_cast<size_t>(row0 + i) * width + head_offset + c * 8)
                 : zero;
  }
  for (int e = tid; e < kRows * head_dim; e += kThreads) o_s[(e / head_dim) * ldo + e % head_dim] = 0.f;
  if (tid < kRows) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  if (tid == 0) *first_bad_s = INT_MAX;
  __syncthreads();

  const int my_row0 = warp * 16;  // this warp's first row in the tile
  // The last position this warp's rows reach: later keys (whole key tiles, or 16-key blocks of one) are skipped,
  // exactly (their weights are 0 and their rescaling 1), saving the work and never reading their V rows.
  const int warp_last = pos0 + min(my_row0 + 15, rows - 1);
  const bool warp_has_rows = my_row0 < rows;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[kMaxHeadDim / 16];
#pragma unroll
  for (int t = 0; t < kMaxHeadDim / 16; ++t) {
    if (t * 16 < head_dim) wmma::load_matrix_sync(qf[t], q_s + my_row0 * ld + t * 16, ld);
  }
  __syncthreads();  // the first key tile overwrites the staging area (k_s)
  for (int kt = 0; kt < key_end; kt += kKeys) {
    const int nk = min(kKeys, key_end - kt);
    // 2. slots of the key tile, then its K and V rows
    if (tid < kKeys) {
      long long slot = -1;
      if (tid < nk) {
        const int key = kt + tid;
        slot = kv_slot(table, key, block_size, num_blocks);
        if (slot < 0) {
          atomicMin(first_bad_s, key);
        }
      }
      slot_s[tid] = slot;
    }
    __syncthreads();
    for (int e = tid; e < kKeys * chunks; e += kThreads) {
      const int j = e / chunks;
      const int c = e % chunks;
      const long long slot = slot_s[j];
      uint4 kv = zero;
      uint4 vv = zero;
      if (slot >= 0) {
        const size_t at = static_cast<size_t>(slot) * width + head_offset + c * 8;
        kv = *reinterpret_cast<const uint4*>(k_cache + at);
        vv = *reinterpret_cast<const uint4*>(v_cache + at);
      }
      *reinterpret_cast<uint4*>(k_s + j * ld + c * 8) = kv;
      *reinterpret_cast<uint4*>(v_s + j * ld + c * 8) = vv;
    }
    __syncthreads();

    if (warp_has_rows && kt <= warp_last) {  // warp-uniform: nothing below synchronises the whole block
      // 3. this warp's scores: S (16 × 64) = Q (16 × d) · Kᵀ (d × 64), K read column-major from its rows; 16-key
      // blocks past the warp's last position are left unwritten (the softmax masks those columns)
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKeys / 16];
  #pragma unroll
      for (int n = 0; n < kKeys / 16; ++n) wmma::fill_fragment(acc[n], 0.f);
  #pragma unroll
      for (int t = 0; t < kMaxHeadDim / 16; ++t) {
        if (t * 16 >= head_dim) break;
  #pragma unroll
        for (int n = 0; n < kKeys / 16; ++n) {
          if (kt + n * 16 > warp_last) continue;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
          wmma::load_matrix_sync(b, k_s + n * 16 * ld + t * 16, ld);
          wmma::mma_sync(acc[n], qf[t], b, acc[n]);
        }
      }
  #pragma unroll
      for (int n = 0; n < kKeys / 16; ++n) {
        if (kt + n * 16 > warp_last) continue;
        wmma::store_matrix_sync(s_s + my_row0 * kScoreLd + n * 16, acc[n], kScoreLd, wmma::mem_row_major);
      }
      __syncwarp();
      // Online softmax, one row at a time, lanes over the 64 keys: row i sees key kt + j when kt + j <= pos0 + i.
      for (int r = 0; r < 16; ++r) {
        const int i = my_row0 + r;
        float score[2];
        float tile_max = -INFINITY;
  #pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int j = lane + c * kWarp;
          const bool visible = i < rows && j < nk && slot_s[j] >= 0 && kt + j <= pos0 + i;
          // NaN stays NaN: fmaxf skips it, its weight is NaN, and so become the row's sum and output
          score[c] = visible ? s_s[i * kScoreLd + j] * scale : -INFINITY;
          tile_max = fmaxf(tile_max, score[c]);
        }
        for (int offset = kWarp / 2; offset > 0; offset /= 2) {
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
        }
        const float m_old = m_s[i];
        const float m_new = fmaxf(m_old, tile_max);
        float sum = 0.f;
  #pragma unroll
        for (int c = 0; c < 2; ++c) {
          const float w = score[c] == -INFINITY ? 0.f : __expf(score[c] - m_new);
          p_s[i * kWeightLd + lane + c * kWarp] = from_float<T>(w);
          sum += w;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
          const float corr = m_old == -INFINITY ? 0.f : __expf(m_old - m_new);
          corr_s[i] = corr;
          l_s[i] = l_s[i] * corr + sum;
          m_s[i] = m_new;
        }
      }
      __syncwarp();
      // 4. O = O · corr + P · V for this warp's rows (O read and written as WMMA accumulators)
      for (int e = lane; e < 16 * head_dim; e += kWarp) {
        const int i = my_row0 + e / head_dim;
        o_s[i * ldo + e % head_dim] *= corr_s[i];
      }
      __syncwarp();
      for (int nd = 0; nd < head_dim; nd += 16) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        wmma::load_matrix_sync(c, o_s + my_row0 * ldo + nd, ldo, wmma::mem_row_major);
  #pragma unroll
        for (int kk = 0; kk < kKeys; kk += 16) {
          if (kt + kk > warp_last) break;  // no row of this warp sees these keys: weight 0, V never read
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
          wmma::load_matrix_sync(a, p_s + my_row0 * kWeightLd + kk, kWeightLd);
          wmma::load_matrix_sync(b, v_s + kk * ld + nd, ld);
          wmma::mma_sync(c, a, b, c);
        }
        wmma::store_matrix_sync(o_s + my_row0 * ldo + nd, c, ldo, wmma::mem_row_major);
      }
    }
    __syncthreads();  // the next key tile overwrites slot_s, k_s and v_s
  }

  const int first_bad = *first_bad_s;
  for (int e = tid; e < rows * head_dim; e += kThreads) {
    const int i = e / head_dim;
    const int d = e % head_dim;
    const bool bad = first_bad <= pos0 + i;  // the row reached a bad block id
    out[static_cast<size_t>(row0 + i) * width + head_offset + d] =
        from_float<T>(bad ? quiet_nan() : o_s[i * ldo + d] / l_s[i]);
  }
}

template <typename T>
int launch_tc_attention(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
                        const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
                        const int32_t* tile_seq, const int32_t* tile_first, int num_tiles, int num_seqs, int heads,
                        int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                        cudaStream_t stream) {
  if (num_tiles < 0 || num_seqs < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || head_dim > kMaxHeadDim || head_dim % 16 != 0 || heads > 65535) {
    return kInvalidValue;
  }
  if (num_tiles == 0 || num_seqs == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  // 16-byte copies of q, K and V rows: a misaligned base would be a sticky fault that ends the CUDA context.
  const auto unaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (unaligned(q) || unaligned(k_cache) || unaligned(v_cache)) return kInvalidValue;
  const size_t bytes = smem_for(head_dim).total;
  // Above 48 KB a kernel must opt in, per device: set on every launch (a host-side call of a few
  // microseconds, next to a prefill's milliseconds). Steps of drafts (-Dopt.cuda.draftGraphs) run this kernel
  // inside a CUDA graph capture: not a stream operation, the call is allowed in CudaOps' relaxed-mode capture.
  const int opted_in = static_cast<int>(cudaFuncSetAttribute(
      tc_attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  if (opted_in != kSuccess) {
    cudaGetLastError();  // not a sticky error: do not leave it for the next launcher's launch_status()
    return opted_in;
  }
  const dim3 grid(num_tiles, heads);
  tc_attention_kernel<T><<<grid, kThreads, bytes, stream>>>(out, q, k_cache, v_cache, block_tables, query_start,
                                                             query_count, context_len, tile_seq, tile_first,
                                                             num_seqs, heads, head_dim, block_size, max_blocks,
                                                             num_blocks, scale);
  return launch_status();
}

}  // namespace

extern "C" {

OPT_API int opt_attention_tc_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                 const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                                 const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                 int num_tiles, int num_seqs, int heads, int head_dim, int block_size, int max_blocks,
                                 int num_blocks, float scale, cudaStream_t stream) {
  return launch_tc_attention(as_f16(out), as_f16(q), as_f16(k_cache), as_f16(v_cache), block_tables, query_start,
                             query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs, heads, head_dim,
                             block_size, max_blocks, num_blocks, scale, stream);
}

OPT_API int opt_attention_tc_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                  const uint16_t* v_cache, const int32_t* block_tables, const int32_t* query_start,
                                  const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                  const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                  int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_tc_attention(as_bf16(out), as_bf16(q), as_bf16(k_cache), as_bf16(v_cache), block_tables,
                             query_start, query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs, heads,
                             head_dim, block_size, max_blocks, num_blocks, scale, stream);
}

}  // extern "C"
