// The emulated GPU shared by the emulations under native/dev (CPU copies of our kernels run thread by
// thread): threads as coroutines (a hand-written x86-64 context switch), block barriers released in random order,
// warp shuffles, several blocks resident at once in random dispatch orders, shared memory with a race /
// uninitialised-read / bounds checker, global memory with per-thread store buffers made visible at __threadfence,
// atomics, and (option g_skew_allowed) skewed schedules. See emu_split/README.md, "What it executes".
// Header-only: included once by each emulation program.
#ifndef OPT_EMU_COMMON_EMU_H
#define OPT_EMU_COMMON_EMU_H
#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef CUDA_HOST_CONVERSIONS
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#if !defined(__x86_64__)
#error "the emulation's context switch is written for x86-64"
#endif

#include "storage.h"

namespace emu {

// ---- errors ------------------------------------------------------------------------------------------------

struct Log {
  long long errors = 0;
  std::vector<std::string> first;
  void add(const char* fmt, ...) {
    ++errors;
    if (first.size() >= 12) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    first.push_back(buf);
  }
};
Log g_log;  // checker errors (races, bounds, visibility, ...), not numeric differences
std::mt19937* g_rng = nullptr;
unsigned rnd(unsigned n) { return static_cast<unsigned>((*g_rng)() % n); }

// ---- storage types: the conversions are storage.h's ------------------------------------------------------
struct Half { uint16_t x; };  // __half
struct BF16 { uint16_t x; };  // __nv_bfloat16

// ---- coroutines: one per emulated thread ------------------------------------------------------------------

extern "C" void emu_switch(void** save_sp, void* to_sp);
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch, .-emu_switch
)");

constexpr size_t kStackBytes = 128 * 1024;
std::vector<char*> g_free_stacks;
char* get_stack() {
  if (!g_free_stacks.empty()) {
    char* s = g_free_stacks.back();
    g_free_stacks.pop_back();
    return s;
  }
  return static_cast<char*>(std::malloc(kStackBytes));
}

struct GMem;
struct Pend {  // a plain global store not yet visible to other threads
  GMem* m;
  size_t off;
  uint8_t n;
  uint8_t data[8];
};

enum State { kReady, kBarrier, kShfl, kDone };

struct Block;
struct Thread {
  void* sp = nullptr;
  char* stack = nullptr;
  unsigned tid = 0;
  long uid = 0;  // unique over the grid
  Block* B = nullptr;
  unsigned slow = 0;  // skewed schedules: the thread runs only 1 in 2^slow of the times it is picked
  long long frozen_until = 0;  // skewed schedules: a load that stalls; the thread does not run before this step
  State state = kReady;
  int line = 0;  // the barrier it waits at
  std::vector<Pend> sbuf;
};

struct SBase {
  const char* name = "";
  size_t bytes = 0;
  virtual ~SBase() {}
};

struct Warp {
  uint32_t xv[32];
  int off[32];
  int line[32];
  int op[32];
  uint32_t res[32];
  int arrived = 0;
};

struct Block {
  unsigned bx = 0, by = 0, bz = 0, nthreads = 0;
  long linear = 0;
  unsigned slow = 0;  // skewed schedules: the block runs only 1 in 2^slow of the times it is picked
  std::vector<Thread> th;
  std::vector<int> ready;
  std::vector<Warp> warps;
  long epoch = 0;
  int done = 0, at_bar = 0;
  std::vector<std::unique_ptr<SBase>> shared;
};

void* g_sched_sp = nullptr;
Thread* g_cur = nullptr;
std::function<void()> g_body;
std::vector<Pend> g_draining;  // stores of exited threads, not yet visible
uint32_t g_launch = 0;          // grid serial
uint32_t g_op = 0;              // launcher call serial (the attention kernel and its combine kernel share one)
unsigned g_grid_dim[3];
size_t g_dyn_smem = 0;       // the launch's dynamic shared memory (bytes)
long long g_step = 0;        // scheduler steps (the clock of frozen threads)
bool g_skew_allowed = false; // option: skewed schedules (slow blocks and threads, stalled loads); none sets it now
std::vector<int> g_resident_choices = {1, 2, 3, 8, 32, 128};  // option: how many blocks run at once, drawn per grid
bool g_skew = false;         // the running grid's schedule is skewed
long long g_frozen_picks = 0;
unsigned g_freeze_one_in = 256;  // skewed grids: 1 global load in this many stalls
int g_long_freezes = 0;          // stalls of this grid that last until nothing else can run (at most 4 a grid)
long long g_resident = 1;    // blocks resident now (a freeze lasts as many steps of each block)
size_t g_max_block_smem = 0;  // the most shared memory (static + dynamic) a block of the run used

void flush_some(std::vector<Pend>& buf, size_t count);

[[noreturn]] void trampoline() {
  g_body();
  Thread* t = g_cur;
  t->state = kDone;
  ++t->B->done;
  emu_switch(&t->sp, g_sched_sp);
  std::abort();
}

void yield() {
  Thread* t = g_cur;
  if (!t->sbuf.empty() && rnd(4) == 0) flush_some(t->sbuf, 1 + rnd(static_cast<unsigned>(t->sbuf.size())));
  emu_switch(&t->sp, g_sched_sp);
}
void preempt() { yield(); }  // stays ready; the scheduler picks who runs next

// Option: __syncthreads makes the thread's global stores visible (CUDA: to the threads of its block; here to every
// thread, so it is for kernels of one block per independent row, as emu_sample's). Off: only __threadfence does, as
// the emulations of kernels whose blocks share results need to check.
bool g_barrier_flushes = false;

void syncthreads(int line) {
  Thread* t = g_cur;
  if (g_barrier_flushes) flush_some(t->sbuf, t->sbuf.size());
  t->state = kBarrier;
  t->line = line;
  ++t->B->at_bar;
  yield();
}

// A warp-wide exchange (every lane of the warp must make the same call, from the same line): __shfl_xor_sync,
// __shfl_up_sync, __shfl_sync with one source lane for the warp, and __ballot_sync (v: the predicate, 0 or 1).
enum WarpOp { kXor, kUp, kIdx, kBallot };
uint32_t warp_op_bits(WarpOp op, unsigned mask, uint32_t v, int offset, int line) {
  Thread* t = g_cur;
  Block* B = t->B;
  if (mask != 0xffffffffu) g_log.add("shuffle with mask %08x", mask);
  Warp& w = B->warps[t->tid / 32];
  const int lane = static_cast<int>(t->tid % 32);
  w.xv[lane] = v;
  w.off[lane] = offset;
  w.line[lane] = line;
  w.op[lane] = op;
  t->state = kShfl;
  if (++w.arrived == 32) {
    for (int l = 0; l < 32; ++l) {
      if (w.off[l] != w.off[0] || w.line[l] != w.line[0] || w.op[l] != w.op[0]) {
        g_log.add("block %ld warp %u: divergent shuffle (lines %d/%d, offsets %d/%d)", B->linear, t->tid / 32,
                  w.line[0], w.line[l], w.off[0], w.off[l]);
        break;
      }
    }
    uint32_t ballot = 0;
    for (int l = 0; l < 32; ++l) ballot |= (w.xv[l] != 0 ? 1u : 0u) << l;
    for (int l = 0; l < 32; ++l) {
      switch (w.op[l]) {
        case kXor: w.res[l] = w.xv[(l ^ w.off[l]) & 31]; break;
        case kUp: w.res[l] = l >= w.off[l] ? w.xv[l - w.off[l]] : w.xv[l]; break;
        case kIdx: w.res[l] = w.xv[w.off[l] & 31]; break;
        default: w.res[l] = ballot; break;
      }
    }
    w.arrived = 0;
    for (int l = 0; l < 32; ++l) {
      Thread& o = B->th[(t->tid / 32) * 32 + l];
      o.state = kReady;
      if (&o != t) B->ready.push_back(static_cast<int>(o.tid));
    }
  }
  yield();
  return w.res[lane];
}
uint32_t shfl_xor_bits(unsigned mask, uint32_t v, int offset, int line) {
  return warp_op_bits(kXor, mask, v, offset, line);
}
float shfl_xor(unsigned mask, float v, int offset, int line) {
  return bitsf(shfl_xor_bits(mask, fbits(v), offset, line));
}

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  Dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

// Runs a grid: blocks dispatched in some order into a pool of resident blocks; at every step a random resident
// block runs one of its ready threads to its next switch point.
void run_grid(Dim3 grid, unsigned threads, size_t dyn_smem, const std::function<void()>& body) {
  ++g_launch;
  g_dyn_smem = dyn_smem;
  if (dyn_smem > 48 * 1024) g_log.add("launch with %zu bytes of dynamic shared memory (over 48 KiB without the opt-in attribute)", dyn_smem);
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u ||
      threads == 0 || threads > 1024 || threads % 32 != 0) {
    g_log.add("invalid launch configuration (%u, %u, %u) x %u", grid.x, grid.y, grid.z, threads);
    return;
  }
  g_grid_dim[0] = grid.x;
  g_grid_dim[1] = grid.y;
  g_grid_dim[2] = grid.z;
  g_body = body;
  const long n = static_cast<long>(grid.x) * grid.y * grid.z;
  std::vector<long> order(n);
  const unsigned mode = rnd(4);
  // With g_skew_allowed, half of the grids run skewed: a quarter of the blocks slow (1 in 32), and in two
  // blocks of three an eighth of the threads (or one whole warp) slow (1 in 64), so a thread can fall far behind its
  // block and a block far behind the grid (what a race between one block's late reader and another block's writes
  // needs). Also: 1 load in 2^3..2^12 (per grid) of a writable buffer stalls its thread (frozen) for 1,000-31,000
  // steps of each resident block, or (4 a grid) until no other thread can run. Without it, no random number is
  // drawn for any of this (emu_split's runs stay as they were before the machinery was shared).
  const bool skew = g_skew_allowed && rnd(2) == 0;
  g_skew = skew;
  if (g_skew_allowed) g_freeze_one_in = 1u << (3 + rnd(10));
  g_long_freezes = 0;
  if (mode == 3) {  // the splits of a (row, head) one after another
    long i = 0;
    for (long xy = 0; xy < static_cast<long>(grid.x) * grid.y; ++xy)
      for (long z = 0; z < grid.z; ++z) order[i++] = z * grid.x * grid.y + xy;
  } else {
    for (long i = 0; i < n; ++i) order[i] = mode == 2 ? n - 1 - i : i;
    if (mode == 1) std::shuffle(order.begin(), order.end(), *g_rng);
  }
  const size_t resident_max = g_resident_choices[rnd(static_cast<unsigned>(g_resident_choices.size()))];
  std::vector<std::unique_ptr<Block>> resident;
  size_t next = 0;
  long uid = 0;
  while (next < order.size() || !resident.empty()) {
    while (resident.size() < resident_max && next < order.size()) {
      std::unique_ptr<Block> B(new Block);
      const long lin = order[next++];
      B->linear = lin;
      B->slow = skew && rnd(4) == 0 ? 5 : 0;
      const unsigned inner = skew ? rnd(3) : 0;  // 0: no slow threads, 1: one slow warp, 2: scattered slow threads
      const unsigned slow_warp = skew ? rnd(threads / 32) : 0;
      B->bx = static_cast<unsigned>(lin % grid.x);
      B->by = static_cast<unsigned>((lin / grid.x) % grid.y);
      B->bz = static_cast<unsigned>(lin / (static_cast<long>(grid.x) * grid.y));
      B->nthreads = threads;
      B->th.resize(threads);
      B->warps.resize(threads / 32);
      for (unsigned t = 0; t < threads; ++t) {
        Thread& T = B->th[t];
        T.tid = t;
        T.uid = uid++;
        T.B = B.get();
        T.slow = inner == 0 ? 0 : inner == 1 ? (t / 32 == slow_warp ? 6 : 0) : (rnd(8) == 0 ? 6 : 0);
        T.stack = get_stack();
        uintptr_t top = (reinterpret_cast<uintptr_t>(T.stack) + kStackBytes) & ~static_cast<uintptr_t>(15);
        void** p = reinterpret_cast<void**>(top);
        *--p = nullptr;                                   // (alignment: the trampoline's return address slot)
        *--p = reinterpret_cast<void*>(&trampoline);      // popped by emu_switch's ret
        for (int r = 0; r < 6; ++r) *--p = nullptr;       // rbp rbx r12-r15
        T.sp = p;
        B->ready.push_back(static_cast<int>(t));
      }
      resident.push_back(std::move(B));
    }
    size_t bi = rnd(static_cast<unsigned>(resident.size()));
    for (int tries = 0; tries < 64 && resident[bi]->slow && rnd(1u << resident[bi]->slow) != 0; ++tries)
      bi = rnd(static_cast<unsigned>(resident.size()));
    Block& B = *resident[bi];
    if (!B.ready.empty()) {
      size_t k = rnd(static_cast<unsigned>(B.ready.size()));
      for (int tries = 0; tries < 64 && B.th[B.ready[k]].slow && rnd(1u << B.th[B.ready[k]].slow) != 0; ++tries)
        k = rnd(static_cast<unsigned>(B.ready.size()));
      const int t = B.ready[k];
      ++g_step;
      g_resident = static_cast<long long>(resident.size());
      if (B.th[t].frozen_until > g_step) {
        if (++g_frozen_picks < 2000) continue;  // (after 2,000 picks of frozen threads in a row, one runs anyway)
        B.th[t].frozen_until = 0;
      }
      g_frozen_picks = 0;
      B.ready[k] = B.ready.back();
      B.ready.pop_back();
      Thread& T = B.th[t];
      g_cur = &T;
      emu_switch(&g_sched_sp, T.sp);
      g_cur = nullptr;
      if (T.state == kReady) B.ready.push_back(t);
      if (!g_draining.empty() && rnd(16) == 0) flush_some(g_draining, 1 + rnd(static_cast<unsigned>(g_draining.size())));
      continue;
    }
    if (B.done == static_cast<int>(B.nthreads)) {  // retire
      size_t smem = 0;
      for (auto& s : B.shared) smem += s->bytes;
      g_max_block_smem = std::max(g_max_block_smem, smem);
      if (smem > 48 * 1024) g_log.add("block %ld used %zu bytes of shared memory (over 48 KiB)", B.linear, smem);
      for (Thread& T : B.th) {
        g_draining.insert(g_draining.end(), T.sbuf.begin(), T.sbuf.end());
        T.sbuf.clear();
        g_free_stacks.push_back(T.stack);
      }
      resident[bi] = std::move(resident.back());
      resident.pop_back();
      continue;
    }
    if (B.at_bar > 0 && B.at_bar + B.done == static_cast<int>(B.nthreads)) {  // a barrier completes
      int line = -1;
      bool mixed = false;
      for (Thread& T : B.th) {
        if (T.state != kBarrier) continue;
        if (line < 0) line = T.line;
        else if (T.line != line) mixed = true;
      }
      if (B.done > 0) g_log.add("block %ld: %d threads wait at a barrier (line %d) that %d exited threads never reach",
                                B.linear, B.at_bar, line, B.done);
      if (mixed) g_log.add("block %ld: threads wait at different __syncthreads", B.linear);
      ++B.epoch;
      B.at_bar = 0;
      for (Thread& T : B.th) {
        if (T.state == kBarrier) {
          T.state = kReady;
          B.ready.push_back(static_cast<int>(T.tid));
        }
      }
      continue;
    }
    // stuck: lanes at a shuffle whose warp has exited lanes, or a shuffle and a barrier at once
    g_log.add("block %ld: deadlock (%d at a barrier, %d exited, rest at shuffles)", B.linear, B.at_bar, B.done);
    for (Thread& T : B.th) {  // abandon the block: its stacks stay allocated, its stores are dropped
      T.sbuf.clear();
      T.state = kDone;
    }
    resident[bi] = std::move(resident.back());
    resident.pop_back();
  }
  flush_some(g_draining, g_draining.size());  // the grid's end: everything visible
}

// ---- shared memory with a race / initialisation checker ----------------------------------------------------

struct SMeta {
  bool init = false;
  int w_thread = -1;
  long w_epoch = -1;
  int r_thread = -1;  // -2: several threads
  long r_epoch = -1;
  long a_epoch = -1;  // an atomic in this epoch
};

template <class E>
struct SArr : SBase {
  std::vector<std::array<uint8_t, sizeof(E)>> raw;  // not std::vector<E>: E may be bool
  std::vector<SMeta> m;
  struct View {
    std::vector<std::array<uint8_t, sizeof(E)>>* r;
    size_t size() const { return r->size(); }
    E get(size_t i) const { E e; std::memcpy(&e, (*r)[i].data(), sizeof(E)); return e; }
    void set(size_t i, E e) { std::memcpy((*r)[i].data(), &e, sizeof(E)); }
  } v{&raw};
  Block* B = nullptr;
  bool in(long long i, const char* what) const {
    if (i < 0 || i >= static_cast<long long>(v.size())) {
      g_log.add("%s: out-of-bounds shared access %s[%lld] of %zu", what, name, i, v.size());
      return false;
    }
    return true;
  }
  E ld(long long i, const char* what = "load") {
    const int me = static_cast<int>(g_cur->tid);
    if (!in(i, what)) return E();
    SMeta& s = m[i];
    if (!s.init) g_log.add("%s: thread %d reads uninitialised %s[%lld] (block %ld)", what, me, name, i, B->linear);
    else if (s.w_epoch == B->epoch && s.w_thread != me)
      g_log.add("%s: race: thread %d reads %s[%lld] that thread %d wrote since the last barrier", what, me, name, i,
                s.w_thread);
    if (s.a_epoch == B->epoch) g_log.add("%s: race: plain read of %s[%lld] and an atomic in one interval", what, name, i);
    if (s.r_epoch == B->epoch && s.r_thread != me) s.r_thread = -2;
    else if (s.r_epoch != B->epoch) s.r_thread = me;
    s.r_epoch = B->epoch;
    return v.get(i);
  }
  void st(long long i, E x, const char* what = "store") {
    const int me = static_cast<int>(g_cur->tid);
    if (!in(i, what)) return;
    SMeta& s = m[i];
    if (s.w_epoch == B->epoch && s.w_thread != me) {
      const E old = v.get(i);
      if (std::memcmp(&old, &x, sizeof(E)) != 0)
        g_log.add("%s: race: threads %d and %d write different values to %s[%lld] between two barriers", what, me,
                  s.w_thread, name, i);
    }
    if (s.r_epoch == B->epoch && s.r_thread != me)
      g_log.add("%s: race: thread %d writes %s[%lld] that another thread read since the last barrier", what, me, name, i);
    if (s.a_epoch == B->epoch) g_log.add("%s: race: plain write of %s[%lld] and an atomic in one interval", what, name, i);
    v.set(i, x);
    s.init = true;
    s.w_thread = me;
    s.w_epoch = B->epoch;
  }
  template <class F>
  E atomic_rmw(long long i, F f, const char* what) {  // old = a[i]; a[i] = f(old); returns old
    if (!in(i, what)) return E();
    SMeta& s = m[i];
    if (!s.init) g_log.add("%s: atomic on uninitialised %s", what, name);
    if (s.w_epoch == B->epoch) g_log.add("%s: race: atomic on %s[%lld] written since the last barrier", what, name, i);
    if (s.r_epoch == B->epoch) g_log.add("%s: race: atomic on %s[%lld] read since the last barrier", what, name, i);
    s.a_epoch = B->epoch;
    const E old = v.get(i);
    v.set(i, f(old));
    return old;
  }
  E atomic_max(long long i, E x, const char* what = "atomicMax") {
    return atomic_rmw(i, [x](E old) { return std::max(old, x); }, what);
  }
  E atomic_add(long long i, E x, const char* what = "atomicAdd") {
    return atomic_rmw(i, [x](E old) { return static_cast<E>(old + x); }, what);
  }
  E atomic_or(long long i, E x, const char* what = "atomicOr") {
    return atomic_rmw(i, [x](E old) { return static_cast<E>(old | x); }, what);
  }
};

template <class E>
struct SPtr {  // a pointer into a shared array
  SArr<E>* a;
  long long off;
  E ld(long long i) const { return a->ld(off + i); }
};
template <class E>
SPtr<E> operator+(SArr<E>& a, long long i) { return SPtr<E>{&a, i}; }
template <class E>
SPtr<E> operator+(SPtr<E> p, long long i) { return SPtr<E>{p.a, p.off + i}; }

// __shared__ E name[n]: one array per block, created by the first thread that declares it.
template <class E>
SArr<E>& shared(const char* name, size_t n) {
  Block* B = g_cur->B;
  for (auto& s : B->shared) {
    if (s->name == name) return *static_cast<SArr<E>*>(s.get());
  }
  auto* a = new SArr<E>;
  a->name = name;
  a->raw.assign(n, std::array<uint8_t, sizeof(E)>{});
  a->m.assign(n, SMeta());
  a->B = B;
  a->bytes = n * sizeof(E);
  B->shared.emplace_back(a);
  return *a;
}
// extern __shared__ (dynamic): the launch's dynamic bytes as elements of E.
template <class E>
SArr<E>& dyn_shared(const char* name) { return shared<E>(name, g_dyn_smem / sizeof(E)); }
#define SHARED(E, name, n) SArr<E>& name = emu::shared<E>(#name, n)

// ---- global memory -----------------------------------------------------------------------------------------

struct GMeta {
  uint32_t w_op = 0, w_launch = 0;
  int32_t w_block = -1;
  int32_t pend_uid = -1;  // the thread whose store to it is not yet visible
  uint16_t pend_n = 0;
};

struct GMem {
  std::string name;
  std::vector<uint8_t> bytes;
  uintptr_t addr = 0;  // the emulated device address of byte 0 (for alignment)
  bool writable = false;
  size_t gran = 4;           // bytes per tracked element
  std::vector<GMeta> meta;   // writable buffers only
  size_t fresh_from = SIZE_MAX;  // reads at or past this byte must be of elements the current operation wrote
  size_t once_from = SIZE_MAX;   // elements at or past this byte are written at most once per operation
  size_t atomic_end = 0;         // atomics only below this byte
  void init(const std::string& n, size_t size, uintptr_t a, bool w, size_t g) {
    name = n;
    bytes.assign(size, 0);
    addr = a;
    writable = w;
    gran = g;
    meta.assign(w ? (size + g - 1) / g : 0, GMeta());
  }
  bool in(long long off, size_t n, size_t align, const char* what) const {
    if (off < 0 || static_cast<size_t>(off) + n > bytes.size()) {
      g_log.add("%s: out-of-bounds access to %s: bytes %lld..%lld of %zu", what, name.c_str(), off,
                off + static_cast<long long>(n) - 1, bytes.size());
      return false;
    }
    if ((addr + static_cast<uintptr_t>(off)) % align != 0) {
      g_log.add("%s: misaligned %zu-byte access to %s at byte %lld", what, align, name.c_str(), off);
      return false;
    }
    return true;
  }
  void read(long long off, size_t n, void* dst, bool cg, const char* what) {
    std::memset(dst, 0, n);
    if (!in(off, n, n, what)) return;
    if (g_skew && writable && g_cur != nullptr && rnd(g_freeze_one_in) == 0) {  // (loads of data a grid may write)  // a stalled load: the thread waits before it reads
      g_cur->frozen_until = g_long_freezes < 4 && rnd(2) == 0 ? (++g_long_freezes, std::numeric_limits<long long>::max())
                                                               : g_step + (1000 + rnd(30000)) * g_resident;
      preempt();
    }
    std::memcpy(dst, &bytes[off], n);
    if (!writable) return;
    Thread* t = g_cur;
    for (size_t e = off / gran; e < (off + n + gran - 1) / gran; ++e) {
      GMeta& m = meta[e];
      if (m.pend_uid >= 0 && m.pend_uid != t->uid)
        g_log.add("%s: thread %u (block %ld) reads %s byte %zu whose store by thread uid %d is not visible yet "
                  "(no __threadfence?)", what, t->tid, t->B->linear, name.c_str(), e * gran, m.pend_uid);
      if (!cg && m.w_launch == g_launch && m.w_block != t->B->linear)
        g_log.add("%s: plain load of %s byte %zu that block %d wrote in this grid (L1 is not coherent: __ldcg)", what,
                  name.c_str(), e * gran, m.w_block);
      if (e * gran >= fresh_from && m.w_op != g_op)
        g_log.add("%s: reads %s byte %zu not written by this operation (stale or never written)", what, name.c_str(),
                  e * gran);
    }
    for (const Pend& p : t->sbuf) {  // the thread sees its own stores
      if (p.m != this) continue;
      const long long lo = std::max<long long>(off, p.off), hi = std::min<long long>(off + n, p.off + p.n);
      for (long long b = lo; b < hi; ++b) static_cast<uint8_t*>(dst)[b - off] = p.data[b - p.off];
    }
    if (rnd(4) == 0) preempt();
  }
  void write(long long off, size_t n, const void* src, const char* what) {
    if (!writable) {
      g_log.add("%s: store to read-only %s", what, name.c_str());
      return;
    }
    if (!in(off, n, n, what)) return;
    Thread* t = g_cur;
    for (size_t e = off / gran; e < (off + n + gran - 1) / gran; ++e) {
      GMeta& m = meta[e];
      if (m.pend_uid >= 0 && m.pend_uid != t->uid)
        g_log.add("%s: two threads' stores to %s byte %zu in flight at once", what, name.c_str(), e * gran);
      if (e * gran >= once_from && m.w_op == g_op)
        g_log.add("%s: %s byte %zu written twice in one operation (block %ld thread %u)", what, name.c_str(),
                  e * gran, t->B->linear, t->tid);
      m.w_op = g_op;
      m.w_launch = g_launch;
      m.w_block = static_cast<int32_t>(t->B->linear);
      m.pend_uid = static_cast<int32_t>(t->uid);
      ++m.pend_n;
    }
    Pend p;
    p.m = this;
    p.off = static_cast<size_t>(off);
    p.n = static_cast<uint8_t>(n);
    std::memcpy(p.data, src, n);
    t->sbuf.push_back(p);
    if (rnd(4) == 0) preempt();
  }
  int atomic_add(long long off, int v, const char* what) {
    int old = 0;
    if (!in(off, 4, 4, what)) return 0;
    if (static_cast<size_t>(off) + 4 > atomic_end)
      g_log.add("%s: atomic on %s byte %lld, outside the counters (first %zu bytes)", what, name.c_str(), off,
                atomic_end);
    preempt();
    Thread* t = g_cur;
    GMeta& m = meta[off / gran];
    if (m.pend_uid >= 0 && m.pend_uid != t->uid)
      g_log.add("%s: atomic on %s byte %lld whose store by another thread is not visible yet", what, name.c_str(), off);
    std::memcpy(&old, &bytes[off], 4);
    const int nv = old + v;
    std::memcpy(&bytes[off], &nv, 4);
    m.w_launch = g_launch;
    m.w_block = static_cast<int32_t>(t->B->linear);
    preempt();
    return old;
  }
};

void flush_some(std::vector<Pend>& buf, size_t count) {
  count = std::min(count, buf.size());
  for (size_t i = 0; i < count; ++i) {
    const Pend& p = buf[i];
    std::memcpy(&p.m->bytes[p.off], p.data, p.n);
    for (size_t e = p.off / p.m->gran; e < (p.off + p.n + p.m->gran - 1) / p.m->gran; ++e) {
      GMeta& m = p.m->meta[e];
      if (m.pend_n > 0 && --m.pend_n == 0) m.pend_uid = -1;
    }
  }
  buf.erase(buf.begin(), buf.begin() + static_cast<long>(count));
}

void threadfence() {
  flush_some(g_cur->sbuf, g_cur->sbuf.size());
  preempt();
}

struct V16 {
  uint8_t b[16];
};

template <class E>
struct GPtr {  // E* into an emulated device buffer; null when m == nullptr
  GMem* m = nullptr;
  long long off = 0;  // bytes
  bool null() const { return m == nullptr; }
  uintptr_t addr() const { return m == nullptr ? 0 : m->addr + static_cast<uintptr_t>(off); }
  GPtr operator+(long long i) const { return GPtr{m, off + i * static_cast<long long>(sizeof(E))}; }
  GPtr operator+(size_t i) const { return *this + static_cast<long long>(i); }
  GPtr operator+(int i) const { return *this + static_cast<long long>(i); }
  template <class F>
  GPtr<F> as() const { return GPtr<F>{m, off}; }
  E ld(long long i, const char* what = "global load") const {
    E v{};
    if (m == nullptr) { g_log.add("%s: null pointer", what); return v; }
    m->read(off + i * static_cast<long long>(sizeof(E)), sizeof(E), &v, false, what);
    return v;
  }
  E ldcg(long long i, const char* what = "__ldcg") const {
    E v{};
    if (m == nullptr) { g_log.add("%s: null pointer", what); return v; }
    m->read(off + i * static_cast<long long>(sizeof(E)), sizeof(E), &v, true, what);
    return v;
  }
  V16 ld16(long long i, const char* what = "16-byte load") const {  // *reinterpret_cast<const uint4*>(p + i)
    V16 v{};
    if (m == nullptr) { g_log.add("%s: null pointer", what); return v; }
    m->read(off + i * static_cast<long long>(sizeof(E)), 16, v.b, false, what);
    return v;
  }
  void st(long long i, E v, const char* what = "global store") const {
    if (m == nullptr) { g_log.add("%s: null pointer", what); return; }
    m->write(off + i * static_cast<long long>(sizeof(E)), sizeof(E), &v, what);
  }
};

int atomicAdd(GPtr<int> p, int v) {
  if (p.null()) { g_log.add("atomicAdd: null pointer"); return 0; }
  return p.m->atomic_add(p.off, v, "atomicAdd(counter)");
}
template <class E>
E ldcg(GPtr<E> p) { return p.ldcg(0); }

// __expf: expf rounded to float (the GPU's ex2.approx-based result may differ in the last bits)
float expf_(float x) { return static_cast<float>(std::exp(static_cast<double>(x))); }

// blockIdx / threadIdx / blockDim of the running thread
struct TidX { operator unsigned() const { return g_cur->tid; } };
struct ThreadIdx { TidX x; };
struct BidX { operator unsigned() const { return g_cur->B->bx; } };
struct BidY { operator unsigned() const { return g_cur->B->by; } };
struct BidZ { operator unsigned() const { return g_cur->B->bz; } };
struct BlockIdx { BidX x; BidY y; BidZ z; };
struct BDimX { operator unsigned() const { return g_cur->B->nthreads; } };
struct BlockDim { BDimX x; };
struct GDimX { operator unsigned() const { return g_grid_dim[0]; } };
struct GridDim { GDimX x; };
const GridDim gridDim{};
const ThreadIdx threadIdx{};
const BlockIdx blockIdx{};
const BlockDim blockDim{};

}  // namespace emu

#endif  // OPT_EMU_COMMON_EMU_H
