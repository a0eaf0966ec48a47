// The storage types' traits shared by the CPU emulations (float, emu::Half, emu::BF16): widening and rounding,
// an ordered integer key (ulp distance = |key(a) - key(b)|), the name, the mantissa bits, check_ops' tolerance and
// an index for per-type tables. Header-only; include after emu.h (its declarations are file-local, in an unnamed
// namespace).
#ifndef OPT_EMU_COMMON_TY_H
#define OPT_EMU_COMMON_TY_H
#include <cstdint>
#include <cstring>

#include "emu.h"

namespace {
template <class T> struct Ty;
template <> struct Ty<float> {
  static float widen(float v) { return v; }
  static float narrow(float v) { return v; }
  static int64_t key(float v) {
    int32_t i;
    std::memcpy(&i, &v, 4);
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : i;
  }
  static const char* name() { return "f32"; }
  static constexpr int mant = 23;
  static constexpr double tol = 1e-4;
  static constexpr int idx = 0;
};
template <> struct Ty<emu::Half> {
  static float widen(emu::Half v) { return emu::half_to_float(v.x); }
  static emu::Half narrow(float v) { return emu::Half{emu::float_to_half(v)}; }
  static int64_t key(emu::Half v) { return (v.x & 0x8000) ? -static_cast<int64_t>(v.x & 0x7fff) : v.x; }
  static const char* name() { return "f16"; }
  static constexpr int mant = 10;
  static constexpr double tol = 1e-2;
  static constexpr int idx = 1;
};
template <> struct Ty<emu::BF16> {
  static float widen(emu::BF16 v) { return emu::bf16_to_float(v.x); }
  static emu::BF16 narrow(float v) { return emu::BF16{emu::float_to_bf16(v)}; }
  static int64_t key(emu::BF16 v) { return (v.x & 0x8000) ? -static_cast<int64_t>(v.x & 0x7fff) : v.x; }
  static const char* name() { return "bf16"; }
  static constexpr int mant = 7;
  static constexpr double tol = 4e-2;
  static constexpr int idx = 2;
};
}  // namespace

#endif  // OPT_EMU_COMMON_TY_H
