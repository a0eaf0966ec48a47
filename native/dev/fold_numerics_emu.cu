// CPU emulation of the arithmetic of add_layernorm_kernel (layernorm.cu, threads_for(k, 512) threads) and of the
// norm part of linear_small_norm_kernel (linear_small.cu, 32 * kNormWarps = 256 threads), in their exact operation
// order (review of 35b283a; not built by Maven). Host code only, no GPU:
//
//   nvcc -std=c++17 -Xcompiler=-ffp-contract=off -I native/include native/dev/fold_numerics_emu.cu -o target/fold_num && target/fold_num
//
// The PTX of both kernels (nvcc -O3 -arch=sm_90 -ptx) has: add.f32 for y + bias and x + that, cvt.rn to T, the
// per-thread add.f32 sums, a warp butterfly (shfl.xor) then the warps' partials added in order, div.rn by k,
// sub + fma.rn(d, d, sq) for the variance, add eps, sqrt.rn, rcp.rn, sub + mul by inv_std, fma.rn(normed, gamma,
// beta), cvt.rn to T. This file does the same with explicit fmaf and -ffp-contract=off.
// Prints: residual words that differ (must be 0), norm words that differ, by how many ulps (large ulp counts in
// f32 are values near zero) and check_ops' error measure.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

template <typename T>
struct Type;
template <>
struct Type<float> {
  static float round(float v) { return v; }
  static float wide(float v) { return v; }
  static int64_t key(float v) {
    int32_t i;
    std::memcpy(&i, &v, 4);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
  }
  static const char* name() { return "f32"; }
};
template <>
struct Type<__half> {
  static __half round(float v) { return __float2half_rn(v); }
  static float wide(__half v) { return __half2float(v); }
  static int64_t key(__half v) {
    uint16_t i;
    std::memcpy(&i, &v, 2);
    return (i & 0x8000) ? -(int64_t)(i & 0x7fff) : i;
  }
  static const char* name() { return "f16"; }
};
template <>
struct Type<__nv_bfloat16> {
  static __nv_bfloat16 round(float v) { return __float2bfloat16_rn(v); }
  static float wide(__nv_bfloat16 v) { return __bfloat162float(v); }
  static int64_t key(__nv_bfloat16 v) {
    uint16_t i;
    std::memcpy(&i, &v, 2);
    return (i & 0x8000) ? -(int64_t)(i & 0x7fff) : i;
  }
  static const char* name() { return "bf16"; }
};

// block_sum: each warp's butterfly (every lane ends with the same value), then partial[0] + partial[1] + ...
static float block_sum(const std::vector<float>& per_thread) {
  const int threads = static_cast<int>(per_thread.size());
  float total = 0.f;
  for (int w = 0; w < threads / 32; ++w) {
    float v[32];
    for (int l = 0; l < 32; ++l) v[l] = per_thread[w * 32 + l];
    for (int off = 16; off > 0; off /= 2) {
      float nv[32];
      for (int l = 0; l < 32; ++l) nv[l] = v[l] + v[l ^ off];
      std::memcpy(v, nv, sizeof v);
    }
    total += v[0];
  }
  return total;
}

static int threads_for(int n, int max_threads) {
  const long long rounded = (static_cast<long long>(n) + 31) / 32 * 32;
  return rounded < 32 ? 32 : (rounded > max_threads ? max_threads : static_cast<int>(rounded));
}

// x += y + bias (stored as T), out = LN(x), with `threads` threads in the kernels' order.
template <typename T>
static void add_ln(std::vector<T>& x, const std::vector<T>& y, const std::vector<T>* bias, std::vector<T>& out,
                   const std::vector<T>& gamma, const std::vector<T>& beta, float eps, int threads) {
  using D = Type<T>;
  const int k = static_cast<int>(x.size());
  std::vector<float> part(threads, 0.f);
  for (int t = 0; t < threads; ++t) {
    for (int i = t; i < k; i += threads) {
      const float yb = bias == nullptr ? D::wide(y[i]) : D::wide(y[i]) + D::wide((*bias)[i]);
      const T stored = D::round(D::wide(x[i]) + yb);
      x[i] = stored;
      part[t] += D::wide(stored);
    }
  }
  const float mean = block_sum(part) / static_cast<float>(k);
  for (int t = 0; t < threads; ++t) {
    part[t] = 0.f;
    for (int i = t; i < k; i += threads) {
      const float d = D::wide(x[i]) - mean;
      part[t] = std::fmaf(d, d, part[t]);
    }
  }
  const float var = block_sum(part) / static_cast<float>(k);
  const float inv_std = 1.f / std::sqrt(var + eps);
  for (int i = 0; i < k; ++i) {
    const float normed = (D::wide(x[i]) - mean) * inv_std;
    out[i] = D::round(std::fmaf(normed, D::wide(gamma[i]), D::wide(beta[i])));
  }
}

template <typename T>
static void compare(int k, int trials, float x_mean, std::mt19937& rng) {
  using D = Type<T>;
  std::normal_distribution<float> nd(0.f, 1.f);
  long x_differ = 0, n_differ = 0, n_total = 0;
  int64_t max_ulps = 0;
  double max_err = 0;  // check_ops' measure: |a - b| / max(1, |ref|)
  for (int t = 0; t < trials; ++t) {
    std::vector<T> x(k), y(k), b(k), g(k), be(k);
    for (int i = 0; i < k; ++i) {
      x[i] = D::round(x_mean + nd(rng));
      y[i] = D::round(nd(rng));
      b[i] = D::round(0.3f * nd(rng));
      g[i] = D::round(1.f + 0.2f * nd(rng));
      be[i] = D::round(0.2f * nd(rng));
    }
    std::vector<T> x1 = x, x2 = x, o1(k), o2(k);
    add_ln(x1, y, &b, o1, g, be, 1e-5f, threads_for(k, 512));  // opt_add_layernorm
    add_ln(x2, y, &b, o2, g, be, 1e-5f, 256);                  // linear_small_norm_kernel (8 warps)
    for (int i = 0; i < k; ++i) {
      x_differ += std::memcmp(&x1[i], &x2[i], sizeof(T)) != 0;
      const int64_t u = std::llabs(D::key(o1[i]) - D::key(o2[i]));
      n_differ += u != 0;
      max_ulps = u > max_ulps ? u : max_ulps;
      const double ref = D::wide(o1[i]);
      max_err = std::fmax(max_err, std::fabs(D::wide(o2[i]) - ref) / std::fmax(1.0, std::fabs(ref)));
      ++n_total;
    }
  }
  std::printf("%-4s k %5d (residual mean %4.0f, %d rows): residual words differing %ld; norm words differing %ld of "
              "%ld, at most %lld ulp, max err %.2e\n",
              D::name(), k, x_mean, trials, x_differ, n_differ, n_total, static_cast<long long>(max_ulps), max_err);
}

int main() {
  std::mt19937 rng(7);
  for (int k : {64, 768, 1024, 2048, 4096, 5120, 7168, 9216, 12288}) {
    compare<float>(k, 20, 0.f, rng);
    compare<__half>(k, 20, 0.f, rng);
    compare<__nv_bfloat16>(k, 20, 0.f, rng);
  }
  // a residual with a large mean (later layers): the statistics' order matters more
  compare<float>(4096, 20, 40.f, rng);
  compare<__half>(4096, 20, 40.f, rng);
  compare<__nv_bfloat16>(4096, 20, 40.f, rng);
  return 0;
}
