// Split-KV causal attention over the paged KV cache ("flash-decoding"): the same function as
// opt_attention (attention.cu, same arguments plus a float32 workspace), organised for speed.
// Variants: opt_attention_split_{f32,f16,bf16}. CPU twin: CpuOps.attention.
//
// Why: the first kernel gives one thread block of 128 threads to each (query row, head) and walks every
// visible key one after another (a warp per key, a shuffle reduction per key). The H100 profile of
// 2026-11-26 (docs/perf.md) put it at 91 % of a 2047-token prefill and 50 % of a batch-32 decode step; at
// batch 1 a decode step of opt-1.3b keeps 32 of 132 SMs busy.
//
// How:
//   1. Grid (query row, head, split): the keys a row sees are cut into `splits` ranges of split_len keys
//      (a multiple of the 64-key tile), so short batches still fill the GPU. The launcher picks splits from
//      the SM count and the table width only (never from the context lengths), so a CUDA graph captured
//      once stays valid while the sequences grow within that width.
//   2. A block of 64 threads walks its range in tiles of 64 keys, one key per thread: the thread computes
//      its key's score with 16-byte loads against the query (pre-scaled, in shared memory), the block
//      takes the tile's max and sum (two reductions per tile instead of one per key), then every thread
//      accumulates its own output dimensions over the tile's keys (coalesced reads of V rows; eight keys' loads
//      in flight at a time, accumulate_values), with the online-softmax rescaling of flash attention.
//   3. With one split the block writes the normalised output. With more, it writes (max, sum, unnormalised
//      accumulator) to the workspace and a combine kernel merges the splits of each (row, head); or, with
//      inline_combine, the last of a (row, head)'s split blocks to finish merges them itself (a counter per
//      (row, head) in the workspace's first kCounterBytes), so a decode step has one attention kernel per layer
//      instead of two. Same merge code, so both ways give the same bits.
// Numerics: float32 throughout, exp via __expf; the same tolerances as opt_attention in the tests.
// Rows no sequence owns are not written; inconsistent rows and rows reaching a bad block id are NaN (as in
// opt_attention). Limits: head_dim <= 256.
#include "attention_grouped.cuh"
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kMaxHeadDim = 256;
constexpr int kT = 64;                           // threads per block = keys per tile
constexpr int kDimsPerThread = kMaxHeadDim / kT;  // output dimensions one thread accumulates
// The workspace's first bytes: one int counter per (row, head) for the inline combine (zero between launches).
// Batches of more (row, head) pairs than it holds use the combine kernel.
constexpr size_t kCounterBytes = 64 * 1024;
constexpr long long kCounters = static_cast<long long>(kCounterBytes / sizeof(int));

// q · k over 16 bytes of the key (4 floats or 8 halves), q already float.
__device__ __forceinline__ float dot16(const float* k, const float* q) {
  const float4 v = *reinterpret_cast<const float4*>(k);
  return v.x * q[0] + v.y * q[1] + v.z * q[2] + v.w * q[3];
}
__device__ __forceinline__ float dot16(const __half* k, const float* q) {
  const uint4 u = *reinterpret_cast<const uint4*>(k);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    s += f.x * q[2 * i] + f.y * q[2 * i + 1];
  }
  return s;
}
__device__ __forceinline__ float dot16(const __nv_bfloat16* k, const float* q) {
  const uint4 u = *reinterpret_cast<const uint4*>(k);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    s += f.x * q[2 * i] + f.y * q[2 * i + 1];
  }
  return s;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// Reduces v over the kT threads of the block with op (max or sum); every thread gets the result. `red`
// holds one float per warp; the closing barrier lets the next call reuse it.
template <class Op>
__device__ __forceinline__ float tile_reduce(float v, float* red, Op op) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if (threadIdx.x % kWarp == 0) red[threadIdx.x / kWarp] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int w = 1; w < kT / kWarp; ++w) r = op(r, red[w]);
  __syncthreads();
  return r;
}

// Step 3c of the kernel: thread tid adds, for each of the tile's first n_keys keys j in order whose slot is not
// -1, p_s[j] times dimension tid + k * kT of key j's value row to acc[k]. Keys go in rounds of kValueRound whose
// loads are all issued before the first is used: waiting for one key's value row before loading the next cost a
// global-load latency per key, 64 per tile (an opt-1.3b decode step at batch 1 on an H100 spent ~38 µs per layer
// in this kernel, more than any other op; docs/perf.md, session 7). The sums are the same, in the same order, as
// one key at a time. Host and device: native/dev/split_values_test.cu checks it on the CPU against that loop.
// kDims: the output dimensions a thread holds (kDimsPerThread for any head_dim; head_dim / kT where the kernel knows
// head_dim at compile time). kRound: keys per round; v takes kRound * kDims registers.
constexpr int kValueRound = 8;  // 64 registers per thread on sm_90; 16 took 127 (half the resident blocks)

template <typename T, int kDims, int kRound = kValueRound>
__host__ __device__ __forceinline__ void accumulate_values(float (&acc)[kDims], const long long* slot_s,
                                                           const float* p_s, int n_keys, const T* v_cache,
                                                           size_t width, size_t head_offset, int tid,
                                                           int head_dim) {
  for (int j0 = 0; j0 < n_keys; j0 += kRound) {
    float v[kRound][kDims];
    float p[kRound];
OPT_UNROLL
    for (int u = 0; u < kRound; ++u) {
      const int j = j0 + u;
      const long long sj = j < n_keys ? slot_s[j] : -1;
      p[u] = sj >= 0 ? p_s[j] : 0.f;
      const T* v_row = v_cache + static_cast<size_t>(sj >= 0 ? sj : 0) * width + head_offset;
OPT_UNROLL
      for (int k = 0; k < kDims; ++k) {
        const int d = tid + k * kT;
        v[u][k] = sj >= 0 && d < head_dim ? to_float(v_row[d]) : 0.f;
      }
    }
OPT_UNROLL
    for (int u = 0; u < kRound; ++u) {
      if (j0 + u < n_keys && slot_s[j0 + u] >= 0) {  // skipped keys add nothing, as before (not even a +0 to a -0)
OPT_UNROLL
        for (int k = 0; k < kDims; ++k) {
          if (tid + k * kT < head_dim) acc[k] = fmaf(p[u], v[u][k], acc[k]);  // fmaf: the same on host and GPU
        }
      }
    }
  }
}

// Merges the splits of one (row, head) as flash-decoding does: base holds `splits` records of (max, sum,
// unnormalised accumulator), stride head_dim + 2 floats apart. Every thread of the block takes dimensions
// threadIdx.x, + blockDim.x, ...; each dimension's arithmetic is the same for any block size. Loads through L2
// (ld.global.cg): in the inline combine other blocks wrote the records during this kernel, and L1 is not coherent.
template <typename T>
__device__ void combine_splits(T* out_row, const float* base, int head_dim, int splits) {
  const size_t stride = static_cast<size_t>(head_dim) + 2;
  float m = -INFINITY;
  bool nan = false;
  for (int sp = 0; sp < splits; ++sp) {
    const float ms = __ldcg(base + sp * stride);
    if (isnan(ms)) nan = true;
    else m = fmaxf(m, ms);
  }
  if (nan || m == -INFINITY) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out_row[d] = from_float<T>(quiet_nan());
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
    out_row[d] = from_float<T>(a / total);
  }
}

// grid = (total_queries, heads, splits), block = kT. partial: null when splits == 1, else
// (total_queries, heads, splits, head_dim + 2) floats: max, sum, then the unnormalised accumulator.
// counters: null (split_combine_kernel merges the partials), else one int per (row, head), zero on entry and
// left zero: the inline combine (the block that finishes a (row, head) last merges its splits).
// No __restrict__ on out, partial, q and the cache (chained launches, common.cuh): the previous kernels write
// them; the index arrays are copied in before the launch.
// kHeadDim: 0 for any head_dim (head_dim_arg), else the head_dim it was compiled for (64 or 128, OPT's; the
// launcher picks it with 16-byte key loads): a thread then holds only the dimensions it has, 8 of a key's 16-byte
// loads are in flight at once instead of 4, and a value round covers 16 keys instead of 8 (a 64-key tile in 4
// rounds of load latency instead of 8) in the generic kernel's 64 registers (more would cut the blocks resident
// per SM, which large-batch decode needs). The same sums in the same order, so the same bits as kHeadDim = 0
// (native/dev/split_values_test.cu checks the value loop).
template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kT, 16)  // 16 blocks per SM, as the generic kernel's 64 registers allow
split_attention_kernel(T* out, float* partial, int* counters, const T* q, const T* k_cache, const T* v_cache,
                       const int32_t* __restrict__ block_tables, const int32_t* __restrict__ query_start,
                       const int32_t* __restrict__ query_count, const int32_t* __restrict__ context_len,
                       int num_seqs, int heads, int head_dim_arg, int block_size, int max_blocks, int num_blocks,
                       float scale, int splits, int split_len, bool vec) {
  static_assert(kHeadDim == 0 || (kHeadDim % kT == 0 && kHeadDim <= kMaxHeadDim), "whole dimensions per thread");
  constexpr int kDims = kHeadDim > 0 ? kHeadDim / kT : kDimsPerThread;  // output dimensions this thread holds
  constexpr int kRound = kHeadDim > 0 ? 16 : kValueRound;               // keys per value round
  const int head_dim = kHeadDim > 0 ? kHeadDim : head_dim_arg;
  __shared__ float q_s[kMaxHeadDim];  // this head's query row, times scale
  __shared__ float p_s[kT];           // the tile's softmax weights (relative to the running max)
  __shared__ long long slot_s[kT];    // the tile's cache slots, -1 for none
  __shared__ float red_s[kT / kWarp];
  __shared__ int seq_s;
  __shared__ int bad_s;  // a bad block id, or a NaN score (which a tile max of -inf would otherwise drop)
  chain_start();  // a chained launch: the next kernel may launch; nothing is read or written before chain_wait
  chain_wait();

  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const int sp = blockIdx.z;
  const int tid = threadIdx.x;
  const int width = heads * head_dim;
  float* part = partial == nullptr
      ? nullptr
      : partial + ((static_cast<size_t>(row) * heads + h) * splits + sp) * static_cast<size_t>(head_dim + 2);

  // 1. The sequence that owns this row.
  if (tid == 0) {
    seq_s = -1;
    bad_s = 0;
  }
  __syncthreads();
  for (int s = tid; s < num_seqs; s += kT) {
    const long long offset = static_cast<long long>(row) - query_start[s];
    // atomicMax: if ranges overlap (bad input), every split block of the row picks the same owner, so all of them
    // count for the inline combine or none does
    if (offset >= 0 && offset < query_count[s]) atomicMax(&seq_s, s);
  }
  __syncthreads();
  const int s = seq_s;
  if (s < 0) {  // not written, as opt_attention; tell the combine kernel (a sum is never negative)
    if (part != nullptr && tid == 0) part[1] = -1.f;
    return;
  }
  T* out_row = out + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  const int count = query_count[s];
  const int context = context_len[s];
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    if (part != nullptr && counters == nullptr) {  // the combine kernel writes the NaN row
      if (tid == 0) {
        part[0] = quiet_nan();
        part[1] = 0.f;
      }
    } else if (part == nullptr || sp == 0) {  // inline: every split of the row comes here and none counts, so
      for (int d = tid; d < head_dim; d += kT) out_row[d] = from_float<T>(quiet_nan());  // split 0 writes it
    }
    return;
  }
  const int visible = context - count + (row - query_start[s]) + 1;  // causal: positions 0 .. visible - 1
  const int begin = sp * split_len;
  const int end = min(visible, begin + split_len);

  // 2. The query, scaled, as float.
  const T* q_row = q + static_cast<size_t>(row) * width + static_cast<size_t>(h) * head_dim;
  for (int d = tid; d < head_dim; d += kT) q_s[d] = to_float(q_row[d]) * scale;
  __syncthreads();

  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;
  const size_t head_offset = static_cast<size_t>(h) * head_dim;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte load (vec: the launcher checked
                                                          // that every key row starts 16-byte aligned)
  float running_max = -INFINITY;
  float running_sum = 0.f;
  float acc[kDims];
#pragma unroll
  for (int k = 0; k < kDims; ++k) acc[k] = 0.f;

  for (int tile = begin; tile < end; tile += kT) {  // begin and end are the same for the whole block
    // 3a. One key per thread: its slot and score.
    const int key = tile + tid;
    float score = -INFINITY;
    long long slot = -1;
    if (key < end) {
      slot = kv_slot(table, key, block_size, num_blocks);
      if (slot >= 0) {
        const T* k_row = k_cache + static_cast<size_t>(slot) * width + head_offset;
        float dot = 0.f;
        if (kHeadDim > 0) {  // the launcher checked vec; 8 loads in flight (a 64-dim fp16 row: all; the order stays)
#pragma unroll 8
          for (int d = 0; d < kHeadDim; d += kVec) dot += dot16(k_row + d, q_s + d);
        } else if (vec) {
#pragma unroll 4  // several 16-byte loads in flight (the sum order stays d ascending)
          for (int d = 0; d < head_dim; d += kVec) dot += dot16(k_row + d, q_s + d);
        } else {
          for (int d = 0; d < head_dim; ++d) dot += to_float(k_row[d]) * q_s[d];
        }
        score = dot;
        if (isnan(dot)) bad_s = 1;  // NaN data makes the row NaN, as opt_attention's does
      } else {
        bad_s = 1;  // every writer writes 1
      }
    }
    slot_s[tid] = slot;

    // 3b. Online softmax over the tile: two block reductions.
    const float new_max = fmaxf(running_max, tile_reduce(score, red_s, MaxOp()));
    const float weight = (slot >= 0 && new_max != -INFINITY) ? __expf(score - new_max) : 0.f;
    p_s[tid] = weight;
    const float sum = tile_reduce(weight, red_s, SumOp());  // its barriers also publish p_s and slot_s
    const float correction = running_max == -INFINITY ? 0.f : __expf(running_max - new_max);
    running_sum = running_sum * correction + sum;
#pragma unroll
    for (int k = 0; k < kDims; ++k) acc[k] *= correction;

    // 3c. Values: thread t accumulates dimensions t, t + kT, ... over the tile's keys.
    accumulate_values<T, kDims, kRound>(acc, slot_s, p_s, min(kT, end - tile), v_cache, width, head_offset, tid,
                                        head_dim);
    running_max = new_max;
    __syncthreads();  // the next tile overwrites p_s and slot_s
  }
  __syncthreads();
  const bool bad = bad_s != 0;

  // 4. One split: normalise and store. Several: leave the pieces to the combine kernel.
  if (part == nullptr) {
#pragma unroll
    for (int k = 0; k < kDims; ++k) {
      const int d = tid + k * kT;
      if (d < head_dim) out_row[d] = from_float<T>(bad ? quiet_nan() : acc[k] / running_sum);
    }
  } else {
    if (tid == 0) {
      part[0] = bad ? quiet_nan() : running_max;  // -inf for an empty range (keys past the row's end)
      part[1] = running_sum;
    }
#pragma unroll
    for (int k = 0; k < kDims; ++k) {
      const int d = tid + k * kT;
      if (d < head_dim) part[2 + d] = acc[k];
    }
    if (counters != nullptr) {
      // 5. Inline combine, the CUDA programming guide's "last block" pattern (memory fence functions): every
      // thread's partials are made visible device-wide before thread 0 counts this split; the block whose count
      // completes the (row, head) merges every split's partials (through L2) and resets the counter for the next
      // launch (a graph replays with the same workspace).
      __shared__ bool last_s;
      __threadfence();
      __syncthreads();
      int* counter = counters + static_cast<size_t>(row) * heads + h;
      if (tid == 0) last_s = atomicAdd(counter, 1) == splits - 1;
      __syncthreads();
      if (last_s) {
        __threadfence();
        const float* base = partial + (static_cast<size_t>(row) * heads + h) * splits * static_cast<size_t>(head_dim + 2);
        combine_splits(out_row, base, head_dim, splits);
        if (tid == 0) *counter = 0;
      }
    }
  }
}

// grid = (total_queries, heads): merges the splits of one (row, head) (combine_splits).
template <typename T>
__global__ void split_combine_kernel(T* out, const float* partial, int heads, int head_dim, int splits) {
  chain_start();
  chain_wait();  // the partials of split_attention_kernel
  const int row = blockIdx.x;
  const int h = blockIdx.y;
  const float* base = partial + (static_cast<size_t>(row) * heads + h) * splits * (static_cast<size_t>(head_dim) + 2);
  if (__ldcg(base + 1) < 0.f) return;  // no sequence owns the row: not written
  T* out_row = out + static_cast<size_t>(row) * heads * head_dim + static_cast<size_t>(h) * head_dim;
  combine_splits(out_row, base, head_dim, splits);
}

template <typename T>
int launch_split_attention(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
                           const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
                           int num_seqs, int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                           int num_blocks, float scale, float* workspace, size_t workspace_bytes, int options,
                           cudaStream_t stream) {
  if (num_seqs < 0 || total_queries < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || head_dim > kMaxHeadDim || heads > 65535 ||
      (options & ~(OPT_ATTENTION_INLINE_COMBINE | OPT_ATTENTION_GROUPED)) != 0) {
    return kInvalidValue;
  }
  if (num_seqs == 0 || total_queries == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  if (static_cast<long long>(max_blocks) * block_size > (1LL << 30)) return kInvalidValue;  // int key positions
  // Splits: enough (row, head, split) blocks for about four per SM, at most one per tile of the widest table,
  // and as many as the workspace holds. Depends on sizes only, never on the context lengths.
  const long long max_context = static_cast<long long>(max_blocks) * block_size;
  const long long tiles = max_context < kT ? 1 : (max_context + kT - 1) / kT;
  const long long pairs = static_cast<long long>(total_queries) * heads;
  // Workspace: kCounterBytes of inline-combine counters, then the partials (the same layout either way, so a
  // caller may switch between the two ways on one workspace without disturbing the counters).
  long long splits = 1;
  if (workspace != nullptr && workspace_bytes > kCounterBytes) {
    splits = (4LL * sm_count() + pairs - 1) / pairs;
    if (splits > tiles) splits = tiles;
    if (splits > 65535) splits = 65535;
    const size_t per_split = static_cast<size_t>(pairs) * (head_dim + 2) * sizeof(float);
    while (splits > 1 && per_split * static_cast<size_t>(splits) > workspace_bytes - kCounterBytes) --splits;
  }
  const long long split_len = (tiles + splits - 1) / splits * kT;
  splits = max_context <= split_len ? 1 : (max_context + split_len - 1) / split_len;
  const int n_splits = static_cast<int>(splits);
  // Key rows start at multiples of head_dim elements from k_cache: 16-byte loads are aligned when both are.
  constexpr size_t kVecBytes = 16;
  const bool vec = (static_cast<size_t>(head_dim) * sizeof(T)) % kVecBytes == 0 &&
                   reinterpret_cast<uintptr_t>(k_cache) % kVecBytes == 0;
  float* partial = n_splits > 1 ? workspace + kCounterBytes / sizeof(float) : nullptr;
  // The grouped kernel (attention_grouped.cu, session 12) where it applies; it leaves the merge to the combine kernel.
  bool grouped = false;
  if constexpr (sizeof(T) == 2) {
    grouped = (options & OPT_ATTENTION_GROUPED) != 0 && grouped_split_applies(head_dim, sizeof(T), q, k_cache, v_cache);
  }
  const bool inline_merge =
      !grouped && partial != nullptr && (options & OPT_ATTENTION_INLINE_COMBINE) != 0 && pairs <= kCounters;
  int* counters = inline_merge ? reinterpret_cast<int*>(workspace) : nullptr;
  const dim3 grid(total_queries, heads, n_splits);
  // OPT's head sizes (64: 125m-2.7b, 128: 6.7b-175b) get the kernel compiled for them, in fp16/bf16 (float32's
  // twice as many key loads would spill at 64 registers; it is not a speed path).
  auto kernel = split_attention_kernel<T, 0>;
  if constexpr (sizeof(T) == 2) {
    if (vec && head_dim == 64) kernel = split_attention_kernel<T, 64>;
    if (vec && head_dim == 128) kernel = split_attention_kernel<T, 128>;
  }
  int st = kSuccess;
  if constexpr (sizeof(T) == 2) {
    if (grouped) {
      count_launch(OPT_COUNT_GROUPED_SPLIT);
      st = launch_grouped_split(out, partial, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                                num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                n_splits, static_cast<int>(split_len), stream);
    }
  }
  if (!grouped) {
    st = launch_chained(kernel, grid, dim3(kT), 0, stream, out, partial, counters, q, k_cache, v_cache, block_tables,
                        query_start, query_count, context_len, num_seqs, heads, head_dim, block_size, max_blocks,
                        num_blocks, scale, n_splits, static_cast<int>(split_len), vec);
  }
  if (st == kSuccess && partial != nullptr && !inline_merge) {
    st = launch_chained(split_combine_kernel<T>, dim3(total_queries, heads), dim3(threads_for(head_dim, 256)), 0,
                        stream, out, static_cast<const float*>(partial), heads, head_dim, n_splits);
  }
  return st;
}

}  // namespace

extern "C" {

OPT_API int opt_attention_split_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                                    const int32_t* block_tables, const int32_t* query_start,
                                    const int32_t* query_count, const int32_t* context_len, int num_seqs,
                                    int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                                    int num_blocks, float scale, float* workspace, size_t workspace_bytes,
                                    int options, cudaStream_t stream) {
  return launch_split_attention(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                                num_seqs, total_queries, heads, head_dim, block_size, max_blocks, num_blocks, scale,
                                workspace, workspace_bytes, options, stream);
}

OPT_API int opt_attention_split_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                    const uint16_t* v_cache, const int32_t* block_tables,
                                    const int32_t* query_start, const int32_t* query_count,
                                    const int32_t* context_len, int num_seqs, int total_queries, int heads,
                                    int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                                    float* workspace, size_t workspace_bytes, int options,
                                    cudaStream_t stream) {
  return launch_split_attention(as_f16(out), as_f16(q), as_f16(k_cache), as_f16(v_cache), block_tables, query_start,
                                query_count, context_len, num_seqs, total_queries, heads, head_dim, block_size,
                                max_blocks, num_blocks, scale, workspace, workspace_bytes, options, stream);
}

OPT_API int opt_attention_split_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                     const uint16_t* v_cache, const int32_t* block_tables,
                                     const int32_t* query_start, const int32_t* query_count,
                                     const int32_t* context_len, int num_seqs, int total_queries, int heads,
                                     int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                                     float* workspace, size_t workspace_bytes, int options,
                                     cudaStream_t stream) {
  return launch_split_attention(as_bf16(out), as_bf16(q), as_bf16(k_cache), as_bf16(v_cache), block_tables,
                                query_start, query_count, context_len, num_seqs, total_queries, heads, head_dim,
                                block_size, max_blocks, num_blocks, scale, workspace, workspace_bytes, options,
                                stream);
}

}  // extern "C"
