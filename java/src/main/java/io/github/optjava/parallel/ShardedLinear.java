package io.github.optjava.parallel;

import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.Tensor;
import java.util.List;
import java.util.function.Function;

/**
 * One rank's part of a Linear layer split Megatron style (Shoeybi et al. 2019, section 3; vLLM's
 * {@code ColumnParallelLinear} / {@code RowParallelLinear}). The loader shards, the layer all-reduces:
 * <ul>
 *   <li>{@link #column}: the output features are split; the rank holds rows {@code [rank × out/world, …)}
 *       of the (out, in) weight and the same slice of the bias, reads the full input and writes its slice
 *       of the output. No communication.</li>
 *   <li>{@link #row}: the input features are split; the rank holds the matching columns of the weight,
 *       reads its slice of the input and writes a partial sum of the full output, which
 *       {@link TpGroup#allReduce} completes. The bias must be added once: {@link #forward} lets rank 0 add
 *       it inside its GEMM, before the reduce (the sum is the same up to float rounding); {@link #project}
 *       leaves it out, for a fused op to add after the reduce (every rank holds it).</li>
 * </ul>
 * {@link #columnStacked} holds several column-parallel layers over the same input as one (q, k and v: one
 * GEMM instead of three). At world size 1 all of them are plain Linears.
 */
public final class ShardedLinear implements AutoCloseable {
  private final TpGroup tp;
  private final boolean reduce; // row-parallel: the output is a partial sum
  private final Mat weight;     // (out/world, in) column-parallel; (out, in/world) row-parallel
  private final Mat bias;       // (1, out/world) column-parallel; (1, out) row-parallel (added by rank 0 only)

  private ShardedLinear(TpGroup tp, boolean reduce, Mat weight, Mat bias) {
    this.tp = tp;
    this.reduce = reduce;
    this.weight = weight;
    this.bias = bias;
  }

  /**
   * The output features split: this rank's rows of {@code w} (out, in) and of {@code b} (out). {@code uploadWeight}
   * stores the weight ({@link Ops#linearWeight}: it may quantize), {@code upload} the bias.
   */
  public static ShardedLinear column(TpGroup tp, Tensor w, Tensor b, Function<Tensor, Mat> uploadWeight,
      Function<Tensor, Mat> upload) {
    int rank = tp.rank();
    int world = tp.worldSize();
    Mat weight = uploadWeight.apply(Shard.rows(w, rank, world));
    return withBias(tp, false, weight, () -> upload.apply(Shard.rows(b, rank, world)));
  }

  /**
   * Several column-parallel layers over the same input as one: this rank's rows of each weight, stacked
   * ({@code [w0_rank; w1_rank; …]}), and of each bias likewise, so one GEMM writes
   * {@code (out0_rank | out1_rank | …)} side by side.
   */
  public static ShardedLinear columnStacked(TpGroup tp, List<Tensor> ws, List<Tensor> bs,
      Function<Tensor, Mat> uploadWeight, Function<Tensor, Mat> upload) {
    int rank = tp.rank();
    int world = tp.worldSize();
    List<Tensor> wParts = ws.stream().map(w -> Shard.rows(w, rank, world)).toList();
    List<Tensor> bParts = bs.stream().map(b -> Shard.rows(b, rank, world)).toList();
    Mat weight = uploadWeight.apply(Shard.stackRows(wParts));
    return withBias(tp, false, weight, () -> upload.apply(Shard.stackRows(bParts)));
  }

  /**
   * The input features split: this rank's columns of {@code w} (out, in); the whole bias {@code b} (out). A
   * quantizing {@code uploadWeight} gives each rank's row its own scale, over that rank's columns.
   */
  public static ShardedLinear row(TpGroup tp, Tensor w, Tensor b, Function<Tensor, Mat> uploadWeight,
      Function<Tensor, Mat> upload) {
    Mat weight = uploadWeight.apply(Shard.cols(w, tp.rank(), tp.worldSize()));
    return withBias(tp, true, weight, () -> upload.apply(b));
  }

  /** The layer over an uploaded weight; the weight is closed if the bias's upload fails. */
  private static ShardedLinear withBias(TpGroup tp, boolean reduce, Mat weight,
      java.util.function.Supplier<Mat> bias) {
    try {
      return new ShardedLinear(tp, reduce, weight, bias.get());
    } catch (RuntimeException e) {
      weight.close();
      throw e;
    }
  }

  /**
   * {@code out = x · wᵀ + b (then ReLU if relu)} for this rank's share: column-parallel, this rank's
   * output columns; row-parallel, the full output (all-reduced over the group, so every rank calls it).
   */
  public void forward(Ops ops, Mat out, Mat x, boolean relu) {
    if (reduce && relu) {
      throw new IllegalArgumentException("a row-parallel Linear cannot apply ReLU before its partial sums are reduced");
    }
    ops.linear(out, x, weight, reduce && tp.rank() != 0 ? null : bias, relu);
    if (reduce) {
      tp.allReduce(out);
    }
  }

  /**
   * {@code out = x · wᵀ} without the bias (all-reduced when row-parallel), for an op that adds
   * {@link #bias} fused with what comes next.
   */
  public void project(Ops ops, Mat out, Mat x) {
    ops.linear(out, x, weight, null, false);
    if (reduce) {
      tp.allReduce(out);
    }
  }

  /**
   * The column-parallel q/k/v projection of this rank's heads with its cache append, {@link Ops#qkvProjectAppend}
   * over this rank's stacked weight and bias.
   */
  public void projectAppend(Ops ops, Mat q, KvStore kv, int layer, Mat qkv, Mat x, int[] slots) {
    if (reduce) {
      throw new IllegalStateException("the q/k/v projection is column-parallel; this Linear is row-parallel");
    }
    ops.qkvProjectAppend(q, kv, layer, qkv, x, weight, bias, slots);
  }

  /** The bias: this rank's slice (column-parallel) or the whole bias (row-parallel). */
  public Mat bias() {
    return bias;
  }

  @Override
  public void close() {
    weight.close();
    if (bias != null) {
      bias.close();
    }
  }
}
