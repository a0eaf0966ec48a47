// Logit edits: what a sequence's logits processors do to its row (a logit bias, HF's repetition penalty, the
// presence and frequency penalties, bans), applied where the logits are, just before the argmax or the sampler
// reads them, so that a step with processors still copies back one token per row instead of a vocabulary.
// Variant: opt_edit_logits_f32.
// CPU twin: backend/LogitEdits.applyTo (the same float operations in the same order, each rounded to nearest);
// the engine's host path (the processors' own process()) gives the same bits.
//
// One thread per edit; the host names each (row, token) once, so no two threads touch one logit. Each operation is
// a separate __fadd_rn / __fmul_rn / __fdiv_rn: the compiler may not fuse them into an fma (Java does not either).
// An edit outside [0, total) is skipped (the host checks them before the launch).
#include <math.h>

#include "common.cuh"

namespace {

constexpr int kThreads = 256;

__global__ void edit_logits_kernel(float* logits, const int32_t* packed, int count, long long total) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const int32_t at = packed[i];
  if (at < 0 || at >= total) return;
  const int32_t flags = packed[count + i];
  float x = logits[at];
  if (flags & 1) x = __fadd_rn(x, __int_as_float(packed[2 * count + i]));  // bias
  if (flags & 2) {                                                          // repetition penalty
    const float p = __int_as_float(packed[3 * count + i]);
    x = x < 0.f ? __fmul_rn(x, p) : __fdiv_rn(x, p);
  }
  if (flags & 4) {  // the negated frequency term, then the negated presence term
    x = __fadd_rn(x, __int_as_float(packed[4 * count + i]));
    x = __fadd_rn(x, __int_as_float(packed[5 * count + i]));
  }
  if (flags & 8) x = -INFINITY;  // a ban
  logits[at] = x;
}

}  // namespace

extern "C" {

OPT_API int opt_edit_logits_f32(float* logits, const int32_t* packed, int count, long long total,
                                cudaStream_t stream) {
  if (count < 0 || total < 0) return opt::kInvalidValue;
  if (count == 0) return opt::kSuccess;
  edit_logits_kernel<<<(count + kThreads - 1) / kThreads, kThreads, 0, stream>>>(logits, packed, count, total);
  return opt::launch_status();
}

}  // extern "C"
