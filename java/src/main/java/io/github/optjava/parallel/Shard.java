package io.github.optjava.parallel;

import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * One rank's share of a checkpoint tensor, cut before it is uploaded, so that no host ever holds more
 * of a sharded weight than its own slice:
 * <ul>
 *   <li>{@link #rows}: rows {@code [rank × n/world, (rank+1) × n/world)} of an (n, in) matrix, or the
 *       same elements of an (n) vector: a view of the (memory-mapped) bytes, nothing copied;</li>
 *   <li>{@link #cols}: the same range of the columns of a row-major (out, n) matrix: each row's strided
 *       piece is copied, so only the slice is read.</li>
 * </ul>
 */
public final class Shard {
  private Shard() {}

  /** Rank {@code rank}'s rows of {@code t} (dim 0 split {@code world} ways). */
  public static Tensor rows(Tensor t, int rank, int world) {
    long[] shape = t.shape();
    if (shape.length < 1 || shape.length > 2) {
      throw new IllegalArgumentException("tensor " + t.name() + " has rank " + shape.length + ": expected 1 or 2");
    }
    int n = Math.toIntExact(shape[0]);
    int part = share(t, n, world, "rows");
    int rowBytes = Math.toIntExact((shape.length == 1 ? 1 : shape[1]) * t.dtype().bytes());
    long[] sliced = shape.clone();
    sliced[0] = part;
    ByteBuffer bytes = t.data().slice(Math.multiplyExact(rank * part, rowBytes), Math.multiplyExact(part, rowBytes));
    return new Tensor(new TensorInfo(t.name(), t.dtype(), sliced), bytes);
  }

  /**
   * The tensors' rows one after the other (all of one dtype and, for matrices, one width): a copy, named
   * after the first with {@code +} and the count.
   */
  public static Tensor stackRows(List<Tensor> parts) {
    if (parts.isEmpty()) {
      throw new IllegalArgumentException("nothing to stack");
    }
    Tensor first = parts.get(0);
    long[] shape = first.shape().clone();
    long rows = 0;
    long bytes = 0;
    for (Tensor t : parts) {
      long[] s = t.shape();
      if (t.dtype() != first.dtype() || s.length != shape.length || (s.length == 2 && s[1] != shape[1])) {
        throw new IllegalArgumentException("cannot stack " + t.name() + " " + t.dtype() + java.util.Arrays.toString(s)
            + " under " + first.name() + " " + first.dtype() + java.util.Arrays.toString(shape));
      }
      rows += s[0];
      bytes += t.data().remaining();
    }
    shape[0] = rows;
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(bytes));
    for (Tensor t : parts) {
      out.put(t.data().duplicate());
    }
    return new Tensor(new TensorInfo(first.name() + "+" + (parts.size() - 1), first.dtype(), shape), out.flip());
  }

  /** Rank {@code rank}'s columns of the (out, n) matrix {@code t} (dim 1 split {@code world} ways). */
  public static Tensor cols(Tensor t, int rank, int world) {
    long[] shape = t.shape();
    if (shape.length != 2) {
      throw new IllegalArgumentException("tensor " + t.name() + " has rank " + shape.length
          + ": only a matrix can be split by columns");
    }
    int rows = Math.toIntExact(shape[0]);
    int n = Math.toIntExact(shape[1]);
    int part = share(t, n, world, "columns");
    int bytes = t.dtype().bytes();
    ByteBuffer src = t.data();
    ByteBuffer out = ByteBuffer.allocate(Math.multiplyExact(rows, part * bytes));
    for (int r = 0; r < rows; r++) {
      out.put(src.slice((r * n + rank * part) * bytes, part * bytes));
    }
    return new Tensor(new TensorInfo(t.name(), t.dtype(), new long[] {rows, part}), out.flip());
  }

  /**
   * Refuses a tensor-parallel degree that does not split the attention heads and the FFN width evenly,
   * naming the degrees that do.
   */
  public static void requireDegree(int world, int heads, int ffnDim) {
    if (world < 1 || heads % world != 0 || ffnDim % world != 0) {
      throw new IllegalArgumentException("tensor-parallel degree " + world + " does not divide num_attention_heads "
          + heads + " and ffn_dim " + ffnDim + "; degrees that do: " + degreesDividing(heads, ffnDim));
    }
  }

  /** The tensor-parallel degrees that split both {@code a} and {@code b} evenly, ascending. */
  public static List<Integer> degreesDividing(int a, int b) {
    List<Integer> out = new ArrayList<>();
    for (int d = 1; d <= Math.min(a, b); d++) {
      if (a % d == 0 && b % d == 0) {
        out.add(d);
      }
    }
    return out;
  }

  private static int share(Tensor t, int n, int world, String what) {
    if (world < 1 || n % world != 0) {
      throw new IllegalArgumentException("tensor " + t.name() + ": " + n + " " + what + " do not split evenly over "
          + world + " ranks");
    }
    return n / world;
  }
}
