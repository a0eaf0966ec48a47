package io.github.optjava.parallel;

import io.github.optjava.backend.Mat;

/**
 * One rank's view of a tensor-parallel group (Megatron style: column-parallel q/k/v and fc1,
 * row-parallel out_proj and fc2 followed by {@link #allReduce}). Every rank calls the collectives in the
 * same order, each from its own thread. At world size 1 every collective is a no-op.
 */
public interface TpGroup extends AutoCloseable {

  int rank();

  int worldSize();

  /** In place: {@code m} becomes the element-wise sum of every rank's {@code m}. */
  void allReduce(Mat m);

  /**
   * {@code out} receives every rank's {@code in}, one after another in rank order (so {@code out} has
   * {@code worldSize × in.rows()} rows of {@code in.cols()}).
   */
  void allGather(Mat out, Mat in);

  /**
   * Whether the collectives do any work (a communicator to call): decode steps are then not replayed as
   * CUDA graphs, whose capture cannot contain NCCL calls on another stream. Default: above one rank.
   */
  default boolean communicates() {
    return worldSize() > 1;
  }

  /**
   * Makes every collective of this group that waits on another thread give up with an error, now and later:
   * called when one rank failed, so that its peers do not wait for it forever (NCCL has no timeout of its own).
   * The group is unusable afterwards. Default: nothing to wake.
   */
  default void abort() {}

  @Override
  void close();

  /** The group of a single rank: collectives do nothing (allGather copies nothing either: out must be in). */
  static TpGroup single() {
    return new TpGroup() {
      @Override
      public int rank() {
        return 0;
      }

      @Override
      public int worldSize() {
        return 1;
      }

      @Override
      public void allReduce(Mat m) {}

      @Override
      public void allGather(Mat out, Mat in) {
        if (out != in) {
          throw new IllegalArgumentException("at world size 1, allGather's output is its input: pass the same matrix");
        }
      }

      @Override
      public void close() {}
    };
  }
}
