// ref_sample: backend/RowSampling.sample (the sampling kernel's CPU twin, java/src/main/java/io/github/optjava/
// backend/RowSampling.java) transliterated to C++, for the programs that check the kernel of native/src/sample.cu
// against it: check_ops (group sample, minp, sampletop, typical: on a GPU) and emu_sample (its CPU emulation).
// Header-only, host code; include once per program.
#ifndef OPT_DEV_SAMPLE_REF_H
#define OPT_DEV_SAMPLE_REF_H
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// The token and its log-prob (and list_k alternatives: ids, lps), by RowSampling's rules.
inline int ref_sample(const float* row, int vocab, float temperature, int top_k, float top_p, float min_p,
                      float typical_p, double uniform, double* lp, int list_k = 0, int32_t* ids = nullptr,
                      double* lps = nullptr) {
  for (int j = 0; j < list_k; ++j) {
    ids[j] = -1;
    lps[j] = NAN;
  }
  auto ordered = [](float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  };
  auto bits = [](float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  };
  std::vector<float> s(vocab);
  float m = -INFINITY;
  for (int i = 0; i < vocab; ++i) {
    s[i] = row[i] / temperature;
    if (std::isnan(s[i])) return *lp = NAN, -2;
    m = std::max(m, s[i]);
  }
  if (m == -INFINITY) return *lp = -INFINITY, -1;
  uint32_t kth = 0;
  if (top_k > 0 && top_k < vocab) {
    uint32_t prefix = 0;
    for (int b = 31; b >= 0; --b) {
      const uint32_t candidate = prefix | (1u << b);
      int count = 0;
      for (float v : s) count += ordered(v) >= candidate;
      if (count >= top_k) prefix = candidate;
    }
    kth = prefix;
  }
  std::vector<double> w(vocab);
  double total = 0;
  for (int i = 0; i < vocab; ++i) {
    if (ordered(s[i]) < kth) {
      w[i] = 0;
    } else if (m == INFINITY) {
      w[i] = s[i] == INFINITY ? 1 : 0;
    } else {
      w[i] = static_cast<float>(std::exp(static_cast<double>(s[i] - m)));  // RowSampling: float s - m, then exp
    }
    total += w[i];
  }
  double removed = 0;
  uint32_t tau = 0;
  const bool filter_p = top_p < 1.f;
  if (filter_p) {
    const double limit = (1.0 - top_p) * total;
    uint32_t prefix = 0;
    for (int b = 31; b >= 0; --b) {
      const uint32_t candidate = prefix | (1u << b);
      double mass = 0;
      for (double x : w) {
        if (x > 0 && bits(static_cast<float>(x)) <= candidate) mass += x;
      }
      if (mass <= limit && mass < total) {
        prefix = candidate;
        removed = mass;
      }
    }
    tau = prefix;
  }
  const bool filter_min = min_p > 0.f;
  for (int i = 0; i < vocab; ++i) {
    const double x = w[i];
    if (filter_min && x > 0 && !(filter_p && bits(static_cast<float>(x)) <= tau) && static_cast<float>(x) < min_p) {
      removed += x;
    }
  }
  auto kept_before_typical = [&](int i) {
    const double x = w[i];
    return !(x <= 0 || (filter_p && bits(static_cast<float>(x)) <= tau) || (filter_min && static_cast<float>(x) < min_p));
  };
  // typical (session 23): the most distant tokens from E[s - m] go while they hold at most (1 - typical_p) of the mass
  const bool filter_typical = typical_p > 0.f && typical_p < 1.f && m != INFINITY;
  double mean = 0;
  uint32_t typical_tau = 0;
  auto typical_key = [&](int i) {
    return 0x7fffffffu - bits(static_cast<float>(std::fabs(static_cast<double>(s[i]) - m - mean)));
  };
  double kept = total - removed;
  if (filter_typical) {
    double left = 0;  // summed itself, in the search's order (RowSampling)
    double sum = 0;
    for (int i = 0; i < vocab; ++i) {
      if (kept_before_typical(i)) {
        left += w[i];
        sum += w[i] * (static_cast<double>(s[i]) - m);
      }
    }
    mean = sum / left;
    const double limit = (1.0 - typical_p) * left;
    uint32_t prefix = 0;
    double cut = 0;
    for (int b = 31; b >= 0; --b) {
      const uint32_t candidate = prefix | (1u << b);
      double mass = 0;
      for (int i = 0; i < vocab; ++i) {
        if (kept_before_typical(i) && typical_key(i) <= candidate) mass += w[i];
      }
      if (mass <= limit && mass < left) {
        prefix = candidate;
        cut = mass;
      }
    }
    typical_tau = prefix;
    kept = left - cut;
  }
  auto is_kept = [&](int i) {
    return kept_before_typical(i) && !(filter_typical && typical_key(i) <= typical_tau);
  };
  if (list_k > 0) {  // the alternatives: what no cut removed (see sample.cu, 6b) by s, then the lower id
    const bool no_cut = !filter_p && !filter_min && !filter_typical && m != INFINITY;
    std::vector<int> order;
    for (int i = 0; i < vocab; ++i) {
      if (no_cut ? (s[i] > -INFINITY && ordered(s[i]) >= kth) : is_kept(i)) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&s](int a, int b) { return s[a] > s[b]; });
    for (int j = 0; j < list_k && j < static_cast<int>(order.size()); ++j) {
      ids[j] = order[j];
      lps[j] = (m == INFINITY ? 0 : static_cast<double>(s[order[j]]) - m) - std::log(kept);
    }
  }
  const double target = uniform * kept;
  double cumulative = 0;
  int last = -1;
  for (int i = 0; i < vocab; ++i) {
    if (!is_kept(i)) continue;
    last = i;
    cumulative += w[i];
    if (cumulative > target) break;
  }
  *lp = (m == INFINITY ? 0 : static_cast<double>(s[last]) - m) - std::log(kept);
  return last;
}

#endif  // OPT_DEV_SAMPLE_REF_H
