// Flash-attention-2 style causal attention for prefill over the paged KV cache: the function of opt_attention
// (attention.cu) for the rows the tile map names, the same contract as opt_attention_tc (attention_tc.cu), with
// everything but the key/value tiles kept in registers. Variants: opt_attention_fa_{f16,bf16}. CPU twin:
// CpuOps.attention. CPU emulation of this file, thread by thread: native/dev/emu_fa/.
//
// Why: attention_tc.cu keeps the scores S and the float accumulator O in shared memory and goes through them
// several times per key tile (WMMA store, softmax one row at a time, O rescale, WMMA load/store), and loads
// K/V synchronously, so its tensor cores mostly wait: on an H100 it ran a 2047-token opt-1.3b prefill layer
// (32 heads, head_dim 64) in 0.90 ms, about 19 TFLOP/s of causal work. Here shared memory holds only K and V.
//
// How: the caller cuts each sequence's query rows into tiles of up to 64 consecutive rows (the tile map, as
// for opt_attention_tc). One block of 4 warps per (tile, head); warp w owns the tile's rows 16w .. 16w+15.
//   1. the tile's queries are copied (cp.async) to shared memory and each warp loads its 16 rows once into
//      registers as mma A fragments (ldmatrix); rows past the sequence's are zero;
//   2. the keys 0 .. (position of the tile's last row) are walked in tiles of 64 keys. Each K/V tile is
//      copied with 16-byte cp.async into one of two shared-memory stages: tile j+1 is in flight while tile j
//      is computed (one __syncthreads per key tile). Its 64 cache slots (block table) were looked up, one key
//      per thread, into a small shared array during tile j-2, so no copy waits for a table load;
//   3. each warp computes its 16 × 64 scores S = Q·Kᵀ with mma.sync m16n8k16 (K fragments by ldmatrix),
//      in registers; scales them (into log2 units, for ex2), masks them causally, and updates its rows'
//      running max m and sum l (online softmax; a row's 64 scores sit in the 4 lanes of a quad, so the row
//      max needs two shuffles);
//   4. the weights P are rounded to the storage type in registers: the m16n8 accumulator layout of S is the
//      A-fragment layout of the next m16n8k16, so P·V needs no shared memory (V fragments: ldmatrix.trans).
//      O (16 × head_dim per warp, float) lives in registers and is rescaled there.
// At the end O / l is written. Rows no tile names are not written; rows of an inconsistent sequence, rows that
// reach a bad block id and rows with NaN scores are NaN (as opt_attention).
// Key tiles past a warp's last row are skipped by that warp, 16-key blocks within a tile too (their weights are
// exactly 0). As in attention_tc.cu: the weights P are rounded to the storage type before P·V, and a
// non-finite V value of a key a row does not see can still reach that row through 0 · inf when the key shares
// a 16-key block with a key some row of the row's warp sees.
// Blocks run heavy-first: the grid is one-dimensional, heads fastest, and the tile map is walked from its
// end (a sequence's later tiles see more keys), so the long blocks start first and the short ones fill the
// tail.
// Limits: fp16/bf16, head_dim 64, 80 or 128 (OPT's; else 1 = invalid value, nothing launched), heads <= 65535,
// num_tiles * heads < 2^31; q, k_cache and v_cache 16-byte aligned, out 4-byte aligned (cudaMalloc'd buffers
// are). Needs sm_80+ (cp.async, bf16 mma); the project builds 80, 86, 89, 90.
#include <limits.h>
#include <string.h>

#include "common.cuh"

namespace {
using namespace opt;

constexpr int kRows = 64;  // query rows per tile: 4 warps × 16
constexpr int kKeys = 64;  // keys per key tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarp;
constexpr int kPad = 8;  // storage-type elements of padding per shared row (16 bytes): see FaShape::kLd

static_assert(kRows == kKeys, "the query staging area is one K tile");

// Sizes for head dim D. Shared memory is two stages of [K tile | V tile], each tile 64 rows of kLd elements.
// kLd = D + 8: a row is then 16 bytes (4 banks) past a multiple of 128 bytes for D = 64 and 128 (and
// 48 bytes past for D = 80), so the 8 row addresses of an ldmatrix phase hit 8 different 16-byte bank
// groups (no conflicts), and every row start stays 16-byte aligned for cp.async and ldmatrix.
template <int D>
struct FaShape {
  static_assert(D % 16 == 0, "head_dim must be a multiple of 16 (mma k-steps)");
  static constexpr int kLd = D + kPad;
  static constexpr int kTile = kKeys * kLd;                    // elements of one K or V tile
  static constexpr int kChunks = D / 8;                        // 16-byte pieces of a row
  static constexpr int kCopies = kKeys * kChunks / kThreads;   // pieces per thread per K (or V, or Q) tile
  static constexpr int kSteps = D / 16;                        // k-steps of Q·Kᵀ = 16-dim pairs of P·V
  static constexpr int kDimBlocks = D / 8;                     // n8 blocks of O
  static constexpr size_t kSmemBytes = static_cast<size_t>(4) * kTile * 2;
  static_assert(kKeys * kChunks % kThreads == 0, "each thread copies the same number of pieces");
};

// ---- PTX wrappers (sm_80+) ------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, asynchronously, bypassing L1 (.cg). valid = false fills the 16 bytes with zeros
// and reads nothing (src-size 0): a missing key's or a padding row's data.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits for all of this thread's copies; other threads' copies are visible only after a barrier.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Four 8×8 matrices of 16-bit elements; lanes 8i .. 8i+7 give the row addresses of matrix i, and register i
// of lane l receives row l/4, elements 2(l%4) and 2(l%4)+1 of matrix i (.trans: column l/4, rows 2(l%4), +1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// mma16816 (the m16n8k16 tensor-core product and its fragments): common.cuh.

// Two floats rounded to the storage type (nearest even), lo in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &v, sizeof(u));
  return u;
}

// 2^x on the special-function unit (what __expf uses); tiny results flush to 0, -inf gives 0, NaN stays NaN.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- the kernel -------------------------------------------------------------------------------------------

// One warp's work on one key tile (keys kt .. kt + 63, K and V rows in k_s, v_s): S = Q·Kᵀ, the online-softmax
// update of m, l and O, and O += P·V, all in registers. Rows of the warp: my_row0 + g and my_row0 + g + 8 of the
// tile, at positions pos0 + that; warp_last = the last position they reach.
template <typename T, int D>
__device__ __forceinline__ void attend_tile(const uint32_t (&qf)[D / 16][4], float (&o)[D / 8][4], float (&m)[2],
                                            float (&l)[2], const T* k_s, const T* v_s, int kt, int pos0,
                                            int my_row0, int warp_last, int lane, float scale_log2) {
  using S = FaShape<D>;
  const int g = lane / 4;  // the fragment row (and row + 8) this lane holds
  const int t = lane % 4;  // its column pair within each 8-column block
  // 1. S (16 × 64) = Q · Kᵀ: B = Kᵀ is K's rows read as columns, so plain ldmatrix on K rows gives it. One x4
  // covers keys 16kb .. 16kb+15 × dims 16ks .. 16ks+15: lane l addresses key (l % 8) + 8·(l / 16), dim
  // 8·((l / 8) % 2); registers 0, 1 are b0, b1 of keys 16kb .. +7, registers 2, 3 those of keys +8 .. +15.
  float sc[kKeys / 8][4];
#pragma unroll
  for (int nb = 0; nb < kKeys / 8; ++nb) sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.f;
#pragma unroll
  for (int ks = 0; ks < S::kSteps; ++ks) {
#pragma unroll
    for (int kb = 0; kb < kKeys / 16; ++kb) {
      if (kt + 16 * kb > warp_last) continue;  // unseen by every row of the warp: stays 0, masked below
      uint32_t b[4];
      ldmatrix_x4(b, smem_addr(k_s + (16 * kb + (lane % 8) + 8 * (lane / 16)) * S::kLd + ks * 16 +
                               8 * ((lane / 8) % 2)));
      mma16816<T>(sc[2 * kb], qf[ks], b[0], b[1]);
      mma16816<T>(sc[2 * kb + 1], qf[ks], b[2], b[3]);
    }
  }
  // 2. scale to log2 units and mask: row my_row0 + g + 8·(j / 2) sees key kt + 8nb + 2t + j % 2 when that key is
  // at or before its position; only a tile that crosses the warp's diagonal needs the comparison. A NaN score
  // of a visible key stays NaN (fmaxf skips it, ex2 keeps it): the row's sum, and so its output, become NaN.
  const bool diagonal = kt + kKeys - 1 > pos0 + my_row0;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int nb = 0; nb < kKeys / 8; ++nb) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int key = kt + 8 * nb + 2 * t + j % 2;
      const int pos = pos0 + my_row0 + g + 8 * (j / 2);
      sc[nb][j] = diagonal && key > pos ? -INFINITY : sc[nb][j] * scale_log2;
      mx[j / 2] = fmaxf(mx[j / 2], sc[nb][j]);
    }
  }
  // 3. online softmax: a row's 64 scores lie in the quad of lanes 4g .. 4g+3, so two shuffles give its max
  float base[2];  // the max the weights are taken against (0 while a row has seen nothing: no -inf - -inf)
  float corr[2];  // the rescaling of the row's earlier sum and accumulator
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float m_new = fmaxf(m[r], mx[r]);
    base[r] = m_new == -INFINITY ? 0.f : m_new;
    corr[r] = ex2(m[r] - base[r]);
    m[r] = m_new;
    l[r] *= corr[r];
  }
#pragma unroll
  for (int nb = 0; nb < kKeys / 8; ++nb) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      sc[nb][j] = ex2(sc[nb][j] - base[j / 2]);
      l[j / 2] += sc[nb][j];  // this lane's columns only; the quad's partial sums are added at the end
    }
  }
#pragma unroll
  for (int nb = 0; nb < S::kDimBlocks; ++nb) {
#pragma unroll
    for (int j = 0; j < 4; ++j) o[nb][j] *= corr[j / 2];
  }
  // 4. O += P · V. The A fragment of keys 16kb .. 16kb+15 is S's blocks 2kb and 2kb+1 as they lie in the
  // registers, rounded to T. B = V (keys × dims) is column-major for the mma, so ldmatrix.trans: one x4 covers
  // keys 16kb .. +15 × dims 16dp .. +15, lane l addresses key (l % 8) + 8·((l / 8) % 2), dim 8·(l / 16);
  // registers 0, 1 are b0, b1 of dims 16dp .. +7, registers 2, 3 those of dims +8 .. +15.
#pragma unroll
  for (int kb = 0; kb < kKeys / 16; ++kb) {
    if (kt + 16 * kb > warp_last) continue;  // weights 0 for every row of the warp: V never read
    const uint32_t a[4] = {pack2<T>(sc[2 * kb][0], sc[2 * kb][1]), pack2<T>(sc[2 * kb][2], sc[2 * kb][3]),
                           pack2<T>(sc[2 * kb + 1][0], sc[2 * kb + 1][1]),
                           pack2<T>(sc[2 * kb + 1][2], sc[2 * kb + 1][3])};
#pragma unroll
    for (int dp = 0; dp < S::kSteps; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, smem_addr(v_s + (16 * kb + (lane % 8) + 8 * ((lane / 8) % 2)) * S::kLd + 16 * dp +
                                     8 * (lane / 16)));
      mma16816<T>(o[2 * dp], a, b[0], b[1]);
      mma16816<T>(o[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// Blocks resident per SM the register budget should allow (65,536 registers / 128 threads / this): 4 at
// head_dim 64 (≤ 128 registers), 3 at 80, 2 at 128 (the O accumulator alone is head_dim / 2 registers). On
// sm_86/sm_89 shared memory (100 KB per SM) holds only 2 blocks anyway, and the cap of 4 made head_dim 64 spill a
// little there: 2 (a review, session 7; sm_90 and sm_80 keep 4).
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
constexpr int kSmemLimitedBlocks = 2;
#else
constexpr int kSmemLimitedBlocks = 4;
#endif
template <int D>
constexpr int kMinBlocks = D <= 64 ? kSmemLimitedBlocks : (D <= 80 ? (kSmemLimitedBlocks < 3 ? 2 : 3) : 2);

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, kMinBlocks<D>)
fa_attention_kernel(T* __restrict__ out, const T* __restrict__ q, const T* __restrict__ k_cache,
                    const T* __restrict__ v_cache, const int32_t* __restrict__ block_tables,
                    const int32_t* __restrict__ query_start, const int32_t* __restrict__ query_count,
                    const int32_t* __restrict__ context_len, const int32_t* __restrict__ tile_seq,
                    const int32_t* __restrict__ tile_first, int num_tiles, int num_seqs, int heads,
                    int block_size, int max_blocks, int num_blocks, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never built: cp.async and bf16 mma need sm_80 (the project's architectures are 80+)
#else
  using S = FaShape<D>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* const smem = reinterpret_cast<T*>(smem_raw);  // stage st: K tile at smem + 2·st·kTile, V tile right after
  __shared__ long long slot_s[2][kKeys];           // cache slots of key tiles it + 1 and it + 2 (see below)
  __shared__ int bad_s[kWarps];                    // per warp: the first key position with a bad block id

  const int tid = threadIdx.x;
  const int warp = tid / kWarp;
  const int lane = tid % kWarp;
  // Heavy-first: block b is head b % heads of tile (num_tiles - 1 - b / heads).
  const int h = static_cast<int>(blockIdx.x % heads);
  const int tile = num_tiles - 1 - static_cast<int>(blockIdx.x / heads);
  const int width = heads * D;
  const int s = tile_seq[tile];
  const int first = tile_first[tile];
  if (s < 0 || s >= num_seqs) return;
  const int count = query_count[s];
  const int context = context_len[s];
  if (first < 0 || first >= count) return;  // a tile past the sequence's rows names nothing
  const int rows = min(kRows, count - first);
  const int row0 = query_start[s] + first;
  const size_t head_offset = static_cast<size_t>(h) * D;
  if (count > context || static_cast<long long>(context) > static_cast<long long>(max_blocks) * block_size) {
    for (int e = tid; e < rows * D; e += kThreads) {
      out[static_cast<size_t>(row0 + e / D) * width + head_offset + e % D] = from_float<T>(quiet_nan());
    }
    return;
  }
  const int pos0 = context - count + first;  // position of the tile's first row
  const int key_end = pos0 + rows;           // keys 0 .. key_end - 1 are visible to some row of the tile
  const int key_tiles = (key_end + kKeys - 1) / kKeys;
  const int32_t* table = block_tables + static_cast<size_t>(s) * max_blocks;

  const int my_row0 = warp * 16;  // this warp's first row in the tile
  const bool warp_has_rows = my_row0 < rows;
  // The last key position this warp's rows see: later key tiles, and later 16-key blocks of a tile, are
  // skipped by the warp (exactly: their weights would be 0 and their rescaling 1).
  const int warp_last = pos0 + min(my_row0 + 15, rows - 1);
  int my_bad = INT_MAX;  // the first bad key position among the slots this thread looked up

  // Slots: key tile j's 64 cache slots are looked up (block table, one division per key) by threads 0 .. 63
  // during key tile j - 2 and kept in slot_s[j % 2], so that the copies need no division per 16-byte piece and
  // the table load's latency hides behind a tile's compute. Slot -1: a key past key_end or with a bad block id,
  // zero-filled (its weight is 0, or its rows are NaN).
  const auto slot_of = [&](int key, int block, int in_block) -> long long {
    if (key >= key_end) return -1;
    if (block < 0 || block >= num_blocks) {
      my_bad = min(my_bad, key);
      return -1;
    }
    return static_cast<long long>(block) * block_size + in_block;
  };
  const auto lookup = [&](int key) -> long long {
    return key < key_end ? slot_of(key, table[key / block_size], key % block_size) : -1;
  };

  // Issues this thread's copies of a key tile whose slots are `slots` into stage st: piece e = tid + i·128 is
  // row e / kChunks, 16-byte chunk e % kChunks (consecutive threads read consecutive chunks of a row).
  const auto load_kv = [&](const long long* slots, int st) {
    T* const k_s = smem + 2 * st * S::kTile;
    T* const v_s = k_s + S::kTile;
#pragma unroll
    for (int i = 0; i < S::kCopies; ++i) {
      const int e = tid + i * kThreads;
      const int r = e / S::kChunks;
      const int c = e % S::kChunks;
      const long long slot = slots[r];
      const size_t at = slot >= 0 ? static_cast<size_t>(slot) * width + head_offset + c * 8 : 0;
      cp_async16(smem_addr(k_s + r * S::kLd + c * 8), k_cache + at, slot >= 0);
      cp_async16(smem_addr(v_s + r * S::kLd + c * 8), v_cache + at, slot >= 0);
    }
  };

  // Prologue. The queries go to stage 1's K area (free until key tile 1 is issued, after the loop's first
  // barrier), key tile 0 to stage 0; threads 0 .. 63 look up key tile 0's slots, threads 64 .. 127 tile 1's.
  T* const q_s = smem + 2 * S::kTile;
#pragma unroll
  for (int i = 0; i < S::kCopies; ++i) {
    const int e = tid + i * kThreads;
    const int r = e / S::kChunks;
    const int c = e % S::kChunks;
    const bool valid = r < rows;  // rows past the sequence's: zero
    const size_t at = valid ? static_cast<size_t>(row0 + r) * width + head_offset + c * 8 : 0;
    cp_async16(smem_addr(q_s + r * S::kLd + c * 8), q + at, valid);
  }
  slot_s[tid / kKeys][tid % kKeys] = lookup(tid);  // key tid: tile 0 for tid < 64, tile 1 for the others
  __syncthreads();                                 // tile 0's slots are in slot_s[0]
  load_kv(slot_s[0], 0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();  // every thread's copies of Q (and of tile 0) have landed
  // Each warp's Q fragments, once: for k-step ks the x4 covers (rows 0-7 | 8-15) × (dims 0-7 | 8-15) of its 16
  // rows (registers a[0] .. a[3] in that order), i.e. lane l addresses row (l % 8) + 8·((l / 8) % 2), dim
  // 8·(l / 16) of the step.
  uint32_t qf[S::kSteps][4];
  {
    const int r = my_row0 + (lane % 8) + 8 * ((lane / 8) % 2);
#pragma unroll
    for (int ks = 0; ks < S::kSteps; ++ks) {
      ldmatrix_x4(qf[ks], smem_addr(q_s + r * S::kLd + ks * 16 + 8 * (lane / 16)));
    }
  }

  float o[S::kDimBlocks][4];  // O rows g and g+8 of this warp (g = lane / 4), columns 8·nb + 2·(lane % 4), +1
#pragma unroll
  for (int nb = 0; nb < S::kDimBlocks; ++nb) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running max of rows g, g+8 (log2 units)
  float l[2] = {0.f, 0.f};              // running sum of this lane's columns of rows g, g+8

  for (int it = 0; it < key_tiles; ++it) {
    const int kt = it * kKeys;
    // Key tile it + 2's table entry (threads 0 .. 63): loaded now, used after this tile's compute.
    const int ahead = kt + 2 * kKeys + tid;
    const bool looks_up = tid < kKeys && ahead < key_end;
    int block = -1;
    int in_block = 0;
    if (looks_up) {
      block = table[ahead / block_size];
      in_block = ahead % block_size;
    }
    cp_async_wait_all();
    // Key tile it has landed for every thread, and its slots were used; every warp is done with stage
    // (it + 1) % 2 (key tile it - 1, or the queries when it = 0), which the next copies overwrite.
    __syncthreads();
    if (it + 1 < key_tiles) load_kv(slot_s[(it + 1) % 2], (it + 1) % 2);
    cp_async_commit();
    if (warp_has_rows && kt <= warp_last) {  // warp-uniform
      const T* const k_s = smem + 2 * (it % 2) * S::kTile;
      attend_tile<T, D>(qf, o, m, l, k_s, k_s + S::kTile, kt, pos0, my_row0, warp_last, lane, scale_log2);
    }
    if (tid < kKeys) slot_s[it % 2][tid] = looks_up ? slot_of(ahead, block, in_block) : -1;
  }

  // The first bad key position of the block (rows at or past it are NaN), then O / l for the tile's rows.
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    my_bad = min(my_bad, __shfl_xor_sync(0xffffffffu, my_bad, offset));
  }
  if (lane == 0) bad_s[warp] = my_bad;
  __syncthreads();
  int first_bad = bad_s[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) first_bad = min(first_bad, bad_s[w]);
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int i = my_row0 + g + 8 * r;
    if (i >= rows) continue;
    const bool bad = first_bad <= pos0 + i;
    const float inv = 1.f / l[r];
    T* const dst = out + static_cast<size_t>(row0 + i) * width + head_offset + 2 * t;
#pragma unroll
    for (int nb = 0; nb < S::kDimBlocks; ++nb) {
      *reinterpret_cast<uint32_t*>(dst + 8 * nb) =
          bad ? pack2<T>(quiet_nan(), quiet_nan()) : pack2<T>(o[nb][2 * r] * inv, o[nb][2 * r + 1] * inv);
    }
  }
#endif
}

template <typename T, int D>
int launch_fa(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
              const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
              const int32_t* tile_seq, const int32_t* tile_first, int num_tiles, int num_seqs, int heads,
              int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  const size_t bytes = FaShape<D>::kSmemBytes;  // 36,864 (64), 45,056 (80), 69,632 (128)
  // Above 48 KB a kernel must opt in, per device (a host-side call of a few microseconds, next to a prefill's
  // milliseconds). Steps of drafts (-Dopt.cuda.draftGraphs) run this kernel inside a CUDA graph capture: not a
  // stream operation, the call is allowed in CudaOps' relaxed-mode capture.
  if (bytes > 48 * 1024) {
    const int opted_in = static_cast<int>(cudaFuncSetAttribute(
        fa_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    if (opted_in != kSuccess) {
      cudaGetLastError();  // not a sticky error: do not leave it for the next launcher's launch_status()
      return opted_in;
    }
  }
  const float kLog2e = 1.4426950408889634f;
  fa_attention_kernel<T, D><<<num_tiles * heads, kThreads, bytes, stream>>>(
      out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len, tile_seq, tile_first,
      num_tiles, num_seqs, heads, block_size, max_blocks, num_blocks, scale * kLog2e);
  return launch_status();
}

template <typename T>
int launch_fa_attention(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* block_tables,
                        const int32_t* query_start, const int32_t* query_count, const int32_t* context_len,
                        const int32_t* tile_seq, const int32_t* tile_first, int num_tiles, int num_seqs, int heads,
                        int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                        cudaStream_t stream) {
  if (num_tiles < 0 || num_seqs < 0 || heads < 0 || head_dim < 0 || block_size < 0 || max_blocks < 0 ||
      num_blocks < 0 || heads > 65535 ||
      static_cast<long long>(num_tiles) * heads > static_cast<long long>(INT_MAX)) {
    return kInvalidValue;
  }
  if (head_dim != 0 && head_dim != 64 && head_dim != 80 && head_dim != 128) return kInvalidValue;
  if (num_tiles == 0 || num_seqs == 0 || heads == 0 || head_dim == 0) return kSuccess;
  if (block_size == 0) return kInvalidValue;
  // 16-byte copies of q, K and V rows and 4-byte stores of out: a misaligned base would be a sticky fault that
  // ends the CUDA context.
  const auto misaligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a != 0; };
  if (misaligned(q, 16) || misaligned(k_cache, 16) || misaligned(v_cache, 16) || misaligned(out, 4)) {
    return kInvalidValue;
  }
  switch (head_dim) {
    case 64:
      return launch_fa<T, 64>(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                              tile_seq, tile_first, num_tiles, num_seqs, heads, block_size, max_blocks, num_blocks,
                              scale, stream);
    case 80:
      return launch_fa<T, 80>(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                              tile_seq, tile_first, num_tiles, num_seqs, heads, block_size, max_blocks, num_blocks,
                              scale, stream);
    default:
      return launch_fa<T, 128>(out, q, k_cache, v_cache, block_tables, query_start, query_count, context_len,
                               tile_seq, tile_first, num_tiles, num_seqs, heads, block_size, max_blocks, num_blocks,
                               scale, stream);
  }
}

}  // namespace

extern "C" {

OPT_API int opt_attention_fa_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                 const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                                 const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                 int num_tiles, int num_seqs, int heads, int head_dim, int block_size, int max_blocks,
                                 int num_blocks, float scale, cudaStream_t stream) {
  return launch_fa_attention(as_f16(out), as_f16(q), as_f16(k_cache), as_f16(v_cache), block_tables, query_start,
                             query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs, heads, head_dim,
                             block_size, max_blocks, num_blocks, scale, stream);
}

OPT_API int opt_attention_fa_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                  const uint16_t* v_cache, const int32_t* block_tables, const int32_t* query_start,
                                  const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                  const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                  int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream) {
  return launch_fa_attention(as_bf16(out), as_bf16(q), as_bf16(k_cache), as_bf16(v_cache), block_tables,
                             query_start, query_count, context_len, tile_seq, tile_first, num_tiles, num_seqs, heads,
                             head_dim, block_size, max_blocks, num_blocks, scale, stream);
}

}  // extern "C"
