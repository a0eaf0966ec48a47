package io.github.optjava.checkpoint;

import java.nio.file.Path;

/** PyTorch {@code pytorch_model.bin} (zip) reader. PLACEHOLDER: being written. */
public final class PytorchCheckpoint {
  private PytorchCheckpoint() {}

  /** Opens and fully validates one .bin file. */
  public static Checkpoint open(Path file) {
    throw new UnsupportedOperationException("not yet written");
  }
}
