package io.github.optjava.parallel;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;

/**
 * Hidden states between stages over the job's {@link Mesh} ({@link Mesh.Channel#ACTIVATIONS} links), as float
 * arrays through the host: the CPU backend's transport (and a GPU's when NCCL is not used).
 */
public final class MeshStageTransport implements StageTransport {
  private final Mesh mesh;

  public MeshStageTransport(Mesh mesh) {
    this.mesh = mesh;
  }

  @Override
  public void receive(Ops ops, Mat x, int from) {
    float[] v = mesh.link(from, Mesh.Channel.ACTIVATIONS).readFloats();
    if (v.length != (long) x.rows() * x.cols()) {
      throw new IllegalStateException("rank " + from + " sent " + v.length + " hidden values for " + x.rows()
          + " tokens × " + x.cols() + ": the ranks disagree on the step");
    }
    ops.write(x, v);
  }

  @Override
  public void send(Ops ops, Mat x, int[] to) {
    if (to.length == 0) {
      return;
    }
    float[] v = ops.read(x);
    for (int peer : to) {
      Mesh.Link link = mesh.link(peer, Mesh.Channel.ACTIVATIONS);
      link.writeFloats(v);
      link.flush();
    }
  }

  /** The links belong to the mesh, which its owner closes. */
  @Override
  public void close() {}
}
