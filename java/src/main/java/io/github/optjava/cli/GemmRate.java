package io.github.optjava.cli;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.model.OptConfig;

/**
 * The GEMM rate a backend reaches on a model's largest prefill GEMM, and the FLOPs a prefill needs: together
 * they say how close a prefill comes to the machine's practical compute limit ({@code opt bench}'s
 * {@code prefill_gemm_fraction}, issue #5's "prefill at ≥ 60 % of the cuBLAS GEMM rate measured in the same
 * run"). The GEMM is the backend's own {@link Ops#linear} without bias (on CUDA: cublasGemmEx, nothing else),
 * shaped as fc1 over every prompt token of the batch: (batch × prompt) × hidden times hidden × ffn.
 */
final class GemmRate {
  private static final int WARM_UP = 2;
  private static final double MIN_SECONDS = 0.3;
  private static final int MAX_REPEATS = 50;

  private GemmRate() {}

  /**
   * TFLOP/s (1e12 multiply-adds × 2 per second) of {@code out (m × n) = x (m × k) · w (n × k)ᵀ}, timed on the
   * host around at least 3 repeats and at least 0.3 s; a one-element read after the repeats waits for the
   * device. The operands' contents are whatever {@link Ops#alloc} gives (zeros on the CPU): a GEMM's speed
   * does not depend on the values on tensor cores, and zeros avoid the CPU's slow subnormals.
   */
  static double tflops(Ops ops, int m, int k, int n) {
    try (Mat x = ops.alloc(m, k); Mat w = ops.alloc(n, k); Mat out = ops.alloc(m, n); Mat probe = ops.alloc(1, 1)) {
      for (int i = 0; i < WARM_UP; i++) {
        ops.linear(out, x, w, null, false);
      }
      ops.read(probe);
      int repeats = 0;
      long t0 = System.nanoTime();
      double seconds;
      do {
        ops.linear(out, x, w, null, false);
        repeats++;
        if (repeats >= 3) {
          ops.read(probe); // waits for the queued GEMMs (CUDA ops run on one stream, in order)
        }
        seconds = (System.nanoTime() - t0) / 1e9;
      } while (repeats < 3 || (seconds < MIN_SECONDS && repeats < MAX_REPEATS));
      return 2.0 * m * k * n * repeats / seconds / 1e12;
    }
  }

  /**
   * Floating-point operations (2 per multiply-add) of one prefill of {@code batch} prompts of {@code prompt}
   * tokens: every Linear of every layer for every token (q, k, v, out: 4 h²; fc1, fc2: 2 h·ffn), project_in for
   * every token, causal attention (Q·Kᵀ and P·V over the T(T+1)/2 visible pairs, each h wide per layer), and
   * project_out plus lm_head for the last token of each prompt (the only logits a prefill needs). Layer norms,
   * biases and softmax are left out: they are memory-bound and small.
   */
  static double prefillFlops(OptConfig c, int batch, int prompt) {
    double h = c.hiddenSize();
    double proj = c.wordEmbedProjDim();
    double perTokenLinear = c.numHiddenLayers() * (4 * h * h + 2 * h * c.ffnDim()) + (proj != h ? proj * h : 0);
    double attentionPairs = (double) prompt * (prompt + 1) / 2;
    double attention = c.numHiddenLayers() * 2 * attentionPairs * h;
    double head = (proj != h ? h * proj : 0) + proj * c.vocabSize();
    return 2 * batch * (prompt * perTokenLinear + attention + head);
  }
}
