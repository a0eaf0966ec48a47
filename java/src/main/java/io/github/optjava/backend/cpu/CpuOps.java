package io.github.optjava.backend.cpu;

/**
 * The pure-Java reference implementation of the op vocabulary: scalar, obviously correct, and the
 * oracle every CUDA kernel is checked against. Each method has the meaning (and argument order) of the
 * C launcher of the same name in {@code native/include/opt_kernels.h}.
 *
 * <p>Only the ops that already have a kernel are here; the full {@code Ops} interface arrives with the
 * generation engine.
 */
public final class CpuOps {

  /**
   * Embedding lookup: {@code out[t, :] = table[ids[t], :]} for {@code t < nTokens}; an id outside
   * {@code [0, vocab)} yields a zero row (as the kernel does; callers validate ids first).
   *
   * @param out   (nTokens, dim)
   * @param table (vocab, dim)
   * @param ids   (nTokens)
   */
  public void embedding(float[] out, float[] table, int[] ids, int nTokens, int dim, int vocab) {
    for (int t = 0; t < nTokens; t++) {
      int id = ids[t];
      if (id < 0 || id >= vocab) {
        java.util.Arrays.fill(out, t * dim, (t + 1) * dim, 0f);
      } else {
        System.arraycopy(table, id * dim, out, t * dim, dim);
      }
    }
  }
}
