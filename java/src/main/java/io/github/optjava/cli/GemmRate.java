package io.github.optjava.cli;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.model.OptConfig;

/**
 * The GEMM rate a backend reaches on a model's largest prefill GEMM, and the FLOPs a prefill needs: together
 * they say how close a prefill comes to the machine's practical compute limit ({@code opt bench}'s
 * {@code prefill_gemm_fraction}, issue #5's "prefill at ≥ 60 % of the cuBLAS GEMM rate measured in the same
 * run"). The GEMM is the backend's own {@link Ops#linear} without bias (on CUDA: cuBLASLt by default, or
 * cublasGemmEx), shaped as fc1 over every prompt token of the batch: (batch × prompt) × hidden times hidden × ffn.
 */
final class GemmRate {
  private static final int WARM_UP = 2;
  /**
   * On the CPU the JIT must compile the kernels first: the Vector API ones run tens of times slower until C2 has
   * compiled them, and two warm-up GEMMs left the rate 20 % under the prefill's own (opt-125m, 128 tokens).
   */
  private static final double CPU_WARM_UP_SECONDS = 1.0;
  private static final double MIN_SECONDS = 0.3;
  private static final int MAX_REPEATS = 400;

  private GemmRate() {}

  /**
   * TFLOP/s (1e12 multiply-adds × 2 per second) of {@code out (m × n) = x (m × k) · w (n × k)ᵀ}: rounds of
   * back-to-back GEMMs, each round timed on the host from its first launch to a one-element read after its last
   * (which waits for the device), doubling the round until it lasts 0.3 s or holds 400 GEMMs. One wait per round,
   * not per GEMM: a small GEMM takes microseconds, about what a wait costs (session 7 measured 62 TFLOP/s for a
   * 128-row fc1 GEMM that way, under the prefill's own rate). The operands are random, not zeros: tensor cores run
   * faster on zeros (METHOD.md: 13 % on an H200).
   */
  static double tflops(Ops ops, int m, int k, int n) {
    return tflops(ops, m, k, n, null);
  }

  /**
   * As {@link #tflops(Ops, int, int, int)} with {@code weight} (n × k) as the weights when not null. The CPU
   * backend keeps weights in the checkpoint's dtype and widens fp16/bf16 as it reads them, so its rate depends on
   * the dtype: there the bench passes the model's own fc1 weights (with float32 weights instead, an fp16 prefill
   * came out at 108 % of "the GEMM rate"), stored as the model stores Linears ({@link Ops#linearWeight}: int8 when
   * the ops quantize).
   */
  static double tflops(Ops ops, int m, int k, int n, Tensor weight) {
    try (Mat x = ops.alloc(m, k); Mat w = weight == null ? ops.alloc(n, k) : ops.linearWeight(weight);
        Mat out = ops.alloc(m, n); Mat probe = ops.alloc(1, 1)) {
      if (w.rows() != n || w.cols() != k) {
        throw new IllegalArgumentException(
            "GEMM weights " + w.rows() + " × " + w.cols() + ", expected " + n + " × " + k);
      }
      java.util.SplittableRandom random = new java.util.SplittableRandom(m * 31L + n);
      ops.write(x, randomValues(random, (long) m * k, 1.0));
      if (weight == null) {
        ops.write(w, randomValues(random, (long) n * k, 0.02));
      }
      long warmUpStart = System.nanoTime();
      boolean cpu = ops.name().startsWith("cpu");
      for (int i = 0; i < WARM_UP || cpu && (System.nanoTime() - warmUpStart) / 1e9 < CPU_WARM_UP_SECONDS; i++) {
        ops.linear(out, x, w, null, false);
      }
      ops.read(probe);
      int repeats = 3;
      while (true) {
        long t0 = System.nanoTime();
        for (int i = 0; i < repeats; i++) {
          ops.linear(out, x, w, null, false);
        }
        ops.read(probe); // waits for the queued GEMMs (CUDA ops run on one stream, in order)
        double seconds = (System.nanoTime() - t0) / 1e9;
        if (seconds >= MIN_SECONDS || repeats >= MAX_REPEATS) {
          return 2.0 * m * k * n * repeats / seconds / 1e12;
        }
        repeats = Math.min(MAX_REPEATS, repeats * 2);
      }
    }
  }

  /** {@code count} values uniform in [-scale, scale): a random block of 65,521 (a prime) repeated, which is quick. */
  private static float[] randomValues(java.util.SplittableRandom random, long count, double scale) {
    float[] block = new float[65_521];
    for (int i = 0; i < block.length; i++) {
      block[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
    }
    float[] v = new float[Math.toIntExact(count)];
    for (int i = 0; i < v.length; i += block.length) {
      System.arraycopy(block, 0, v, i, Math.min(block.length, v.length - i));
    }
    return v;
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
