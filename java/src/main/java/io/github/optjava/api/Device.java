package io.github.optjava.api;

/** Where a {@link Generator} runs. */
public enum Device {
  /** CUDA when it is usable here, else the CPU (the reason is logged in one line). */
  AUTO,
  /** The pure-Java CPU backend (multithreaded). */
  CPU,
  /** NVIDIA GPUs; fails with an actionable message when CUDA is not usable. */
  CUDA
}
