// CPU check of sample.cu's draw (step 5, session 22): the tokens in play cut into one range per warp (draw_range),
// each warp's walk in 32-element steps (a Hillis-Steele warp scan added to a running sum; its total the largest
// prefix of its kept elements), the crossing warp found from the totals in warp order (crossing_warp), and that
// warp's second walk to its first kept element past the target. draw_range and crossing_warp are the kernel's own;
// the walk (the kernel's `walk` lambda: shuffles, ballot, the lane-31 broadcast) is transliterated here lane by lane,
// so only check_ops `sample` on a GPU runs the kernel's walk itself. Rows in gathered mode (tokens of a top-k cut,
// not the indices) too. Checks, over rows of many shapes (counts 1 to 50,272, zeros, ties, one heavy token, weights
// spread over 60 orders of magnitude) and uniforms from 0 to 1 - 2^-53:
//   - the second walk always finds an element when a warp crosses (never the fallback by mistake), and when none
//     crosses the token is the last kept one;
//   - the token is the first element, in token order, whose (its warp's base + its prefix) exceeds the target;
//   - against the plain rule (cumulative sum in token order, as check_ops' reference and the CPU twin walk it): the
//     same token, except where the target lies within 1e-12 (relative) of a cumulative boundary, which random
//     uniforms almost never hit (counted, and required to be rare).
// Runs on the host; no GPU.
//   nvcc -O2 -std=c++17 -arch=sm_90 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/draw_test.cu native/src/launch.cu -o target/draw_test
//   target/draw_test          (exit 0 and "PASS" when every case holds)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "sample.cu"

namespace {

constexpr int kLanes = 32;

// One warp's walk over [lo, hi) of w (the kept weights, 0 for tokens out), as the kernel's `walk`: returns the warp's
// total (the largest prefix of a kept element); with stop, the index of the first kept element whose base + prefix
// exceeds target (-1 if none), and the prefix of every kept element into prefix_of when given.
double walk(const std::vector<double>& w, int lo, int hi, bool stop, double base, double target, int& found,
            std::vector<double>* prefix_of) {
  double run = 0.0;
  double top[kLanes] = {};
  found = -1;
  for (int b = lo; b < hi; b += kLanes) {
    double v[kLanes], incl[kLanes];
    for (int l = 0; l < kLanes; ++l) v[l] = incl[l] = b + l < hi ? w[static_cast<size_t>(b + l)] : 0.0;
    for (int d = 1; d < kLanes; d *= 2) {  // __shfl_up_sync: every lane reads the values before this round's adds
      double before[kLanes];
      std::copy(incl, incl + kLanes, before);
      for (int l = d; l < kLanes; ++l) incl[l] = before[l] + before[l - d];
    }
    double prefix[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      prefix[l] = run + incl[l];
      if (v[l] > 0.0) {
        top[l] = std::fmax(top[l], prefix[l]);
        if (prefix_of != nullptr) (*prefix_of)[static_cast<size_t>(b + l)] = prefix[l];
      }
    }
    if (stop) {
      for (int l = 0; l < kLanes; ++l) {
        if (v[l] > 0.0 && base + prefix[l] > target) {
          found = b + l;
          return 0.0;
        }
      }
    }
    run = prefix[kLanes - 1];
  }
  double t = 0.0;
  for (int l = 0; l < kLanes; ++l) t = std::fmax(t, top[l]);  // the xor-shuffle max: max is exact in any order
  return t;
}

// The kernel's draw over the kept weights w: the chosen index (its token is token_of[index]; tokens rise with the
// index, so the last kept index holds the largest kept token, warp_last's max).
int draw(const std::vector<double>& w, double target, int& wrong) {
  const int count = static_cast<int>(w.size());
  double totals[kDrawWarps];
  int last = -1;
  for (int wp = 0; wp < kDrawWarps; ++wp) {
    int lo, hi, unused;
    draw_range(count, wp, lo, hi);
    totals[wp] = walk(w, lo, hi, false, 0.0, target, unused, nullptr);
    for (int j = lo; j < hi; ++j) {
      if (w[static_cast<size_t>(j)] > 0.0) last = j;
    }
  }
  double base = 0.0;
  const int crossing = crossing_warp(totals, target, base);
  if (crossing < 0) return last;
  int lo, hi, found;
  draw_range(count, crossing, lo, hi);
  walk(w, lo, hi, true, base, target, found, nullptr);
  if (found < 0) {
    ++wrong;
    std::printf("warp %d crossed (base %.17g + total %.17g > %.17g) but its walk found nothing\n", crossing, base,
                totals[crossing], target);
    return last;
  }
  return found;
}

}  // namespace

int main() {
  std::mt19937_64 rng(20261128);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int cases = 0, wrong = 0, near_boundary = 0, differ = 0;
  const double uniforms_fixed[] = {0.0, 1e-300, 0.5, 1.0 - 1e-16, 1.0 - std::ldexp(1.0, -53)};
  for (int shape = 0; shape < 7; ++shape) {
    for (int rep = 0; rep < 40; ++rep) {
      const int count = rep % 4 == 0 ? 50272 : 1 + static_cast<int>(rng() % 3000);
      std::vector<double> w(static_cast<size_t>(count));
      for (double& x : w) {
        const double u = unit(rng);
        switch (shape) {
          case 0: x = std::exp(-10.0 * u); break;                       // a smooth spread
          case 1: x = rng() % 3 == 0 ? 0.0 : std::exp(-30.0 * u); break;  // zeros (cut tokens)
          case 2: x = 1.0; break;                                       // ties
          case 3: x = std::exp(-140.0 * u); break;                      // 60 orders of magnitude
          case 4: x = 1e-6 * u; break;                                  // one heavy token, below
          case 5: x = rng() % 50 == 0 ? u : 0.0; break;                 // sparse
          default: x = static_cast<double>(static_cast<float>(std::exp(-3.0 * u)));  // float weights, as the kernel's
        }
      }
      if (shape == 4) w[rng() % static_cast<size_t>(count)] = 1.0;
      // gathered mode (a top-k cut of at most 2048 tokens): the elements' tokens are rising ids of a 50,272 vocabulary
      std::vector<int> token_of(static_cast<size_t>(count));
      for (int j = 0; j < count; ++j) token_of[static_cast<size_t>(j)] = j;
      if (count <= 2048 && rep % 2 == 1) {
        std::vector<int> ids(50272);
        for (int i = 0; i < 50272; ++i) ids[static_cast<size_t>(i)] = i;
        std::shuffle(ids.begin(), ids.end(), rng);
        std::sort(ids.begin(), ids.begin() + count);
        std::copy(ids.begin(), ids.begin() + count, token_of.begin());
      }
      if (shape == 5) w[rng() % static_cast<size_t>(count)] = 0.5;
      double total = 0.0;  // the kept mass (the kernel's W': another order again; any order serves here)
      for (double x : w) total += x;
      std::vector<double> us(uniforms_fixed, uniforms_fixed + 5);
      for (int i = 0; i < 20; ++i) us.push_back(unit(rng));
      for (double u : us) {
        const double target = u * total;
        ++cases;
        const int got = draw(w, target, wrong);
        // the rule in the kernel's own sums: the first kept element whose base + prefix exceeds the target
        std::vector<double> prefix_of(w.size(), 0.0), totals(kDrawWarps, 0.0);
        double base = 0.0;
        int want = -1, last = -1;
        for (int wp = 0; wp < kDrawWarps && want < 0; ++wp) {
          int lo, hi, unused;
          draw_range(count, wp, lo, hi);
          const double t = walk(w, lo, hi, false, 0.0, target, unused, &prefix_of);
          for (int j = lo; j < hi && want < 0; ++j) {
            if (w[static_cast<size_t>(j)] > 0.0 && base + prefix_of[static_cast<size_t>(j)] > target) want = j;
          }
          base += t;
        }
        for (int j = 0; j < count; ++j) {
          if (w[static_cast<size_t>(j)] > 0.0) last = j;
        }
        if (want < 0) want = last;
        if (token_of[static_cast<size_t>(got)] != token_of[static_cast<size_t>(want)]) {
          if (++wrong <= 10) {
            std::printf("shape %d count %d u %.17g: token %d, the rule gives %d\n", shape, count, u,
                        token_of[static_cast<size_t>(got)], token_of[static_cast<size_t>(want)]);
          }
        }
        // the plain rule: cumulative sum in token order
        double cumulative = 0.0;
        int plain = -1;
        double gap = INFINITY;
        for (int j = 0; j < count; ++j) {
          const double x = w[static_cast<size_t>(j)];
          if (x <= 0.0) continue;
          plain = j;
          cumulative += x;
          gap = std::fmin(gap, std::abs(cumulative - target));
          if (cumulative > target) break;
        }
        if (got != plain) {
          ++differ;
          if (gap <= 1e-12 * std::fmax(total, 1e-300)) {
            ++near_boundary;
          } else if (++wrong <= 10) {
            std::printf("shape %d count %d u %.17g: token %d, the plain rule gives %d, %.3g from a boundary\n", shape,
                        count, u, got, plain, gap);
          }
        }
      }
    }
  }
  // draw_range: the ranges cover [0, count) in order, whole steps of 32 but the last
  for (int count : {1, 31, 32, 33, 511, 512, 513, 2048, 50272}) {
    int expect = 0;
    for (int wp = 0; wp < kDrawWarps; ++wp) {
      int lo, hi;
      draw_range(count, wp, lo, hi);
      if (lo != expect || hi < lo || (hi < count && (hi - lo) % 32 != 0)) {
        ++wrong;
        std::printf("draw_range(%d, %d) = [%d, %d)\n", count, wp, lo, hi);
      }
      expect = hi;
    }
    if (expect != count) {
      ++wrong;
      std::printf("draw_range(%d): the ranges end at %d\n", count, expect);
    }
  }
  if (near_boundary > cases / 100) {
    ++wrong;
    std::printf("%d of %d draws near a boundary: more than rounding explains\n", near_boundary, cases);
  }
  std::printf("%s: %d wrong of %d draws (%d differ from the plain rule, all within 1e-12 of a boundary)\n",
              wrong == 0 ? "PASS" : "FAIL", wrong, cases, differ);
  return wrong == 0 ? 0 : 1;
}
