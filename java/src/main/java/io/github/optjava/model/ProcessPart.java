package io.github.optjava.model;

import io.github.optjava.backend.Ops;
import io.github.optjava.parallel.StageTransport;
import io.github.optjava.parallel.TpGroup;

/**
 * What one process of a multi-process model holds: its place in the {@link JobLayout}, its ops (its GPU or
 * its CPU threads), its stage's tensor-parallel group, how hidden states reach the other stages, and its slice
 * of the model. Closing frees the model, the transport, the group and the ops, in that order.
 */
public record ProcessPart(JobLayout layout, int jobRank, Ops ops, TpGroup group, StageTransport transport,
    OptModel model) implements AutoCloseable {

  /**
   * Builds this process's slice: stage {@code layout.stageOf(jobRank)}, sliced over {@code group}. On failure
   * the group and the transport are closed (the caller closes the ops it made).
   */
  public static ProcessPart load(JobLayout layout, int jobRank, OptConfig config, OptWeights weights, Ops ops,
      io.github.optjava.checkpoint.DType weightDtype, TpGroup group, StageTransport transport) {
    try {
      OptModel model = new OptModel(config, weights, ops, weightDtype, group,
          OptModel.Stage.of(layout.stageOf(jobRank), layout.stages(), config));
      return new ProcessPart(layout, jobRank, ops, group, transport, model);
    } catch (RuntimeException | Error e) {
      transport.close();
      group.close();
      throw e;
    }
  }

  /**
   * This part's input and output for one micro-batch: hidden states from the previous stage's rank 0, and (as
   * its stage's rank 0) to every rank of the next stage.
   */
  OptModel.StageIo io() {
    int stage = stage();
    int from = stage > 0 ? layout.jobRank(stage - 1, 0) : -1;
    int[] to = layout.rankInStage(jobRank) == 0 && stage < layout.stages() - 1 ? layout.stageMembers(stage + 1)
        : new int[0];
    return new OptModel.StageIo() {
      @Override
      public void receive(Ops o, io.github.optjava.backend.Mat x) {
        transport.receive(o, x, from);
      }

      @Override
      public void send(Ops o, io.github.optjava.backend.Mat x) {
        transport.send(o, x, to);
      }
    };
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
        transport.close();
        group.close();
      } finally {
        ops.close();
      }
    }
  }
}
