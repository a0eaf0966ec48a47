// CPU check of sample.cu's top-p search (session 22: two bits of tau per pass over the weights, from bit 29) against
// the one-bit search it replaced (one pass per bit, from bit 31): the same tau and the same removed mass, bit for bit,
// over rows of many shapes (peaked, flat, ties, every weight 1 or 0 as with an infinite logit, zeros below a top-k
// cut) and top-p values from 1e-9 to 1 - 1e-7. Both searches sum each thread's elements (j = tid, tid + 512, ...) in
// order and reduce the 512 partial sums with the same function, as the kernel does with one CUB reduction per mass;
// the two-bit search uses the kernel's own helpers (top_p_candidates, add_top_p_mass, take_top_p_bits). Runs on the
// host; no GPU.
//   nvcc -O2 -std=c++17 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/topp_search_test.cu native/src/launch.cu -o target/topp_search_test
//   target/topp_search_test          (exit 0 and "PASS" when every case matches)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "sample.cu"

namespace {

constexpr int kBlock = 512;  // sample.cu's kThreads

// A fixed reduction of the threads' partial sums (pairwise, as a tree): any function will do, so long as both
// searches use the same one, as the kernel's passes use the same CUB reduction.
double reduce(std::vector<double> v) {
  for (size_t width = v.size(); width > 1; width = (width + 1) / 2) {
    for (size_t i = 0; i < width / 2; ++i) v[i] = v[i] + v[width - 1 - i];
  }
  return v[0];
}

unsigned int key_of(double w) {
  const float f = static_cast<float>(w);
  unsigned int k;
  std::memcpy(&k, &f, sizeof k);
  return k;
}

double total_of(const std::vector<double>& w) {
  std::vector<double> part(kBlock, 0.0);
  for (size_t j = 0; j < w.size(); ++j) part[j % kBlock] += w[j];
  return reduce(part);
}

// The search as it was before session 22: one candidate per pass, bits 31..0.
void one_bit_search(const std::vector<double>& w, double limit, double total, unsigned int& tau, double& removed) {
  unsigned int prefix = 0u;
  removed = 0.0;
  for (int b = 31; b >= 0; --b) {
    const unsigned int candidate = prefix | (1u << b);
    std::vector<double> part(kBlock, 0.0);
    for (size_t j = 0; j < w.size(); ++j) {
      if (w[j] > 0.0 && key_of(w[j]) <= candidate) part[j % kBlock] += w[j];
    }
    const double mass = reduce(part);
    if (mass <= limit && mass < total) {
      prefix = candidate;
      removed = mass;
    }
  }
  tau = prefix;
}

// The kernel's search: two bits per pass, bits 29..0, with its helpers.
void two_bit_search(const std::vector<double>& w, double limit, double total, unsigned int& tau, double& removed) {
  unsigned int prefix = 0u;
  removed = 0.0;
  for (int b = 29; b > 0; b -= 2) {
    const TopPCandidates c = top_p_candidates(prefix, b);
    std::vector<double> high(kBlock, 0.0), low(kBlock, 0.0), both(kBlock, 0.0);
    for (size_t j = 0; j < w.size(); ++j) {
      const size_t t = j % kBlock;
      if (w[j] > 0.0) add_top_p_mass(w[j], key_of(w[j]), c, high[t], low[t], both[t]);
    }
    take_top_p_bits(c, reduce(high), reduce(low), reduce(both), limit, total, prefix, removed);
  }
  tau = prefix;
}

}  // namespace

int main() {
  std::mt19937 rng(20261128);
  const float ps[] = {0.9f, 0.5f, 0.95f, 0.99f, 0.1f, 1e-9f, 0.999999f, 0.75f};
  int cases = 0, wrong = 0;
  for (int shape = 0; shape < 8; ++shape) {
    for (int rep = 0; rep < 6; ++rep) {
      const int vocab = rep % 2 == 0 ? 50272 : 1 + static_cast<int>(rng() % 3000);
      std::vector<float> s(vocab);
      const float sd = shape == 0 ? 3.f : shape == 1 ? 12.f : shape == 2 ? 0.05f : 1.f;
      std::normal_distribution<float> dist(0.f, sd);
      for (float& v : s) v = dist(rng);
      if (shape == 3) {  // ties: few distinct values
        for (float& v : s) v = std::round(v * 2.f) / 2.f;
      }
      if (shape == 4) {  // one token far above the rest
        s[rng() % vocab] = 40.f;
      }
      std::vector<double> w(vocab);
      float m = -INFINITY;
      for (float v : s) m = std::fmax(m, v);
      for (int j = 0; j < vocab; ++j) w[j] = static_cast<double>(std::exp(s[j] - m));
      if (shape == 5) {  // an infinite logit: weights 1 (the +inf tokens) or 0
        for (int j = 0; j < vocab; ++j) w[j] = rng() % 7 == 0 ? 1.0 : 0.0;
        w[rng() % vocab] = 1.0;
      }
      if (shape == 6) {  // below a top-k cut: zeros
        for (int j = 0; j < vocab; ++j) {
          if (rng() % 4 != 0) w[j] = 0.0;
        }
        w[rng() % vocab] = 1.0;
      }
      if (shape == 7) {  // every weight equal
        for (double& x : w) x = 1.0;
      }
      const double total = total_of(w);
      for (float p : ps) {
        const double limit = (1.0 - static_cast<double>(p)) * total;
        unsigned int tau1, tau2;
        double removed1, removed2;
        one_bit_search(w, limit, total, tau1, removed1);
        two_bit_search(w, limit, total, tau2, removed2);
        ++cases;
        if (tau1 != tau2 || std::memcmp(&removed1, &removed2, sizeof(double)) != 0) {
          if (++wrong <= 10) {
            std::printf("shape %d vocab %d p %g: one-bit tau %08x removed %.17g, two-bit tau %08x removed %.17g\n",
                        shape, vocab, p, tau1, removed1, tau2, removed2);
          }
        }
      }
    }
  }
  std::printf("%s: %d of %d cases differ\n", wrong == 0 ? "PASS" : "FAIL", wrong, cases);
  return wrong == 0 ? 0 : 1;
}
