package io.github.optjava.checkpoint;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;

/**
 * Finds and opens the weights of a Hugging Face model directory. The files are tried in the order
 * Hugging Face prefers them: safetensors before PyTorch pickles, a single file before a sharded index.
 */
public final class Checkpoints {

  /** One kind of weights file and how to open it. */
  private record Candidate(String fileName, Function<Path, Checkpoint> opener) {
    Path in(Path dir) {
      return dir.resolve(fileName);
    }
  }

  private static final List<Candidate> CANDIDATES = List.of(
      new Candidate("model.safetensors", SafetensorsCheckpoint::open),
      new Candidate("model.safetensors.index.json",
          index -> ShardedCheckpoint.open(index, SafetensorsCheckpoint::open)),
      new Candidate("pytorch_model.bin", PytorchCheckpoint::open),
      new Candidate("pytorch_model.bin.index.json",
          index -> ShardedCheckpoint.open(index, PytorchCheckpoint::open)));

  private Checkpoints() {}

  /**
   * The weights file {@link #open} would use: the first of {@code model.safetensors},
   * {@code model.safetensors.index.json}, {@code pytorch_model.bin}, {@code pytorch_model.bin.index.json}
   * that exists in the directory.
   *
   * @throws CheckpointException if the directory does not exist or holds none of them
   */
  public static Path weightsFile(Path modelDir) {
    return find(modelDir).in(modelDir);
  }

  /**
   * Opens the weights of a model directory (see {@link #weightsFile} for which file), validating every
   * header before returning.
   *
   * @throws CheckpointException if the directory does not exist, holds no weights file, or the weights
   *     are malformed
   */
  public static Checkpoint open(Path modelDir) {
    Candidate c = find(modelDir);
    return c.opener().apply(c.in(modelDir));
  }

  private static Candidate find(Path modelDir) {
    if (!Files.isDirectory(modelDir)) {
      String problem = Files.exists(modelDir) ? "is not a directory" : "does not exist";
      throw new CheckpointException("model directory " + modelDir + " " + problem
          + ": pass a directory containing config.json and weights, or a Hugging Face id such as facebook/opt-125m");
    }
    for (Candidate c : CANDIDATES) {
      if (Files.isRegularFile(c.in(modelDir))) {
        return c;
      }
    }
    StringBuilder names = new StringBuilder();
    for (Candidate c : CANDIDATES) {
      names.append(names.length() == 0 ? "" : ", ").append(c.fileName());
    }
    boolean otherFramework =
        Files.exists(modelDir.resolve("tf_model.h5")) || Files.exists(modelDir.resolve("flax_model.msgpack"));
    String hint = otherFramework
        ? " (TensorFlow and Flax weights are not supported: convert them to safetensors)"
        : " (an interrupted download leaves only config and tokenizer files: download again)";
    throw new CheckpointException("model directory " + modelDir + " has no weights: looked for " + names + hint);
  }
}
