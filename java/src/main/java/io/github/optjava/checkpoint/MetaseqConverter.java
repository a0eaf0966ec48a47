package io.github.optjava.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * Converts a metaseq OPT checkpoint (the {@code reshard-model_part-K.pt} files of Meta's release, see
 * {@link MetaseqParts}) into a Hugging Face model directory: {@code config.json}, sharded safetensors
 * {@code model-0000i-of-0000n.safetensors} and {@code model.safetensors.index.json}, which
 * {@link Checkpoints#open} reads like any Hugging Face OPT.
 *
 * <p>Memory: the parts are memory-mapped, never read whole. Output tensors are produced one at a time by
 * streaming the slices of every part straight into the output file in small chunks ({@link SafetensorsWriter}),
 * so the heap holds a few megabytes whatever the model size. Names, merges and the config follow
 * {@link MetaseqLayout} and {@link MetaseqConfig}; docs/metaseq.md summarises them.
 */
public final class MetaseqConverter {

  /**
   * What to produce.
   *
   * @param numHeads      attention heads; empty to take them from the released OPT sizes by hidden size
   * @param dtype         dtype of the written weights (metaseq stores fp16; layer norms sometimes fp32)
   * @param maxShardBytes tensor bytes per safetensors file at most (a larger tensor gets a file of its own)
   * @param postLayerNorm the model is post-LN (opt-350m): its layer norms follow each residual add
   */
  public record Options(OptionalInt numHeads, DType dtype, long maxShardBytes, boolean postLayerNorm) {
    /** Hugging Face's default shard size for save_pretrained. */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    public Options {
      if (maxShardBytes <= 0) {
        throw new IllegalArgumentException("the maximum shard size must be positive, got " + maxShardBytes);
      }
    }

    /** fp16, 5 GB shards, heads from the known OPT sizes, pre-LN. */
    public static Options defaults() {
      return new Options(OptionalInt.empty(), DType.F16, DEFAULT_MAX_SHARD_BYTES, false);
    }
  }

  /**
   * What was written.
   *
   * @param parts      model-parallel parts read
   * @param tensors    tensors written
   * @param shards     safetensors files written
   * @param totalBytes tensor bytes written
   * @param config     the config.json fields
   */
  public record Result(int parts, int tensors, int shards, long totalBytes, Map<String, Object> config) {}

  static final String INDEX = "model.safetensors.index.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private MetaseqConverter() {}

  /**
   * Converts the checkpoint in {@code input} into {@code output} (created if missing; it must not already hold
   * a model). Every check that can fail (missing parts, parts that disagree, flattened FSDP parameters, unknown
   * weights, an unknown head count) runs before anything is written; if writing fails, the files written so
   * far are removed.
   *
   * @param progress receives one line per written file
   * @throws CheckpointException saying what is wrong and what to do
   */
  public static Result convert(Path input, Path output, Options options, Consumer<String> progress) {
    List<Path> files = MetaseqParts.find(input);
    checkOutput(output);
    List<PytorchCheckpoint> parts = new ArrayList<>();
    try {
      for (Path f : files) {
        parts.add(MetaseqParts.open(f));
      }
      List<String> names = checkPartsAgree(parts, files);
      List<MetaseqLayout.Planned> plan = MetaseqLayout.plan(names);
      checkOutputProjectionTied(parts, files);
      List<TensorInfo> outputs = new ArrayList<>();
      Map<String, long[]> shapes = new LinkedHashMap<>();
      for (MetaseqLayout.Planned p : plan) {
        long[] shape = mergedShape(p, parts.get(0).tensor(p.source()).info(), parts.size());
        TensorInfo info = new TensorInfo(p.name(), options.dtype(), shape);
        checkFitsOneBuffer(info);
        outputs.add(info);
        shapes.put(p.name(), shape);
      }
      Map<String, Object> config = MetaseqConfig.infer(shapes, parts.size(), options.numHeads(),
          options.postLayerNorm(), options.dtype());
      List<List<Integer>> shards = shardPlan(outputs, options.maxShardBytes());
      long total = write(output, plan, outputs, shards, parts, config, progress);
      return new Result(parts.size(), outputs.size(), shards.size(), total, config);
    } finally {
      for (PytorchCheckpoint p : parts) {
        p.close();
      }
    }
  }

  /** The shard file name Hugging Face uses, e.g. {@code model-00001-of-00003.safetensors}. */
  static String shardName(int index, int count) {
    return String.format("model-%05d-of-%05d.safetensors", index + 1, count);
  }

  /** Every part must hold the same weights with the same shapes: Megatron splits evenly. */
  private static List<String> checkPartsAgree(List<PytorchCheckpoint> parts, List<Path> files) {
    Map<String, TensorInfo> first = new TreeMap<>();
    for (TensorInfo t : parts.get(0).tensors()) {
      first.put(t.name(), t);
    }
    for (int k = 1; k < parts.size(); k++) {
      Map<String, TensorInfo> other = new TreeMap<>();
      for (TensorInfo t : parts.get(k).tensors()) {
        other.put(t.name(), t);
      }
      if (!other.keySet().equals(first.keySet())) {
        List<String> onlyFirst = new ArrayList<>(first.keySet());
        onlyFirst.removeAll(other.keySet());
        List<String> onlyOther = new ArrayList<>(other.keySet());
        onlyOther.removeAll(first.keySet());
        throw new CheckpointException(files.get(k) + " holds other weights than " + files.get(0) + " (only in "
            + "part 0: " + MetaseqLayout.list(onlyFirst) + "; only in part " + k + ": "
            + MetaseqLayout.list(onlyOther) + "): the parts come from different checkpoints");
      }
      for (TensorInfo t : first.values()) {
        long[] s = other.get(t.name()).shape();
        if (!Arrays.equals(s, t.shape())) {
          throw new CheckpointException(files.get(k) + ": weight " + Untrusted.quote(t.name()) + " has shape "
              + Arrays.toString(s) + " but " + Arrays.toString(t.shape()) + " in part 0; every model-parallel "
              + "part holds an equal slice: the parts come from different checkpoints or parallel sizes");
        }
      }
    }
    return new ArrayList<>(first.keySet());
  }

  /**
   * OPT ties its output projection to the token embedding (Hugging Face drops the copy). A checkpoint whose
   * projection holds other values would lose them silently, so it is refused.
   */
  private static void checkOutputProjectionTied(List<PytorchCheckpoint> parts, List<Path> files) {
    String embed = MetaseqLayout.EMBED_TOKENS;
    String projection = MetaseqLayout.OUTPUT_PROJECTION;
    for (int k = 0; k < parts.size(); k++) {
      PytorchCheckpoint p = parts.get(k);
      // Without embed_tokens there is nothing to compare with; MetaseqConfig then names the missing weight
      // (fetching it here failed with a bare "no tensor named 'decoder.embed_tokens.weight'").
      if (!p.contains(projection) || !p.contains(embed) || p.sameView(embed, projection)) {
        continue;
      }
      Tensor a = p.tensor(embed);
      Tensor b = p.tensor(projection);
      if (a.dtype() != b.dtype() || !Arrays.equals(a.shape(), b.shape()) || !a.data().equals(b.data())) {
        throw new CheckpointException(files.get(k) + ": " + projection + " differs from " + embed + "; OPT "
            + "ties them and Hugging Face's OPT has no separate output projection, so this checkpoint cannot be "
            + "converted");
      }
    }
  }

  /** The full shape of a planned tensor from one part's slice (all parts have equal slices). */
  static long[] mergedShape(MetaseqLayout.Planned p, TensorInfo slice, int parts) {
    long[] s = slice.shape();
    String what = "weight " + Untrusted.quote(slice.name()) + " of shape " + Arrays.toString(s);
    for (long d : s) {
      if (d < 1) { // (a zero-size weight passes the data checks, and its merge would loop over 2^40 empty rows)
        throw new CheckpointException(what + " has an empty dimension: no OPT weight does");
      }
    }
    try {
      return merged(p, s, parts, what);
    } catch (ArithmeticException e) {
      throw new CheckpointException(what + " over " + parts + " parts overflows a shape", e);
    }
  }

  private static long[] merged(MetaseqLayout.Planned p, long[] s, int parts, String what) {
    switch (p.merge()) {
      case REPLICATED -> {
        return s;
      }
      case ROWS -> {
        requireDims(what, s, 1, 2);
        s[0] = Math.multiplyExact(s[0], parts);
      }
      case COLUMNS -> {
        requireDims(what, s, 2, 2);
        s[1] = Math.multiplyExact(s[1], parts);
      }
      case KEY, VALUE, QUERY -> {
        requireDims(what, s, 1, 2);
        if (s[0] % 3 != 0) {
          throw new CheckpointException(what + " cannot be split into K, V and Q thirds");
        }
        s[0] = Math.multiplyExact(s[0] / 3, parts);
      }
    }
    return s;
  }

  private static void requireDims(String what, long[] s, int min, int max) {
    if (s.length < min || s.length > max) {
      throw new CheckpointException(what + " has " + s.length + " dimensions; expected " + min
          + (max == min ? "" : " or " + max));
    }
  }

  /** The loader maps each tensor as one Java buffer, so a tensor above 2 GiB could be written but not read. */
  private static void checkFitsOneBuffer(TensorInfo t) {
    if (t.byteSize() > Integer.MAX_VALUE) {
      throw new CheckpointException("output tensor " + t + " would have " + t.byteSize() + " bytes, more "
          + "than one tensor may have (2 GiB) for this library to load it: convert with --dtype f16 or bf16");
    }
  }

  /** Groups tensors (kept in order) into shards of at most {@code max} bytes each. */
  static List<List<Integer>> shardPlan(List<TensorInfo> tensors, long max) {
    List<List<Integer>> shards = new ArrayList<>();
    List<Integer> current = new ArrayList<>();
    long size = 0;
    for (int i = 0; i < tensors.size(); i++) {
      long bytes = tensors.get(i).byteSize();
      if (!current.isEmpty() && size + bytes > max) {
        shards.add(current);
        current = new ArrayList<>();
        size = 0;
      }
      current.add(i);
      size += bytes;
    }
    if (!current.isEmpty()) {
      shards.add(current);
    }
    return shards;
  }

  private static void checkOutput(Path output) {
    if (Files.exists(output) && !Files.isDirectory(output)) {
      throw new CheckpointException("output " + output + " exists and is not a directory");
    }
    if (!Files.isDirectory(output)) {
      return;
    }
    try (DirectoryStream<Path> files = Files.newDirectoryStream(output)) {
      for (Path f : files) {
        String n = f.getFileName().toString();
        if (n.equals("config.json") || n.endsWith(".safetensors") || n.equals(INDEX) || n.startsWith("pytorch_model")) {
          throw new CheckpointException("output directory " + output + " already holds a model (" + n + "): "
              + "choose a new or empty directory (tokenizer files may be there already)");
        }
      }
    } catch (IOException e) {
      throw new CheckpointException("cannot list " + output + ": " + e.getMessage(), e);
    }
  }

  /** Writes the shards, then the index, then config.json (so a directory with a config is complete). */
  private static long write(Path output, List<MetaseqLayout.Planned> plan, List<TensorInfo> outputs,
      List<List<Integer>> shards, List<PytorchCheckpoint> parts, Map<String, Object> config,
      Consumer<String> progress) {
    List<Path> written = new ArrayList<>();
    try {
      Files.createDirectories(output);
      Map<String, String> weightMap = new TreeMap<>();
      long total = 0;
      for (int s = 0; s < shards.size(); s++) {
        String name = shardName(s, shards.size());
        List<TensorInfo> infos = new ArrayList<>();
        for (int i : shards.get(s)) {
          infos.add(outputs.get(i));
        }
        Path file = output.resolve(name);
        written.add(file);
        try (SafetensorsWriter w = SafetensorsWriter.create(file, infos)) {
          for (int i : shards.get(s)) {
            MetaseqLayout.Planned p = plan.get(i);
            stream(p, parts, w);
            w.endTensor(p.name());
            weightMap.put(p.name(), name);
            total += outputs.get(i).byteSize();
          }
        }
        progress.accept("wrote " + file + " (" + infos.size() + " tensors)");
      }
      Map<String, Object> index = new LinkedHashMap<>();
      index.put("metadata", Map.of("total_size", total));
      index.put("weight_map", weightMap);
      Path indexFile = output.resolve(INDEX);
      written.add(indexFile);
      JSON.writerWithDefaultPrettyPrinter().writeValue(indexFile.toFile(), index);
      Path configFile = output.resolve("config.json");
      written.add(configFile);
      JSON.writerWithDefaultPrettyPrinter().writeValue(configFile.toFile(), config);
      progress.accept("wrote " + indexFile + " and " + configFile);
      return total;
    } catch (IOException | RuntimeException e) {
      for (Path f : written) {
        try {
          Files.deleteIfExists(f);
        } catch (IOException ignored) {
          // Best effort: the error below is what matters.
        }
      }
      if (e instanceof CheckpointException c) {
        throw c;
      }
      throw new CheckpointException("writing " + output + " failed: " + e.getMessage()
          + "; the files written so far were removed", e);
    }
  }

  /** Streams one output tensor: the slices of its source weight from every part, in part order. */
  private static void stream(MetaseqLayout.Planned p, List<PytorchCheckpoint> parts, SafetensorsWriter w)
      throws IOException {
    switch (p.merge()) {
      case REPLICATED -> {
        Tensor t = parts.get(0).tensor(p.source());
        w.write(t.data(), t.dtype());
      }
      case ROWS -> {
        for (PytorchCheckpoint part : parts) {
          Tensor t = part.tensor(p.source());
          w.write(t.data(), t.dtype());
        }
      }
      case KEY, VALUE, QUERY -> {
        // Each part's fused rows are its own [K; V; Q]: take this third of every part, in part order.
        for (PytorchCheckpoint part : parts) {
          Tensor t = part.tensor(p.source());
          ByteBuffer data = t.data();
          int third = data.remaining() / 3;
          w.write(data.slice(p.merge().third() * third, third), t.dtype());
        }
      }
      case COLUMNS -> {
        // Row-parallel: output row r is part 0's row r, then part 1's row r, ...
        List<Tensor> slices = new ArrayList<>();
        for (PytorchCheckpoint part : parts) {
          slices.add(part.tensor(p.source()));
        }
        long rows = slices.get(0).shape()[0];
        for (long r = 0; r < rows; r++) { // (rows ≥ 1 and each row's bytes fit a buffer: mergedShape, the data checks)
          for (Tensor t : slices) {
            ByteBuffer data = t.data();
            int rowBytes = (int) (data.remaining() / rows);
            w.write(data.slice((int) (r * rowBytes), rowBytes), t.dtype());
          }
        }
      }
    }
  }
}
