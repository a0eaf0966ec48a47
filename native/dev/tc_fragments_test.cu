// CPU check of linear_tc.cu's fragments (session 22): each lane's own contiguous 16 bytes of weight rows g and g + 8
// and of x row g, given to mma.sync m16n8k16 as A and B through tc_a_fragment / tc_b_fragment, must multiply out to
// the tile's dot products over the step's k values (32 for 16-bit weights, 64 for int8), and int8_pair_bits must give
// fp16 1024 + q + 128 for every byte in every position. The mma is modelled from the PTX ISA's fragment layout
// ("Matrix Fragments for mma.m16n8k16 with floating point type"), the one common.cuh documents and attention_fa.cu's
// GPU-verified kernel relies on; the epilogue's reading of the D fragments (output row g / g + 8, row of x 2t / 2t + 1)
// is checked the same way. Small integer values keep every sum exact. Runs on the host; no GPU (-arch: the kernel
// file it includes holds mma.sync, which needs sm_80 or later to compile).
//   nvcc -O2 -std=c++17 -arch=sm_90 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/tc_fragments_test.cu native/src/launch.cu -o target/tc_fragments_test
//   target/tc_fragments_test          (exit 0 and "PASS" when every case matches)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "linear_tc.cu"

namespace {

float half_value(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
uint16_t half_bits(float v) { return __half_as_ushort(__float2half_rn(v)); }
uint32_t pair(float lo, float hi) { return half_bits(lo) | (static_cast<uint32_t>(half_bits(hi)) << 16); }
float lo_of(uint32_t w) { return half_value(static_cast<uint16_t>(w & 0xFFFFu)); }
float hi_of(uint32_t w) { return half_value(static_cast<uint16_t>(w >> 16)); }

// d[lane][0..3] += A · B for the warp: a[lane][4], b0/b1[lane], through the PTX ISA's fragment layout.
void mma_model(float (&d)[32][4], const uint32_t (&a)[32][4], const uint32_t (&b0)[32], const uint32_t (&b1)[32]) {
  float A[16][16] = {}, B[16][8] = {};
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    A[g][2 * t] = lo_of(a[l][0]), A[g][2 * t + 1] = hi_of(a[l][0]);
    A[g + 8][2 * t] = lo_of(a[l][1]), A[g + 8][2 * t + 1] = hi_of(a[l][1]);
    A[g][2 * t + 8] = lo_of(a[l][2]), A[g][2 * t + 9] = hi_of(a[l][2]);
    A[g + 8][2 * t + 8] = lo_of(a[l][3]), A[g + 8][2 * t + 9] = hi_of(a[l][3]);
    B[2 * t][g] = lo_of(b0[l]), B[2 * t + 1][g] = hi_of(b0[l]);
    B[2 * t + 8][g] = lo_of(b1[l]), B[2 * t + 9][g] = hi_of(b1[l]);
  }
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const int rows[4] = {g, g, g + 8, g + 8};
    const int cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int r = 0; r < 4; ++r) {
      float s = 0.f;
      for (int c = 0; c < 16; ++c) s += A[rows[r]][c] * B[c][cols[r]];
      d[l][r] += s;
    }
  }
}

// One step of one output tile (16 rows of w) by one tile of x (8 rows): kQ mmas over 16 · kQ values of k. w and x
// hold small integers; kInt8: w goes through the int8 chunk and its widening. Returns the number of wrong outputs.
template <int kQ>
int check_step(std::mt19937& rng) {
  constexpr int kK = 16 * kQ;
  constexpr bool kInt8 = kQ == 4;
  int w[16][kK], x[8][kK];
  for (auto& row : w) {
    for (int& v : row) v = kInt8 ? static_cast<int>(rng() % 256) - 128 : static_cast<int>(rng() % 15) - 7;
  }
  for (auto& row : x) {
    for (int& v : row) v = static_cast<int>(rng() % 9) - 4;
  }
  uint32_t wg[32][2 * kQ], wg8[32][2 * kQ], xw[32][2 * kQ];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const int k0 = t * 4 * kQ;  // the lane's contiguous values: 8 (16-bit) or 16 (int8) from here
    if (kInt8) {
      for (int h = 0; h < 2; ++h) {
        uint8_t bytes[16];
        for (int e = 0; e < 16; ++e) bytes[e] = static_cast<uint8_t>(static_cast<int8_t>(w[g + 8 * h][k0 + e]));
        uint4 chunk;
        std::memcpy(&chunk, bytes, sizeof chunk);
        uint32_t bits[8];
        int8_pair_bits(chunk, bits);
        for (int i = 0; i < 8; ++i) {  // the kernel's __hsub2 of 1152 (0x6480), exact: done here in float
          (h == 0 ? wg : wg8)[l][i] = pair(lo_of(bits[i]) - half_value(0x6480), hi_of(bits[i]) - half_value(0x6480));
        }
      }
    } else {
      for (int i = 0; i < 2 * kQ; ++i) {
        wg[l][i] = pair(static_cast<float>(w[g][k0 + 2 * i]), static_cast<float>(w[g][k0 + 2 * i + 1]));
        wg8[l][i] = pair(static_cast<float>(w[g + 8][k0 + 2 * i]), static_cast<float>(w[g + 8][k0 + 2 * i + 1]));
      }
    }
    for (int i = 0; i < 2 * kQ; ++i) {
      xw[l][i] = pair(static_cast<float>(x[g][k0 + 2 * i]), static_cast<float>(x[g][k0 + 2 * i + 1]));
    }
  }
  float d[32][4] = {};
  for (int q = 0; q < kQ; ++q) {
    uint32_t a[32][4], b0[32], b1[32];
    for (int l = 0; l < 32; ++l) {
      tc_a_fragment(wg[l], wg8[l], q, a[l]);
      tc_b_fragment(xw[l], q, b0[l], b1[l]);
    }
    mma_model(d, a, b0, b1);
  }
  int wrong = 0;
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int r = 0; r < 4; ++r) {  // the kernel's epilogue: output g (+ 8 for r >= 2), row of x 2t (+ 1 for odd r)
      const int j = g + (r >= 2 ? 8 : 0);
      const int i = 2 * t + (r & 1);
      long long want = 0;
      for (int e = 0; e < kK; ++e) want += static_cast<long long>(w[j][e]) * x[i][e];
      if (d[l][r] != static_cast<float>(want)) {
        if (++wrong <= 5) std::printf("kQ %d lane %d r %d: %g, expected %lld\n", kQ, l, r, d[l][r], want);
      }
    }
  }
  return wrong;
}

// int8_pair_bits: every byte value in every position of a chunk becomes fp16 bits 0x6400 | (q + 128) in its pair.
int check_int8_bits() {
  int wrong = 0;
  for (int pos = 0; pos < 16; ++pos) {
    for (int b = 0; b < 256; ++b) {
      uint8_t bytes[16];
      for (int e = 0; e < 16; ++e) bytes[e] = static_cast<uint8_t>(e * 37 + 11);
      bytes[pos] = static_cast<uint8_t>(b);
      uint4 chunk;
      std::memcpy(&chunk, bytes, sizeof chunk);
      uint32_t bits[8];
      int8_pair_bits(chunk, bits);
      for (int e = 0; e < 16; ++e) {
        const uint16_t got = static_cast<uint16_t>(bits[e / 2] >> (16 * (e % 2)));
        const int q = static_cast<int8_t>(bytes[e]);
        wrong += got != static_cast<uint16_t>(0x6400 | (q + 128));
        wrong += half_value(got) - half_value(0x6480) != static_cast<float>(q);
      }
    }
  }
  return wrong;
}

}  // namespace

int main() {
  std::mt19937 rng(22);
  int wrong = check_int8_bits();
  int cases = 1;
  for (int rep = 0; rep < 200; ++rep) {
    wrong += check_step<2>(rng);
    wrong += check_step<4>(rng);
    cases += 2;
  }
  std::printf("%s: %d wrong values over %d cases\n", wrong == 0 ? "PASS" : "FAIL", wrong, cases);
  return wrong == 0 ? 0 : 1;
}
