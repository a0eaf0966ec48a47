package io.github.optjava.model;

/**
 * Where each process of a multi-process model sits: {@code stages × tp} processes, job rank
 * {@code stage * tp + rank}; job rank 0 (stage 0, rank 0) is the driver that runs the engine.
 */
public record JobLayout(int stages, int tp) {

  public JobLayout {
    if (stages < 1 || tp < 1) {
      throw new IllegalArgumentException("a job of " + stages + " stages × " + tp + " ranks");
    }
  }

  /** Checks the launcher started as many processes as the layout needs. */
  public void requireWorld(int worldSize) {
    if (worldSize != stages * tp) {
      throw new IllegalArgumentException("pipeline " + stages + " × tensor-parallel " + tp + " needs " + stages * tp
          + " processes, the launcher started " + worldSize + " (WORLD_SIZE or its launcher's twin): start "
          + stages * tp + " or change --pipeline-parallel / --tensor-parallel");
    }
  }

  public int stageOf(int jobRank) {
    return jobRank / tp;
  }

  public int rankInStage(int jobRank) {
    return jobRank % tp;
  }

  public int jobRank(int stage, int rank) {
    return stage * tp + rank;
  }

  /** The job ranks of a stage's tensor-parallel group, in group-rank order. */
  public int[] stageMembers(int stage) {
    int[] out = new int[tp];
    for (int r = 0; r < tp; r++) {
      out[r] = jobRank(stage, r);
    }
    return out;
  }

  /**
   * Every link job rank {@code jobRank} uses, as {peer, {@link io.github.optjava.parallel.Mesh.Channel} ordinal}:
   * commands with the driver, collectives with its stage's other ranks, hidden states from the previous stage's
   * rank 0 and (as a stage's rank 0) to every rank of the next stage, logits from the last stage's rank 0 to
   * the driver. Opened together at start-up ({@code Mesh.open}).
   */
  public java.util.List<int[]> links(int jobRank) {
    int control = io.github.optjava.parallel.Mesh.Channel.CONTROL.ordinal();
    int collective = io.github.optjava.parallel.Mesh.Channel.COLLECTIVE.ordinal();
    int activations = io.github.optjava.parallel.Mesh.Channel.ACTIVATIONS.ordinal();
    java.util.List<int[]> out = new java.util.ArrayList<>();
    int stage = stageOf(jobRank);
    boolean leader = rankInStage(jobRank) == 0;
    if (jobRank != 0) {
      out.add(new int[] {0, control});
    } else {
      for (int w = 1; w < stages * tp; w++) {
        out.add(new int[] {w, control});
      }
    }
    for (int peer : stageMembers(stage)) {
      if (peer != jobRank) {
        out.add(new int[] {peer, collective});
      }
    }
    if (stage > 0) {
      out.add(new int[] {jobRank(stage - 1, 0), activations});
    }
    if (leader && stage < stages - 1) {
      for (int peer : stageMembers(stage + 1)) {
        out.add(new int[] {peer, activations});
      }
    }
    if (stages > 1 && jobRank == lastStageLeader()) {
      out.add(new int[] {0, activations});
    }
    if (stages > 1 && jobRank == 0) {
      out.add(new int[] {lastStageLeader(), activations});
    }
    return out;
  }

  /** The process that sends the logits to the driver: the last stage's rank 0. */
  public int lastStageLeader() {
    return jobRank(stages - 1, 0);
  }
}
