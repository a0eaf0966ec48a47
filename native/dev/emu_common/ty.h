// The storage types' traits shared by the CPU emulations (float, emu::Half, emu::BF16): widening and rounding,
// an ordered integer key (ulp distance = |key(a) - key(b)|), the name, the mantissa bits, check_ops' tolerance and
// an index for per-type tables; and the small helpers every emulation's checks use over them (check_ops' error
// measure, widening a tensor, bit equality, random tensors). Header-only; include after emu.h (its declarations are
// file-local, in an unnamed namespace).
#ifndef OPT_EMU_COMMON_TY_H
#define OPT_EMU_COMMON_TY_H
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

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

// check_ops' measure: max |got - ref| / max(1, |ref|); a NaN on one side only is infinite
[[maybe_unused]] double max_error(const std::vector<double>& got, const std::vector<double>& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(ref[i])) {
      if (std::isnan(got[i]) != std::isnan(ref[i])) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::fabs(got[i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
  }
  return worst;
}
template <class T>
std::vector<double> wide(const std::vector<T>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = Ty<T>::widen(v[i]);
  return d;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
template <class T>
std::vector<T> random_tensor(std::mt19937& rng, size_t n, float mean, float stddev) {
  std::normal_distribution<float> d(mean, stddev);
  std::vector<T> v(n);
  for (auto& e : v) e = Ty<T>::narrow(d(rng));
  return v;
}
}  // namespace

#endif  // OPT_EMU_COMMON_TY_H
