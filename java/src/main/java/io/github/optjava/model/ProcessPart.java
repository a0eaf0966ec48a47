package io.github.optjava.model;

import io.github.optjava.backend.Ops;
import io.github.optjava.parallel.TpGroup;

/**
 * What one process of a multi-process model holds: its place in the {@link JobLayout}, its ops (its GPU or
 * its CPU threads), its stage's tensor-parallel group and its slice of the model. Closing frees the model,
 * the group and the ops, in that order.
 */
public record ProcessPart(JobLayout layout, int jobRank, Ops ops, TpGroup group, OptModel model)
    implements AutoCloseable {

  /**
   * Builds this process's slice: stage {@code layout.stageOf(jobRank)}, sliced over {@code group}. On failure
   * the group is closed (the caller closes the ops it made).
   */
  public static ProcessPart load(JobLayout layout, int jobRank, OptConfig config, OptWeights weights, Ops ops,
      io.github.optjava.checkpoint.DType weightDtype, TpGroup group) {
    try {
      OptModel model = new OptModel(config, weights, ops, weightDtype, group,
          OptModel.Stage.of(layout.stageOf(jobRank), layout.stages(), config));
      return new ProcessPart(layout, jobRank, ops, group, model);
    } catch (RuntimeException | Error e) {
      group.close();
      throw e;
    }
  }

  int stage() {
    return layout.stageOf(jobRank);
  }

  /** Layers this part's KV store holds. */
  int layers() {
    return model.stage().endLayer() - model.stage().firstLayer();
  }

  @Override
  public void close() {
    try {
      model.close();
    } finally {
      try {
        group.close();
      } finally {
        ops.close();
      }
    }
  }
}
