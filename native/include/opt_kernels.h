/*
 * opt_kernels.h: the only header Java binds (through JavaCPP, see backend/cuda/OptKernels.java).
 *
 * Conventions for every launcher:
 *   - extern "C", named opt_<op>_<dtype> with dtype f32 | f16 | bf16 (the storage type);
 *   - outputs first, then inputs, then sizes, then the cudaStream_t last;
 *   - returns an int status: 0 (cudaSuccess) or the cudaError_t of the launch. It never aborts the process.
 * fp16 / bf16 tensors are passed as raw 16-bit words (uint16_t) so the header needs no cuda_fp16.h.
 * Each op family lives in one native/src/<family>.cu and has a CPU twin of the same meaning in CpuOps.
 */
#ifndef OPT_KERNELS_H
#define OPT_KERNELS_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#if defined(_WIN32)
#  define OPT_API __declspec(dllexport)
#else
/* The library is built with hidden visibility; only what carries OPT_API is exported. */
#  define OPT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Library version, "MAJOR.MINOR.PATCH". */
OPT_API const char* opt_kernels_version(void);
/* The CUDA architectures this library was compiled for, e.g. "80,86,89,90" (no cuobjdump needed). */
OPT_API const char* opt_kernels_archs(void);

/*
 * Chained launches (launch.cu): with on != 0, the kernels of a decode step (the matrix-vector Linears, split-KV
 * attention, the fused residual + layer norm) are launched with CUDA's programmatic-stream-serialization
 * attribute, so each may start while the one before it finishes (sm_90+; a kernel waits for its predecessor's
 * results before touching them). Process-wide; returns the previous setting. Off by default: passed check_ops and
 * the graph test on an H100 (2026-11-26, session 7) and gained 1-4 %; not yet compared with HF as a whole model.
 */
OPT_API int opt_set_chained_launch(int on);
/* Whether chained launches are on (1) or off (0). */
OPT_API int opt_chained_launch(void);
/* 1 when chained launches are safe on the current device: compute capability 9.0+ running code compiled for
 * compute_90+ (else chain_wait would be a no-op); 0 otherwise, and on any error. */
OPT_API int opt_chained_launch_supported(void);
/*
 * The vector layer norm (layernorm.cu, session 12, verified on an H100 in session 17): with on != 0, opt_layernorm_*
 * and opt_add_layernorm_* take rows whose width is a multiple of 16 bytes (and at most 2048 16-byte chunks), with every
 * pointer 16-byte aligned, through a kernel that loads each thread's chunks at once and keeps the row in registers (one
 * round of memory latency per row instead of about nine); other rows keep the scalar kernel. The same stored residual
 * bits; LN's output may differ by a rounding (another order of the statistics' sums). Process-wide; returns the
 * previous setting. Off in the library; CudaOps turns it on unless -Dopt.cuda.vecNorm=false.
 */
OPT_API int opt_set_vector_layernorm(int on);
/* Whether the vector layer norm is on (1) or off (0). */
OPT_API int opt_vector_layernorm(void);

/* cudaProfilerStart (on != 0) or cudaProfilerStop: the range a profiler started with --profile-from-start off
 * (ncu, nsys) records; returns the cudaError_t. */
OPT_API int opt_profiler_range(int on);

/*
 * How many times, in this process, a launcher chose one of the kernels written without a GPU (session 11 and 12):
 * counted on the host when the launcher picks the kernel, so a test of a switch can show that the path it means to
 * test ran (a launcher falls back to the verified kernel where the new one does not apply). A CUDA graph's replays
 * are not counted (no launcher runs); its capture is. Returns -1 for an unknown `which`.
 */
#define OPT_COUNT_GROUPED_SPLIT 0   /* the grouped split-KV attention kernel (attention_grouped.cu) */
#define OPT_COUNT_VECTOR_LAYERNORM 1 /* the vector layer norm (layernorm.cu, layernorm_vec_kernel) */
#define OPT_COUNT_SPLIT_GEMV 2      /* linear_small_split_kernel (linear_small.cu; -Dopt.cuda.gemvSplit other than 1) */
#define OPT_COUNT_TC_LINEAR 3       /* linear_tc_kernel (linear_tc.cu, session 22; -Dopt.cuda.tcLinear) */
OPT_API long long opt_launch_count(int which);

/*
 * Embedding lookup (embedding.cu): out[t, :] = table[ids[t], :]
 *   out   (n_tokens, dim)   device
 *   table (vocab, dim)      device
 *   ids   (n_tokens)        device, int32; an id outside [0, vocab) yields a zero row
 *                           (the Java side validates ids first; the kernel never reads out of bounds).
 */
OPT_API int opt_embedding_f32(float* out, const float* table, const int32_t* ids,
                              int n_tokens, int dim, int vocab, cudaStream_t stream);
OPT_API int opt_embedding_f16(uint16_t* out, const uint16_t* table, const int32_t* ids,
                              int n_tokens, int dim, int vocab, cudaStream_t stream);
OPT_API int opt_embedding_bf16(uint16_t* out, const uint16_t* table, const int32_t* ids,
                               int n_tokens, int dim, int vocab, cudaStream_t stream);

/*
 * Layer norm (layernorm.cu), per row, statistics in float32, biased variance (torch.nn.LayerNorm):
 *   opt_layernorm:     out = (x - mean) / sqrt(var + eps) * gamma + beta
 *   opt_add_layernorm: x += y + bias (written back to x, rounded to the storage type), then out = LN(x):
 *                      the bias of the Linear that made y, the residual add and the next layer norm in
 *                      one pass; with bias = NULL, equal to opt_residual_add followed by opt_layernorm.
 *   out, x, y (rows, cols)   device; out must not alias x or y (nor y alias x)
 *   bias (cols)              device or NULL
 *   gamma, beta (cols)       device, the same storage type
 */
OPT_API int opt_layernorm_f32(float* out, const float* x, const float* gamma, const float* beta,
                              int rows, int cols, float eps, cudaStream_t stream);
OPT_API int opt_layernorm_f16(uint16_t* out, const uint16_t* x, const uint16_t* gamma, const uint16_t* beta,
                              int rows, int cols, float eps, cudaStream_t stream);
OPT_API int opt_layernorm_bf16(uint16_t* out, const uint16_t* x, const uint16_t* gamma, const uint16_t* beta,
                               int rows, int cols, float eps, cudaStream_t stream);
OPT_API int opt_add_layernorm_f32(float* x, const float* y, const float* bias, float* out, const float* gamma,
                                  const float* beta, int rows, int cols, float eps, cudaStream_t stream);
OPT_API int opt_add_layernorm_f16(uint16_t* x, const uint16_t* y, const uint16_t* bias, uint16_t* out,
                                  const uint16_t* gamma, const uint16_t* beta, int rows, int cols, float eps,
                                  cudaStream_t stream);
OPT_API int opt_add_layernorm_bf16(uint16_t* x, const uint16_t* y, const uint16_t* bias, uint16_t* out,
                                   const uint16_t* gamma, const uint16_t* beta, int rows, int cols, float eps,
                                   cudaStream_t stream);

/*
 * Learned positions (elementwise.cu): x[t, :] += table[positions[t] + 2, :] (OPT's offset 2).
 *   x (n_tokens, dim)            device, updated in place
 *   table (table_rows, dim)      device
 *   positions (n_tokens)         device, int32, 0-based position of each token in its sequence; a row
 *                                positions[t] + 2 outside [0, table_rows) leaves x[t, :] unchanged (the Java
 *                                side validates positions first; the kernel never reads out of bounds).
 */
OPT_API int opt_add_positions_f32(float* x, const float* table, const int32_t* positions,
                                  int n_tokens, int dim, int table_rows, cudaStream_t stream);
OPT_API int opt_add_positions_f16(uint16_t* x, const uint16_t* table, const int32_t* positions,
                                  int n_tokens, int dim, int table_rows, cudaStream_t stream);
OPT_API int opt_add_positions_bf16(uint16_t* x, const uint16_t* table, const int32_t* positions,
                                   int n_tokens, int dim, int table_rows, cudaStream_t stream);

/*
 * Residual add (elementwise.cu): x[i] += y[i] for i < n; x, y (n) device, not aliasing each other.
 */
OPT_API int opt_residual_add_f32(float* x, const float* y, int n, cudaStream_t stream);
OPT_API int opt_residual_add_f16(uint16_t* x, const uint16_t* y, int n, cudaStream_t stream);
OPT_API int opt_residual_add_bf16(uint16_t* x, const uint16_t* y, int n, cudaStream_t stream);

/*
 * GEMM epilogue (elementwise.cu): x[r, c] = act(x[r, c] + bias[c]), act = ReLU when relu != 0, else identity.
 *   x (rows, cols)   device, updated in place (the output of a cuBLAS GEMM, row-major)
 *   bias (cols)      device, or NULL for no bias (then relu == 0 makes the call a no-op)
 * ReLU keeps NaN (as torch.relu).
 */
OPT_API int opt_bias_act_f32(float* x, const float* bias, int rows, int cols, int relu, cudaStream_t stream);
OPT_API int opt_bias_act_f16(uint16_t* x, const uint16_t* bias, int rows, int cols, int relu,
                             cudaStream_t stream);
OPT_API int opt_bias_act_bf16(uint16_t* x, const uint16_t* bias, int rows, int cols, int relu,
                              cudaStream_t stream);

/*
 * Linear for a few rows (linear_small.cu): out[i, j] = act(sum_e x[i, e] * w[j, e] + bias[j]), float32 sums,
 * act = ReLU when relu != 0 (NaN kept). The matrix-vector product of a decode step at batch <= 8, one launch
 * with the bias and ReLU applied (instead of a cuBLAS GEMM and opt_bias_act).
 *   out (m, n)   device, row-major; must not overlap x
 *   x (m, k)     device, row-major; 1 <= m <= 8 (more rows: cudaErrorInvalidValue, use a GEMM)
 *   w (n, k)     device, row-major (out_features x in_features, the checkpoint's layout); k >= 1
 *   bias (n)     device, or NULL
 * x and w 16-byte aligned with k a multiple of 16 bytes take the fast path (16-byte loads); anything else is
 * still correct, on a slower one-element-per-lane path. m == 0 or n == 0: nothing to do.
 *   split        warps per group of outputs on the fast path: 1 (one warp reads a whole weight row; verified on an
 *                H100), 2 or 4 (that many warps share each row and add their sums in a fixed order: more warps for
 *                Linears with few outputs; session 11, verified on an H100 in session 17), 0 = chosen from
 *                the shape and the multiprocessor count. Anything else: cudaErrorInvalidValue.
 */
OPT_API int opt_linear_small_f32(float* out, const float* x, const float* w, const float* bias, int m, int k, int n,
                                 int relu, int split, cudaStream_t stream);
OPT_API int opt_linear_small_f16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                                 int k, int n, int relu, int split, cudaStream_t stream);
OPT_API int opt_linear_small_bf16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                                  int k, int n, int relu, int split, cudaStream_t stream);

/*
 * The fused q/k/v projection for a few rows (linear_small.cu): the product of opt_linear_small over the stacked
 * weight w (3 * width, k) = [Wq; Wk; Wv], with opt_qkv_append's epilogue (bias added, then):
 *   q_out[i, j] = (x . w^T)[i, j] + bias[j]                                       (q_out (m, width))
 *   k_cache[slots[i], j] = (x . w^T)[i, width + j] + bias[width + j], v_cache likewise from 2 * width
 * a slot outside [0, cache_slots) writes q only. Sizes as opt_linear_small (1 <= m <= 8); width >= 1; bias
 * (3 * width) or NULL; slots (m) device int32; split as opt_linear_small. One launch for a decode step's q/k/v.
 */
OPT_API int opt_linear_small_qkv_f32(float* q_out, float* k_cache, float* v_cache, const float* x, const float* w,
                                     const float* bias, const int32_t* slots, int m, int k, int width,
                                     int cache_slots, int split, cudaStream_t stream);
OPT_API int opt_linear_small_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                     const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                     int width, int cache_slots, int split, cudaStream_t stream);
OPT_API int opt_linear_small_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                      const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                      int width, int cache_slots, int split, cudaStream_t stream);

/*
 * Linears with int8 weights (linear_int8.cu; weight-only quantization, session 11, verified on an H100 in session
 * 17): w (n, k) int8 row-major and scales (n) float32 stand for scales[j] * w[j, e]. For 1 <= m <= 8 rows:
 *   out[i, j] = act(scales[j] * sum_e x[i, e] * w[j, e] + bias[j])     (float32 sums; act = ReLU when relu != 0)
 * and the q/k/v form with opt_linear_small_qkv's epilogue. split as opt_linear_small. k must be a multiple of 16 and
 * x, w 16-byte aligned (cudaErrorInvalidValue otherwise: dequantize and use a GEMM instead).
 * opt_dequant_int8: out (rows, cols) = scales[j] * w[j, e] rounded to the storage dtype, for the GEMM path.
 */
OPT_API int opt_linear_int8_small_f32(float* out, const float* x, const int8_t* w, const float* scales,
                                      const float* bias, int m, int k, int n, int relu, int split,
                                      cudaStream_t stream);
OPT_API int opt_linear_int8_small_f16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                      const uint16_t* bias, int m, int k, int n, int relu, int split,
                                      cudaStream_t stream);
OPT_API int opt_linear_int8_small_bf16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                       const uint16_t* bias, int m, int k, int n, int relu, int split,
                                       cudaStream_t stream);
OPT_API int opt_linear_int8_small_qkv_f32(float* q_out, float* k_cache, float* v_cache, const float* x,
                                          const int8_t* w, const float* scales, const float* bias,
                                          const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                          cudaStream_t stream);
OPT_API int opt_linear_int8_small_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                          const int8_t* w, const float* scales, const uint16_t* bias,
                                          const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                          cudaStream_t stream);
OPT_API int opt_linear_int8_small_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache,
                                           const uint16_t* x, const int8_t* w, const float* scales,
                                           const uint16_t* bias, const int32_t* slots, int m, int k, int width,
                                           int cache_slots, int split, cudaStream_t stream);
/*
 * Linears for 1 <= m <= 32 rows on the tensor cores (linear_tc.cu; session 22, not yet run on a GPU): the products
 * and epilogues of opt_linear_small / opt_linear_small_qkv (16-bit weights in the activations' dtype) and of
 * opt_linear_int8_small / _qkv (int8 weights and float scales, fp16 activations only), float32 sums in the tensor
 * cores' own order. k must be a multiple of 32 (16-bit weights) or 64 (int8), x and w 16-byte aligned, scales not
 * NULL for int8 (cudaErrorInvalidValue otherwise: take another path). split: 0 = auto, or 1, 2, 4, 8 warps per
 * group of 32 outputs (each takes a share of k; their sums are added in a fixed order).
 */
OPT_API int opt_linear_tc_f16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m, int k,
                              int n, int relu, int split, cudaStream_t stream);
OPT_API int opt_linear_tc_bf16(uint16_t* out, const uint16_t* x, const uint16_t* w, const uint16_t* bias, int m,
                               int k, int n, int relu, int split, cudaStream_t stream);
OPT_API int opt_linear_tc_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                  const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                  int width, int cache_slots, int split, cudaStream_t stream);
OPT_API int opt_linear_tc_qkv_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                   const uint16_t* w, const uint16_t* bias, const int32_t* slots, int m, int k,
                                   int width, int cache_slots, int split, cudaStream_t stream);
OPT_API int opt_linear_int8_tc_f16(uint16_t* out, const uint16_t* x, const int8_t* w, const float* scales,
                                   const uint16_t* bias, int m, int k, int n, int relu, int split,
                                   cudaStream_t stream);
OPT_API int opt_linear_int8_tc_qkv_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* x,
                                       const int8_t* w, const float* scales, const uint16_t* bias,
                                       const int32_t* slots, int m, int k, int width, int cache_slots, int split,
                                       cudaStream_t stream);
OPT_API int opt_dequant_int8_f32(float* out, const int8_t* w, const float* scales, int rows, int cols,
                                 cudaStream_t stream);
OPT_API int opt_dequant_int8_f16(uint16_t* out, const int8_t* w, const float* scales, int rows, int cols,
                                 cudaStream_t stream);
OPT_API int opt_dequant_int8_bf16(uint16_t* out, const int8_t* w, const float* scales, int rows, int cols,
                                  cudaStream_t stream);

/*
 * Row gather (elementwise.cu): out[i, :] = x[rows[i], :] for i < n.
 *   out (n, cols), x (x_rows, cols)   device; out must not alias x
 *   rows (n)                          device, int32; a row outside [0, x_rows) yields a zero row
 */
OPT_API int opt_gather_rows_f32(float* out, const float* x, const int32_t* rows, int n, int cols, int x_rows,
                                cudaStream_t stream);
OPT_API int opt_gather_rows_f16(uint16_t* out, const uint16_t* x, const int32_t* rows, int n, int cols,
                                int x_rows, cudaStream_t stream);
OPT_API int opt_gather_rows_bf16(uint16_t* out, const uint16_t* x, const int32_t* rows, int n, int cols,
                                 int x_rows, cudaStream_t stream);

/*
 * Widening copy (elementwise.cu): out[i] = (float) x[i] for i < n; out (n) float32, x (n) device.
 * For reading logits and activations back as float32 (the f32 variant is a plain copy).
 */
OPT_API int opt_to_f32_f32(float* out, const float* x, int n, cudaStream_t stream);
OPT_API int opt_to_f32_f16(float* out, const uint16_t* x, int n, cudaStream_t stream);
OPT_API int opt_to_f32_bf16(float* out, const uint16_t* x, int n, cudaStream_t stream);

/*
 * Paged KV cache (kv_cache.cu). One layer's keys and values are each a (cache_slots, width) matrix with
 * cache_slots = num_blocks * block_size and width = heads * head_dim; block b holds slots
 * [b * block_size, (b + 1) * block_size).
 *
 * opt_kv_append: k_cache[slots[t], :] = k[t, :] and v_cache[slots[t], :] = v[t, :] for t < n_tokens.
 *   k, v (n_tokens, width)   device, contiguous rows
 *   slots (n_tokens)         device, int32; a slot outside [0, cache_slots) is skipped (so -1 can mark
 *                            padding); two tokens with the same slot: one of them wins
 */
OPT_API int opt_kv_append_f32(float* k_cache, float* v_cache, const float* k, const float* v,
                              const int32_t* slots, int n_tokens, int width, int cache_slots, cudaStream_t stream);
OPT_API int opt_kv_append_f16(uint16_t* k_cache, uint16_t* v_cache, const uint16_t* k, const uint16_t* v,
                              const int32_t* slots, int n_tokens, int width, int cache_slots, cudaStream_t stream);
OPT_API int opt_kv_append_bf16(uint16_t* k_cache, uint16_t* v_cache, const uint16_t* k, const uint16_t* v,
                               const int32_t* slots, int n_tokens, int width, int cache_slots,
                               cudaStream_t stream);

/*
 * opt_qkv_append: the fused q/k/v projection's epilogue. qkv holds x · [Wq; Wk; Wv]ᵀ without bias, row t
 * = (q | k | v), each width wide. For t < n_tokens and j < width:
 *   q_out[t, j]            = qkv[t, j]             + bias[j]
 *   k_cache[slots[t], j]   = qkv[t, width + j]     + bias[width + j]
 *   v_cache[slots[t], j]   = qkv[t, 2 * width + j] + bias[2 * width + j]
 *   qkv (n_tokens, 3 * width), q_out (n_tokens, width)   device
 *   bias (3 * width)                                     device or NULL
 *   slots (n_tokens)   device, int32; a slot outside [0, cache_slots) writes q only (as opt_kv_append)
 */
OPT_API int opt_qkv_append_f32(float* q_out, float* k_cache, float* v_cache, const float* qkv, const float* bias,
                               const int32_t* slots, int n_tokens, int width, int cache_slots, cudaStream_t stream);
OPT_API int opt_qkv_append_f16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* qkv,
                               const uint16_t* bias, const int32_t* slots, int n_tokens, int width, int cache_slots,
                               cudaStream_t stream);
OPT_API int opt_qkv_append_bf16(uint16_t* q_out, uint16_t* k_cache, uint16_t* v_cache, const uint16_t* qkv,
                                const uint16_t* bias, const int32_t* slots, int n_tokens, int width, int cache_slots,
                                cudaStream_t stream);

/*
 * opt_kv_copy_blocks: for i < n_pairs, block src_blocks[i] -> block dst_blocks[i], keys and values, one
 * layer per call (the caller loops over layers).
 *   src_blocks, dst_blocks (n_pairs)   device, int32; a pair naming a block outside [0, num_blocks) is skipped.
 * The pairs are copied concurrently: destination blocks must be distinct and no destination may be the
 * source of another pair (the beam-search fork copies live blocks into fresh ones). src == dst is harmless.
 */
OPT_API int opt_kv_copy_blocks_f32(float* k_cache, float* v_cache, const int32_t* src_blocks,
                                   const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                   int num_blocks, cudaStream_t stream);
OPT_API int opt_kv_copy_blocks_f16(uint16_t* k_cache, uint16_t* v_cache, const int32_t* src_blocks,
                                   const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                   int num_blocks, cudaStream_t stream);
OPT_API int opt_kv_copy_blocks_bf16(uint16_t* k_cache, uint16_t* v_cache, const int32_t* src_blocks,
                                    const int32_t* dst_blocks, int n_pairs, int block_size, int width,
                                    int num_blocks, cudaStream_t stream);

/*
 * Causal attention over the paged KV cache (attention.cu), prefill and decode alike; the meaning of
 * CpuOps.attention with backend/AttentionBatch: per head, out = softmax(q . K^T * scale) . V in float32.
 *   out, q (total_queries, heads * head_dim)                device; out must not alias q
 *   k_cache, v_cache (num_blocks * block_size, heads * head_dim)  device, one layer (see kv_cache above);
 *                                                           this step's keys/values already appended
 *   block_tables (num_seqs, max_blocks)                     device, int32, row-major block ids per sequence
 *   query_start, query_count, context_len (num_seqs)        device, int32: sequence s owns query rows
 *       [query_start[s], query_start[s] + query_count[s]); its query i sits at position
 *       context_len[s] - query_count[s] + i and attends to positions 0 .. that position; position p is in
 *       slot block_tables[s][p / block_size] * block_size + p % block_size.
 * Rows need not be ordered by sequence; a row no sequence owns is not written. A row whose sequence is
 * inconsistent (query_count > context_len, context_len > max_blocks * block_size) or reaches a block id
 * outside [0, num_blocks) is written as NaN (the Java side validates first; nothing is read out of bounds).
 * Limits: 1 <= head_dim <= 256, heads <= 65535, block_size >= 1 (else cudaErrorInvalidValue).
 */
OPT_API int opt_attention_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                              const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                              const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                              int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream);
OPT_API int opt_attention_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                              const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                              const int32_t* context_len, int num_seqs, int total_queries, int heads, int head_dim,
                              int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream);
OPT_API int opt_attention_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                               const int32_t* block_tables, const int32_t* query_start,
                               const int32_t* query_count, const int32_t* context_len, int num_seqs,
                               int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                               int num_blocks, float scale, cudaStream_t stream);

/*
 * opt_attention_split (attention_split.cu): the function of opt_attention, split-KV ("flash-decoding"): the
 * visible keys of each (row, head) are cut into ranges that separate blocks reduce, merged by a second
 * kernel; one key per thread, 16-byte loads. Same arguments plus:
 *   workspace (workspace_bytes)   device scratch, or NULL (then no split). Zero it once before its first use:
 *                                 its first 64 KiB hold the inline combine's counters, which every launch
 *                                 leaves at zero; after them, (total_queries * heads * splits * (head_dim + 2))
 *                                 floats of split partials, the split count cut to what fits. The split count
 *                                 depends only on the sizes (not on context_len), so a CUDA graph stays valid
 *                                 as sequences grow.
 *   options                       0, or a sum of these bits (others: invalid value):
 *     OPT_ATTENTION_INLINE_COMBINE  the last split block of each (row, head) merges the splits instead of a second
 *                                   kernel (one launch instead of two; batches of more than 16384 (row, head) pairs
 *                                   still use the second kernel). Same results, bit for bit.
 *     OPT_ATTENTION_GROUPED         a group of threads reads each key and value row (attention_grouped.cu): fp16/bf16,
 *                                   head_dim 64 or 128, q and caches 16-byte aligned, else ignored. Same splits and
 *                                   tolerances, another order of sums; the splits always merge in the second kernel.
 * Status: passed check_ops and the parity tests on an H100 (2026-11-26, session 7); CudaOps' default decode
 * attention kernel (-Dopt.cuda.attention=tc, tiled or split). OPT_ATTENTION_INLINE_COMBINE passed on an H100 in
 * session 11 (-Dopt.cuda.inlineCombine=true); OPT_ATTENTION_GROUPED (session 12) has not run on a GPU
 * (-Dopt.cuda.groupedSplit=true).
 */
#define OPT_ATTENTION_INLINE_COMBINE 1
#define OPT_ATTENTION_GROUPED 2
OPT_API int opt_attention_split_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                                    const int32_t* block_tables, const int32_t* query_start,
                                    const int32_t* query_count, const int32_t* context_len, int num_seqs,
                                    int total_queries, int heads, int head_dim, int block_size, int max_blocks,
                                    int num_blocks, float scale, float* workspace, size_t workspace_bytes,
                                    int options, cudaStream_t stream);
OPT_API int opt_attention_split_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                    const uint16_t* v_cache, const int32_t* block_tables,
                                    const int32_t* query_start, const int32_t* query_count,
                                    const int32_t* context_len, int num_seqs, int total_queries, int heads,
                                    int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                                    float* workspace, size_t workspace_bytes, int options,
                                    cudaStream_t stream);
OPT_API int opt_attention_split_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                     const uint16_t* v_cache, const int32_t* block_tables,
                                     const int32_t* query_start, const int32_t* query_count,
                                     const int32_t* context_len, int num_seqs, int total_queries, int heads,
                                     int head_dim, int block_size, int max_blocks, int num_blocks, float scale,
                                     float* workspace, size_t workspace_bytes, int options,
                                     cudaStream_t stream);

/*
 * opt_attention_tiled (attention_tiled.cu): the function of opt_attention for prefill, 16 query rows of one
 * sequence per thread block sharing each tile of keys and values (read once per 16 rows instead of once per
 * row). The caller cuts each sequence's rows into tiles: tile t covers query rows first .. first + 15 (at most
 * the sequence's count) of sequence tile_seq[t], first = tile_first[t]; rows no tile names are not written.
 *   tile_seq, tile_first (num_tiles)   device, int32
 * Other arguments as opt_attention. Limits: head_dim <= 128.
 * Status: passed check_ops and the parity tests on an H100 (2026-11-26, session 7); CudaOps uses it for prefill
 * with -Dopt.cuda.attention=tiled, and under the default tc where the tensor-core kernel does not apply (f32).
 */
OPT_API int opt_attention_tiled_f32(float* out, const float* q, const float* k_cache, const float* v_cache,
                                    const int32_t* block_tables, const int32_t* query_start,
                                    const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                    const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                    int block_size, int max_blocks, int num_blocks, float scale,
                                    cudaStream_t stream);
OPT_API int opt_attention_tiled_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                    const uint16_t* v_cache, const int32_t* block_tables,
                                    const int32_t* query_start, const int32_t* query_count,
                                    const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                    int num_tiles, int num_seqs, int heads, int head_dim, int block_size,
                                    int max_blocks, int num_blocks, float scale, cudaStream_t stream);
OPT_API int opt_attention_tiled_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                     const uint16_t* v_cache, const int32_t* block_tables,
                                     const int32_t* query_start, const int32_t* query_count,
                                     const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                     int num_tiles, int num_seqs, int heads, int head_dim, int block_size,
                                     int max_blocks, int num_blocks, float scale, cudaStream_t stream);

/*
 * opt_attention_tc (attention_tc.cu): the function of opt_attention for prefill on tensor cores: 64 query rows of
 * one sequence per thread block, Q.K^T and P.V as WMMA 16x16x16 products (float32 accumulate), online softmax
 * in float32, the weights P rounded to the storage type before P.V. Tile map as opt_attention_tiled, with tiles
 * of up to 64 rows: tile t covers query rows first .. first + 63 of sequence tile_seq[t].
 * Limits: fp16/bf16, head_dim a multiple of 16 up to 128 (else 1 = invalid value, nothing launched).
 * Status: passed check_ops and the parity tests on an H100 (2026-11-26, session 7); CudaOps' default prefill
 * kernel (-Dopt.cuda.attention=tc).
 */
OPT_API int opt_attention_tc_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                 const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                                 const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                 int num_tiles, int num_seqs, int heads, int head_dim, int block_size, int max_blocks,
                                 int num_blocks, float scale, cudaStream_t stream);
OPT_API int opt_attention_tc_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                  const uint16_t* v_cache, const int32_t* block_tables, const int32_t* query_start,
                                  const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                  const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                  int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream);

/*
 * opt_attention_fa (attention_fa.cu): the function of opt_attention_tc, flash-attention-2 style: same arguments,
 * tile map (tiles of up to 64 rows) and NaN rules; Q, the scores, the online softmax and the float32 accumulator
 * in registers (mma.sync m16n8k16, float32 accumulate), K/V tiles of 64 keys double-buffered in shared memory
 * with cp.async, the weights P rounded to the storage type before P.V.
 * Limits: fp16/bf16, head_dim 64, 80 or 128 (OPT's; else 1 = invalid value, nothing launched), heads <= 65535,
 * num_tiles * heads < 2^31, out 4-byte aligned (and q, k_cache, v_cache 16-byte aligned, as for opt_attention_tc). Needs sm_80+.
 * Status: written 2026-11-26 without a GPU (emulated on the CPU: native/dev/emu_fa/); CudaOps uses it only with
 * -Dopt.cuda.attention=fa until check_ops group fa and the parity tests have passed on a GPU.
 */
OPT_API int opt_attention_fa_f16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache, const uint16_t* v_cache,
                                 const int32_t* block_tables, const int32_t* query_start, const int32_t* query_count,
                                 const int32_t* context_len, const int32_t* tile_seq, const int32_t* tile_first,
                                 int num_tiles, int num_seqs, int heads, int head_dim, int block_size, int max_blocks,
                                 int num_blocks, float scale, cudaStream_t stream);
OPT_API int opt_attention_fa_bf16(uint16_t* out, const uint16_t* q, const uint16_t* k_cache,
                                  const uint16_t* v_cache, const int32_t* block_tables, const int32_t* query_start,
                                  const int32_t* query_count, const int32_t* context_len, const int32_t* tile_seq,
                                  const int32_t* tile_first, int num_tiles, int num_seqs, int heads, int head_dim,
                                  int block_size, int max_blocks, int num_blocks, float scale, cudaStream_t stream);

/*
 * Sampling (sample.cu): per row of float32 logits (rows, vocab), a token drawn from softmax(logits / temperature[r])
 * after top-k (top_k[r] > 0), top-p (top_p[r] < 1), min-p (min_p[r] > 0) and typical (typical_p[r] in (0, 1))
 * filtering, with the uniform number uniform[r] in [0, 1) the host drew; out_token[r] = the token (-1: every logit
 * -inf; -2: a NaN), out_logprob[r] = its log-probability under the filtered distribution. The rules are those of its
 * CPU twin, backend/RowSampling (see sample.cu).
 *   out_token (rows) int32, out_logprob (rows) float32, temperature/top_p/min_p/typical_p (rows) float32, top_k
 *   (rows) int32, uniform (rows) float64: all device memory. weights: null, or (rows * vocab) device float32
 *   scratch where each row (its whole row in play) has its weights computed once and read back by the later passes
 *   instead of recomputed (the same bits; sessions 21-22, GPU-unverified: check_ops groups sample, minp, sampletop
 *   and typical run both ways; CudaOps passes it with -Dopt.cuda.samplerWeights=true).
 * Status: passed check_ops and its parity test on an H100 (2026-11-26, session 7); CudaOps' default for sampled
 * steps (-Dopt.cuda.deviceSampling=false reads the logits back instead). min_p added in session 20 without a GPU;
 * passed check_ops groups sample and minp and the parity tests on an H200 (2026-11-28, session 21, 7a4d127)
 * (-Dopt.cuda.deviceMinP=false draws min-p rows on the host). Session 22 changed top-p's search and the draw, and
 * session 23 added typical_p (check_ops group typical; -Dopt.cuda.deviceTypical=false draws typical rows on the
 * host), both without a GPU.
 */
OPT_API int opt_sample_rows_f32(int32_t* out_token, float* out_logprob, const float* logits, const float* temperature,
                                const int32_t* top_k, const float* top_p, const float* min_p, const float* typical_p,
                                const double* uniform, int rows, int vocab, float* weights, cudaStream_t stream);

/*
 * As opt_sample_rows_f32, and each row's k most likely tokens of the filtered distribution (those no cut removed, by
 * logits / temperature then the lower id) with their log-probabilities under it: out_ids[r * k + j] (-1
 * after the last: fewer than k kept, or a row with nothing to draw), out_lps[r * k + j] (NaN there). A sampled
 * request's log-prob alternatives. CPU twin: backend/RowSampling.sample with k.
 *   out_ids (rows * k) device int32, out_lps (rows * k) device float32; the rest as opt_sample_rows_f32.
 * Status: written in session 20 without a GPU; passed check_ops (group sampletop) and its parity test on an H200
 * (2026-11-28, session 21, 7a4d127).
 */
OPT_API int opt_sample_rows_top_f32(int32_t* out_token, float* out_logprob, int32_t* out_ids, float* out_lps, int k,
                                    const float* logits, const float* temperature, const int32_t* top_k,
                                    const float* top_p, const float* min_p, const float* typical_p,
                                    const double* uniform, int rows, int vocab, float* weights, cudaStream_t stream);

/*
 * Greedy pick (sampling.cu): out_index[r] = the first index of the maximum of logits[r, :], torch.argmax
 * semantics (a NaN counts as the maximum, the first NaN wins; ties go to the smallest index).
 *   out_index (rows) device int32; logits (rows, vocab) device float32; vocab >= 1 when rows > 0.
 */
OPT_API int opt_argmax_f32(int32_t* out_index, const float* logits, int rows, int vocab, cudaStream_t stream);
/* The same pick, and out_logprob[r] = log_softmax(logits[r, :])[out_index[r]] (float32; NaN for a row with a NaN
 * or all -inf): a greedy step's score without copying the logits out. */
OPT_API int opt_argmax_logprob_f32(int32_t* out_index, float* out_logprob, const float* logits, int rows, int vocab,
                                   cudaStream_t stream);
/* out_logprob[r] = log_softmax(logits[r, :])[tokens[r]] (float32) for given tokens (sampling.cu): an echoed
 * prompt's scores without copying its rows out. NaN for a row with a NaN or a token outside [0, vocab); -inf
 * minus a log-sum-exp of -inf (every entry -inf) is NaN, as on the CPU. tokens (rows) device int32.
 * Status: written 2026-11-26 (session 7) without a GPU; CudaOps uses it for echo scores only with
 * -Dopt.cuda.deviceScores=true until check_ops group score and its parity test (tag gpu-new) pass on a GPU. */
OPT_API int opt_token_logprob_f32(float* out_logprob, const float* logits, const int32_t* tokens, int rows,
                                  int vocab, cudaStream_t stream);

/*
 * Top log-probs (top_logprobs.cu): per row of float32 logits, the k most likely tokens, most likely first, ties to
 * the lower id, NaN and -inf never listed: out_ids[r * k + j] (-1 after the last listed), out_lp[r * k + j] = logit
 * - log-sum-exp of the row (NaN after the last; the log-sum-exp NaN when the row holds a NaN). A greedy request's
 * log-prob alternatives without copying its row out. CPU twin: backend/RowMath.topK.
 *   out_ids (rows * k) device int32, out_lp (rows * k) device float32, logits (rows, vocab) device float32.
 * Status: written in session 19 without a GPU; passed check_ops (group toplp) and its parity test on an H200
 * (2026-11-28, session 21, 7a4d127).
 */
OPT_API int opt_top_logprobs_f32(int32_t* out_ids, float* out_lp, const float* logits, int rows, int vocab, int k,
                                 cudaStream_t stream);

/*
 * Beam search's candidates (top_logprobs.cu): for each of n beams, logits row row_of[j] with the beam's score
 * base[j]: the k best of float32 log_softmax(row) + base[j] ((x - max) - log(sum(exp(x - max))), then + base), best
 * first, ties to the lower id, -inf listed too: out_ids[j * k + i] (-1 after the last listed, when k > vocab) and
 * out_scores[j * k + i]. A row holding a NaN or +inf, or all -inf, lists nothing (every id -1, score NaN). Beam search
 * then copies back k pairs per beam instead of its row. log_probs = 1: the rows are log-probabilities already (see
 * opt_log_softmax_rows_f32): the keys are row + base[j], every value but NaN listed, a row with a NaN lists nothing.
 * CPU twin: backend/RowMath.beamTopK.
 *   out_ids, out_scores (n * k) device; logits (rows, vocab) device float32; row_of (n) device int32, each in
 *   [0, rows); base (n) device float32.
 * Status: written in session 20 without a GPU; passed check_ops (group beams) and its parity test on an H200
 * (2026-11-28, session 21, 7a4d127).
 */
OPT_API int opt_beam_topk_f32(int32_t* out_ids, float* out_scores, const float* logits, const int32_t* row_of,
                              const float* base, int n, int vocab, int k, int log_probs, cudaStream_t stream);

/*
 * Log-softmax rows (top_logprobs.cu): out = (x - max) - log(sum(exp(x - max))) per row in float32; a row holding a
 * NaN or +inf, or all -inf, becomes NaN. Beam search with processors: HF applies them to the log-probabilities, so
 * the rows are made log-probabilities first, then edited (opt_edit_logits_f32), then opt_beam_topk_f32 with
 * log_probs = 1 lists each beam's candidates. CPU twin: backend/RowMath.logSoftmaxRows.
 *   out, logits (rows, vocab) device float32 (out may not alias logits).
 * Status: written in session 20 without a GPU; passed check_ops (group beams) and its parity test on an H200
 * (2026-11-28, session 21, 7a4d127).
 */
OPT_API int opt_log_softmax_rows_f32(float* out, const float* logits, int rows, int vocab, cudaStream_t stream);

/*
 * Logit edits (logit_edits.cu): a sequence's logits processors applied where the logits are, before the argmax or
 * the sampler reads them. packed holds 6 * count int32: the edited positions (row * vocab + token, each at most
 * once), their flags (1 bias, 2 repetition penalty, 4 frequency then presence term, 8 ban), then the bias, penalty,
 * negated frequency term and negated presence term as float32 bits, each block count long. Positions outside
 * [0, total) are skipped. The CPU twin is backend/LogitEdits.applyTo (the same bits).
 *   logits (total) device float32; packed (6 * count) device int32.
 * Status: written in session 19 without a GPU; passed check_ops (group edits) and its parity test on an H200
 * (2026-11-28, session 21, 7a4d127); CudaOps runs it for steps whose requests have processors.
 */
OPT_API int opt_edit_logits_f32(float* logits, const int32_t* packed, int count, long long total,
                                cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* OPT_KERNELS_H */
