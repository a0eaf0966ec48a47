// The checks' helpers shared by emu_gemv.cpp and emu_int8.cpp: storage types' names and tolerances, emulated
// buffers, bit comparisons, random tensors, the kernels' float sum order written from their description, the case
// description, the properties of auto_split's choice and of split_span's ranges, and the parts of a Linear case's
// checks, of the launcher checks and of main that do not depend on the kernel (its launcher call, weights and
// kernel identification come in as callbacks and arguments). Include once, after linear_small_cuh.h.
#ifndef OPT_EMU_GEMV_HARNESS_H
#define OPT_EMU_GEMV_HARNESS_H

#include "../emu_common/ty.h"  // Ty<T>: the storage types' traits

namespace {
using emu::g_log;
using opt::GPtr;


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

// ------------------------------------------------------------------------------------------------------------
// One case of a Linear kernel (DenseStore or QkvStore): its output buffers, the launch's shared checks, the bit
// comparisons, the error against a double reference and the verdict. What is the kernel's own (the weights, the
// launcher call, which kernel and grid a launch must take, the expected sums) comes in as callbacks.
// ------------------------------------------------------------------------------------------------------------
long long g_failed_cases = 0;

// A case's outputs: out (or q_out) with its guards, the k / v caches, the epilogue's float inputs (SumTap), the S
// that ran.
template <class T>
struct Run {
  std::vector<T> out, kc, vc;
  std::vector<float> sums;
  int S = 0;
};

// A case's shape, initial output buffers (NaN-poisoned out with kGuard elements either side, the caches' bits) and
// the reasons it failed so far.
template <class T>
struct CaseIO {
  const Case& c;
  const int m, width, n, out_len;  // n: outputs per row (3 · width for q/k/v)
  std::vector<T> out_init, cache;
  std::vector<std::string> why;
  const long long errors_before = g_log.errors;
  CaseIO(const Case& cs, std::vector<T> cache_bits)
      : c(cs), m(cs.m), width(cs.n), n(cs.qkv ? 3 * cs.n : cs.n), out_len(cs.qkv ? m * width : m * n),
        out_init(out_len + 2 * kGuard, poison<T>()), cache(std::move(cache_bits)) {}
  void fail(const std::string& s) { why.push_back(s); }
};

// Expected bits: sum(i, j) is the epilogue's float input of output j of row i (the model's sum order, scaled where
// the kernel scales), then bias, ReLU, the storage rounding; guards and other cache rows unchanged.
template <class T, class Sum>
Run<T> expected_outputs(const CaseIO<T>& io, const std::vector<T>& b, Sum sum) {
  const Case& c = io.c;
  const int m = io.m, n = io.n, width = io.width;
  Run<T> e;
  e.out = io.out_init;
  e.kc = io.cache;
  e.vc = io.cache;
  e.sums.assign(static_cast<size_t>(m) * n, 0.f);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float v = sum(i, j);
      e.sums[static_cast<size_t>(i) * n + j] = v;
      if (c.bias) v += Ty<T>::widen(b[j]);
      if (!c.qkv) {
        if (c.relu && v < 0.f) v = 0.f;
        e.out[kGuard + static_cast<size_t>(i) * n + j] = Ty<T>::narrow(v);
      } else {
        const int part = j / width, col = j % width;
        if (part == 0) e.out[kGuard + static_cast<size_t>(i) * width + col] = Ty<T>::narrow(v);
        else if (c.slots[i] >= 0 && c.slots[i] < c.cache_slots)
          (part == 1 ? e.kc : e.vc)[static_cast<size_t>(c.slots[i]) * width + col] = Ty<T>::narrow(v);
      }
    }
  }
  return e;
}

// One launcher call on fresh output buffers with the checks every launch gets: launcher(out, k_cache, v_cache)
// calls the launcher and returns its status; status 0, the epilogue called once per output, exactly one grid;
// kernel(record) checks the kernel, grid and ranges and returns the S that ran, 0 when the kernel is not the one
// expected (the launch's checks stop there); then every output written exactly once, no guard element written, the
// k / v caches only in the rows of valid slots.
template <class T, class Launcher, class Kernel>
bool launch_checked(CaseIO<T>& io, Run<T>& run, Launcher launcher, Kernel kernel) {
  const Case& c = io.c;
  const int m = io.m, n = io.n, width = io.width, out_len = io.out_len;
  emu::GMem m_out, m_k, m_v;
  put(m_out, c.qkv ? "q_out" : "out", io.out_init, true);
  put(m_k, "k_cache", io.cache, true);
  put(m_v, "v_cache", io.cache, true);
  const GPtr<T> OUT{&m_out, static_cast<long long>(kGuard * sizeof(T))};
  opt::g_launches.clear();
  opt::SumTap sums;
  sums.n = n;
  sums.sum.assign(static_cast<size_t>(m) * n, std::nanf(""));
  sums.calls.assign(static_cast<size_t>(m) * n, 0);
  opt::g_tap = &sums;
  const uint32_t op_before = emu::g_op;
  const int st = launcher(OUT, GPtr<T>{&m_k, 0}, GPtr<T>{&m_v, 0});
  const uint32_t op = emu::g_op;
  opt::g_tap = nullptr;
  if (st != 0) io.fail("status " + std::to_string(st));
  long long not_once = 0;
  for (int calls : sums.calls) not_once += calls != 1;
  if (not_once) io.fail(std::to_string(not_once) + " outputs' epilogue not called exactly once");
  run.sums = sums.sum;
  if (opt::g_launches.size() != 1 || op != op_before + 1) {
    io.fail(std::to_string(opt::g_launches.size()) + " launches");
    return false;
  }
  const int S = kernel(opt::g_launches[0]);
  if (S == 0) return false;
  run.S = S;
  // written exactly once (twice: GMem's checker), nothing else
  const long long wo = written(m_out, kGuard, out_len, op), all = written(m_out, 0, out_len + 2 * kGuard, op);
  if (wo != out_len) io.fail(std::to_string(out_len - wo) + " of " + std::to_string(out_len) + " outputs not written");
  if (all != wo) io.fail(std::to_string(all - wo) + " guard elements written");
  if (c.qkv) {
    for (emu::GMem* g : {&m_k, &m_v}) {
      for (int slot = 0; slot < c.cache_slots; ++slot) {
        const bool mine = std::find(c.slots.begin(), c.slots.end(), slot) != c.slots.end();
        const long long wr = written(*g, static_cast<size_t>(slot) * width, width, op);
        if (wr != (mine ? width : 0))
          io.fail(g->name + " row " + std::to_string(slot) + ": " + std::to_string(wr) + " elements written, want " +
                  std::to_string(mine ? width : 0));
      }
    }
  }
  run.out = get<T>(m_out);
  run.kc = get<T>(m_k);
  run.vc = get<T>(m_v);
  return true;
}

// a's float sums, out and caches the same bits as want's; the first difference is a failure named `what`.
template <class T>
bool compare(CaseIO<T>& io, const Run<T>& a, const Run<T>& want, const std::string& what) {
  if (!same_bits(a.sums, want.sums)) {
    io.fail(what + ": float sums differ (first at output " + std::to_string(first_diff(a.sums, want.sums)) + ")");
    return false;
  }
  if (!same_bits(a.out, want.out)) {
    const size_t d = first_diff(a.out, want.out);
    io.fail(what + ": out differs (first at element " + std::to_string(static_cast<long long>(d) - kGuard) + ")");
    return false;
  }
  if (!same_bits(a.kc, want.kc) || !same_bits(a.vc, want.vc)) {
    io.fail(what + ": k/v cache differs");
    return false;
  }
  return true;
}

// The written elements against the double reference ref[i * n + j] (check_ops' measure, a NaN as infinity): a
// failure beyond Ty<T>::tol; *max_err keeps the largest finite error.
template <class T>
void check_error(CaseIO<T>& io, const Run<T>& r, const std::vector<double>& ref, double* max_err) {
  const Case& c = io.c;
  const int m = io.m, n = io.n, width = io.width;
  double worst = 0;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double got;
      if (!c.qkv) {
        got = Ty<T>::widen(r.out[kGuard + static_cast<size_t>(i) * n + j]);
      } else {
        const int part = j / width, col = j % width;
        if (part == 0) got = Ty<T>::widen(r.out[kGuard + static_cast<size_t>(i) * width + col]);
        else if (c.slots[i] >= 0 && c.slots[i] < c.cache_slots)
          got = Ty<T>::widen((part == 1 ? r.kc : r.vc)[static_cast<size_t>(c.slots[i]) * width + col]);
        else continue;
      }
      const double rf = ref[static_cast<size_t>(i) * n + j];
      const double e = std::isnan(got) ? INFINITY : std::fabs(got - rf) / std::max(1.0, std::fabs(rf));
      worst = std::max(worst, e);
    }
  if (std::isfinite(worst)) *max_err = std::max(*max_err, worst);
  if (!(worst <= Ty<T>::tol)) io.fail("error vs reference " + std::to_string(worst));
}

// A case's verdict: checker errors since errors_before fail it too; the first 10 failed cases are printed as
// "FAIL <dtype> <label>: <reasons>".
bool verdict(std::vector<std::string>& why, long long errors_before, const char* dtype, const std::string& label) {
  if (g_log.errors != errors_before) why.push_back(std::to_string(g_log.errors - errors_before) + " checker errors");
  if (!why.empty()) {
    if (++g_failed_cases <= 10) {
      std::string all;
      for (const auto& e : why) all += (all.empty() ? "" : "; ") + e;
      std::printf("  FAIL %s %s: %s\n", dtype, label.c_str(), all.c_str());
    }
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------------------
// The launcher checks (nothing runs: opt::g_dry) both programs share.
// ------------------------------------------------------------------------------------------------------------
// Counts a failed expectation, printing the first 10.
struct Expect {
  const char* dtype;
  int wrong = 0;
  void operator()(bool ok, const std::string& what) {
    if (!ok) {
      ++wrong;
      if (wrong <= 10) std::printf("  launcher %s: %s\n", dtype, what.c_str());
    }
  }
};
bool nothing_launched() { return opt::g_launches.empty(); }

// The dense launcher's common refusals; dense(m, k, n, split) calls it dry on aligned buffers, returning the status.
template <class Dense>
void dense_refusals(Expect& expect, Dense dense) {
  expect(dense(9, 64, 8, 0) == 1 && nothing_launched(), "m 9 refused");
  expect(dense(-1, 64, 8, 0) == 1 && nothing_launched(), "m -1 refused");
  expect(dense(1, 0, 8, 0) == 1 && nothing_launched(), "k 0 refused");
  expect(dense(1, 64, -1, 0) == 1 && nothing_launched(), "n -1 refused");
  for (int split : {3, -1, 8, 5})
    expect(dense(1, 64, 8, split) == 1 && nothing_launched(), "split " + std::to_string(split) + " refused");
  expect(dense(0, 64, 8, 0) == 0 && nothing_launched(), "m 0: nothing launched");
  expect(dense(1, 64, 0, 4) == 0 && nothing_launched(), "n 0: nothing launched");
}

// The q/k/v launcher's common refusals; qkv(width, cache_slots) calls it (m 1, k 64, split 0), returning the status.
// The caller sets opt::g_dry and clears opt::g_launches.
template <class Qkv>
void qkv_refusals(Expect& expect, Qkv qkv) {
  expect(qkv(0, 4) == 1 && nothing_launched(), "qkv width 0 refused");
  expect(qkv(8, -1) == 1 && nothing_launched(), "qkv cache_slots -1 refused");
  expect(qkv(0x2aaaaaab, 4) == 1 && nothing_launched(), "qkv 3 * width past int refused");
}

// One random shape of the launcher sweep.
struct SweepShape {
  int m, n, chunks, k, split, R, U;
  long long groups;
  std::string what;
};

// The sweep: 4,000 random shapes (m 1-8, n 1..2^20, chunks 1..16,384 of kC elements, split 0 or a forced 2 / 4) at
// 11 SM counts and 8 resident counts; each launch one grid of the expected kernel (kernel_s(record, m): its S, 0
// when another kernel), S the forced split or one auto_properties accepts, the grid and split_span's ranges.
// extra(shape, S, empty ranges) adds a program's own tallies.
long long g_sweep_s[5] = {}, g_sweep_launches = 0;
template <class Dense, class KernelS, class Extra>
void launcher_sweep(std::mt19937& rng, int kC, Expect& expect, Dense dense, KernelS kernel_s, Extra extra) {
  static const int kSms[] = {1, 2, 3, 8, 16, 46, 78, 108, 132, 144, 1024};
  static const int kRes[] = {1, 2, 3, 4, 8, 10, 16, 32};
  for (int t = 0; t < 4000; ++t) {
    SweepShape sh;
    sh.m = 1 + static_cast<int>(rng() % 8);
    sh.n = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 64)
                          : 1 + static_cast<int>(rng() % (rng() % 2 ? 5000 : 1 << 20));
    sh.chunks = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 600) : 1 + static_cast<int>(rng() % 16384);
    sh.k = sh.chunks * kC;
    sh.split = rng() % 4 == 0 ? 2 * (1 + static_cast<int>(rng() % 2)) : 0;
    opt::g_sm_count = kSms[rng() % (sizeof kSms / sizeof kSms[0])];
    opt::g_resident_blocks = kRes[rng() % (sizeof kRes / sizeof kRes[0])];
    sh.R = sh.m <= 2 ? 2 : 4;
    sh.U = sh.R == 2 ? 4 : 2;
    sh.groups = (sh.n + sh.R - 1) / sh.R;
    const int st = dense(sh.m, sh.k, sh.n, sh.split);
    if (st != 0 || opt::g_launches.size() != 1) {
      expect(false, "sweep: status " + std::to_string(st));
      continue;
    }
    const opt::LaunchRecord& L = opt::g_launches[0];
    const int S = kernel_s(L, sh.m);
    char what[160];
    std::snprintf(what, sizeof what, "sweep m=%d k=%d n=%d split=%d sms=%d resident=%d", sh.m, sh.k, sh.n, sh.split,
                  opt::g_sm_count, opt::g_resident_blocks);
    sh.what = what;
    if (S == 0) {
      expect(false, sh.what + ": not the expected kernel");
      continue;
    }
    ++g_sweep_launches;
    if (sh.split) expect(S == sh.split, sh.what + ": S " + std::to_string(S));
    else {
      ++g_sweep_s[S];
      const std::string ap = auto_properties(S, sh.groups, sh.chunks, sh.U, opt::g_sm_count, opt::g_resident_blocks);
      expect(ap.empty(), sh.what + ": " + ap);
    }
    const long long per_block = 4 / S;
    expect(L.grid[0] == (sh.groups + per_block - 1) / per_block && L.block == 128, sh.what + ": grid");
    int empty = 0;
    const std::string rp = range_properties(sh.chunks, S, &empty);
    expect(rp.empty(), sh.what + ": " + rp);
    extra(sh, S, empty);
  }
  opt::g_sm_count = 132;
  opt::g_resident_blocks = 10;
}

// ------------------------------------------------------------------------------------------------------------
// main's cases and summary.
// ------------------------------------------------------------------------------------------------------------
Case mk(int m, int k, int n, int split, bool bias, bool relu, int sms = 132, int resident = 10) {
  Case c;
  c.m = m;
  c.k = k;
  c.n = n;
  c.split = split;
  c.bias = bias;
  c.relu = relu;
  c.sms = sms;
  c.resident = resident;
  return c;
}
Case qkv(int m, int k, int width, int split, int cache_slots, std::vector<int32_t> slots, int sms = 132,
         int resident = 10) {
  Case c;
  c.m = m;
  c.k = k;
  c.n = width;
  c.split = split;
  c.qkv = true;
  c.cache_slots = cache_slots;
  c.slots = std::move(slots);
  c.sms = sms;
  c.resident = resident;
  return c;
}
// Before a case runs: q/k/v without slots gets slot -1 in every row; the label is describe's.
void label_case(Case& c) {
  if (c.qkv && c.slots.empty()) c.slots.assign(c.m, -1);
  c.label = describe(c);
}

// The random cases' SM and resident counts.
const int kCaseSms[] = {132, 132, 1, 3, 8, 16, 78, 108};
const int kCaseRes[] = {10, 10, 1, 2, 3, 4, 8, 16};
template <size_t N>
int pick_of(std::mt19937& rng, const int (&a)[N]) {
  return a[rng() % N];
}

// A random case: m 1-8 (1 in a third), chunks of kC elements from chunk_list or 1 .. 8192 / kC, q/k/v in a quarter,
// n from a list of edges or 1..3000 (a third of it for q/k/v; at most 2^20 weights), split from splits, bias in 4 of
// 5, ReLU in half the dense cases, vec_too (when drawn) in a quarter, q/k/v slots: -1, cache_slots, 1000 + r or a
// distinct valid slot.
Case random_case(std::mt19937& rng, int kC, const std::vector<int>& chunk_list, const std::vector<int>& splits,
                 bool draw_vec_too) {
  static const int kNs[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 100, 101, 127, 129};
  constexpr long long kBudget = 1LL << 20;  // weights per case (the emulation's time)
  Case c;
  c.m = rng() % 3 == 0 ? 1 : 1 + static_cast<int>(rng() % 8);
  const int chunks = rng() % 2 ? chunk_list[rng() % chunk_list.size()] : 1 + static_cast<int>(rng() % (8192 / kC));
  c.k = chunks * kC;
  c.qkv = rng() % 4 == 0;
  int n = rng() % 2 ? pick_of(rng, kNs) : 1 + static_cast<int>(rng() % 3000);
  if (c.qkv) n = std::max(1, n / 3);
  const long long outputs = c.qkv ? 3LL * n : n;
  if (outputs * c.k > kBudget) n = std::max(1, static_cast<int>(kBudget / c.k / (c.qkv ? 3 : 1)));
  c.n = n;
  c.split = splits[rng() % splits.size()];
  c.bias = rng() % 5 != 0;
  c.relu = !c.qkv && rng() % 2;
  c.sms = pick_of(rng, kCaseSms);
  c.resident = pick_of(rng, kCaseRes);
  if (draw_vec_too) c.vec_too = rng() % 4 == 0;
  if (c.qkv) {
    c.cache_slots = c.m + static_cast<int>(rng() % 4);
    std::vector<int32_t> perm(c.cache_slots);
    for (int s = 0; s < c.cache_slots; ++s) perm[s] = s;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int r = 0; r < c.m; ++r) {
      const unsigned pick = rng() % 6;
      c.slots.push_back(pick == 0 ? -1 : pick == 1 ? c.cache_slots : pick == 2 ? 1000 + r : perm[r]);
    }
  }
  return c;
}

// The run's last lines: the checker's errors (the first ones), then PASS or FAIL with the failed-case count; the exit
// status.
int final_verdict(bool ok, int failed, int ran, double secs) {
  std::printf("checker errors (races, uninitialised reads, bounds, writes twice, barriers, ...): %lld\n", g_log.errors);
  for (const std::string& e : g_log.first) std::printf("  %s\n", e.c_str());
  const bool pass = ok && failed == 0 && g_log.errors == 0;
  std::printf("%s: %d of %d cases failed (%.1f s)\n", pass ? "PASS" : "FAIL", failed, ran, secs);
  return pass ? 0 : 1;
}

}  // namespace

#endif  // OPT_EMU_GEMV_HARNESS_H
