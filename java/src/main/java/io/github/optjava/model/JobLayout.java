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

  /** The process that sends the logits to the driver: the last stage's rank 0. */
  public int lastStageLeader() {
    return jobRank(stages - 1, 0);
  }
}
