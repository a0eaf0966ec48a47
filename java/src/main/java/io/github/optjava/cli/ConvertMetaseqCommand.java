package io.github.optjava.cli;

import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.MetaseqConverter;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptWeights;
import java.nio.file.Path;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/**
 * {@code opt convert-metaseq --input DIR --output DIR}: converts Meta's metaseq OPT release
 * ({@code reshard-model_part-K.pt}, e.g. OPT-175B's 8 parts) into a Hugging Face model directory that every
 * other command opens; see docs/metaseq.md. The work is {@link MetaseqConverter}'s; this checks the result
 * loads as an OPT model and prints what was written.
 */
@Command(name = "convert-metaseq", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Convert a metaseq OPT checkpoint (reshard-model_part-K.pt files, or reshard.pt) into a Hugging Face "
        + "model directory (config.json, sharded safetensors, model.safetensors.index.json).",
    "Streams one tensor at a time: memory use stays small whatever the model size. Tokenizer files are not "
        + "written: copy vocab.json and merges.txt of facebook/opt-125m (all OPT sizes share them)."})
final class ConvertMetaseqCommand implements Callable<Integer> {

  private static final Pattern SIZE = Pattern.compile("([0-9]+)\\s*(B|KB|MB|GB|KIB|MIB|GIB)?");

  @ParentCommand
  Main parent;

  @Option(names = "--input", required = true, paramLabel = "DIR",
      description = "Directory holding reshard-model_part-0.pt .. reshard-model_part-(P-1).pt (or reshard.pt).")
  Path input;

  @Option(names = "--output", required = true, paramLabel = "DIR",
      description = "Directory to write (created; must not already hold a model).")
  Path output;

  @Option(names = "--num-heads", paramLabel = "N",
      description = "Attention heads; needed only for sizes other than the released OPT models.")
  Integer numHeads;

  @Option(names = "--dtype", defaultValue = "f16", paramLabel = "f16|bf16|f32",
      description = "dtype of the written weights. Default: ${DEFAULT-VALUE} (the release's own).")
  String dtype;

  @Option(names = "--max-shard-size", defaultValue = "5GB", paramLabel = "SIZE",
      description = "Largest safetensors file, e.g. 5GB, 500MB, 2GiB or bytes. Default: ${DEFAULT-VALUE}.")
  String maxShardSize;

  @Option(names = "--post-layer-norm",
      description = "The model applies layer norm after each residual add (opt-350m); required when the "
          + "checkpoint has no final decoder.layer_norm.")
  boolean postLayerNorm;

  @Override
  public Integer call() {
    MetaseqConverter.Options options = new MetaseqConverter.Options(
        numHeads == null ? OptionalInt.empty() : OptionalInt.of(numHeads), parseDtype(dtype),
        parseSize(maxShardSize), postLayerNorm);
    MetaseqConverter.Result r = MetaseqConverter.convert(input, output, options, parent.err::println);
    // The loader's own checks on the result: every tensor config.json implies, with its shape.
    OptConfig config = OptConfig.load(output);
    try (Checkpoint checkpoint = Checkpoints.open(output)) {
      new OptWeights(config, checkpoint);
    }
    parent.out.printf("converted %d model part(s) of %s into %s: %d tensors, %d file(s), %d bytes, %d layers, "
        + "hidden %d, %d heads%n", r.parts(), input, output, r.tensors(), r.shards(), r.totalBytes(),
        config.numHiddenLayers(), config.hiddenSize(), config.numAttentionHeads());
    return 0;
  }

  static DType parseDtype(String s) {
    return switch (s.toLowerCase(Locale.ROOT)) {
      case "f16", "fp16", "float16" -> DType.F16;
      case "bf16", "bfloat16" -> DType.BF16;
      case "f32", "fp32", "float32" -> DType.F32;
      default -> throw new IllegalArgumentException("--dtype " + s + " is not one of f16, bf16, f32");
    };
  }

  static long parseSize(String s) {
    Matcher m = SIZE.matcher(s.strip().toUpperCase(Locale.ROOT));
    if (!m.matches()) {
      throw new IllegalArgumentException("--max-shard-size " + s + " is not a size such as 5GB, 500MB or 2GiB");
    }
    long unit = switch (m.group(2) == null ? "B" : m.group(2)) {
      case "KB" -> 1_000L;
      case "MB" -> 1_000_000L;
      case "GB" -> 1_000_000_000L;
      case "KIB" -> 1L << 10;
      case "MIB" -> 1L << 20;
      case "GIB" -> 1L << 30;
      default -> 1L;
    };
    try {
      long bytes = Math.multiplyExact(Long.parseLong(m.group(1)), unit);
      if (bytes <= 0) {
        throw new IllegalArgumentException("--max-shard-size must be positive");
      }
      return bytes;
    } catch (ArithmeticException | NumberFormatException e) {
      throw new IllegalArgumentException("--max-shard-size " + s + " is too large");
    }
  }
}
