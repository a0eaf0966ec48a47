// The process-wide switch of chained (programmatic dependent) launches: see common.cuh, "programmatic dependent
// launch". Off by default; CudaOps turns it on with -Dopt.cuda.chained=true on sm_90+ devices.
#include <atomic>

#include "common.cuh"

namespace {
std::atomic<int> g_chained{0};
}  // namespace

namespace opt {
bool chained_launch_enabled() { return g_chained.load(std::memory_order_relaxed) != 0; }
}  // namespace opt

OPT_API int opt_set_chained_launch(int on) { return g_chained.exchange(on != 0 ? 1 : 0); }

OPT_API int opt_chained_launch(void) { return g_chained.load() != 0 ? 1 : 0; }
