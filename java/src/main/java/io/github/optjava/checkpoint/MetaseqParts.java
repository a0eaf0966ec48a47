package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds and opens the model-parallel parts of a metaseq checkpoint directory: {@code reshard-model_part-K.pt}
 * for K = 0..P-1 (one per tensor-parallel rank), or a single {@code reshard.pt} (opt-350m's release). Each
 * part is a torch.save archive of {@code {"model": state dict, "cfg": ..., ...}}; only the {@code "model"}
 * tensors are kept, read through the restricted unpickler in {@link PickleReader.Mode#METASEQ}.
 */
final class MetaseqParts {
  private MetaseqParts() {}

  private static final Pattern PART = Pattern.compile("reshard-model_part-(\\d{1,4})\\.pt");
  private static final Pattern RAW_SHARD = Pattern.compile(".*-shard\\d+\\.pt");
  static final String SINGLE = "reshard.pt";

  /** The part files of {@code dir} in part order; a CheckpointException if none, or if some are missing. */
  static List<Path> find(Path dir) {
    if (!Files.isDirectory(dir)) {
      throw new CheckpointException("metaseq checkpoint directory " + dir + (Files.exists(dir)
          ? " is not a directory" : " does not exist"));
    }
    TreeMap<Integer, Path> parts = new TreeMap<>();
    boolean single = false;
    boolean rawShards = false;
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
      for (Path f : files) {
        String name = f.getFileName().toString();
        Matcher m = PART.matcher(name);
        if (m.matches()) {
          int k = Integer.parseInt(m.group(1));
          Path other = parts.put(k, f);
          if (other != null) { // reshard-model_part-0.pt and -00.pt: which one is part 0 would depend on listing order
            throw new CheckpointException(dir + " holds two files for part " + k + " ("
                + other.getFileName() + ", " + name + "): ambiguous; keep one file per part");
          }
        } else if (name.equals(SINGLE)) {
          single = true;
        } else if (RAW_SHARD.matcher(name).matches()) {
          rawShards = true;
        }
      }
    } catch (IOException e) {
      throw new CheckpointException("cannot list " + dir + ": " + e.getMessage(), e);
    }
    if (parts.isEmpty()) {
      if (single) {
        return List.of(dir.resolve(SINGLE));
      }
      throw new CheckpointException(dir + " holds no reshard-model_part-K.pt or reshard.pt file" + (rawShards
          ? "; it holds raw FSDP shards (*-shardN.pt): " + consolidateHint()
          : ": pass the directory of metaseq's resharded OPT files"));
    }
    if (single) {
      throw new CheckpointException(dir + " holds both reshard.pt and reshard-model_part-K.pt files: ambiguous; "
          + "keep the files of one checkpoint per directory");
    }
    List<Integer> missing = new ArrayList<>();
    for (int k = 0; k <= parts.lastKey(); k++) {
      if (!parts.containsKey(k)) {
        missing.add(k);
      }
    }
    if (!missing.isEmpty()) {
      throw new CheckpointException(dir + " holds model parts " + firstOf(parts.keySet()) + " but not "
          + firstOf(missing)
          + ": every part reshard-model_part-0.pt .. reshard-model_part-" + parts.lastKey()
          + ".pt is needed (each holds a slice of every layer); download the missing ones");
    }
    return List.copyOf(parts.values());
  }

  /** {@code [0, 1, 2]}, or the first 20 and a count: a lone part 9999 misses 9999 parts. */
  private static String firstOf(java.util.Collection<Integer> parts) {
    List<Integer> all = new ArrayList<>(parts);
    return all.size() <= 20 ? all.toString()
        : all.subList(0, 20).toString().replace("]", ", … " + all.size() + " in all]");
  }

  /** Opens one part and keeps the tensors of its {@code "model"} entry. */
  static PytorchCheckpoint open(Path part) {
    return PytorchCheckpoint.open(part, PickleReader.Mode.METASEQ, MetaseqParts::modelEntry);
  }

  /** How to turn FSDP-flattened parts into ones this converter reads. */
  static String consolidateHint() {
    return "consolidate each model part first with metaseq's reshard_fsdp script, e.g. python -m "
        + "metaseq.scripts.reshard_fsdp --input \"<dir>/checkpoint_last-model_part-K-shard*.pt\" --output "
        + "\"<out>/reshard-model_part-K.pt\" --num-output-shards 1 --skip-optimizer-state True "
        + "--unflatten-weights True (for K = 0..P-1), then convert <out>";
  }

  private static PickleValue.Dict modelEntry(Object root) {
    if (!(root instanceof PickleValue.Dict top)) {
      throw new CheckpointException("the pickle holds a " + PickleValue.describe(root) + ", not the dict "
          + "{'model': ..., 'cfg': ...} a metaseq checkpoint holds");
    }
    Object model = top.items().get("model");
    if (!(model instanceof PickleValue.Dict weights)) {
      throw new CheckpointException(model == null
          ? "the checkpoint dict has no 'model' entry: not a metaseq checkpoint (a plain state dict? open it "
              + "as a Hugging Face pytorch_model.bin instead)"
          : "the checkpoint's 'model' entry is a " + PickleValue.describe(model) + ", not a dict of tensors");
    }
    for (var e : weights.items().entrySet()) {
      if (e.getValue() instanceof PickleValue.Opaque o) {
        throw new CheckpointException("weight " + Untrusted.quote(String.valueOf(e.getKey())) + " is a "
            + PickleValue.describe(o) + ": OPT weights are read as F16, BF16 or F32");
      }
    }
    return weights;
  }
}
