// The grouped split-KV decode kernel (attention_grouped.cu), launched by opt_attention_split's launcher
// (attention_split.cu) with the OPT_ATTENTION_GROUPED option. Internal: not part of opt_kernels.h.
#ifndef OPT_ATTENTION_GROUPED_CUH
#define OPT_ATTENTION_GROUPED_CUH

#include "common.cuh"

namespace opt {

// Whether the grouped kernel takes these arguments: fp16/bf16 (element_bytes 2), head_dim 64 or 128, q and both
// caches 16-byte aligned. Otherwise the launcher runs split_attention_kernel.
bool grouped_split_applies(int head_dim, size_t element_bytes, const void* q, const void* k_cache,
                           const void* v_cache);

// One launch of grid (total_queries, heads, splits): with partial null (one split) the normalised rows, else one
// (max, sum, accumulator) record per (row, head, split) at partial, laid out as split_attention_kernel's, for the
// combine kernel. The caller has checked the sizes and computed splits and split_len (attention_split.cu).
int launch_grouped_split(__half* out, float* partial, const __half* q, const __half* k_cache, const __half* v_cache,
                         const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                         const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                         int block_size, int max_blocks, int num_blocks, float scale, int splits, int split_len,
                         cudaStream_t stream);
int launch_grouped_split(__nv_bfloat16* out, float* partial, const __nv_bfloat16* q, const __nv_bfloat16* k_cache,
                         const __nv_bfloat16* v_cache, const int32_t* block_tables, const int32_t* query_start,
                         const int32_t* query_count, const int32_t* context_len, int num_seqs, int total_queries,
                         int heads, int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                         int splits, int split_len, cudaStream_t stream);

}  // namespace opt

#endif  // OPT_ATTENTION_GROUPED_CUH
