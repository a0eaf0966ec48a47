package io.github.optjava.parallel;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;

/**
 * How pipeline stages in different processes hand hidden states on: {@link MeshStageTransport} over the job's
 * TCP links (through the host), or NCCL send/recv between GPUs ({@code NcclStageTransport}). Every pair of
 * processes calls {@link #send} and {@link #receive} in the same order, each from its part's thread.
 */
public interface StageTransport extends AutoCloseable {

  /** Fills {@code x} (on this process's backend) with what job rank {@code from} sends. */
  void receive(Ops ops, Mat x, int from);

  /** Sends {@code x} to every job rank in {@code to}. */
  void send(Ops ops, Mat x, int[] to);

  /** Makes transfers waiting on other threads give up (a rank failed); unusable afterwards. Default: nothing. */
  default void abort() {}

  @Override
  void close();
}
