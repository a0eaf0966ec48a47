// CPU check of sampling.cu's scans (scan_argmax, scan_exp_sum: each thread's share of a row, kScanRound loads in
// flight before they are used; session 18) against the loops they replaced (one value at a time): for every thread
// of the block sizes the launcher picks, the same (value, index) pair and the same float sum, bit for bit, over rows
// with ties, NaNs, infinities and signed zeros. Runs on the host; no GPU.
//   nvcc -O2 -std=c++17 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/argmax_scan_test.cu native/src/launch.cu -o target/argmax_scan_test
// (the project's warning flags, cmake/OptCuda.cmake: the kernel file must pass them on the host side too)
//   target/argmax_scan_test          (exit 0 and "PASS" when every case matches)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "sampling.cu"

namespace {

// The loops as they were before session 18 (argmax_kernel's first and last passes), for one thread.
void argmax_one_at_a_time(const float* row, int n, int start, int stride, float& best_v, int& best_i) {
  for (int i = start; i < n; i += stride) {
    const float v = row[i];
    if (beats(v, i, best_v, best_i)) {
      best_v = v;
      best_i = i;
    }
  }
}

float exp_sum_one_at_a_time(const float* row, int n, int start, int stride, float m) {
  float sum = 0.f;
  for (int i = start; i < n; i += stride) sum += expf(row[i] - m);
  return sum;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

int main() {
  std::mt19937 rng(18);
  std::normal_distribution<float> normal(0.f, 3.f);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int sizes[] = {1, 2, 7, 31, 32, 33, 63, 100, 511, 512, 513, 1024, 1025, 4095, 4096, 4103, 50265, 50272};
  long long cases = 0, failures = 0;
  for (int n : sizes) {
    for (int kind = 0; kind < 7; ++kind) {
      std::vector<float> row(n);
      for (float& v : row) v = normal(rng);
      std::uniform_int_distribution<int> at(0, n - 1);
      switch (kind) {
        case 0: break;                                             // plain
        case 1: for (int t = 0; t < 4; ++t) row[at(rng)] = 9.f;    // ties of the maximum
                break;
        case 2: row[at(rng)] = nan; row[at(rng)] = nan; break;    // NaNs: the first one wins
        case 3: for (float& v : row) v = -inf;                     // all -inf: index 0
                break;
        case 4: row[at(rng)] = inf; row[at(rng)] = -inf; break;   // infinities
        case 5: for (float& v : row) v = (rng() & 1) ? 0.f : -0.f;  // signed zeros tie
                break;
        default: for (float& v : row) v = std::round(v);           // many ties everywhere
                 break;
      }
      for (int stride = 32; stride <= 512; stride += 32) {  // threads_for(vocab, 512): multiples of 32 up to 512
        for (int start = 0; start < stride; ++start) {
          ++cases;
          float v1 = -inf, v2 = -inf;
          int i1 = std::numeric_limits<int>::max(), i2 = std::numeric_limits<int>::max();
          scan_argmax(row.data(), n, start, stride, v1, i1);
          argmax_one_at_a_time(row.data(), n, start, stride, v2, i2);
          bool ok = i1 == i2 && same_bits(v1, v2);
          // the log-sum-exp pass runs only with a finite maximum: take the row's own
          float m = -inf;
          for (float v : row) m = std::isnan(v) ? m : std::fmax(m, v);
          if (std::isfinite(m)) {
            const float s1 = scan_exp_sum(row.data(), n, start, stride, m, 0.f);
            const float s2 = exp_sum_one_at_a_time(row.data(), n, start, stride, m);
            ok = ok && same_bits(s1, s2);
          }
          if (!ok && failures++ < 10) {
            std::printf("FAIL n=%d kind=%d stride=%d start=%d: scan (%g, %d), loop (%g, %d)\n", n, kind, stride,
                        start, v1, i1, v2, i2);
          }
        }
      }
    }
  }
  std::printf("%s: %lld of %lld thread scans differ\n", failures == 0 ? "PASS" : "FAIL", failures, cases);
  return failures == 0 ? 0 : 1;
}
