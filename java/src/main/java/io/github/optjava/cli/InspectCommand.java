package io.github.optjava.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.TensorInfo;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptWeights;
import io.github.optjava.tokenizer.OptTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Mixin;

/**
 * {@code opt inspect --model MODEL}: reads and validates the whole checkpoint without running a model
 * (config, every tensor's header and data span, for .bin the whole pickle, every tensor's shape against
 * the config, every value finite) and prints one JSON object:
 * {@code {"format": "safetensors|pytorch", "config": {...as read...}, "tensors": [{"name", "dtype", "shape"}]}}
 * with tensors sorted by name.
 */
@Command(name = "inspect", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Validate a checkpoint completely (without running it) and print its format, config and tensors as JSON."})
final class InspectCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  @Override
  public Integer call() throws IOException {
    Path dir = model.resolve();
    OptConfig config = OptConfig.load(dir);
    ObjectMapper json = new ObjectMapper();
    JsonNode configAsRead = json.readTree(Files.readString(dir.resolve("config.json")));
    ObjectNode result = json.createObjectNode();
    try (Checkpoint checkpoint = Checkpoints.open(dir)) {
      checkpoint.validateData();
      new OptWeights(config, checkpoint); // every expected tensor present, shapes as the config implies
      OptTokenizer.load(dir); // vocab.json and merges.txt: generate and score need them too
      result.put("format", checkpoint.format());
      result.set("config", configAsRead);
      ArrayNode tensors = result.putArray("tensors");
      java.util.List<String> nonFinite = new java.util.ArrayList<>();
      for (TensorInfo t : checkpoint.tensors()) {
        long bad = checkpoint.tensor(t.name()).nonFiniteCount(); // loads fine, then every step is NaN: say so now
        if (bad > 0) {
          nonFinite.add(io.github.optjava.checkpoint.Untrusted.quote(t.name()) + " (" + bad + " of " + t.numel() + ")");
        }
      }
      if (!nonFinite.isEmpty()) {
        throw new CheckpointException("NaN or infinite values in " + String.join(", ", nonFinite) + ": the checkpoint "
            + "is damaged, or overflowed when it was converted (fp16 holds at most 65504); a model with them computes "
            + "NaN logits");
      }
      for (TensorInfo t : checkpoint.tensors()) {
        ObjectNode o = tensors.addObject();
        o.put("name", t.name());
        o.put("dtype", t.dtype().name());
        ArrayNode shape = o.putArray("shape");
        for (long d : t.shape()) {
          shape.add(d);
        }
      }
    } catch (java.io.UncheckedIOException e) {
      throw new CheckpointException("reading " + dir + " failed: " + e.getMessage(), e);
    }
    PrintStream out = parent.out;
    out.println(json.writerWithDefaultPrettyPrinter().writeValueAsString(result));
    out.flush();
    return 0;
  }
}
