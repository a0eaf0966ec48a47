// The parts of native/src/common.cuh and native/src/linear_small.cuh that the emulated few-row Linear kernels share
// (emu_gemv.cpp: linear_small.cu's split kernel; emu_int8.cpp: linear_int8.cu's int8 kernels), copied statement by
// statement over the emulated GPU of ../emu_common/emu.h, plus the emulation-only launch record and sum tap.
// Include once, after ../emu_common/common_cuh.h and after defining, at global scope, the planted-bug switches of
// the shared code (each program maps its own PLANT numbers onto them):
//   constexpr bool kPlantSpanShare;       split_span: the equal share only, not rounded up to 32
//   constexpr bool kPlantSlotEq;          QkvStore: slot == cache_slots written to the cache
//   constexpr bool kPlantRowsUnclamped;   weight_rows: rows past n not clamped to n - 1
#ifndef OPT_EMU_GEMV_LINEAR_SMALL_CUH_H
#define OPT_EMU_GEMV_LINEAR_SMALL_CUH_H

namespace opt {

// ---- common.cuh ----
float warp_sum(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

int g_sm_count = 132;  // emulation argument: sm_count() (cudaDevAttrMultiProcessorCount)
int sm_count() { return g_sm_count; }

// launch_chained: records the launch (the checks compare the kernel, grid and block with what they expect) and runs
// the grid, unless g_dry (the launcher-only checks).
struct LaunchRecord {
  const void* kernel;
  unsigned grid[3];
  unsigned block;
  size_t smem;
};
std::vector<LaunchRecord> g_launches;
bool g_dry = false;

template <typename... Params, typename... Args>
int launch_chained(void (*kernel)(Params...), Dim3 grid, Dim3 block, size_t smem, int, Args... args) {
  g_launches.push_back(LaunchRecord{reinterpret_cast<const void*>(kernel), {grid.x, grid.y, grid.z}, block.x, smem});
  if (g_dry) return kSuccess;
  ++emu::g_op;  // one operation per grid: outputs written at most once in it
  emu::run_grid(grid, block.x, smem, [=] { kernel(static_cast<Params>(args)...); });
  return kSuccess;
}

// Emulation only (no statement of the kernel): the float sum each call of the epilogue receives, before the bias, so
// that the sum order is compared bit for bit in fp16 / bf16 too (their stored values hide most float-order changes).
struct SumTap {
  std::vector<float> sum;  // [i * n + j]
  std::vector<int> calls;
  long long n = 0;
};
SumTap* g_tap = nullptr;
void tap(int i, long long j, float v) {
  if (g_tap == nullptr) return;
  const long long at = static_cast<long long>(i) * g_tap->n + j;
  if (i < 0 || j < 0 || j >= g_tap->n || at >= static_cast<long long>(g_tap->sum.size())) {
    emu::g_log.add("epilogue called for output (%d, %lld), outside the %lld x %lld outputs", i, j,
                   static_cast<long long>(g_tap->sum.size()) / std::max(1LL, g_tap->n), g_tap->n);
    return;
  }
  g_tap->sum[at] = v;
  ++g_tap->calls[at];
}

// ---- linear_small.cuh ----
constexpr int kMaxRows = 8;
constexpr int kWarpsPerBlock = 4;
template <int R>
constexpr int unroll_for() { return R == 2 ? 4 : 2; }

template <typename T>
struct Chunk {
  static constexpr int kSize = 16 / sizeof(T);
};

struct float2_ { float x, y; };

void widen(const V16& v, float* out, const float*) { std::memcpy(out, v.b, 16); }  // __uint_as_float of .x .y .z .w
void widen(const V16& v, float* out, const Half*) {
  uint16_t h[8];
  std::memcpy(h, v.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::half_to_float(h[2 * i]), emu::half_to_float(h[2 * i + 1])};  // __half22float2(h[i])
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
void widen(const V16& v, float* out, const BF16*) {
  uint16_t h[8];
  std::memcpy(h, v.b, 16);
  for (int i = 0; i < 4; ++i) {
    const float2_ f{emu::bf16_to_float(h[2 * i]), emu::bf16_to_float(h[2 * i + 1])};  // __bfloat1622float2(h[i])
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

template <typename T>
struct DenseStore {
  GPtr<T> out;
  GPtr<T> bias;
  int n;
  int relu;
  void operator()(int i, long long j, float v) const {
    tap(i, j, v);  // (emulation only)
    if (!bias.null()) v += to_float(bias.ld(j, "bias"));
    if (relu && v < 0.f) v = 0.f;  // NaN stays NaN, as in torch.relu
    out.st(static_cast<size_t>(i) * n + j, from_float<T>(v), "out");
  }
};

template <typename T>
struct QkvStore {
  GPtr<T> q_out;
  GPtr<T> k_cache;
  GPtr<T> v_cache;
  GPtr<T> bias;
  GPtr<int32_t> slots;
  int width;
  int cache_slots;
  void operator()(int i, long long j, float v) const {
    tap(i, j, v);  // (emulation only)
    if (!bias.null()) v += to_float(bias.ld(j, "bias"));
    const int part = static_cast<int>(j / width);
    const long long col = j - static_cast<long long>(part) * width;
    if (part == 0) {
      q_out.st(static_cast<size_t>(i) * width + col, from_float<T>(v), "q_out");
      return;
    }
    const int slot = slots.ld(i, "slots");
    if (slot < 0 || (kPlantSlotEq ? slot > cache_slots : slot >= cache_slots)) return;
    (part == 1 ? k_cache : v_cache).st(static_cast<size_t>(slot) * width + col, from_float<T>(v), "k/v cache");
  }
};

V16 ldcs(GPtr<V16> p) { return p.ld(0, "__ldcs (weight)"); }
void prefetch_l2(GPtr<V16> p) {  // asm volatile("prefetch.global.L2 [%0];" ...): only its address is checked
  if (p.null()) emu::g_log.add("prefetch of a null pointer");
  else p.m->in(p.off, 16, 16, "prefetch.global.L2");
}

template <typename T, int R>
void weight_rows(GPtr<V16> (&wrow)[R], GPtr<T> w, long long j0, int n, int k) {
  for (int r = 0; r < R; ++r) {
    const long long j = kPlantRowsUnclamped ? j0 + r : j0 + r < n ? j0 + r : n - 1;
    wrow[r] = (w + static_cast<size_t>(j) * k).template as<V16>();
  }
}

template <int R>
void prefetch_first_chunks(const GPtr<V16> (&wrow)[R], int first, int end) {
  for (int u = 0; u < unroll_for<R>(); ++u) {
    for (int r = 0; r < R; ++r) {
      if (first + u * kWarp < end) prefetch_l2(wrow[r] + first + u * kWarp);
    }
  }
}

constexpr int split_span(int chunks, int s) {
  return kPlantSpanShare ? (chunks + s - 1) / s : ((chunks + s - 1) / s + kWarp - 1) / kWarp * kWarp;
}

// CUDA: cudaOccupancyMaxActiveBlocksPerMultiprocessor for the kernel, cached per kernel. Here an emulation argument.
int g_resident_blocks = 10;
template <class Kernel>
int resident_blocks(Kernel) { return g_resident_blocks; }

}  // namespace opt

#endif  // OPT_EMU_GEMV_LINEAR_SMALL_CUH_H
