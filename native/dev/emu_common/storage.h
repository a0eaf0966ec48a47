// fp16 / bf16 storage for the CPU emulations of our kernels (native/dev/emu_fa and those over emu.h): our own
// round-to-nearest-even conversions (the host has no __half arithmetic), checked against CUDA's host implementations
// with -DCUDA_HOST_CONVERSIONS (check_conversions). Header-only.
#ifndef OPT_EMU_COMMON_STORAGE_H
#define OPT_EMU_COMMON_STORAGE_H
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#ifdef CUDA_HOST_CONVERSIONS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace emu {


uint32_t fbits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
float bitsf(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// float → binary16, nearest even; overflow → ±inf, NaN → 0x7fff (canonical, as CUDA).
uint16_t float_to_half(float f) {
  const uint32_t x = fbits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fff;
  if (a == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
  const int e = static_cast<int>(a >> 23) - 127;  // unbiased exponent of f
  if (e >= 16) return static_cast<uint16_t>(sign | 0x7c00u);
  // value = 1.m × 2^e (normal float) or subnormal float (tiny: rounds to 0 in half)
  if (e < -25) return static_cast<uint16_t>(sign);  // below half the smallest subnormal (2^-25): 0
  uint32_t mant = (a & 0x7fffffu) | 0x800000u;       // 24-bit significand
  // half keeps bits down to 2^-10 (normal, e >= -14) or 2^-24 (subnormal): shift = number of dropped bits
  const int shift = e >= -14 ? 13 : 13 + (-14 - e);
  uint32_t kept = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1);
  const uint32_t half_ulp = 1u << (shift - 1);
  if (rest > half_ulp || (rest == half_ulp && (kept & 1u))) ++kept;
  uint32_t out;
  if (e >= -14) {
    // kept = 1.m (11 bits, may carry to 12 bits)
    uint32_t exp = static_cast<uint32_t>(e + 15);
    if (kept >= 0x800u) { kept >>= 1; ++exp; }
    if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
    out = (exp << 10) | (kept & 0x3ffu);
  } else {
    out = kept;  // subnormal (a carry into 0x400 is the smallest normal, which the encoding gives by itself)
  }
  return static_cast<uint16_t>(sign | out);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 31) return bitsf(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  return bitsf(sign | ((exp + 112) << 23) | (man << 13));
}

// float → bfloat16, nearest even; NaN → 0x7fff.
uint16_t float_to_bf16(float f) {
  const uint32_t x = fbits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  const uint32_t rest = x & 0xffffu;
  uint32_t kept = x >> 16;
  if (rest > 0x8000u || (rest == 0x8000u && (kept & 1u))) ++kept;  // may carry into the exponent (→ inf): right
  return static_cast<uint16_t>(kept);
}
float bf16_to_float(uint16_t b) { return bitsf(static_cast<uint32_t>(b) << 16); }

#ifdef CUDA_HOST_CONVERSIONS
// Our conversions against CUDA's host implementations, over every step-th float bit pattern and around every
// half and bf16 value.
bool check_conversions(unsigned step) {
  long long bad = 0, n = 0;
  auto one = [&](uint32_t u) {
    const float f = bitsf(u);
    const __half h = __float2half_rn(f);
    const __nv_bfloat16 b = __float2bfloat16_rn(f);
    uint16_t hu, bu;
    std::memcpy(&hu, &h, 2);
    std::memcpy(&bu, &b, 2);
    ++n;
    if (hu != float_to_half(f) || bu != float_to_bf16(f)) {
      if (bad++ < 5) std::printf("conversion mismatch: %08x: half %04x vs %04x, bf16 %04x vs %04x\n", u, hu,
                                 float_to_half(f), bu, float_to_bf16(f));
    }
  };
  for (uint64_t u = 0; u <= 0xffffffffull; u += step) one(static_cast<uint32_t>(u));
  for (uint32_t u = 0; u < 0x10000u; ++u) {  // every half and bf16 value, and the midpoints around them
    one(fbits(half_to_float(static_cast<uint16_t>(u))));
    one(fbits(bf16_to_float(static_cast<uint16_t>(u))));
    one(static_cast<uint32_t>(u) << 16 | 0x8000u);
    for (int d = -1; d <= 1; ++d) one(fbits(half_to_float(static_cast<uint16_t>(u))) + 0x1000u + d);
  }
  bool back_ok = true;
  for (uint32_t u = 0; u < 0x10000u; ++u) {
    const uint16_t s = static_cast<uint16_t>(u);
    __half_raw hr;
    hr.x = s;
    __nv_bfloat16_raw br;
    br.x = s;
    const __half h(hr);
    const __nv_bfloat16 b(br);
    const float a1 = __half2float(h), a2 = half_to_float(s), b1 = __bfloat162float(b), b2 = bf16_to_float(s);
    if (!(fbits(a1) == fbits(a2) || (std::isnan(a1) && std::isnan(a2)))) back_ok = false;
    if (!(fbits(b1) == fbits(b2) || (std::isnan(b1) && std::isnan(b2)))) back_ok = false;
  }
  std::printf("conversions vs CUDA host: %lld floats, %lld mismatches; widening %s\n", n, bad,
              back_ok ? "identical" : "DIFFERS");
  return bad == 0 && back_ok;
}
#endif

}  // namespace emu

#endif  // OPT_EMU_COMMON_STORAGE_H
