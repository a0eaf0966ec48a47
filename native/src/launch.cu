// The process-wide switch of chained (programmatic dependent) launches: see common.cuh, "programmatic dependent
// launch". Off by default; CudaOps turns it on with -Dopt.cuda.chained=true on sm_90+ devices.
#include <cuda_profiler_api.h>

#include <atomic>

#include "common.cuh"

namespace {
std::atomic<int> g_chained{0};
constexpr int kLaunchCounters = 4;  // OPT_COUNT_GROUPED_SPLIT .. OPT_COUNT_TC_LINEAR
std::atomic<long long> g_launch_counts[kLaunchCounters];  // zero-initialised (static storage)

// Compiled like every kernel of the library: its PTX version says whether chain_wait() is real code here.
__global__ void chain_probe_kernel() {
  opt::chain_start();
  opt::chain_wait();
}
}  // namespace

namespace opt {
bool chained_launch_enabled() { return g_chained.load(std::memory_order_relaxed) != 0; }

void count_launch(int which) {
  if (which >= 0 && which < kLaunchCounters) g_launch_counts[which].fetch_add(1, std::memory_order_relaxed);
}
}  // namespace opt

extern "C" {  // a definition that drifted from opt_kernels.h would be a compile error, not a new overload
OPT_API int opt_set_chained_launch(int on) { return g_chained.exchange(on != 0 ? 1 : 0); }

OPT_API int opt_chained_launch(void) { return g_chained.load() != 0 ? 1 : 0; }

OPT_API long long opt_launch_count(int which) {
  return which >= 0 && which < kLaunchCounters ? g_launch_counts[which].load() : -1;
}

// cudaProfilerStart/Stop through our own library: the JavaCPP cudart preset maps them only in its CUPTI class,
// whose native library a GPU host may lack.
OPT_API int opt_profiler_range(int on) {
  return static_cast<int>(on != 0 ? cudaProfilerStart() : cudaProfilerStop());
}

// Chained launches are safe only where chain_wait() is real: a device of compute capability 9.0 or newer running
// code compiled for compute_90 or newer (an sm_90 GPU that JIT-compiles older PTX would get a no-op wait while
// its launches still overlap). Checked on the current device.
OPT_API int opt_chained_launch_supported(void) {
  int device = 0;
  int major = 0;
  cudaFuncAttributes attributes;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaFuncGetAttributes(&attributes, chain_probe_kernel) != cudaSuccess) {
    cudaGetLastError();  // not this library's error to keep: answer "no"
    return 0;
  }
  return major >= 9 && attributes.ptxVersion >= 90 ? 1 : 0;
}
}  // extern "C"
