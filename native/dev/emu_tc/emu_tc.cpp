// emu_tc: a warp-level CPU emulation of the tensor-core Linear of native/src/linear_tc.cu (linear_tc_kernel with its
// launcher: launch_tc, launch_tc_nt, tc_auto_split; opt_linear_tc_{f16,bf16}, opt_linear_int8_tc_f16 and the q/k/v
// forms), block by block and warp by warp with every lane's registers as arrays, against a double-precision
// reference written from opt_kernels.h. Session 22, written without a GPU: it does not replace check_ops `tclinear`.
//
// Build and run (from the repository root):
//   g++ -O2 -std=c++17 native/dev/emu_tc/emu_tc.cpp -o target/emu_tc && target/emu_tc [random cases=150] [seed]
// Planted bugs (each must end in FAIL): add -DPLANT=N, N = 1 .. 11 (listed below):
//   for N in $(seq 1 11); do g++ -O2 -std=c++17 -DPLANT=$N native/dev/emu_tc/emu_tc.cpp -o target/emu_tc_p$N &&
//       target/emu_tc_p$N 40; done
//
// What it executes: the kernel's statements over lane arrays: the group of outputs j0, the warp's step range [begin,
// end) (a group past n has none), the clamped weight rows and the rows of x past m, the step loads (16-byte chunks,
// bounds- and alignment-checked: weight chunk t + 4 s of a row, x piece kXChunks t + 4 kXChunks s + c), the int8
// widening (byte_perm into 0x64uu, minus 1152), tc_a_fragment / tc_b_fragment, mma.sync m16n8k16 through the PTX
// ISA's fragment layout (products exact in float, sums in float: not the tensor cores' order, so the values are
// compared with tolerance), the shared partials of the S warps of a group (every warp must reach the barrier; a read
// of an unwritten partial is an error), part 0's fixed-order sum, the epilogue's reading of the D fragments and the
// Dense / Qkv stores. The launcher: its refusals, the NT choice from m, the split (given, or tc_auto_split from an SM
// count and resident blocks given per case) and the grid.
// What it checks: every output written exactly once (q_out every row; the k / v cache only in rows of valid slots,
// other rows keep their bits), nothing written outside the outputs (guards), the values within check_ops' tolerance
// of the reference (1e-2 fp16, 4e-2 bf16, relative to max(1, |ref|)), the refusals' statuses, the grid and S.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../emu_common/storage.h"

#ifndef PLANT
#define PLANT 0
#endif
// Planted bugs (0: none); each must make the run FAIL:
//   1: the epilogue reads D's rows of x as 2t + (r >> 1) (the fragment's halves swapped)
//   2: a step is 2 weight chunks further instead of 4
//   3: int8: the lane's x piece at t instead of 2t
//   4: j0 from kTcWarps groups per block whatever S
//   5: weight rows past n not clamped to n - 1
//   6: every part of a group stores, not only part 0
//   7: a warp's range ends one step early
//   8: a group past n leaves before the barrier (S > 1)
//   9: tc_b_fragment swaps the two B registers
//  10: launch_tc takes one tile of x (NT = 1) up to 16 rows
//  11: launch_tc accepts a k that is not a whole step
constexpr int kPlant = PLANT;

namespace {

// ---- errors ------------------------------------------------------------------------------------------------
long long g_errors = 0;
std::vector<std::string> g_first;
void fail(const char* fmt, ...) {
  ++g_errors;
  if (g_first.size() >= 12) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_first.push_back(buf);
}

// ---- constants and helpers of linear_tc.cu / linear_small.cuh ----------------------------------------------
constexpr int kWarp = 32;
constexpr int kTcWarps = 8;
constexpr int kTcUnroll = 2;
constexpr int kTcMaxRows = 32;
constexpr int kTcF = 2;
constexpr int kSuccess = 0;
constexpr int kInvalidValue = 1;

uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t s) {  // linear_small.cuh's host branch
  const uint64_t both = (static_cast<uint64_t>(y) << 32) | x;
  uint32_t r = 0;
  for (int k = 0; k < 4; ++k) r |= static_cast<uint32_t>((both >> (8 * ((s >> (4 * k)) & 7))) & 0xFFu) << (8 * k);
  return r;
}

struct U4 {
  uint32_t w[4];
};

// Device memory: bytes with a guard on each side (poisoned), element write counts (outputs), bounds and alignment.
struct Mem {
  std::string name;
  std::vector<uint8_t> bytes;  // guard | data | guard
  size_t guard = 64;
  size_t data = 0;
  std::vector<uint8_t> before;  // the bytes as poisoned / filled, for the guard and unchanged-row checks
  std::vector<int> writes;      // per 16-bit element of data (outputs only)
  Mem(std::string n, size_t data_bytes) : name(std::move(n)), bytes(data_bytes + 128, 0xA5), data(data_bytes) {
    writes.assign(data_bytes / 2 + 1, 0);
  }
  uint8_t* at(size_t off) { return bytes.data() + guard + off; }
  void freeze() { before = bytes; }
  U4 chunk(long long off, const char* what) {  // a 16-byte load at byte offset off
    if (off < 0 || off % 16 != 0 || static_cast<size_t>(off) + 16 > data) {
      fail("%s: 16-byte load at byte %lld of %s (%zu bytes)", what, off, name.c_str(), data);
      return U4{{0, 0, 0, 0}};
    }
    U4 v;
    std::memcpy(v.w, at(static_cast<size_t>(off)), 16);
    return v;
  }
  uint16_t ld16(long long e, const char* what) {
    if (e < 0 || static_cast<size_t>(e) * 2 + 2 > data) {
      fail("%s: element %lld of %s", what, e, name.c_str());
      return 0;
    }
    uint16_t v;
    std::memcpy(&v, at(static_cast<size_t>(e) * 2), 2);
    return v;
  }
  void st16(long long e, uint16_t v, const char* what) {
    if (e < 0 || static_cast<size_t>(e) * 2 + 2 > data) {
      fail("%s: store to element %lld of %s", what, e, name.c_str());
      return;
    }
    std::memcpy(at(static_cast<size_t>(e) * 2), &v, 2);
    ++writes[static_cast<size_t>(e)];
  }
};

struct Fmt {  // the 16-bit storage type T
  bool bf16;
  float to(uint16_t b) const { return bf16 ? emu::bf16_to_float(b) : emu::half_to_float(b); }
  uint16_t from(float f) const { return bf16 ? emu::float_to_bf16(f) : emu::float_to_half(f); }
};

// mma.sync m16n8k16 (f16 or bf16 in, f32 accumulate) through the PTX ISA's fragment layout (common.cuh's comment).
void mma16816(const Fmt& fmt, float (&d)[kWarp][4], const uint32_t (&a)[kWarp][4], const uint32_t (&b0)[kWarp],
              const uint32_t (&b1)[kWarp]) {
  float A[16][16], B[16][8], C[16][8];
  auto lo = [&](uint32_t v) { return fmt.to(static_cast<uint16_t>(v & 0xffffu)); };
  auto hi = [&](uint32_t v) { return fmt.to(static_cast<uint16_t>(v >> 16)); };
  for (int l = 0; l < kWarp; ++l) {
    const int g = l / 4, t = l % 4;
    A[g][2 * t] = lo(a[l][0]), A[g][2 * t + 1] = hi(a[l][0]);
    A[g + 8][2 * t] = lo(a[l][1]), A[g + 8][2 * t + 1] = hi(a[l][1]);
    A[g][2 * t + 8] = lo(a[l][2]), A[g][2 * t + 9] = hi(a[l][2]);
    A[g + 8][2 * t + 8] = lo(a[l][3]), A[g + 8][2 * t + 9] = hi(a[l][3]);
    B[2 * t][g] = lo(b0[l]), B[2 * t + 1][g] = hi(b0[l]);
    B[2 * t + 8][g] = lo(b1[l]), B[2 * t + 9][g] = hi(b1[l]);
    C[g][2 * t] = d[l][0], C[g][2 * t + 1] = d[l][1], C[g + 8][2 * t] = d[l][2], C[g + 8][2 * t + 1] = d[l][3];
  }
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float acc = C[i][j];
      for (int k = 0; k < 16; ++k) acc += A[i][k] * B[k][j];
      C[i][j] = acc;
    }
  }
  for (int l = 0; l < kWarp; ++l) {
    const int g = l / 4, t = l % 4;
    d[l][0] = C[g][2 * t], d[l][1] = C[g][2 * t + 1], d[l][2] = C[g + 8][2 * t], d[l][3] = C[g + 8][2 * t + 1];
  }
}

// ---- linear_tc.cu ------------------------------------------------------------------------------------------
void tc_a_fragment(const uint32_t* wg, const uint32_t* wg8, int q, uint32_t (&a)[4]) {
  a[0] = wg[2 * q];
  a[1] = wg8[2 * q];
  a[2] = wg[2 * q + 1];
  a[3] = wg8[2 * q + 1];
}
void tc_b_fragment(const uint32_t* xw, int q, uint32_t& b0, uint32_t& b1) {
  b0 = xw[2 * q + (kPlant == 9 ? 1 : 0)];
  b1 = xw[2 * q + (kPlant == 9 ? 0 : 1)];
}
void int8_pair_bits(const U4& v, uint32_t (&h)[8]) {
  for (int w = 0; w < 4; ++w) {
    const uint32_t word = v.w[w] ^ 0x80808080u;
    h[2 * w] = byte_perm(word, 0x64646464u, 0x5140u);
    h[2 * w + 1] = byte_perm(word, 0x64646464u, 0x5342u);
  }
}
void widen_int8_pairs(const U4& v, uint32_t (&h)[8]) {  // __hsub2 of 1152: exact, done here through float
  int8_pair_bits(v, h);
  for (uint32_t& p : h) {
    const float lo = emu::half_to_float(static_cast<uint16_t>(p & 0xffffu)) - 1152.f;
    const float hi = emu::half_to_float(static_cast<uint16_t>(p >> 16)) - 1152.f;
    p = emu::float_to_half(lo) | (static_cast<uint32_t>(emu::float_to_half(hi)) << 16);
  }
}

// The epilogues (linear_small.cuh): Dense out[i, j] = act(v + bias[j]); Qkv q | k | v with the cache rows slots[i].
struct Store {
  bool qkv = false;
  Fmt fmt{false};
  Mem* out = nullptr;  // Dense: out (m, n); Qkv: q_out (m, width)
  Mem* bias = nullptr;
  int n = 0;
  int relu = 0;
  Mem* k_cache = nullptr;
  Mem* v_cache = nullptr;
  const std::vector<int32_t>* slots = nullptr;
  int width = 0;
  int cache_slots = 0;
  void operator()(int i, long long j, float v) const {
    if (bias != nullptr) v += fmt.to(bias->ld16(j, "bias"));
    if (!qkv) {
      if (relu && v < 0.f) v = 0.f;
      out->st16(static_cast<long long>(i) * n + j, fmt.from(v), "out");
      return;
    }
    const int part = static_cast<int>(j / width);
    const long long col = j - static_cast<long long>(part) * width;
    if (part == 0) {
      out->st16(static_cast<long long>(i) * width + col, fmt.from(v), "q_out");
      return;
    }
    const int slot = (*slots)[static_cast<size_t>(i)];
    if (slot < 0 || slot >= cache_slots) return;
    (part == 1 ? k_cache : v_cache)->st16(static_cast<long long>(slot) * width + col, fmt.from(v), "k/v cache");
  }
};

struct Launch {
  int grid = 0;
  int s = 0;
  int nt = 0;
};
Launch g_launch;
int g_sm_count = 132;
int g_resident = 2;

// One block of linear_tc_kernel<T, kInt8, NT, S, Store>, warp by warp (the barrier between the two phases).
template <bool kInt8, int NT, int S>
void linear_tc_block(int block, const Fmt& fmt, Mem& x, Mem& w, const std::vector<float>* scales, int m, int k, int n,
                     const Store& store) {
  constexpr int kQ = kInt8 ? 4 : 2;
  constexpr int kStepK = 16 * kQ;
  constexpr int kXChunks = kInt8 ? 2 : 1;
  constexpr int kAcc = kTcF * NT * 4;
  std::vector<float> partial(static_cast<size_t>(kTcWarps) * kAcc * kWarp, 0.f);
  std::vector<char> partial_set(partial.size(), 0);
  static float acc[kTcWarps][kTcF][NT][kWarp][4];
  bool reached[kTcWarps] = {};
  long long j0_of[kTcWarps];
  const int groups_per_block = kPlant == 4 ? kTcWarps : kTcWarps / S;
  for (int warp = 0; warp < kTcWarps; ++warp) {
    const int part = warp % S;
    const long long j0 = (static_cast<long long>(block) * groups_per_block + warp / S) * (16 * kTcF);
    j0_of[warp] = j0;
    const int steps = k / kStepK;
    const int span = (steps + S - 1) / S;
    const int begin = j0 < n ? std::min(part * span, steps) : steps;
    const int end = std::min(begin + span, steps) - (kPlant == 7 && begin < steps ? 1 : 0);
    if (kPlant == 8 && S > 1 && j0 >= n) continue;  // leaves before the barrier
    // weight rows (byte offset of the lane's chunk in step 0) and rows of x (-1 past m)
    long long wrow[kWarp][kTcF][2];
    long long xrow[kWarp][NT];
    const long long row_bytes = static_cast<long long>(k) * (kInt8 ? 1 : 2);
    for (int l = 0; l < kWarp; ++l) {
      const int g = l / 4, t = l % 4;
      for (int f = 0; f < kTcF; ++f) {
        for (int h = 0; h < 2; ++h) {
          long long j = j0 + 16 * f + 8 * h + g;
          if (kPlant != 5) j = j < n ? j : n - 1;
          wrow[l][f][h] = j * row_bytes + 16LL * t;
        }
      }
      for (int nt = 0; nt < NT; ++nt) {
        const int i = 8 * nt + g;
        xrow[l][nt] = i < m ? static_cast<long long>(i) * k * 2 + 16LL * (kPlant == 3 ? t : kXChunks * t) : -1;
      }
    }
    for (int f = 0; f < kTcF; ++f) {
      for (int nt = 0; nt < NT; ++nt) {
        for (int l = 0; l < kWarp; ++l) {
          for (int r = 0; r < 4; ++r) acc[warp][f][nt][l][r] = 0.f;
        }
      }
    }
    const int stride = kPlant == 2 ? 2 : 4;  // weight chunks per step
    for (int s = begin; s < end; s += kTcUnroll) {
      for (int u = 0; u < kTcUnroll && s + u < end; ++u) {
        uint32_t xw[NT][kWarp][2 * kQ];
        for (int nt = 0; nt < NT; ++nt) {
          for (int l = 0; l < kWarp; ++l) {
            for (int c = 0; c < kXChunks; ++c) {
              const U4 v = xrow[l][nt] >= 0
                  ? x.chunk(xrow[l][nt] + 16LL * (4 * kXChunks * (s + u) + c), "x piece")
                  : U4{{0, 0, 0, 0}};
              for (int e = 0; e < 4; ++e) xw[nt][l][4 * c + e] = v.w[e];
            }
          }
        }
        for (int f = 0; f < kTcF; ++f) {
          uint32_t wg[kWarp][2 * kQ], wg8[kWarp][2 * kQ];
          for (int l = 0; l < kWarp; ++l) {
            const U4 a = w.chunk(wrow[l][f][0] + 16LL * stride * (s + u), "weight chunk");
            const U4 b = w.chunk(wrow[l][f][1] + 16LL * stride * (s + u), "weight chunk");
            if (kInt8) {
              uint32_t ha[8], hb[8];
              widen_int8_pairs(a, ha);
              widen_int8_pairs(b, hb);
              std::memcpy(wg[l], ha, sizeof ha);
              std::memcpy(wg8[l], hb, sizeof hb);
            } else {
              std::memcpy(wg[l], a.w, 16);
              std::memcpy(wg8[l], b.w, 16);
            }
          }
          for (int q = 0; q < kQ; ++q) {
            uint32_t afr[kWarp][4];
            for (int l = 0; l < kWarp; ++l) tc_a_fragment(wg[l], wg8[l], q, afr[l]);
            for (int nt = 0; nt < NT; ++nt) {
              uint32_t b0[kWarp], b1[kWarp];
              for (int l = 0; l < kWarp; ++l) tc_b_fragment(xw[nt][l], q, b0[l], b1[l]);
              mma16816(fmt, acc[warp][f][nt], afr, b0, b1);
            }
          }
        }
      }
    }
    if (S > 1) {
      for (int f = 0; f < kTcF; ++f) {
        for (int nt = 0; nt < NT; ++nt) {
          for (int r = 0; r < 4; ++r) {
            for (int l = 0; l < kWarp; ++l) {
              const size_t at = (static_cast<size_t>(warp) * kAcc + (f * NT + nt) * 4 + r) * kWarp + l;
              partial[at] = acc[warp][f][nt][l][r];
              partial_set[at] = 1;
            }
          }
        }
      }
    }
    reached[warp] = true;
  }
  if (S > 1) {
    for (int warp = 0; warp < kTcWarps; ++warp) {
      if (!reached[warp]) fail("block %d warp %d never reaches __syncthreads", block, warp);
    }
  }
  // after the barrier
  for (int warp = 0; warp < kTcWarps; ++warp) {
    if (!reached[warp]) continue;
    const int part = warp % S;
    if (S > 1) {
      if (kPlant != 6 && part != 0) continue;
      for (int f = 0; f < kTcF; ++f) {
        for (int nt = 0; nt < NT; ++nt) {
          for (int r = 0; r < 4; ++r) {
            for (int l = 0; l < kWarp; ++l) {
              for (int p = 1; p < S && part == 0; ++p) {
                const size_t at = (static_cast<size_t>(warp + p) * kAcc + (f * NT + nt) * 4 + r) * kWarp + l;
                if (!partial_set[at]) fail("block %d warp %d reads partial of warp %d unwritten", block, warp, warp + p);
                acc[warp][f][nt][l][r] += partial[at];
              }
            }
          }
        }
      }
    }
    const long long j0 = j0_of[warp];
    if (j0 >= n) continue;
    for (int l = 0; l < kWarp; ++l) {
      const int g = l / 4, t = l % 4;
      for (int f = 0; f < kTcF; ++f) {
        for (int nt = 0; nt < NT; ++nt) {
          for (int r = 0; r < 4; ++r) {
            const long long j = j0 + 16 * f + g + (r >= 2 ? 8 : 0);
            const int i = 8 * nt + 2 * t + (kPlant == 1 ? (r >> 1) : (r & 1));
            const float v = acc[warp][f][nt][l][r];
            if (i < m && j < n) store(i, j, kInt8 ? v * (*scales)[static_cast<size_t>(j)] : v);
          }
        }
      }
    }
  }
}

template <bool kInt8, int NT, int S>
void run_grid(int blocks, const Fmt& fmt, Mem& x, Mem& w, const std::vector<float>* scales, int m, int k, int n,
              const Store& store) {
  for (int b = 0; b < blocks; ++b) linear_tc_block<kInt8, NT, S>(b, fmt, x, w, scales, m, k, n, store);
}

int tc_auto_split(long long groups, int steps) {
  const long long wave = static_cast<long long>(g_resident) * g_sm_count * kTcWarps;
  int s = 1;
  while (s < kTcWarps && groups * s < wave && steps >= 2LL * (2 * s) * kTcUnroll) s *= 2;
  return s;
}

template <bool kInt8, int NT>
int launch_tc_nt(const Fmt& fmt, Mem& x, Mem& w, const std::vector<float>* scales, int m, int k, int n,
                 const Store& store, int split) {
  const long long groups = (static_cast<long long>(n) + 16 * kTcF - 1) / (16 * kTcF);
  const int steps = k / (kInt8 ? 64 : 32);
  const int s = split == 0 ? tc_auto_split(groups, steps) : split;
  const long long per_block = kTcWarps / s;
  const long long blocks = (groups + per_block - 1) / per_block;
  if (blocks > 0x7fffffffLL) return kInvalidValue;
  g_launch = Launch{static_cast<int>(blocks), s, NT};
  switch (s) {
    case 1: run_grid<kInt8, NT, 1>(static_cast<int>(blocks), fmt, x, w, scales, m, k, n, store); break;
    case 2: run_grid<kInt8, NT, 2>(static_cast<int>(blocks), fmt, x, w, scales, m, k, n, store); break;
    case 4: run_grid<kInt8, NT, 4>(static_cast<int>(blocks), fmt, x, w, scales, m, k, n, store); break;
    default: run_grid<kInt8, NT, 8>(static_cast<int>(blocks), fmt, x, w, scales, m, k, n, store); break;
  }
  return kSuccess;
}

// launch_tc: x_off / w_off are the tensors' byte offsets in their buffers (misaligned: refused).
template <bool kInt8>
int launch_tc(const Fmt& fmt, Mem& x, long long x_off, Mem& w, const std::vector<float>* scales, int m, int k, int n,
              const Store& store, int split) {
  const bool whole = kPlant == 11 ? k % 16 == 0 : k % (kInt8 ? 64 : 32) == 0;
  if (m < 0 || m > kTcMaxRows || k < 1 || n < 0 || !(split == 0 || split == 1 || split == 2 || split == 4 || split == 8) ||
      !whole || x_off % 16 != 0 || (kInt8 && scales == nullptr)) {
    return kInvalidValue;
  }
  if (m == 0 || n == 0) return kSuccess;
  if (m <= (kPlant == 10 ? 16 : 8)) return launch_tc_nt<kInt8, 1>(fmt, x, w, scales, m, k, n, store, split);
  if (m <= 16) return launch_tc_nt<kInt8, 2>(fmt, x, w, scales, m, k, n, store, split);
  return launch_tc_nt<kInt8, 4>(fmt, x, w, scales, m, k, n, store, split);
}

// ---- cases --------------------------------------------------------------------------------------------------
std::mt19937 g_rng(22);

struct Case {
  bool bf16;
  bool int8;
  bool qkv;
  int m, k, n;  // qkv: n = 3 · width
  bool bias, relu;
  int split;
  int sms, resident;
};

double g_worst = 0;

// Runs one case through the launcher and checks it; returns whether it passed.
bool run_case(const Case& c) {
  const long long errors_before = g_errors;
  const Fmt fmt{c.bf16};
  std::normal_distribution<float> nd(0.f, 1.f);
  const int width = c.qkv ? c.n / 3 : 0;
  const int cache_slots = 3 * c.m + 5;
  // x, weights, bias, scales
  Mem x("x", static_cast<size_t>(c.m) * c.k * 2);
  std::vector<float> xv(static_cast<size_t>(c.m) * c.k);
  for (size_t e = 0; e < xv.size(); ++e) {
    const uint16_t b = fmt.from(nd(g_rng));
    xv[e] = fmt.to(b);
    std::memcpy(x.at(2 * e), &b, 2);
  }
  Mem w("weight", static_cast<size_t>(c.n) * c.k * (c.int8 ? 1 : 2));
  std::vector<double> wv(static_cast<size_t>(c.n) * c.k);
  std::vector<float> scales(static_cast<size_t>(c.n));
  for (int j = 0; j < c.n; ++j) {
    scales[static_cast<size_t>(j)] = (0.5f + static_cast<float>(g_rng() % 1000) / 1000.f) / (127.f * std::sqrt(static_cast<float>(c.k)));
    for (int e = 0; e < c.k; ++e) {
      const size_t at = static_cast<size_t>(j) * c.k + e;
      if (c.int8) {
        const int8_t q = static_cast<int8_t>(static_cast<int>(g_rng() % 255) - 127);
        std::memcpy(w.at(at), &q, 1);
        wv[at] = static_cast<double>(q) * scales[static_cast<size_t>(j)];
      } else {
        const uint16_t b = fmt.from(nd(g_rng) / std::sqrt(static_cast<float>(c.k)));
        std::memcpy(w.at(2 * at), &b, 2);
        wv[at] = fmt.to(b);
      }
    }
  }
  Mem bias("bias", static_cast<size_t>(c.n) * 2);
  std::vector<float> bv(static_cast<size_t>(c.n));
  for (int j = 0; j < c.n; ++j) {
    const uint16_t b = fmt.from(nd(g_rng));
    bv[static_cast<size_t>(j)] = fmt.to(b);
    std::memcpy(bias.at(2 * static_cast<size_t>(j)), &b, 2);
  }
  // outputs: poisoned (0xA5 bytes) with guards; the caches filled
  Mem out("out", static_cast<size_t>(c.m) * (c.qkv ? width : c.n) * 2);
  Mem kc("k cache", static_cast<size_t>(cache_slots) * std::max(width, 1) * 2);
  Mem vc("v cache", static_cast<size_t>(cache_slots) * std::max(width, 1) * 2);
  std::vector<int32_t> slots(static_cast<size_t>(c.m));
  for (int i = 0; i < c.m; ++i) slots[static_cast<size_t>(i)] = i % 5 == 4 ? -1 : i % 7 == 6 ? cache_slots : 3 * i + 1;
  out.freeze();
  kc.freeze();
  vc.freeze();
  Store st;
  st.qkv = c.qkv;
  st.fmt = fmt;
  st.out = &out;
  st.bias = c.bias ? &bias : nullptr;
  st.n = c.n;
  st.relu = c.relu;
  st.k_cache = &kc;
  st.v_cache = &vc;
  st.slots = &slots;
  st.width = width;
  st.cache_slots = cache_slots;
  g_sm_count = c.sms;
  g_resident = c.resident;
  g_launch = Launch{};
  const int status = c.int8 ? launch_tc<true>(fmt, x, 0, w, &scales, c.m, c.k, c.n, st, c.split)
                            : launch_tc<false>(fmt, x, 0, w, nullptr, c.m, c.k, c.n, st, c.split);
  char name[160];
  std::snprintf(name, sizeof name, "%s%s%s m %d k %d n %d%s%s split %d (%d SMs x %d)", c.bf16 ? "bf16" : "f16",
                c.int8 ? " int8" : "", c.qkv ? " qkv" : "", c.m, c.k, c.n, c.bias ? " b" : "", c.relu ? " relu" : "",
                c.split, c.sms, c.resident);
  if (status != kSuccess) {
    fail("%s: status %d", name, status);
    return false;
  }
  // the launch: NT from m, S, grid
  const int nt = c.m <= 8 ? 1 : c.m <= 16 ? 2 : 4;
  const long long groups = (c.n + 31) / 32;
  const int steps = c.k / (c.int8 ? 64 : 32);
  int s = c.split;
  if (s == 0) {  // auto: the smallest S that fills a wave while each warp keeps two rounds, else the largest allowed
    s = 1;
    const long long wave = static_cast<long long>(c.resident) * c.sms * kTcWarps;
    while (s < 8 && groups * s < wave && steps >= 4LL * s * kTcUnroll) s *= 2;
  }
  if (g_launch.nt != nt || g_launch.s != s || g_launch.grid != (groups + 8 / s - 1) / (8 / s)) {
    fail("%s: launched NT %d S %d grid %d, expected NT %d S %d grid %lld", name, g_launch.nt, g_launch.s,
         g_launch.grid, nt, s, (groups + 8 / s - 1) / (8 / s));
  }
  // written once, guards, caches' other rows, values
  const double tol = c.bf16 ? 4e-2 : 1e-2;
  double worst = 0;
  auto check_elem = [&](Mem& mem, long long e, double ref) {
    if (mem.writes[static_cast<size_t>(e)] != 1) {
      fail("%s: %s element %lld written %d times", name, mem.name.c_str(), e, mem.writes[static_cast<size_t>(e)]);
      return;
    }
    const double got = fmt.to(mem.ld16(e, "check"));
    worst = std::max(worst, std::abs(got - ref) / std::max(1.0, std::abs(ref)));
  };
  auto ref_of = [&](int i, int j) {
    double v = 0;
    for (int e = 0; e < c.k; ++e) v += xv[static_cast<size_t>(i) * c.k + e] * wv[static_cast<size_t>(j) * c.k + e];
    return v + (c.bias ? bv[static_cast<size_t>(j)] : 0.0);
  };
  for (Mem* mem : {&out, &kc, &vc}) {
    for (size_t b = 0; b < mem->guard; ++b) {
      if (mem->bytes[b] != mem->before[b] || mem->bytes[mem->guard + mem->data + b] != mem->before[mem->guard + mem->data + b]) {
        fail("%s: a guard byte of %s written", name, mem->name.c_str());
        break;
      }
    }
  }
  if (!c.qkv) {
    for (int i = 0; i < c.m; ++i) {
      for (int j = 0; j < c.n; ++j) {
        double r = ref_of(i, j);
        if (c.relu) r = std::max(r, 0.0);
        check_elem(out, static_cast<long long>(i) * c.n + j, r);
      }
    }
  } else {
    std::vector<int> cache_row_of_slot(static_cast<size_t>(cache_slots), -1);
    for (int i = 0; i < c.m; ++i) {
      const int sl = slots[static_cast<size_t>(i)];
      if (sl >= 0 && sl < cache_slots) cache_row_of_slot[static_cast<size_t>(sl)] = i;
    }
    for (int i = 0; i < c.m; ++i) {
      for (int col = 0; col < width; ++col) check_elem(out, static_cast<long long>(i) * width + col, ref_of(i, col));
    }
    for (int sl = 0; sl < cache_slots; ++sl) {
      const int i = cache_row_of_slot[static_cast<size_t>(sl)];
      for (int col = 0; col < width; ++col) {
        const long long e = static_cast<long long>(sl) * width + col;
        if (i < 0) {
          for (Mem* mem : {&kc, &vc}) {
            if (mem->writes[static_cast<size_t>(e)] != 0) fail("%s: %s row %d (no sequence's) written", name, mem->name.c_str(), sl);
          }
          continue;
        }
        check_elem(kc, e, ref_of(i, width + col));
        check_elem(vc, e, ref_of(i, 2 * width + col));
      }
    }
  }
  g_worst = std::max(g_worst, worst);
  if (worst > tol) fail("%s: error %.3g over the tolerance %.0e", name, worst, tol);
  return g_errors == errors_before;
}

// The refusals: status 1 and nothing run; m 0 / n 0: status 0.
void refusals() {
  const Fmt fmt{false};
  Mem x("x", 64 * 256 * 2 + 32), w("weight", 64 * 256 * 2);
  Mem out("out", 64 * 64 * 2);
  std::vector<float> scales(64, 1.f);
  Store st;
  st.fmt = fmt;
  st.out = &out;
  st.n = 64;
  auto expect = [&](int got, int want, const char* what) {
    if (got != want) fail("refusal %s: status %d, expected %d", what, got, want);
  };
  expect(launch_tc<false>(fmt, x, 0, w, nullptr, 33, 64, 64, st, 0), 1, "33 rows");
  expect(launch_tc<false>(fmt, x, 0, w, nullptr, 4, 48, 64, st, 0), 1, "k 48 (16-bit)");
  expect(launch_tc<true>(fmt, x, 0, w, &scales, 4, 96, 64, st, 0), 1, "k 96 (int8)");
  expect(launch_tc<true>(fmt, x, 0, w, nullptr, 4, 128, 64, st, 0), 1, "int8 without scales");
  expect(launch_tc<false>(fmt, x, 2, w, nullptr, 4, 64, 64, st, 0), 1, "x misaligned");
  for (int split : {-1, 3, 5, 16}) expect(launch_tc<false>(fmt, x, 0, w, nullptr, 4, 64, 64, st, split), 1, "split");
  expect(launch_tc<false>(fmt, x, 0, w, nullptr, 0, 64, 64, st, 0), 0, "m 0");
  expect(launch_tc<false>(fmt, x, 0, w, nullptr, 4, 64, 0, st, 0), 0, "n 0");
  for (int wr : out.writes) {
    if (wr != 0) {
      fail("a refused launch wrote an output");
      break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int random_cases = argc > 1 ? std::atoi(argv[1]) : 150;
  if (argc > 2) g_rng.seed(static_cast<unsigned>(std::atoi(argv[2])));
  refusals();
  std::vector<Case> cases;
  // check_ops' tclinear shapes (smaller where the emulation's time asks), every split
  for (bool int8 : {false, true}) {
    for (bool bf16 : {false, true}) {
      if (int8 && bf16) continue;  // int8 takes fp16 activations only
      const int step = int8 ? 64 : 32;
      for (int split : {1, 2, 4, 8, 0}) {
        cases.push_back({bf16, int8, false, 1, 1024, 512, true, false, split, 132, 2});
        cases.push_back({bf16, int8, false, 8, 512, 256, true, false, split, 132, 2});
        cases.push_back({bf16, int8, false, 32, 2048, 64, true, true, split, 132, 2});  // long rows, few outputs
        cases.push_back({bf16, int8, false, 17, 768, 301, true, true, split, 132, 2});  // a partial group of 32
        cases.push_back({bf16, int8, false, 2, step, 48, false, true, split, 132, 2});  // one step
        cases.push_back({bf16, int8, false, 9, 2 * step, 33, true, false, split, 132, 2});
        cases.push_back({bf16, int8, true, 1, 512, 3 * 64, true, false, split, 132, 2});
        cases.push_back({bf16, int8, true, 13, 2 * step, 3 * 42, true, false, split, 132, 2});
      }
      for (int m : {1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32}) {
        cases.push_back({bf16, int8, false, m, 256, 160, true, m % 2 == 0, 0, 132, 2});
      }
      // auto split at other machine sizes: S = 8 (1 SM x 1 block is never full), S = 1 (a wave already)
      cases.push_back({bf16, int8, false, 4, 64 * step, 64, true, false, 0, 1, 1});
      cases.push_back({bf16, int8, false, 4, 64 * step, 640, true, false, 0, 2, 1});
      cases.push_back({bf16, int8, false, 4, 8 * step, 96, true, false, 0, 132, 16});
    }
  }
  for (int r = 0; r < random_cases; ++r) {
    Case c{};
    c.int8 = g_rng() % 3 == 0;
    c.bf16 = !c.int8 && g_rng() % 2 == 0;
    c.qkv = g_rng() % 4 == 0;
    c.m = 1 + static_cast<int>(g_rng() % 32);
    const int step = c.int8 ? 64 : 32;
    c.k = step * (1 + static_cast<int>(g_rng() % 24));
    c.n = c.qkv ? 3 * (1 + static_cast<int>(g_rng() % 80)) : 1 + static_cast<int>(g_rng() % 300);
    c.bias = c.qkv || g_rng() % 3 != 0;
    c.relu = !c.qkv && g_rng() % 2 == 0;
    const int splits[] = {0, 0, 1, 2, 4, 8};
    c.split = splits[g_rng() % 6];
    const int sms[] = {1, 3, 8, 78, 132};
    c.sms = sms[g_rng() % 5];
    c.resident = 1 + static_cast<int>(g_rng() % 8);
    cases.push_back(c);
  }
  int failed = 0;
  for (const Case& c : cases) failed += run_case(c) ? 0 : 1;
  for (const std::string& s : g_first) std::printf("  %s\n", s.c_str());
  std::printf("worst error %.3g (tolerance 1e-2 fp16, 4e-2 bf16); %lld checker errors\n", g_worst, g_errors);
  const bool ok = failed == 0 && g_errors == 0;
  std::printf("%s: %d of %zu cases failed\n", ok ? "PASS" : "FAIL", failed, cases.size());
  return ok ? 0 : 1;
}
