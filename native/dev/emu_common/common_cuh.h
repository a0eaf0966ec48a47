// The part of native/src/common.cuh that the emulated kernels (native/dev/emu_*) use, over the
// emulated GPU of emu.h: storage conversions, the launch helpers' constants, and chained launches as no-ops (the
// emulation runs one grid at a time). Include after emu.h, at namespace scope.
#ifndef OPT_EMU_COMMON_COMMON_CUH_H
#define OPT_EMU_COMMON_COMMON_CUH_H
#include "emu.h"

namespace opt {
using emu::BF16;
using emu::blockDim;
using emu::blockIdx;
using emu::Dim3;
using emu::GPtr;
using emu::gridDim;
using emu::Half;
using emu::SArr;
using emu::SPtr;
using emu::threadIdx;
using emu::V16;

inline float to_float(float v) { return v; }
inline float to_float(Half v) { return emu::half_to_float(v.x); }
inline float to_float(BF16 v) { return emu::bf16_to_float(v.x); }
template <typename T>
T from_float(float v);
template <>
inline float from_float<float>(float v) { return v; }
template <>
inline Half from_float<Half>(float v) { return Half{emu::float_to_half(v)}; }
template <>
inline BF16 from_float<BF16>(float v) { return BF16{emu::float_to_bf16(v)}; }
constexpr int kWarp = 32;
inline void chain_start() {}
inline void chain_wait() {}
constexpr int kInvalidValue = 1;
constexpr int kSuccess = 0;
inline int threads_for(int n, int max_threads) {
  const long long rounded = (static_cast<long long>(n) + kWarp - 1) / kWarp * kWarp;
  return rounded < kWarp ? kWarp : (rounded > max_threads ? max_threads : static_cast<int>(rounded));
}
using std::fmaf;
}  // namespace opt

#endif  // OPT_EMU_COMMON_COMMON_CUH_H
