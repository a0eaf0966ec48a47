// Does prefetching a Linear's weight into L2, while latency-bound kernels run, pay at batch-1 decode? A measurement
// to take before building it (session 12, written without a GPU; run by scripts/device-check.sh, ≈ 10 s).
//
// Why: at batch 1 an opt-1.3b layer is ≈ 100 µs on an H100 against ≈ 35 µs of weight bytes (docs/perf.md, session 11).
// Between the one-row Linears run kernels that move almost no bytes (split-KV attention, its combine, two layer
// norms: ≈ 20 µs per layer of memory latency). If a side branch of the decode graph streamed the next Linear's
// weight into the 50 MB L2 meanwhile, that Linear would read L2 instead of HBM. Whether it would depends on what
// this program measures, per shape (opt-1.3b's q/k/v, out_proj, fc1, fc2; opt-6.7b's out_proj):
//   cold      the matrix-vector Linear (opt_linear_small_f16, one row) after L2 was flushed;
//   warm      the same right after a kernel loaded every line of its weight (load pf: that kernel's time);
//   hint pf   a kernel of prefetch.global.L2 hints over the weight, and the Linear right after it (after hint);
//   overlap   a 20 µs latency-bound stand-in (one block spinning on the clock) on one stream with the prefetch on a
//             second, then the Linear: against spin + cold, the time a graph branch could save per Linear.
// Build and run (repository root):
//   nvcc -O3 -arch=sm_90 -I native/include native/dev/l2_prefetch.cu native/src/linear_small.cu native/src/launch.cu \
//        -o target/l2_prefetch && target/l2_prefetch
// Prints one table; exit 0 when it ran, 2 without a device or on a CUDA error. A diagnostic, not a check.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "opt_kernels.h"

#define CHECK_CUDA(call)                                                                          \
  do {                                                                                            \
    const cudaError_t e_ = (call);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "l2_prefetch: %s failed: %s\n", #call, cudaGetErrorString(e_));        \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

namespace {

constexpr int kLine = 128;  // bytes per L2 line touched

// Every 128-byte line of [p, p + bytes) as an L2 prefetch hint (no register, no wait).
__global__ void prefetch_hint_kernel(const char* p, size_t bytes) {
  for (size_t off = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kLine; off < bytes;
       off += static_cast<size_t>(gridDim.x) * blockDim.x * kLine) {
    asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p + off));
  }
}

// The same lines read for real (one 4-byte load each, kept alive through a store that never happens).
__global__ void prefetch_load_kernel(const char* p, size_t bytes, int* sink) {
  int acc = 0;
  for (size_t off = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kLine; off < bytes;
       off += static_cast<size_t>(gridDim.x) * blockDim.x * kLine) {
    acc ^= *reinterpret_cast<const int*>(p + off);
  }
  if (acc == 0x7fffffff) *sink = acc;
}

// A latency-bound stand-in for attention and layer norms: one block that spins for `ns` nanoseconds.
__global__ void spin_kernel(long long ns) {
  const long long start = clock64();
  const long long cycles = ns * 2;  // ≥ ns at clocks up to 2 GHz (the H100's boost is 1.98 GHz)
  while (clock64() - start < cycles) {
  }
}

struct Shape {
  const char* name;
  int n, k;  // out_features, in_features
};

float elapsed_us(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0.f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
  return ms * 1000.f;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "l2_prefetch: no CUDA device\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, L2 %d MB, %d SMs\n", prop.name, prop.l2CacheSize >> 20, prop.multiProcessorCount);
  const Shape shapes[] = {{"1.3b q/k/v", 6144, 2048}, {"1.3b out_proj", 2048, 2048}, {"1.3b fc1", 8192, 2048},
                          {"1.3b fc2", 2048, 8192}, {"6.7b out_proj", 4096, 4096}};
  size_t most = 0;
  for (const Shape& s : shapes) most = std::max(most, static_cast<size_t>(s.n) * s.k);
  uint16_t *w = nullptr, *x = nullptr, *out = nullptr;
  char* flush = nullptr;
  int* sink = nullptr;
  const size_t flush_bytes = static_cast<size_t>(4) * prop.l2CacheSize;
  CHECK_CUDA(cudaMalloc(&w, most * sizeof(uint16_t)));
  CHECK_CUDA(cudaMalloc(&x, 16384 * sizeof(uint16_t)));
  CHECK_CUDA(cudaMalloc(&out, 16384 * sizeof(uint16_t)));
  CHECK_CUDA(cudaMalloc(&flush, flush_bytes));
  CHECK_CUDA(cudaMalloc(&sink, sizeof(int)));
  {  // finite fp16 data (zeros would let the GPU clock differently); the values do not matter
    std::vector<uint16_t> h(most);
    for (size_t i = 0; i < most; ++i) h[i] = static_cast<uint16_t>(0x3000 + (i * 2654435761u >> 22) % 0x800);
    CHECK_CUDA(cudaMemcpy(w, h.data(), most * sizeof(uint16_t), cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(x, h.data(), 16384 * sizeof(uint16_t), cudaMemcpyHostToDevice));
  }
  cudaStream_t a, b;
  CHECK_CUDA(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  CHECK_CUDA(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  cudaEvent_t e[6];
  for (cudaEvent_t& ev : e) CHECK_CUDA(cudaEventCreate(&ev));
  const int grid = prop.multiProcessorCount * 8;
  auto flush_l2 = [&]() { CHECK_CUDA(cudaMemsetAsync(flush, 1, flush_bytes, a)); };
  auto gemv = [&](const Shape& s) {
    const int st = opt_linear_small_f16(out, x, w, nullptr, 1, s.k, s.n, 0, 1, a);
    if (st != 0) {
      std::fprintf(stderr, "l2_prefetch: opt_linear_small_f16 returned %d\n", st);
      std::exit(2);
    }
  };
  constexpr long long kSpinNs = 20000;
  constexpr int kRepeats = 5;
  std::printf("%-14s %7s %9s %9s %11s %11s %11s %9s %13s\n", "shape", "MB", "cold us", "warm us", "hint pf us",
              "after hint", "load pf us", "spin us", "overlap us");
  for (const Shape& s : shapes) {
    const size_t bytes = static_cast<size_t>(s.n) * s.k * sizeof(uint16_t);
    std::vector<float> cold, warm, hint, after_hint, load, spin, overlap;
    for (int r = 0; r < kRepeats + 1; ++r) {  // the first round warms up and is dropped
      // cold
      flush_l2();
      CHECK_CUDA(cudaEventRecord(e[0], a));
      gemv(s);
      CHECK_CUDA(cudaEventRecord(e[1], a));
      // prefetch hints, then the Linear
      flush_l2();
      CHECK_CUDA(cudaEventRecord(e[2], a));
      prefetch_hint_kernel<<<grid, 256, 0, a>>>(reinterpret_cast<const char*>(w), bytes);
      CHECK_CUDA(cudaEventRecord(e[3], a));
      gemv(s);
      CHECK_CUDA(cudaEventRecord(e[4], a));
      CHECK_CUDA(cudaStreamSynchronize(a));
      const float hint_us = elapsed_us(e[2], e[3]);
      const float after_hint_us = elapsed_us(e[3], e[4]);
      // loads, then the Linear (warm)
      flush_l2();
      CHECK_CUDA(cudaEventRecord(e[2], a));
      prefetch_load_kernel<<<grid, 256, 0, a>>>(reinterpret_cast<const char*>(w), bytes, sink);
      CHECK_CUDA(cudaEventRecord(e[3], a));
      gemv(s);
      CHECK_CUDA(cudaEventRecord(e[4], a));
      CHECK_CUDA(cudaStreamSynchronize(a));
      const float cold_us = elapsed_us(e[0], e[1]);
      const float load_us = elapsed_us(e[2], e[3]);
      const float warm_us = elapsed_us(e[3], e[4]);
      // the spin alone
      CHECK_CUDA(cudaEventRecord(e[0], a));
      spin_kernel<<<1, 32, 0, a>>>(kSpinNs);
      CHECK_CUDA(cudaEventRecord(e[1], a));
      // overlap: the spin on a, the loads on b (forked after a flush), joined, then the Linear on a
      flush_l2();
      CHECK_CUDA(cudaEventRecord(e[2], a));
      CHECK_CUDA(cudaStreamWaitEvent(b, e[2], 0));
      spin_kernel<<<1, 32, 0, a>>>(kSpinNs);
      prefetch_load_kernel<<<grid, 256, 0, b>>>(reinterpret_cast<const char*>(w), bytes, sink);
      CHECK_CUDA(cudaEventRecord(e[5], b));
      CHECK_CUDA(cudaStreamWaitEvent(a, e[5], 0));
      gemv(s);
      CHECK_CUDA(cudaEventRecord(e[3], a));
      CHECK_CUDA(cudaStreamSynchronize(a));
      if (r == 0) continue;
      cold.push_back(cold_us);
      warm.push_back(warm_us);
      hint.push_back(hint_us);
      after_hint.push_back(after_hint_us);
      load.push_back(load_us);
      spin.push_back(elapsed_us(e[0], e[1]));
      overlap.push_back(elapsed_us(e[2], e[3]));
    }
    auto median = [](std::vector<float> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::printf("%-14s %7.1f %9.1f %9.1f %11.1f %11.1f %11.1f %9.1f %6.1f / %5.1f\n", s.name, bytes / 1e6,
                median(cold), median(warm), median(hint), median(after_hint), median(load), median(spin),
                median(overlap), median(spin) + median(cold));
  }
  std::printf("overlap: spin and loads on two streams, then the Linear / spin + cold Linear one after the other\n");
  CHECK_CUDA(cudaDeviceSynchronize());
  return 0;
}
