// emu_fa: a CPU emulation of native/src/attention_fa.cu (opt_attention_fa_{f16,bf16}), thread by thread, against
// an independent double-precision reference of causal paged attention. See README.md beside this file.
//
// What is modelled, as the kernel is written (same names, same order of statements):
//   - the grid (one block per (tile, head), heavy-first order), 4 warps of 32 lanes each with its own registers;
//     warps are coroutines (ucontext) switched at __syncthreads, in a random order after each barrier;
//   - cp.async 16-byte copies (zero fill for src-size 0) with commit groups and wait_group 0: the data lands
//     when the issuing thread waits, not before;
//   - ldmatrix .x4 (and .trans) and mma.sync m16n8k16 (f16/bf16 in, f32 accumulate) through the fragment layouts
//     of the PTX ISA (section "Matrix Fragments for mma.m16n8k16 with floating point type" and "ldmatrix"), written
//     here from the documentation, independently of the kernel's addressing;
//   - shuffles (xor), ex2.approx.ftz (as exp2 rounded to float, flushed), fp16/bf16 rounding to nearest even (our
//     own conversion, checked bit for bit against CUDA's host __float2half_rn / __float2bfloat16_rn when built
//     with -DCUDA_HOST_CONVERSIONS);
//   - checks: shared-memory races between barriers (a write and a read or write of the same byte by two threads in
//     one barrier interval; a read of bytes an unfinished cp.async writes), reads of uninitialised shared memory,
//     out-of-bounds and misaligned accesses (shared and global), cp.async left unwaited at exit, out elements
//     written twice or written where no tile names the row, divergence where the kernel assumes uniformity.
// What is not modelled: the exact bits of ex2.approx and the tensor cores' internal summation order (products are
// exact, sums here are float in k order), real concurrency, timing.
//
// Build and run:  g++ -O2 -std=c++17 emu_fa.cpp -o emu_fa && ./emu_fa [cases] [seed]
// Planted bugs:   g++ -O2 -std=c++17 -DPLANT=N emu_fa.cpp -o emu_plant && ./emu_plant 40   (N = 1 .. 9, see kPlant)
#include <ucontext.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifdef CUDA_HOST_CONVERSIONS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none):
//   1: no __syncthreads between the loop's cp.async wait and the compute (ldmatrix of other threads' copies)
//   2: causal mask one key late (a row sees the key after its position)
//   3: no __syncthreads after the prologue's slot look-up (load_kv reads slot_s other threads write)
//   4: no cp.async.commit_group in the loop (the next tile's copies are never waited for)
//   5: ldmatrix.trans lane addressing of V with the two halves swapped (keys 8..15 ↔ dims 8..15)
//   6: key tile it + 2's slots written to slot_s[(it + 1) % 2] (the buffer the copies are reading)
//   7: the P·V skip of 16-key blocks one block early (skips a block that some row of the warp sees)
//   8: no __syncthreads between writing bad_s and reading it (numbers unaffected unless a block id is bad)
//   9: no __syncthreads between the prologue's cp.async wait and the Q ldmatrix
constexpr int kPlant = PLANT;

#include "../emu_common/storage.h"

namespace {

// ---- errors --------------------------------------------------------------------------------------------

struct Log {
  long long errors = 0;
  std::vector<std::string> first;
  void add(const char* fmt, ...) {
    ++errors;
    if (first.size() >= 12) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    first.push_back(buf);
  }
};
Log g_log;  // errors of the checker (races, bounds, ...), not numeric differences

// ---- storage types: native/dev/emu_common/storage.h -----------------------------------------------------------
using emu::bf16_to_float;
using emu::bitsf;
using emu::fbits;
using emu::float_to_bf16;
using emu::float_to_half;
using emu::half_to_float;
#ifdef CUDA_HOST_CONVERSIONS
using emu::check_conversions;
#endif

struct F16 {
  static uint16_t from(float f) { return float_to_half(f); }
  static float to(uint16_t h) { return half_to_float(h); }
  static const char* name() { return "f16"; }
};
struct BF16 {
  static uint16_t from(float f) { return float_to_bf16(f); }
  static float to(uint16_t h) { return bf16_to_float(h); }
  static const char* name() { return "bf16"; }
};

// ---- global memory: bounds- and alignment-checked buffers --------------------------------------------------

struct GBuf {
  std::string name;
  std::vector<uint8_t> bytes;
  bool writable = false;
  std::vector<uint8_t> writes;  // per byte: how many times the kernel wrote it
  template <class E>
  static GBuf of(const std::string& n, const std::vector<E>& v, bool w = false) {
    GBuf b;
    b.name = n;
    b.bytes.resize(v.size() * sizeof(E));
    if (!v.empty()) std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
    b.writable = w;
    b.writes.assign(w ? b.bytes.size() : 0, 0);
    return b;
  }
  bool in(size_t off, size_t n, size_t align, const char* what) const {
    if (off % align != 0) {
      g_log.add("%s: misaligned %zu-byte access to %s at byte %zu", what, align, name.c_str(), off);
      return false;
    }
    if (off + n > bytes.size()) {
      g_log.add("%s: out-of-bounds access to %s: bytes %zu..%zu of %zu", what, name.c_str(), off, off + n - 1,
                bytes.size());
      return false;
    }
    return true;
  }
  int32_t i32(size_t idx, const char* what) const {
    int32_t v = 0;
    if (in(idx * 4, 4, 4, what)) std::memcpy(&v, &bytes[idx * 4], 4);
    return v;
  }
  void load16(size_t elem, uint8_t* dst, const char* what) const {  // 16 bytes at 2-byte element elem
    if (in(elem * 2, 16, 16, what)) std::memcpy(dst, &bytes[elem * 2], 16);
    else std::memset(dst, 0, 16);
  }
  void store(size_t byte_off, const void* src, size_t n, const char* what) {
    if (!writable) {
      g_log.add("%s: store to read-only %s", what, name.c_str());
      return;
    }
    if (!in(byte_off, n, n, what)) return;
    std::memcpy(&bytes[byte_off], src, n);
    for (size_t i = 0; i < n; ++i) {
      if (writes[byte_off + i]++ == 1) g_log.add("%s: %s byte %zu written twice", what, name.c_str(), byte_off + i);
    }
  }
};

// ---- shared memory with a race / initialisation checker -----------------------------------------------------

struct SByte {
  uint8_t val = 0;
  bool init = false;
  int pend = -1;  // thread whose unfinished cp.async writes this byte
  int w_thread = -1;
  long w_epoch = -1;
  int r_thread = -1;  // -2: several threads
  long r_epoch = -1;
};

struct Block;

struct Smem {
  std::string name;
  std::vector<SByte> b;
  long* epoch = nullptr;
  void reset(const std::string& n, size_t size, long* ep) {
    name = n;
    b.assign(size, SByte());
    epoch = ep;
  }
  bool in(size_t off, size_t n, size_t align, const char* what) const {
    if (off % align != 0) {
      g_log.add("%s: misaligned %zu-byte shared access to %s at %zu", what, align, name.c_str(), off);
      return false;
    }
    if (off + n > b.size()) {
      g_log.add("%s: out-of-bounds shared access to %s: %zu..%zu of %zu", what, name.c_str(), off, off + n - 1,
                b.size());
      return false;
    }
    return true;
  }
  void read(int thread, size_t off, size_t n, void* dst, const char* what) {
    std::memset(dst, 0, n);
    if (!in(off, n, n > 8 ? 16 : n, what)) return;
    for (size_t i = 0; i < n; ++i) {
      SByte& s = b[off + i];
      if (s.pend >= 0) {
        g_log.add("%s: thread %d reads %s byte %zu while thread %d's cp.async to it is unfinished", what, thread,
                  name.c_str(), off + i, s.pend);
      } else if (!s.init) {
        g_log.add("%s: thread %d reads uninitialised %s byte %zu", what, thread, name.c_str(), off + i);
      } else if (s.w_epoch == *epoch && s.w_thread != thread) {
        g_log.add("%s: race: thread %d reads %s byte %zu that thread %d wrote since the last barrier", what, thread,
                  name.c_str(), off + i, s.w_thread);
      }
      if (s.r_epoch == *epoch && s.r_thread != thread) s.r_thread = -2;
      else if (s.r_epoch != *epoch) s.r_thread = thread;
      s.r_epoch = *epoch;
      static_cast<uint8_t*>(dst)[i] = s.val;
    }
  }
  // The checks of a write by `thread` now (a plain store, or the issue of a cp.async).
  bool check_write(int thread, size_t off, const char* what) {
    SByte& s = b[off];
    if (s.pend >= 0) {
      g_log.add("%s: thread %d writes %s byte %zu while thread %d's cp.async to it is unfinished", what, thread,
                name.c_str(), off, s.pend);
      return false;
    }
    if (s.w_epoch == *epoch && s.w_thread != thread) {
      g_log.add("%s: race: threads %d and %d write %s byte %zu between two barriers", what, thread, s.w_thread,
                name.c_str(), off);
      return false;
    }
    if (s.r_epoch == *epoch && s.r_thread != thread) {
      g_log.add("%s: race: thread %d writes %s byte %zu that %s read since the last barrier", what, thread,
                name.c_str(), off, s.r_thread == -2 ? "several threads" : ("thread " + std::to_string(s.r_thread)).c_str());
      return false;
    }
    return true;
  }
  void write(int thread, size_t off, size_t n, const void* src, const char* what) {
    if (!in(off, n, n, what)) return;
    for (size_t i = 0; i < n; ++i) {
      check_write(thread, off + i, what);
      SByte& s = b[off + i];
      s.val = static_cast<const uint8_t*>(src)[i];
      s.init = true;
      s.w_thread = thread;
      s.w_epoch = *epoch;
    }
  }
};

// ---- the block: warps as coroutines, barriers, cp.async bookkeeping ------------------------------------------

constexpr int kWarpsPerBlock = 4;
constexpr int kThreadsPerBlock = 128;

struct Copy {  // one 16-byte cp.async
  size_t dst;
  uint8_t data[16];
  long group;  // -1 until committed
};

struct Block {
  Smem dyn, slot_s, bad_s;  // dynamic shared memory, and the kernel's two static arrays
  long epoch = 0;
  unsigned block_idx = 0;
  std::vector<Copy> copies[kThreadsPerBlock];
  long next_group[kThreadsPerBlock] = {};
  // coroutines
  ucontext_t sched;
  ucontext_t ctx[kWarpsPerBlock];
  int state[kWarpsPerBlock];  // 0 ready, 1 at a barrier, 2 exited
  std::mt19937* rng = nullptr;
  void syncthreads(int warp) {
    state[warp] = 1;
    swapcontext(&ctx[warp], &sched);
  }
  void cp_async16(int thread, size_t dst, const GBuf& src, size_t src_elem, bool valid, const char* what) {
    if (!dyn.in(dst, 16, 16, what)) return;
    Copy c;
    c.dst = dst;
    c.group = -1;
    // src-size 0: nothing is read (the address must still be a 16-byte aligned global address)
    if (src_elem * 2 % 16 != 0) g_log.add("%s: misaligned cp.async source %s element %zu", what, src.name.c_str(), src_elem);
    if (valid) src.load16(src_elem, c.data, what);
    else std::memset(c.data, 0, 16);
    for (int i = 0; i < 16; ++i) {
      dyn.check_write(thread, dst + i, what);
      dyn.b[dst + i].pend = thread;
    }
    copies[thread].push_back(c);
  }
  void commit(int thread) {
    for (Copy& c : copies[thread]) {
      if (c.group < 0) c.group = next_group[thread];
    }
    ++next_group[thread];
  }
  void wait_group0(int thread) {  // every committed group of this thread completes; uncommitted copies do not
    std::vector<Copy> left;
    for (const Copy& c : copies[thread]) {
      if (c.group < 0) {
        left.push_back(c);
        continue;
      }
      for (int i = 0; i < 16; ++i) {
        SByte& s = dyn.b[c.dst + i];
        s.pend = -1;
        s.val = c.data[i];
        s.init = true;
        s.w_thread = thread;
        s.w_epoch = epoch;
      }
    }
    copies[thread] = left;
  }
};

Block* g_block = nullptr;
std::function<void(int)> g_warp_body;

void warp_entry(int warp) {
  g_warp_body(warp);
  g_block->state[warp] = 2;
  // returns to g_block->sched through uc_link
}

// Runs one block: the warp bodies as coroutines, switched at barriers, in a random order each interval.
void run_block(Block& B, size_t dyn_bytes, const std::function<void(int)>& body) {
  static std::vector<char> stacks[kWarpsPerBlock];
  B.dyn.reset("dynamic smem", dyn_bytes, &B.epoch);
  B.slot_s.reset("slot_s", 2 * 64 * 8, &B.epoch);
  B.bad_s.reset("bad_s", kWarpsPerBlock * 4, &B.epoch);
  B.epoch = 0;
  for (auto& c : B.copies) c.clear();
  for (long& g : B.next_group) g = 0;
  g_block = &B;
  g_warp_body = body;
  for (int w = 0; w < kWarpsPerBlock; ++w) {
    stacks[w].resize(1 << 20);
    getcontext(&B.ctx[w]);
    B.ctx[w].uc_stack.ss_sp = stacks[w].data();
    B.ctx[w].uc_stack.ss_size = stacks[w].size();
    B.ctx[w].uc_link = &B.sched;
    makecontext(&B.ctx[w], reinterpret_cast<void (*)()>(warp_entry), 1, w);
    B.state[w] = 0;
  }
  for (;;) {
    std::vector<int> ready;
    for (int w = 0; w < kWarpsPerBlock; ++w) {
      if (B.state[w] == 0) ready.push_back(w);
    }
    if (ready.empty()) {
      int waiting = 0, exited = 0;
      for (int w = 0; w < kWarpsPerBlock; ++w) {
        waiting += B.state[w] == 1;
        exited += B.state[w] == 2;
      }
      if (waiting == 0) break;
      if (exited > 0) {
        g_log.add("block %u: %d warps wait at a barrier that %d exited warps never reach", B.block_idx, waiting,
                  exited);
        break;
      }
      ++B.epoch;  // the barrier completes
      for (int w = 0; w < kWarpsPerBlock; ++w) B.state[w] = 0;
      continue;
    }
    std::shuffle(ready.begin(), ready.end(), *B.rng);
    for (int w : ready) swapcontext(&B.sched, &B.ctx[w]);  // runs warp w to its next barrier or its end
  }
  for (int t = 0; t < kThreadsPerBlock; ++t) {
    if (!B.copies[t].empty()) {
      g_log.add("block %u: thread %d exits with %zu unfinished cp.async", B.block_idx, t, B.copies[t].size());
    }
  }
}

// ---- warp-level instructions ------------------------------------------------------------------------------

constexpr int kLanes = 32;

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8i .. 8i+7 give the addresses of rows 0..7 of
// matrix i (16 bytes each). Without .trans, lane l receives in register i row l/4, elements 2(l%4), 2(l%4)+1
// of matrix i; with .trans, the matrix is delivered transposed: column l/4, rows 2(l%4), 2(l%4)+1.
void ldmatrix_x4(Block& B, int warp, const size_t (&addr)[kLanes], uint32_t (&r)[kLanes][4], bool trans) {
  uint16_t mat[4][8][8];
  for (int i = 0; i < 4; ++i) {
    for (int row = 0; row < 8; ++row) {
      const int lane = 8 * i + row;
      B.dyn.read(warp * 32 + lane, addr[lane], 16, mat[i][row], trans ? "ldmatrix.trans" : "ldmatrix");
    }
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const uint16_t lo = trans ? mat[i][2 * t][g] : mat[i][g][2 * t];
      const uint16_t hi = trans ? mat[i][2 * t + 1][g] : mat[i][g][2 * t + 1];
      r[lane][i] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
    }
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32, d = a·b + d. Fragments (PTX ISA), g = l/4,
// t = l%4, a register holds (low, high) = elements (i, i+1) in the order listed:
//   A (16×16): a0,a1: (g, 2t..2t+1); a2,a3: (g+8, 2t..); a4,a5: (g, 2t+8..); a6,a7: (g+8, 2t+8..)
//   B (16×8):  b0,b1: (2t..2t+1, g); b2,b3: (2t+8..2t+9, g)
//   C/D:       c0,c1: (g, 2t..2t+1); c2,c3: (g+8, 2t..2t+1)
template <class T>
void mma16816(float (&d)[kLanes][4], const uint32_t (&a)[kLanes][4], const uint32_t (&b0)[kLanes],
              const uint32_t (&b1)[kLanes]) {
  float A[16][16], Bm[16][8], C[16][8];
  auto lo = [](uint32_t v) { return T::to(static_cast<uint16_t>(v & 0xffffu)); };
  auto hi = [](uint32_t v) { return T::to(static_cast<uint16_t>(v >> 16)); };
  for (int lane = 0; lane < kLanes; ++lane) {
    const int g = lane / 4, t = lane % 4;
    A[g][2 * t] = lo(a[lane][0]);
    A[g][2 * t + 1] = hi(a[lane][0]);
    A[g + 8][2 * t] = lo(a[lane][1]);
    A[g + 8][2 * t + 1] = hi(a[lane][1]);
    A[g][2 * t + 8] = lo(a[lane][2]);
    A[g][2 * t + 9] = hi(a[lane][2]);
    A[g + 8][2 * t + 8] = lo(a[lane][3]);
    A[g + 8][2 * t + 9] = hi(a[lane][3]);
    Bm[2 * t][g] = lo(b0[lane]);
    Bm[2 * t + 1][g] = hi(b0[lane]);
    Bm[2 * t + 8][g] = lo(b1[lane]);
    Bm[2 * t + 9][g] = hi(b1[lane]);
    C[g][2 * t] = d[lane][0];
    C[g][2 * t + 1] = d[lane][1];
    C[g + 8][2 * t] = d[lane][2];
    C[g + 8][2 * t + 1] = d[lane][3];
  }
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float acc = C[i][j];
      for (int k = 0; k < 16; ++k) acc += A[i][k] * Bm[k][j];  // the products are exact in float
      C[i][j] = acc;
    }
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    const int g = lane / 4, t = lane % 4;
    d[lane][0] = C[g][2 * t];
    d[lane][1] = C[g][2 * t + 1];
    d[lane][2] = C[g + 8][2 * t];
    d[lane][3] = C[g + 8][2 * t + 1];
  }
}

template <class V>
void shfl_xor(V (&v)[kLanes], int mask, V (&out)[kLanes]) {
  for (int lane = 0; lane < kLanes; ++lane) out[lane] = v[lane ^ mask];
}

// ex2.approx.ftz.f32: 2^x (here exactly rounded; the hardware's is within 2 ulp), subnormal in and out → 0.
float ex2(float x) {
  if (std::isnan(x)) return x;
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.f;
  float y = static_cast<float>(std::exp2(static_cast<double>(x)));
  if (y < std::numeric_limits<float>::min()) y = 0.f;
  return y;
}

float fmaxf_cuda(float a, float b) { return std::fmax(a, b); }  // NaN loses, as CUDA's fmaxf

template <class T>
uint32_t pack2(float lo, float hi) {
  return static_cast<uint32_t>(T::from(lo)) | static_cast<uint32_t>(T::from(hi)) << 16;
}

// Asserts that a condition the kernel treats as warp-uniform is the same in every lane.
bool uniform(const bool (&v)[kLanes], const char* what) {
  for (int lane = 1; lane < kLanes; ++lane) {
    if (v[lane] != v[0]) {
      g_log.add("%s: not warp-uniform", what);
      break;
    }
  }
  return v[0];
}

// ---- the kernel, as attention_fa.cu writes it ---------------------------------------------------------------

constexpr int kRows = 64, kKeys = 64, kPad = 8;

template <int D>
struct FaShape {
  static constexpr int kLd = D + kPad;
  static constexpr int kTile = kKeys * kLd;
  static constexpr int kChunks = D / 8;
  static constexpr int kCopies = kKeys * kChunks / kThreadsPerBlock;
  static constexpr int kSteps = D / 16;
  static constexpr int kDimBlocks = D / 8;
  static constexpr size_t kSmemBytes = static_cast<size_t>(4) * kTile * 2;
};

struct Params {
  GBuf *out, *q, *k_cache, *v_cache, *block_tables, *query_start, *query_count, *context_len, *tile_seq,
      *tile_first;
  int num_tiles, num_seqs, heads, block_size, max_blocks, num_blocks;
  float scale_log2;
};

template <class T, int D>
struct Regs {  // one thread's registers that live across the kernel's statements
  uint32_t qf[D / 16][4];
  float o[D / 8][4];
  float m[2], l[2];
};

// attend_tile: one warp, one key tile. Per-lane arrays stand for the registers of the 32 lanes.
template <class T, int D>
void attend_tile(Block& B, int warp, std::vector<Regs<T, D>>& R, size_t k_s, size_t v_s, int kt, int pos0,
                 int my_row0, int warp_last, float scale_log2) {
  using S = FaShape<D>;
  static float sc[kLanes][kKeys / 8][4];
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int nb = 0; nb < kKeys / 8; ++nb) sc[lane][nb][0] = sc[lane][nb][1] = sc[lane][nb][2] = sc[lane][nb][3] = 0.f;
  }
  // 1. S = Q · Kᵀ
  for (int ks = 0; ks < S::kSteps; ++ks) {
    for (int kb = 0; kb < kKeys / 16; ++kb) {
      if (kt + 16 * kb > warp_last) continue;
      size_t addr[kLanes];
      for (int lane = 0; lane < kLanes; ++lane) {
        addr[lane] = k_s + 2 * ((16 * kb + (lane % 8) + 8 * (lane / 16)) * S::kLd + ks * 16 + 8 * ((lane / 8) % 2));
      }
      uint32_t b[kLanes][4];
      ldmatrix_x4(B, warp, addr, b, false);
      uint32_t a[kLanes][4], b0[kLanes], b1[kLanes], b2[kLanes], b3[kLanes];
      float d0[kLanes][4], d1[kLanes][4];
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < 4; ++i) {
          a[lane][i] = R[lane].qf[ks][i];
          d0[lane][i] = sc[lane][2 * kb][i];
          d1[lane][i] = sc[lane][2 * kb + 1][i];
        }
        b0[lane] = b[lane][0];
        b1[lane] = b[lane][1];
        b2[lane] = b[lane][2];
        b3[lane] = b[lane][3];
      }
      mma16816<T>(d0, a, b0, b1);
      mma16816<T>(d1, a, b2, b3);
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < 4; ++i) {
          sc[lane][2 * kb][i] = d0[lane][i];
          sc[lane][2 * kb + 1][i] = d1[lane][i];
        }
      }
    }
  }
  // 2. scale and mask
  const bool diagonal = kt + kKeys - 1 > pos0 + my_row0;
  float mx[kLanes][2];
  for (int lane = 0; lane < kLanes; ++lane) {
    const int g = lane / 4, t = lane % 4;
    mx[lane][0] = mx[lane][1] = -INFINITY;
    for (int nb = 0; nb < kKeys / 8; ++nb) {
      for (int j = 0; j < 4; ++j) {
        const int key = kt + 8 * nb + 2 * t + j % 2;
        const int pos = pos0 + my_row0 + g + 8 * (j / 2) + (kPlant == 2 ? 1 : 0);
        sc[lane][nb][j] = diagonal && key > pos ? -INFINITY : sc[lane][nb][j] * scale_log2;
        mx[lane][j / 2] = fmaxf_cuda(mx[lane][j / 2], sc[lane][nb][j]);
      }
    }
  }
  // 3. online softmax
  float base[kLanes][2], corr[kLanes][2];
  for (int r = 0; r < 2; ++r) {
    float v[kLanes], o1[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) v[lane] = mx[lane][r];
    shfl_xor(v, 1, o1);
    for (int lane = 0; lane < kLanes; ++lane) mx[lane][r] = fmaxf_cuda(mx[lane][r], o1[lane]);
    for (int lane = 0; lane < kLanes; ++lane) v[lane] = mx[lane][r];
    shfl_xor(v, 2, o1);
    for (int lane = 0; lane < kLanes; ++lane) mx[lane][r] = fmaxf_cuda(mx[lane][r], o1[lane]);
    for (int lane = 0; lane < kLanes; ++lane) {
      Regs<T, D>& x = R[lane];
      const float m_new = fmaxf_cuda(x.m[r], mx[lane][r]);
      base[lane][r] = m_new == -INFINITY ? 0.f : m_new;
      corr[lane][r] = ex2(x.m[r] - base[lane][r]);
      x.m[r] = m_new;
      x.l[r] *= corr[lane][r];
    }
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    Regs<T, D>& x = R[lane];
    for (int nb = 0; nb < kKeys / 8; ++nb) {
      for (int j = 0; j < 4; ++j) {
        sc[lane][nb][j] = ex2(sc[lane][nb][j] - base[lane][j / 2]);
        x.l[j / 2] += sc[lane][nb][j];
      }
    }
    for (int nb = 0; nb < S::kDimBlocks; ++nb) {
      for (int j = 0; j < 4; ++j) x.o[nb][j] *= corr[lane][j / 2];
    }
  }
  // 4. O += P · V
  for (int kb = 0; kb < kKeys / 16; ++kb) {
    if (kt + 16 * kb > warp_last - (kPlant == 7 ? 16 : 0)) continue;
    uint32_t a[kLanes][4];
    for (int lane = 0; lane < kLanes; ++lane) {
      a[lane][0] = pack2<T>(sc[lane][2 * kb][0], sc[lane][2 * kb][1]);
      a[lane][1] = pack2<T>(sc[lane][2 * kb][2], sc[lane][2 * kb][3]);
      a[lane][2] = pack2<T>(sc[lane][2 * kb + 1][0], sc[lane][2 * kb + 1][1]);
      a[lane][3] = pack2<T>(sc[lane][2 * kb + 1][2], sc[lane][2 * kb + 1][3]);
    }
    for (int dp = 0; dp < S::kSteps; ++dp) {
      size_t addr[kLanes];
      for (int lane = 0; lane < kLanes; ++lane) {
        const int key_half = kPlant == 5 ? lane / 16 : (lane / 8) % 2;
        const int dim_half = kPlant == 5 ? (lane / 8) % 2 : lane / 16;
        addr[lane] = v_s + 2 * ((16 * kb + (lane % 8) + 8 * key_half) * S::kLd + 16 * dp + 8 * dim_half);
      }
      uint32_t b[kLanes][4];
      ldmatrix_x4(B, warp, addr, b, true);
      uint32_t b0[kLanes], b1[kLanes], b2[kLanes], b3[kLanes];
      float d0[kLanes][4], d1[kLanes][4];
      for (int lane = 0; lane < kLanes; ++lane) {
        b0[lane] = b[lane][0];
        b1[lane] = b[lane][1];
        b2[lane] = b[lane][2];
        b3[lane] = b[lane][3];
        for (int i = 0; i < 4; ++i) {
          d0[lane][i] = R[lane].o[2 * dp][i];
          d1[lane][i] = R[lane].o[2 * dp + 1][i];
        }
      }
      mma16816<T>(d0, a, b0, b1);
      mma16816<T>(d1, a, b2, b3);
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < 4; ++i) {
          R[lane].o[2 * dp][i] = d0[lane][i];
          R[lane].o[2 * dp + 1][i] = d1[lane][i];
        }
      }
    }
  }
}

// The kernel body of one warp of block B (blockIdx.x = B.block_idx).
template <class T, int D>
void fa_kernel_warp(Block& B, const Params& P, int warp) {
  using S = FaShape<D>;
  std::vector<Regs<T, D>> R(kLanes);
  // Per-thread scalars. They are the same in every lane except tid/lane-derived ones; each lane computes its own.
  struct Th {
    int tid, lane, h, tile, width, s, first, count, context, rows, row0, pos0, key_end, key_tiles, my_row0,
        warp_last, my_bad, ahead, block, in_block;
    size_t head_offset, table;
    bool warp_has_rows, looks_up;
  };
  Th th[kLanes];
  bool ret[kLanes];
  const unsigned bid = B.block_idx;
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    x.tid = warp * 32 + lane;
    x.lane = lane;
    x.h = static_cast<int>(bid % P.heads);
    x.tile = P.num_tiles - 1 - static_cast<int>(bid / P.heads);
    x.width = P.heads * D;
    x.s = P.tile_seq->i32(x.tile, "tile_seq");
    x.first = P.tile_first->i32(x.tile, "tile_first");
    ret[lane] = x.s < 0 || x.s >= P.num_seqs;
  }
  if (uniform(ret, "exit: bad sequence")) return;
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    x.count = P.query_count->i32(x.s, "query_count");
    x.context = P.context_len->i32(x.s, "context_len");
    ret[lane] = x.first < 0 || x.first >= x.count;
  }
  if (uniform(ret, "exit: tile past the rows")) return;
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    x.rows = std::min(kRows, x.count - x.first);
    x.row0 = P.query_start->i32(x.s, "query_start") + x.first;
    x.head_offset = static_cast<size_t>(x.h) * D;
    ret[lane] = x.count > x.context ||
                static_cast<long long>(x.context) > static_cast<long long>(P.max_blocks) * P.block_size;
  }
  if (uniform(ret, "exit: inconsistent sequence")) {
    for (int lane = 0; lane < kLanes; ++lane) {
      const Th& x = th[lane];
      for (int e = x.tid; e < x.rows * D; e += kThreadsPerBlock) {
        const uint16_t nan = T::from(std::numeric_limits<float>::quiet_NaN());
        P.out->store((static_cast<size_t>(x.row0 + e / D) * x.width + x.head_offset + e % D) * 2, &nan, 2, "out (NaN)");
      }
    }
    return;
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    x.pos0 = x.context - x.count + x.first;
    x.key_end = x.pos0 + x.rows;
    x.key_tiles = (x.key_end + kKeys - 1) / kKeys;
    x.table = static_cast<size_t>(x.s) * P.max_blocks;  // element offset of the sequence's block table
    x.my_row0 = warp * 16;
    x.warp_has_rows = x.my_row0 < x.rows;
    x.warp_last = x.pos0 + std::min(x.my_row0 + 15, x.rows - 1);
    x.my_bad = std::numeric_limits<int>::max();
  }
  const auto slot_of = [&](Th& x, int key, int block, int in_block) -> long long {
    if (key >= x.key_end) return -1;
    if (block < 0 || block >= P.num_blocks) {
      x.my_bad = std::min(x.my_bad, key);
      return -1;
    }
    return static_cast<long long>(block) * P.block_size + in_block;
  };
  const auto lookup = [&](Th& x, int key) -> long long {
    return key < x.key_end
               ? slot_of(x, key, P.block_tables->i32(x.table + key / P.block_size, "block_tables"), key % P.block_size)
               : -1;
  };
  // load_kv(slots = slot_s[which], st) by thread x
  const auto load_kv = [&](Th& x, int which, int st) {
    const size_t k_s = 2 * static_cast<size_t>(2 * st * S::kTile);
    const size_t v_s = k_s + 2 * S::kTile;
    for (int i = 0; i < S::kCopies; ++i) {
      const int e = x.tid + i * kThreadsPerBlock;
      const int r = e / S::kChunks;
      const int c = e % S::kChunks;
      long long slot;
      B.slot_s.read(x.tid, 8 * (which * kKeys + r), 8, &slot, "load_kv: slots[r]");
      const size_t at = slot >= 0 ? static_cast<size_t>(slot) * x.width + x.head_offset + c * 8 : 0;
      B.cp_async16(x.tid, k_s + 2 * (r * S::kLd + c * 8), *P.k_cache, at, slot >= 0, "cp.async K");
      B.cp_async16(x.tid, v_s + 2 * (r * S::kLd + c * 8), *P.v_cache, at, slot >= 0, "cp.async V");
    }
  };

  // Prologue
  const size_t q_s = 2 * static_cast<size_t>(2 * S::kTile);
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    for (int i = 0; i < S::kCopies; ++i) {
      const int e = x.tid + i * kThreadsPerBlock;
      const int r = e / S::kChunks;
      const int c = e % S::kChunks;
      const bool valid = r < x.rows;
      const size_t at = valid ? static_cast<size_t>(x.row0 + r) * x.width + x.head_offset + c * 8 : 0;
      B.cp_async16(x.tid, q_s + 2 * (r * S::kLd + c * 8), *P.q, at, valid, "cp.async Q");
    }
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    Th& x = th[lane];
    const long long v = lookup(x, x.tid);
    B.slot_s.write(x.tid, 8 * ((x.tid / kKeys) * kKeys + x.tid % kKeys), 8, &v, "slot_s (prologue)");
  }
  if (kPlant != 3) B.syncthreads(warp);
  for (int lane = 0; lane < kLanes; ++lane) load_kv(th[lane], 0, 0);
  for (int lane = 0; lane < kLanes; ++lane) B.commit(th[lane].tid);
  for (int lane = 0; lane < kLanes; ++lane) B.wait_group0(th[lane].tid);
  if (kPlant != 9) B.syncthreads(warp);
  {
    for (int ks = 0; ks < S::kSteps; ++ks) {
      size_t addr[kLanes];
      for (int lane = 0; lane < kLanes; ++lane) {
        const int r = th[lane].my_row0 + (lane % 8) + 8 * ((lane / 8) % 2);
        addr[lane] = q_s + 2 * (r * S::kLd + ks * 16 + 8 * (lane / 16));
      }
      uint32_t f[kLanes][4];
      ldmatrix_x4(B, warp, addr, f, false);
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < 4; ++i) R[lane].qf[ks][i] = f[lane][i];
      }
    }
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int nb = 0; nb < S::kDimBlocks; ++nb) R[lane].o[nb][0] = R[lane].o[nb][1] = R[lane].o[nb][2] = R[lane].o[nb][3] = 0.f;
    R[lane].m[0] = R[lane].m[1] = -INFINITY;
    R[lane].l[0] = R[lane].l[1] = 0.f;
  }

  const int key_tiles = th[0].key_tiles;  // the same in every thread
  for (int it = 0; it < key_tiles; ++it) {
    const int kt = it * kKeys;
    for (int lane = 0; lane < kLanes; ++lane) {
      Th& x = th[lane];
      x.ahead = kt + 2 * kKeys + x.tid;
      x.looks_up = x.tid < kKeys && x.ahead < x.key_end;
      x.block = -1;
      x.in_block = 0;
      if (x.looks_up) {
        x.block = P.block_tables->i32(x.table + x.ahead / P.block_size, "block_tables (ahead)");
        x.in_block = x.ahead % P.block_size;
      }
    }
    for (int lane = 0; lane < kLanes; ++lane) B.wait_group0(th[lane].tid);
    if (kPlant != 1) B.syncthreads(warp);
    for (int lane = 0; lane < kLanes; ++lane) {
      if (it + 1 < key_tiles) load_kv(th[lane], (it + 1) % 2, (it + 1) % 2);
    }
    if (kPlant != 4) {
      for (int lane = 0; lane < kLanes; ++lane) B.commit(th[lane].tid);
    }
    bool active[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) active[lane] = th[lane].warp_has_rows && kt <= th[lane].warp_last;
    if (uniform(active, "attend_tile condition")) {
      const size_t k_s = 2 * static_cast<size_t>(2 * (it % 2) * S::kTile);
      attend_tile<T, D>(B, warp, R, k_s, k_s + 2 * S::kTile, kt, th[0].pos0, th[0].my_row0, th[0].warp_last,
                        P.scale_log2);
    }
    for (int lane = 0; lane < kLanes; ++lane) {
      Th& x = th[lane];
      if (x.tid < kKeys) {
        const long long v = x.looks_up ? slot_of(x, x.ahead, x.block, x.in_block) : -1;
        const int which = kPlant == 6 ? (it + 1) % 2 : it % 2;
        B.slot_s.write(x.tid, 8 * (which * kKeys + x.tid), 8, &v, "slot_s (ahead)");
      }
    }
  }

  // Epilogue
  for (int offset = kLanes / 2; offset > 0; offset /= 2) {
    int v[kLanes], o1[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) v[lane] = th[lane].my_bad;
    shfl_xor(v, offset, o1);
    for (int lane = 0; lane < kLanes; ++lane) th[lane].my_bad = std::min(th[lane].my_bad, o1[lane]);
  }
  B.bad_s.write(warp * 32, 4 * warp, 4, &th[0].my_bad, "bad_s");  // lane 0
  if (kPlant != 8) B.syncthreads(warp);
  int first_bad[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) {
    int v;
    B.bad_s.read(warp * 32 + lane, 0, 4, &v, "bad_s[0]");
    first_bad[lane] = v;
    for (int w = 1; w < kWarpsPerBlock; ++w) {
      B.bad_s.read(warp * 32 + lane, 4 * w, 4, &v, "bad_s[w]");
      first_bad[lane] = std::min(first_bad[lane], v);
    }
  }
  for (int r = 0; r < 2; ++r) {
    float v[kLanes], o1[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) v[lane] = R[lane].l[r];
    shfl_xor(v, 1, o1);
    for (int lane = 0; lane < kLanes; ++lane) R[lane].l[r] += o1[lane];
    for (int lane = 0; lane < kLanes; ++lane) v[lane] = R[lane].l[r];
    shfl_xor(v, 2, o1);
    for (int lane = 0; lane < kLanes; ++lane) R[lane].l[r] += o1[lane];
    for (int lane = 0; lane < kLanes; ++lane) {
      const Th& x = th[lane];
      const int g = lane / 4, t = lane % 4;
      const int i = x.my_row0 + g + 8 * r;
      if (i >= x.rows) continue;
      const bool bad = first_bad[lane] <= x.pos0 + i;
      const float inv = 1.f / R[lane].l[r];
      const size_t dst = static_cast<size_t>(x.row0 + i) * x.width + x.head_offset + 2 * t;
      for (int nb = 0; nb < S::kDimBlocks; ++nb) {
        const float nan = std::numeric_limits<float>::quiet_NaN();
        const uint32_t w = bad ? pack2<T>(nan, nan) : pack2<T>(R[lane].o[nb][2 * r] * inv, R[lane].o[nb][2 * r + 1] * inv);
        P.out->store((dst + 8 * nb) * 2, &w, 4, "out");
      }
    }
  }
}

// The launcher's checks and the grid, as launch_fa_attention / launch_fa. Returns the status code.
template <class T>
int launch(Params P, int head_dim, float scale, size_t q_align_bytes, std::mt19937& rng) {
  const int kInvalid = 1;
  if (P.num_tiles < 0 || P.num_seqs < 0 || P.heads < 0 || head_dim < 0 || P.block_size < 0 || P.max_blocks < 0 ||
      P.num_blocks < 0 || P.heads > 65535 ||
      static_cast<long long>(P.num_tiles) * P.heads > static_cast<long long>(std::numeric_limits<int>::max())) {
    return kInvalid;
  }
  if (head_dim != 0 && head_dim != 64 && head_dim != 80 && head_dim != 128) return kInvalid;
  if (P.num_tiles == 0 || P.num_seqs == 0 || P.heads == 0 || head_dim == 0) return 0;
  if (P.block_size == 0) return kInvalid;
  if (q_align_bytes % 16 != 0) return kInvalid;
  P.scale_log2 = scale * 1.4426950408889634f;
  Block B;
  B.rng = &rng;
  const unsigned blocks = static_cast<unsigned>(P.num_tiles * P.heads);
  for (unsigned b = 0; b < blocks; ++b) {
    B.block_idx = b;
    switch (head_dim) {
      case 64: run_block(B, FaShape<64>::kSmemBytes, [&](int w) { fa_kernel_warp<T, 64>(B, P, w); }); break;
      case 80: run_block(B, FaShape<80>::kSmemBytes, [&](int w) { fa_kernel_warp<T, 80>(B, P, w); }); break;
      default: run_block(B, FaShape<128>::kSmemBytes, [&](int w) { fa_kernel_warp<T, 128>(B, P, w); }); break;
    }
  }
  return 0;
}

// ---- the reference: causal paged attention in double, from the contract (opt_kernels.h) ----------------------

struct Batch {
  int heads = 1, head_dim = 64, block_size = 16, num_blocks = 0, max_blocks = 0, total_rows = 0;
  std::vector<int32_t> query_start, query_count, context_len, tables, tile_seq, tile_first;
  float scale = 0.125f;
};

enum class Want { Unwritten, NaN, Values };

// For each row: whether it is written, NaN, or its values (heads × head_dim). Inputs as stored (rounded).
void reference(const Batch& b, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               std::vector<Want>& want, std::vector<double>& ref) {
  const int D = b.head_dim, width = b.heads * D;
  const int num_seqs = static_cast<int>(b.query_count.size());
  want.assign(b.total_rows, Want::Unwritten);
  ref.assign(static_cast<size_t>(b.total_rows) * width, 0.0);
  // rows some tile names
  std::vector<char> named(b.total_rows, 0);
  for (size_t t = 0; t < b.tile_seq.size(); ++t) {
    const int s = b.tile_seq[t], first = b.tile_first[t];
    if (s < 0 || s >= num_seqs || first < 0 || first >= b.query_count[s]) continue;
    for (int i = first; i < std::min(first + 64, b.query_count[s]); ++i) named[b.query_start[s] + i] = 1;
  }
  for (int s = 0; s < num_seqs; ++s) {
    const int count = b.query_count[s], context = b.context_len[s];
    const bool inconsistent =
        count > context || static_cast<long long>(context) > static_cast<long long>(b.max_blocks) * b.block_size;
    for (int i = 0; i < count; ++i) {
      const int row = b.query_start[s] + i;
      if (!named[row]) continue;
      if (inconsistent) {
        want[row] = Want::NaN;
        continue;
      }
      const int pos = context - count + i;
      std::vector<long long> slots(pos + 1);
      bool bad = false;
      for (int p = 0; p <= pos; ++p) {
        const int blk = b.tables[static_cast<size_t>(s) * b.max_blocks + p / b.block_size];
        if (blk < 0 || blk >= b.num_blocks) bad = true;
        slots[p] = static_cast<long long>(blk) * b.block_size + p % b.block_size;
      }
      if (bad) {
        want[row] = Want::NaN;
        continue;
      }
      bool nan_row = false;
      for (int h = 0; h < b.heads; ++h) {
        std::vector<double> sc(pos + 1);
        double mx = -INFINITY;
        for (int p = 0; p <= pos; ++p) {
          double dot = 0;
          for (int d = 0; d < D; ++d) {
            dot += static_cast<double>(q[static_cast<size_t>(row) * width + h * D + d]) *
                   k[static_cast<size_t>(slots[p]) * width + h * D + d];
          }
          sc[p] = dot * b.scale;
          if (std::isnan(sc[p])) nan_row = true;
          mx = std::max(mx, sc[p]);
        }
        double sum = 0;
        for (int p = 0; p <= pos; ++p) sum += (sc[p] = std::exp(sc[p] - mx));
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (int p = 0; p <= pos; ++p) acc += sc[p] * v[static_cast<size_t>(slots[p]) * width + h * D + d];
          ref[static_cast<size_t>(row) * width + h * D + d] = acc / sum;
        }
      }
      // NaN rules are per row × head in the kernel; a NaN score in one head makes that head's values NaN
      want[row] = Want::Values;
      (void)nan_row;
    }
  }
}

// ---- cases -----------------------------------------------------------------------------------------------

struct Stats {
  double max_rel = 0, max_abs = 0;
  long long rows = 0, nan_rows = 0, cases = 0;
};
Stats g_stats[2][3];  // [bf16?][D index]
long long g_mismatch_cases = 0;

int d_index(int d) { return d == 64 ? 0 : d == 80 ? 1 : 2; }

template <class T>
bool run_case(const Batch& b, std::mt19937& rng, float qstd, int nan_keys, const char* label, double tol) {
  const int D = b.head_dim, width = b.heads * D;
  const size_t cache_rows = static_cast<size_t>(b.num_blocks) * b.block_size;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> qw(static_cast<size_t>(b.total_rows) * width), kw(cache_rows * width), vw(cache_rows * width);
  std::vector<float> qf(qw.size()), kf(kw.size()), vf(vw.size());
  for (size_t i = 0; i < qw.size(); ++i) qf[i] = T::to(qw[i] = T::from(nd(rng) * qstd));
  for (size_t i = 0; i < kw.size(); ++i) kf[i] = T::to(kw[i] = T::from(nd(rng)));
  for (size_t i = 0; i < vw.size(); ++i) vf[i] = T::to(vw[i] = T::from(nd(rng)));
  for (int n = 0; n < nan_keys && cache_rows > 0; ++n) {  // a NaN in some key: the rows that see it are NaN
    const size_t at = (rng() % cache_rows) * width + rng() % width;
    kw[at] = T::from(NAN);
    kf[at] = NAN;
  }
  const uint16_t poison = T::from(1234.5f);
  std::vector<uint16_t> out0(qw.size(), poison);
  GBuf g_out = GBuf::of("out", out0, true), g_q = GBuf::of("q", qw), g_k = GBuf::of("k_cache", kw),
       g_v = GBuf::of("v_cache", vw), g_tab = GBuf::of("block_tables", b.tables),
       g_qs = GBuf::of("query_start", b.query_start), g_qc = GBuf::of("query_count", b.query_count),
       g_cl = GBuf::of("context_len", b.context_len), g_ts = GBuf::of("tile_seq", b.tile_seq),
       g_tf = GBuf::of("tile_first", b.tile_first);
  Params P{&g_out, &g_q, &g_k, &g_v, &g_tab, &g_qs, &g_qc, &g_cl, &g_ts, &g_tf,
           static_cast<int>(b.tile_seq.size()), static_cast<int>(b.query_count.size()), b.heads, b.block_size,
           b.max_blocks, b.num_blocks, 0.f};
  const long long errors_before = g_log.errors;
  const int status = launch<T>(P, D, b.scale, 0, rng);
  if (status != 0) {
    g_log.add("%s: launcher returned %d", label, status);
    return false;
  }
  std::vector<Want> want;
  std::vector<double> ref;
  reference(b, qf, kf, vf, want, ref);
  std::vector<uint16_t> got(qw.size());
  std::memcpy(got.data(), g_out.bytes.data(), got.size() * 2);
  Stats& st = g_stats[std::strcmp(T::name(), "bf16") == 0][d_index(D)];
  ++st.cases;
  bool ok = g_log.errors == errors_before;
  double case_rel = 0;
  int bad_rows = 0;
  for (int row = 0; row < b.total_rows; ++row) {
    const uint16_t* o = &got[static_cast<size_t>(row) * width];
    if (want[row] == Want::Unwritten) {
      for (int j = 0; j < width; ++j) {
        if (o[j] != poison) {
          ++bad_rows;
          break;
        }
      }
      continue;
    }
    if (want[row] == Want::NaN) {
      ++st.nan_rows;
      for (int j = 0; j < width; ++j) {
        if (!std::isnan(T::to(o[j]))) {
          ++bad_rows;
          break;
        }
      }
      continue;
    }
    ++st.rows;
    for (int h = 0; h < b.heads; ++h) {  // per (row, head): error relative to that head's max |out|
      double mx = 0, err = 0;
      bool ref_nan = false, got_nan = false;
      for (int d = 0; d < D; ++d) {
        const double r = ref[static_cast<size_t>(row) * width + h * D + d];
        const double g = T::to(o[h * D + d]);
        ref_nan |= std::isnan(r);
        got_nan |= std::isnan(g);
        if (!std::isnan(r)) mx = std::max(mx, std::fabs(r));
        if (!std::isnan(r) && !std::isnan(g)) err = std::max(err, std::fabs(g - r));
      }
      if (ref_nan || got_nan) {
        // NaN rule: a NaN score of a visible key makes the (row, head) NaN, every element of it
        bool all = true;
        for (int d = 0; d < D; ++d) all &= std::isnan(T::to(o[h * D + d]));
        if (!(ref_nan && all)) ++bad_rows;
        continue;
      }
      const double rel = err / std::max(mx, 1e-30);
      st.max_abs = std::max(st.max_abs, err);
      st.max_rel = std::max(st.max_rel, rel);
      case_rel = std::max(case_rel, rel);
    }
  }
  if (case_rel > tol) ok = false;
  if (bad_rows > 0) ok = false;
  if (!ok) {
    ++g_mismatch_cases;
    if (g_mismatch_cases <= 5) {
      std::printf("  FAIL %s: rel err %.3g (tol %.3g), %d rows breaking the NaN/unwritten rules, %lld checker errors\n",
                  label, case_rel, tol, bad_rows, g_log.errors - errors_before);
    }
  }
  return ok;
}

// A random batch: ragged sequences (some with cached prefixes), shuffled rows with unowned gaps, a shuffled block
// pool, the caller's tile map (64-row tiles) in a shuffled order, sometimes a dropped tile, junk tiles, a bad
// block id or an inconsistent sequence.
Batch random_batch(std::mt19937& rng, int head_dim, int block_size, bool small) {
  static const int kCounts[] = {1, 15, 16, 63, 64, 65, 200, 700};
  Batch b;
  b.head_dim = head_dim;
  b.block_size = block_size;
  b.heads = 1 + rng() % 2;
  const int num_seqs = 1 + rng() % 3;
  std::vector<int> counts, cached;
  for (int s = 0; s < num_seqs; ++s) {
    int c = kCounts[rng() % (small ? 6 : 8)];
    if (rng() % 8 == 0) c = 0;  // a sequence with no new rows
    counts.push_back(c);
    cached.push_back(rng() % 2 ? 0 : static_cast<int>(rng() % 150));
  }
  // rows: sequences in a random order, with unowned rows between them
  std::vector<int> order(num_seqs);
  for (int s = 0; s < num_seqs; ++s) order[s] = s;
  std::shuffle(order.begin(), order.end(), rng);
  b.query_start.assign(num_seqs, 0);
  b.query_count = counts;
  int row = static_cast<int>(rng() % 3);
  for (int s : order) {
    b.query_start[s] = row;
    row += counts[s] + static_cast<int>(rng() % 3);
  }
  b.total_rows = row;
  for (int s = 0; s < num_seqs; ++s) b.context_len.push_back(cached[s] + counts[s]);
  // blocks
  int needed = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int n = (b.context_len[s] + block_size - 1) / block_size;
    needed += n;
    b.max_blocks = std::max(b.max_blocks, n);
  }
  b.max_blocks += static_cast<int>(rng() % 2);
  b.num_blocks = needed + static_cast<int>(rng() % 6);
  std::vector<int32_t> pool(b.num_blocks);
  for (int i = 0; i < b.num_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), rng);
  b.tables.assign(static_cast<size_t>(num_seqs) * std::max(b.max_blocks, 1), -7);  // padding: never read
  int next = 0;
  for (int s = 0; s < num_seqs; ++s) {
    for (int i = 0; i < (b.context_len[s] + block_size - 1) / block_size; ++i) {
      b.tables[static_cast<size_t>(s) * b.max_blocks + i] = pool[next++];
    }
  }
  // rule cases
  const int special = static_cast<int>(rng() % 10);
  if (special == 0) {  // a bad block id somewhere in a sequence's table
    const int s = static_cast<int>(rng() % num_seqs);
    const int n = (b.context_len[s] + block_size - 1) / block_size;
    if (n > 0) b.tables[static_cast<size_t>(s) * b.max_blocks + rng() % n] = rng() % 2 ? -1 : b.num_blocks + 3;
  } else if (special == 1) {  // an inconsistent sequence: more queries than context
    const int s = static_cast<int>(rng() % num_seqs);
    if (b.query_count[s] > 0) b.context_len[s] = b.query_count[s] - 1;
  } else if (special == 2) {  // an inconsistent sequence: a context longer than its table can hold
    const int s = static_cast<int>(rng() % num_seqs);
    b.context_len[s] = b.max_blocks * block_size + 1;
  }
  // the tile map
  for (int s = 0; s < num_seqs; ++s) {
    for (int f = 0; f < counts[s]; f += 64) {
      b.tile_seq.push_back(s);
      b.tile_first.push_back(f);
    }
  }
  if (!b.tile_seq.empty() && rng() % 6 == 0) {  // a dropped tile: its rows stay unwritten
    const size_t t = rng() % b.tile_seq.size();
    b.tile_seq.erase(b.tile_seq.begin() + t);
    b.tile_first.erase(b.tile_first.begin() + t);
  }
  if (rng() % 6 == 0) {  // junk tiles: no sequence, a row past the sequence's
    b.tile_seq.push_back(rng() % 2 ? -1 : num_seqs);
    b.tile_first.push_back(0);
    b.tile_seq.push_back(static_cast<int>(rng() % num_seqs));
    b.tile_first.push_back(1000);
  }
  std::vector<size_t> perm(b.tile_seq.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> ts, tf;
  for (size_t i : perm) {
    ts.push_back(b.tile_seq[i]);
    tf.push_back(b.tile_first[i]);
  }
  b.tile_seq = ts;
  b.tile_first = tf;
  b.scale = rng() % 4 == 0 ? 0.05f + 0.25f * static_cast<float>(rng() % 1000) / 1000.f
                           : 1.f / std::sqrt(static_cast<float>(head_dim));
  return b;
}

// check_ops' batch (make_batch): a decode row at 300 tokens, a 70-token prefill, 5 new on 40 cached, a
// sequence with no new rows; rows out of sequence order.
Batch check_ops_batch(std::mt19937& rng, int heads, int head_dim) {
  Batch b;
  b.heads = heads;
  b.head_dim = head_dim;
  b.block_size = 16;
  b.query_count = {1, 70, 5, 0};
  b.context_len = {300, 70, 45, 10};
  b.query_start = {75, 0, 70, 76};
  b.total_rows = 76;
  int needed = 0;
  for (int ctx : b.context_len) needed += (ctx + 15) / 16;
  b.num_blocks = needed + 7;
  std::vector<int32_t> pool(b.num_blocks);
  for (int i = 0; i < b.num_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), rng);
  b.max_blocks = (300 + 15) / 16;
  b.tables.assign(4 * b.max_blocks, -1);
  int next = 0;
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < (b.context_len[s] + 15) / 16; ++i) b.tables[s * b.max_blocks + i] = pool[next++];
  }
  for (int s = 0; s < 4; ++s) {
    for (int f = 0; f < b.query_count[s]; f += 64) {
      b.tile_seq.push_back(s);
      b.tile_first.push_back(f);
    }
  }
  b.scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  return b;
}

// check_ops' rules batch (check_attention_rules, tc tile map): a 3-token prefill, a decode at 100 tokens with
// block 99 in its table, an unowned row, an inconsistent sequence, a 20-token prefill whose second block is bad.
Batch rules_batch() {
  Batch b;
  b.heads = 2;
  b.head_dim = 64;
  b.block_size = 16;
  b.num_blocks = 12;
  b.max_blocks = 8;
  b.query_start = {0, 3, 5, 7};
  b.query_count = {3, 1, 2, 20};
  b.context_len = {3, 100, 1, 20};
  b.tables.assign(4 * 8, -1);
  b.tables[0] = 0;
  const int32_t seq1[] = {1, 2, 3, 99, 4, 5, 6};
  for (int i = 0; i < 7; ++i) b.tables[8 + i] = seq1[i];
  b.tables[16] = 7;
  b.tables[24] = 8;
  b.tables[25] = 99;
  b.total_rows = 27;
  b.tile_seq = {0, 1, 2, 3};
  b.tile_first = {0, 0, 0, 0};
  b.scale = 0.125f;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 300;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20261127u;
  std::mt19937 rng(seed);
  std::printf("emu_fa: attention_fa.cu emulated, %d random cases, seed %u%s\n", cases, seed,
              kPlant ? (", PLANTED BUG " + std::to_string(kPlant)).c_str() : "");
  bool conv_ok = true;
#ifdef CUDA_HOST_CONVERSIONS
  conv_ok = check_conversions(3);
#endif
  const double tol[2] = {2e-3, 1.6e-2};  // f16, bf16: relative to the (row, head)'s max |out|
  int failed = 0, ran = 0;
  // fixed cases: check_ops' layouts (both dtypes, every head_dim) and its rules batch
  for (int bf = 0; bf < 2; ++bf) {
    for (int d : {64, 80, 128}) {
      const Batch b = check_ops_batch(rng, d == 64 ? 3 : 2, d);
      const std::string label = std::string("check_ops batch ") + (bf ? "bf16" : "f16") + " D=" + std::to_string(d);
      ++ran;
      failed += !(bf ? run_case<BF16>(b, rng, 2.f, 0, label.c_str(), tol[1])
                     : run_case<F16>(b, rng, 2.f, 0, label.c_str(), tol[0]));
    }
  }
  {
    const Batch b = rules_batch();
    ++ran;
    failed += !run_case<F16>(b, rng, 1.f, 0, "check_ops rules batch", tol[0]);
  }
  // random cases
  for (int c = 0; c < cases; ++c) {
    const bool bf = rng() % 2;
    const int d = std::vector<int>{64, 80, 128}[rng() % 3];
    const int bs = rng() % 2 ? 16 : 32;
    const Batch b = random_batch(rng, d, bs, c % 3 != 0);
    const float qstd = std::vector<float>{0.5f, 1.f, 2.f, 4.f}[rng() % 4];
    const int nan_keys = rng() % 12 == 0 ? 1 : 0;
    char label[160];
    int rows = 0;
    for (int n : b.query_count) rows += n;
    std::snprintf(label, sizeof label, "case %d: %s D=%d heads=%d bs=%d seqs=%zu rows=%d qstd=%.1f%s", c,
                  bf ? "bf16" : "f16", d, b.heads, bs, b.query_count.size(), rows, qstd, nan_keys ? " NaN-key" : "");
    ++ran;
    failed += !(bf ? run_case<BF16>(b, rng, qstd, nan_keys, label, tol[1])
                   : run_case<F16>(b, rng, qstd, nan_keys, label, tol[0]));
  }
  std::printf("\n%-6s %-5s %6s %8s %9s %12s %12s\n", "dtype", "D", "cases", "rows", "NaN rows", "max rel err",
              "max abs err");
  for (int bf = 0; bf < 2; ++bf) {
    for (int di = 0; di < 3; ++di) {
      const Stats& s = g_stats[bf][di];
      std::printf("%-6s %-5d %6lld %8lld %9lld %12.3g %12.3g\n", bf ? "bf16" : "f16", di == 0 ? 64 : di == 1 ? 80 : 128,
                  s.cases, s.rows, s.nan_rows, s.max_rel, s.max_abs);
    }
  }
  std::printf("checker errors (races, uninitialised reads, bounds, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  std::printf("%s: %d of %d cases failed%s\n", failed == 0 && g_log.errors == 0 && conv_ok ? "PASS" : "FAIL", failed,
              ran, conv_ok ? "" : " (conversions differ from CUDA's)");
  return failed == 0 && g_log.errors == 0 && conv_ok ? 0 : 1;
}
