// CUDA's device intrinsics over emu.h's emulated GPU, for the emulations of kernels that run one block per row
// (native/dev/emu_sample, emu_toplp): bit casts, IEEE arithmetic with one rounding, expf / logf as the exact result
// rounded to float (the GPU's may differ in the last bit), warp shuffles and ballots of 4- and 8-byte values (a double
// takes two exchanges, as on the GPU), __syncthreads, and common.cuh's for_each_strided over a GPtr. Header-only;
// include once per program, after emu.h. Build the programs with -ffp-contract=off (no fused multiply-adds of the
// host's own).
#ifndef OPT_EMU_COMMON_INTRINSICS_H
#define OPT_EMU_COMMON_INTRINSICS_H
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu.h"

#define __syncthreads() emu::syncthreads(__LINE__)

namespace {

inline uint32_t __float_as_uint(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }
inline float __uint_as_float(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
inline float __int_as_float(int b) { return __uint_as_float(static_cast<uint32_t>(b)); }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float expf(float x) { return emu::expf_(x); }
inline float logf(float x) { return static_cast<float>(std::log(static_cast<double>(x))); }
inline int __ffs(unsigned x) { return x == 0 ? 0 : __builtin_ctz(x) + 1; }

inline unsigned ballot_sync(unsigned mask, bool p, int line) {
  return emu::warp_op_bits(emu::kBallot, mask, p ? 1u : 0u, 0, line);
}
template <class T>
T warp_op(emu::WarpOp op, unsigned mask, T v, int off, int line) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "4- or 8-byte values");
  uint32_t w[2] = {0, 0};
  std::memcpy(w, &v, sizeof(T));
  w[0] = emu::warp_op_bits(op, mask, w[0], off, line);
  if (sizeof(T) == 8) w[1] = emu::warp_op_bits(op, mask, w[1], off, line);
  T out;
  std::memcpy(&out, w, sizeof(T));
  return out;
}
#define __ballot_sync(mask, p) ballot_sync(mask, p, __LINE__)
#define __shfl_xor_sync(mask, v, off) warp_op(emu::kXor, mask, v, off, __LINE__)
#define __shfl_up_sync(mask, v, off) warp_op(emu::kUp, mask, v, off, __LINE__)
#define __shfl_sync(mask, v, lane) warp_op(emu::kIdx, mask, v, lane, __LINE__)

// common.cuh's for_each_strided: its eight loads made one after another, f called in the kernel's order.
template <class F>
void for_each_strided(emu::GPtr<float> p, int first, int stride, int n, F&& f) {
  int i = first;
  for (; i + 7 * stride < n; i += 8 * stride) {
    float v[8];
    for (int u = 0; u < 8; ++u) v[u] = p.ld(i + u * stride, "for_each_strided");
    for (int u = 0; u < 8; ++u) f(i + u * stride, v[u]);
  }
  for (; i < n; i += stride) f(i, p.ld(i, "for_each_strided"));
}

}  // namespace

#endif  // OPT_EMU_COMMON_INTRINSICS_H
