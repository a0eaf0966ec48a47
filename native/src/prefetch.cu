// opt_prefetch_l2 (session 12, not yet run on a GPU; -Dopt.cuda.prefetch=load|hint): streams a buffer (a Linear's
// weight) towards L2, to run on a second stream beside kernels that move few bytes (a decode step's attention and
// layer norms), so that the Linear after them finds part of its weight in L2 instead of HBM.
// Results never depend on it: it reads the buffer and writes nothing.
//
// One block of 128 threads per SM: beside the kernels it overlaps rather than instead of them (a batch-1 attention
// launches ~128 blocks of 64-128 threads), with 8 16-byte loads in flight per thread (16 KB per SM: about what an
// H100 needs in flight to stream at its bandwidth). hint = 0: plain loads through L2 (__ldcg, not L1), kept alive by
// a store that never happens; hint = 1: prefetch.global.L2 hints, one per 128-byte line (no registers, no wait; a
// block finishes as soon as it has issued them). native/dev/l2_prefetch.cu measures both against the one-row Linear.
#include "common.cuh"

namespace {
using namespace opt;

constexpr int kThreads = 128;
constexpr int kInFlight = 8;   // 16-byte loads per thread per round
constexpr int kLine = 128;     // bytes per prefetch hint

__global__ void __launch_bounds__(kThreads) prefetch_load_kernel(const uint4* p, size_t chunks, unsigned* sink) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  unsigned acc = 0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < chunks; i += kInFlight * stride) {
    uint4 v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const size_t at = i + u * stride;
      v[u] = at < chunks ? __ldcg(p + at) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) acc ^= v[u].x ^ v[u].w;
  }
  if (acc == 0x9e3779b9u && sink != nullptr) *sink = acc;  // sink is null: the loads stay, nothing is written
}

__global__ void __launch_bounds__(kThreads) prefetch_hint_kernel(const char* p, size_t bytes) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x * kLine;
  for (size_t off = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kLine; off < bytes; off += stride) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
  }
}

}  // namespace

extern "C" {

OPT_API int opt_prefetch_l2(const void* p, size_t bytes, int hint, cudaStream_t stream) {
  if (hint != 0 && hint != 1) return kInvalidValue;
  if (p == nullptr || bytes == 0) return kSuccess;
  const dim3 grid(static_cast<unsigned>(sm_count()));
  if (hint == 0 && reinterpret_cast<uintptr_t>(p) % 16 != 0) return kInvalidValue;
  count_launch(OPT_COUNT_PREFETCH_L2);
  if (hint != 0) {
    prefetch_hint_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const char*>(p), bytes);
  } else {
    // whole 16-byte chunks only (a hint: a ragged tail is left to the Linear); p is a cudaMalloc address or a
    // 16-byte-aligned offset of one (a weight matrix; checked above)
    prefetch_load_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const uint4*>(p), bytes / 16, nullptr);
  }
  return launch_status();
}

}  // extern "C"
