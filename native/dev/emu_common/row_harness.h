// The test side shared by the emulations of one-block-per-row kernels (native/dev/emu_sample, emu_toplp): device
// buffers over emu.h's global memory, the failure log, and the run's closing report. Header-only; include once per
// program, after emu.h.
#ifndef OPT_EMU_COMMON_ROW_HARNESS_H
#define OPT_EMU_COMMON_ROW_HARNESS_H
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "emu.h"

namespace {

constexpr uintptr_t kBase = 0x7f0000000000ull;  // the emulated device address of every buffer (16-byte aligned)

long long g_fail = 0;
std::vector<std::string> g_first_fail;
void fail(const std::string& what) {
  ++g_fail;
  if (g_first_fail.size() < 12) g_first_fail.push_back(what);
}

// A device buffer holding v; `once`: every element written at most once per operation (emu::g_op), as an output.
template <class T>
struct Buf {
  emu::GMem m;
  size_t n = 0;
  void init(const char* name, const std::vector<T>& v, bool writable, bool once) {
    n = v.size();
    m.init(name, std::max<size_t>(v.size(), 1) * sizeof(T), kBase, writable, sizeof(T));
    if (!v.empty()) std::memcpy(m.bytes.data(), v.data(), v.size() * sizeof(T));
    if (writable && once) m.once_from = 0;
  }
  emu::GPtr<T> ptr() { return emu::GPtr<T>{&m, 0}; }
  std::vector<T> get() const {
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), m.bytes.data(), n * sizeof(T));
    return v;
  }
};

// Prints the grids run, the checker's errors and the first failures, then PASS or FAIL; returns the exit status.
int finish(int failed, int ran, double secs) {
  std::printf("grids run %u\n", emu::g_launch);
  std::printf("checker errors (races, uninitialised reads, bounds, double writes, divergent shuffles, ...): %lld\n",
              emu::g_log.errors);
  for (const std::string& e : emu::g_log.first) std::printf("  %s\n", e.c_str());
  for (const std::string& e : g_first_fail) std::printf("  %s\n", e.c_str());
  const bool pass = failed == 0 && emu::g_log.errors == 0;
  std::printf("%s: %d of %d cases failed (%.1f s)\n", pass ? "PASS" : "FAIL", failed, ran, secs);
  return pass ? 0 : 1;
}

}  // namespace

#endif  // OPT_EMU_COMMON_ROW_HARNESS_H
