package io.github.optjava.checkpoint;

import java.util.Locale;

/** Storage type of a checkpoint tensor. Names follow safetensors ({@code F16}, {@code BF16}, {@code F32}). */
public enum DType {
  F16(2),
  BF16(2),
  F32(4);

  private final int bytes;

  DType(int bytes) {
    this.bytes = bytes;
  }

  /** Bytes per element. */
  public int bytes() {
    return bytes;
  }

  /**
   * Parses a safetensors dtype name; anything else (including dtypes that OPT checkpoints never use,
   * such as I64 or F8_E4M3) is rejected with a message naming what is supported.
   */
  public static DType fromSafetensors(String name) {
    if (name != null) {
      switch (name.toUpperCase(Locale.ROOT)) {
        case "F16": return F16;
        case "BF16": return BF16;
        case "F32": return F32;
        default: break;
      }
    }
    // The name comes from the file: quoted and cut (Untrusted), as any text from a file in a message.
    throw new CheckpointException("unsupported tensor dtype " + (name == null ? "null" : Untrusted.quote(name))
        + ": OPT checkpoints are read as F16, BF16 or F32; convert the checkpoint to one of these");
  }
}
