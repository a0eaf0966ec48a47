package io.github.optjava.api;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;

/** Picks the CPU implementation of the ops. */
final class CpuBackends {
  private CpuBackends() {}

  static Ops create(int threads) {
    return new CpuOps();
  }
}
