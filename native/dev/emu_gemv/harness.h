// The checks' helpers shared by emu_gemv.cpp and emu_int8.cpp: storage types' names and tolerances, emulated
// buffers, bit comparisons, random tensors, the kernels' float sum order written from their description, the case
// description, and the properties of auto_split's choice and of split_span's ranges. Include once, after
// linear_small_cuh.h.
#ifndef OPT_EMU_GEMV_HARNESS_H
#define OPT_EMU_GEMV_HARNESS_H

namespace {
using emu::g_log;
using opt::GPtr;

template <class T> struct Ty;
template <> struct Ty<float> {
  static float widen(float v) { return v; }
  static float narrow(float v) { return v; }
  static const char* name() { return "f32"; }
  static constexpr double tol = 1e-4;
  static constexpr int idx = 0;
};
template <> struct Ty<emu::Half> {
  static float widen(emu::Half v) { return emu::half_to_float(v.x); }
  static emu::Half narrow(float v) { return emu::Half{emu::float_to_half(v)}; }
  static const char* name() { return "f16"; }
  static constexpr double tol = 1e-2;
  static constexpr int idx = 1;
};
template <> struct Ty<emu::BF16> {
  static float widen(emu::BF16 v) { return emu::bf16_to_float(v.x); }
  static emu::BF16 narrow(float v) { return emu::BF16{emu::float_to_bf16(v)}; }
  static const char* name() { return "bf16"; }
  static constexpr double tol = 4e-2;
  static constexpr int idx = 2;
};

constexpr uintptr_t kBase = 0x10000000;  // every buffer's emulated address (16-byte aligned; offsets misalign)
constexpr int kGuard = 16;               // poisoned elements on either side of out / q_out

template <class T>
void put(emu::GMem& m, const char* name, const std::vector<T>& v, bool writable) {
  m.init(name, v.size() * sizeof(T), kBase, writable, sizeof(T));
  if (!v.empty()) std::memcpy(m.bytes.data(), v.data(), v.size() * sizeof(T));
  if (writable) m.once_from = 0;  // every element written at most once per grid
}
template <class T>
std::vector<T> get(const emu::GMem& m) {
  std::vector<T> v(m.bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), m.bytes.data(), v.size() * sizeof(T));
  return v;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
template <class T>
size_t first_diff(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return i;
  return a.size() == b.size() ? SIZE_MAX : std::min(a.size(), b.size());
}
long long written(const emu::GMem& m, size_t from, size_t n, uint32_t op) {
  long long c = 0;
  for (size_t e = from; e < from + n; ++e) c += m.meta[e].w_op == op;
  return c;
}
template <class T>
std::vector<T> random_tensor(std::mt19937& rng, size_t n, float mean, float stddev) {
  std::normal_distribution<float> d(mean, stddev);
  std::vector<T> v(n);
  for (auto& e : v) e = Ty<T>::narrow(d(rng));
  return v;
}
template <class T>
T poison() {
  T p;
  std::memset(&p, 0xff, sizeof p);  // NaN in f32, f16 and bf16
  return p;
}

// The kernel's sum order, written from its description (the comments of linear_small.cu, not its statements): S warps
// share a row, warp `part` taking chunks [part * span, (part + 1) * span) ∩ [0, chunks) with span the equal share
// rounded up to 32 chunks; its lane l adds, over chunks c = begin + l, begin + l + 32, ... and their values in
// order, fmaf(x, w, acc) from 0; the 32 lanes are added by warp_sum's butterfly (xor 16, 8, 4, 2, 1); the parts in
// order part 0 + part 1 + ... (S = 1: the one warp's sum, linear_small_vec_kernel's order).
float model_sum(const float* xr, const float* wr, int chunks, int kC, int S) {
  const int span = ((chunks + S - 1) / S + 31) / 32 * 32;
  float total = 0.f;
  for (int p = 0; p < S; ++p) {
    const int b = std::min(p * span, chunks), e = std::min(b + span, chunks);
    float lane[32];
    for (int l = 0; l < 32; ++l) {
      float acc = 0.f;
      for (int c = b + l; c < e; c += 32)
        for (int q = 0; q < kC; ++q) acc = std::fmaf(xr[c * kC + q], wr[c * kC + q], acc);
      lane[l] = acc;
    }
    for (int off = 16; off > 0; off /= 2) {
      float next[32];
      for (int l = 0; l < 32; ++l) next[l] = lane[l] + lane[l ^ off];
      std::memcpy(lane, next, sizeof lane);
    }
    total = p == 0 ? lane[0] : total + lane[0];
  }
  return total;
}

struct Case {
  int m = 1, k = 64, n = 8;  // qkv: n is the width (3n outputs)
  int split = 0;
  bool qkv = false, relu = false, bias = true, vec_too = false;
  int cache_slots = 4;
  std::vector<int32_t> slots;  // qkv: one per row
  int sms = 132, resident = 10;
  std::string label;
};

std::string describe(const Case& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s m=%d k=%d %s=%d split=%d%s%s sms=%d resident=%d", c.qkv ? "qkv" : "dense", c.m,
                c.k, c.qkv ? "width" : "n", c.n, c.split, c.bias ? " bias" : "", c.relu ? " relu" : "", c.sms,
                c.resident);
  std::string s = buf;
  if (c.qkv) {
    s += " cache_slots=" + std::to_string(c.cache_slots) + " slots={";
    for (size_t i = 0; i < c.slots.size(); ++i) s += (i ? "," : "") + std::to_string(c.slots[i]);
    s += "}";
  }
  return s;
}


// auto_split's contract (its comment): the smallest S of 1, 2, 4 whose grid fills one wave of warps
// (resident blocks × SMs × 4), as long as each warp's share of the row (chunks / S) is at least one full round
// (32 lanes × U chunks), else the largest S allowed. As properties: S > 1 only if S / 2 did not fill the wave and the
// share at S is a full round; S < 4 only if S fills the wave or the share at 2S would not be a full round.
std::string auto_properties(int S, long long groups, int chunks, int U, long long sms, long long resident) {
  const long long wave = resident * sms * 4;
  const long long round = 32LL * U;
  if (S != 1 && S != 2 && S != 4) return "S " + std::to_string(S) + " not 1, 2 or 4";
  if (S > 1 && groups * (S / 2) >= wave) return "S " + std::to_string(S) + " although S/2 already fills the wave";
  if (S > 1 && chunks < S * round) return "S " + std::to_string(S) + ": a warp's share below one round";
  if (S < 4 && groups * S < wave && chunks >= 2 * S * round)
    return "S " + std::to_string(S) + " although 2S fits (short of a wave, share a full round)";
  return "";
}

// The ranges split_span gives (the copied function): S ranges covering [0, chunks) in order, each starting at a
// multiple of 32 (a lane-0 chunk), part 0 not empty. Returns the number of empty ranges through *empty.
std::string range_properties(int chunks, int S, int* empty) {
  const int span = opt::split_span(chunks, S);
  *empty = 0;
  if (span % 32 != 0) return "span " + std::to_string(span) + " not a multiple of 32";
  int at = 0;
  for (int p = 0; p < S; ++p) {
    const int begin = p * span < chunks ? p * span : chunks;
    const int end = chunks - begin < span ? chunks : begin + span;
    if (begin != at) return "range " + std::to_string(p) + " does not start where the previous ended";
    if (begin % 32 != 0 && begin != chunks) return "range start not a multiple of 32";
    if (end < begin) return "range ends before it starts";
    *empty += end == begin;
    at = end;
  }
  if (at != chunks) return "ranges do not cover the row";
  const int share = (chunks + S - 1) / S;
  if (span < share || span >= share + 32) return "span " + std::to_string(span) + " not the share rounded up to 32";
  return "";
}

}  // namespace

#endif  // OPT_EMU_GEMV_HARNESS_H
