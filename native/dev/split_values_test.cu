// CPU check of attention_split.cu's accumulate_values (the value loop of the split-KV decode kernel, which issues
// the loads of kValueRound keys before using them; for head_dim 64 and 128, the kernels compiled for them, of 16
// keys) against the loop it replaced (one key at a time): the same float sums in the same order, so the
// results must be equal bit for bit (NaN as NaN). Runs on the host; no GPU.
//   nvcc -std=c++17 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/split_values_test.cu native/src/launch.cu native/src/attention_grouped.cu -o target/split_values_test
// (the project's warning flags, cmake/OptCuda.cmake: the kernel file must pass them on the host side too)
//   target/split_values_test          (exit 0 and "PASS" when every case matches)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "attention_split.cu"

namespace {

// The loop as it was before session 7 (attention_split.cu, step 3c).
template <typename T>
void one_key_at_a_time(float (&acc)[kDimsPerThread], const long long* slot_s, const float* p_s, int n_keys,
                       const T* v_cache, size_t width, size_t head_offset, int tid, int head_dim) {
  for (int j = 0; j < n_keys; ++j) {
    const long long sj = slot_s[j];
    if (sj < 0) continue;
    const float pj = p_s[j];
    const T* v_row = v_cache + static_cast<size_t>(sj) * width + head_offset;
    for (int k = 0; k < kDimsPerThread; ++k) {
      const int d = tid + k * kT;
      if (d < head_dim) acc[k] = fmaf(pj, opt::to_float(v_row[d]), acc[k]);
    }
  }
}

template <typename T>
T store(float v);
template <>
float store<float>(float v) { return v; }
template <>
__half store<__half>(float v) { return __float2half_rn(v); }
template <>
__nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
int run(const char* name, std::mt19937& rng) {
  int failures = 0;
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int head_dim : {64, 80, 128, 256}) {
    for (int trial = 0; trial < 200; ++trial) {
      const int heads = 1 + static_cast<int>(rng() % 3);
      const size_t width = static_cast<size_t>(heads) * head_dim;
      const int slots = 40 + static_cast<int>(rng() % 100);
      std::vector<T> v(static_cast<size_t>(slots) * width);
      for (auto& x : v) {
        const unsigned r = rng() % 1000;
        x = store<T>(r == 0 ? INFINITY : r == 1 ? NAN : u(rng));  // a few non-finite values, as a cache may hold
      }
      const int n_keys = 1 + static_cast<int>(rng() % kT);
      long long slot_s[kT];
      float p_s[kT];
      for (int j = 0; j < kT; ++j) {
        slot_s[j] = rng() % 5 == 0 ? -1 : static_cast<long long>(rng() % slots);
        p_s[j] = rng() % 7 == 0 ? 0.f : std::fabs(u(rng));
      }
      const size_t head_offset = static_cast<size_t>(rng() % heads) * head_dim;
      for (int tid = 0; tid < kT; ++tid) {
        float want[kDimsPerThread], got[kDimsPerThread];
        for (int k = 0; k < kDimsPerThread; ++k) want[k] = got[k] = u(rng);
        // The kernel compiled for head_dim 64 / 128 holds only its 1 / 2 dimensions and goes in rounds of 16 keys.
        float fixed[2] = {got[0], got[1]};
        one_key_at_a_time(want, slot_s, p_s, n_keys, v.data(), width, head_offset, tid, head_dim);
        accumulate_values(got, slot_s, p_s, n_keys, v.data(), width, head_offset, tid, head_dim);
        if (head_dim == 64) {
          float one[1] = {fixed[0]};
          accumulate_values<T, 1, 16>(one, slot_s, p_s, n_keys, v.data(), width, head_offset, tid, head_dim);
          fixed[0] = one[0];
        } else if (head_dim == 128) {
          accumulate_values<T, 2, 16>(fixed, slot_s, p_s, n_keys, v.data(), width, head_offset, tid, head_dim);
        }
        auto equal = [](float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0 || (std::isnan(a) && std::isnan(b)); };
        bool same = true;  // bit for bit, except that any NaN equals any NaN (x86 keeps an operand's NaN sign)
        for (int k = 0; k < kDimsPerThread; ++k) same &= equal(want[k], got[k]);
        const int fixed_dims = head_dim == 64 ? 1 : head_dim == 128 ? 2 : 0;
        for (int k = 0; k < fixed_dims; ++k) same &= equal(want[k], fixed[k]);
        if (!same) {
          if (failures++ < 5) {
            std::printf("%s head_dim %d trial %d tid %d: %g vs %g\n", name, head_dim, trial, tid, want[0], got[0]);
          }
        }
      }
    }
  }
  std::printf("%s: %d mismatching threads\n", name, failures);
  return failures;
}

}  // namespace

int main() {
  std::mt19937 rng(20261126);
  const int failures = run<float>("f32", rng) + run<__half>("f16", rng) + run<__nv_bfloat16>("bf16", rng);
  std::printf("%s\n", failures == 0 ? "PASS: accumulate_values equals the one-key-at-a-time loop bit for bit"
                                    : "FAIL");
  return failures == 0 ? 0 : 1;
}
