package io.github.optjava.checkpoint.hub;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Which files of a transformers-format OPT repository opt-java needs: the config, the tokenizer, and
 * one set of weights, preferring safetensors over PyTorch pickles and a single file over shards.
 * Other files (TensorFlow and Flax weights, READMEs) are never downloaded.
 */
final class ModelFiles {

  static final List<String> REQUIRED = List.of("config.json", "vocab.json", "merges.txt");
  static final List<String> OPTIONAL =
      List.of("generation_config.json", "tokenizer_config.json", "special_tokens_map.json");

  /** Weight layouts in order of preference; an index names its shards in its weight_map. */
  private static final List<Weights> WEIGHTS =
      List.of(
          new Weights("model.safetensors", false),
          new Weights("model.safetensors.index.json", true),
          new Weights("pytorch_model.bin", false),
          new Weights("pytorch_model.bin.index.json", true));

  private static final String WEIGHTS_DESCRIPTION =
      "model.safetensors, pytorch_model.bin, or one of their .index.json files with its shards";
  /** The longest file name a file system holds. */
  private static final int MAX_FILE_NAME = 255;
  private static final Pattern CONTROL = Pattern.compile("\\p{Cntrl}");

  private ModelFiles() {}

  private record Weights(String file, boolean isIndex) {}

  /**
   * What to fetch from a repository listing.
   *
   * @param files the files to fetch, config and tokenizer first, a single weights file last
   * @param weightIndex the index whose shards must be fetched after it, or {@code null}
   */
  record Plan(List<String> files, String weightIndex) {}

  static Plan plan(RepoId repo, String revision, Set<String> listing) {
    List<String> missing = new ArrayList<>();
    for (String file : REQUIRED) {
      if (!listing.contains(file)) {
        missing.add(file);
      }
    }
    Weights weights = WEIGHTS.stream().filter(w -> listing.contains(w.file())).findFirst().orElse(null);
    if (weights == null) {
      missing.add("weights");
    }
    if (!missing.isEmpty()) {
      throw new CheckpointException(repo + " (revision " + revision + ") lacks " + String.join(", ", missing)
          + ": opt-java needs a transformers-format OPT checkpoint with config.json, vocab.json, "
          + "merges.txt and " + WEIGHTS_DESCRIPTION + ".");
    }
    List<String> files = new ArrayList<>(REQUIRED);
    OPTIONAL.stream().filter(listing::contains).forEach(files::add);
    files.add(weights.file());
    return new Plan(List.copyOf(files), weights.isIndex() ? weights.file() : null);
  }

  /**
   * The shard files an index names, sorted. Each must be a plain file name (an index is data from
   * the network: a name like {@code ../../x} must not write outside the snapshot) and, when a
   * listing is given, a file of the repository.
   */
  static List<String> shards(Path index, Set<String> listing) {
    JsonNode weightMap;
    try {
      JsonNode root = Untrusted.JSON.readTree(index.toFile());
      weightMap = root == null ? null : root.get("weight_map");
    } catch (JsonProcessingException e) {
      // The parser's message quotes the file's text (a duplicate key whole): cut and cleaned.
      throw new CheckpointException("The weights index " + index + " is not valid JSON ("
          + Untrusted.parserMessage(e) + ").", e);
    } catch (IOException e) {
      throw new CheckpointException("Cannot read the weights index " + index + ": " + e.getMessage(), e);
    }
    if (weightMap == null || !weightMap.isObject() || weightMap.isEmpty()) {
      throw new CheckpointException("The weights index " + index + " has no 'weight_map' naming its shards.");
    }
    Set<String> shards = new TreeSet<>();
    for (Iterator<JsonNode> it = weightMap.elements(); it.hasNext(); ) {
      JsonNode value = it.next();
      String shard = value.isTextual() ? value.asText() : null;
      // Shard names come from the network: quoted and cut in messages.
      if (!isPlainFileName(shard)) {
        throw new CheckpointException("The weights index " + index + " names an invalid shard "
            + (shard == null ? Untrusted.json(value) : Untrusted.quote(shard)) + ": shards must be file "
            + "names next to the index.");
      }
      if (listing != null && !listing.contains(shard)) {
        throw new CheckpointException("The weights index " + index + " names the shard " + Untrusted.quote(shard)
            + ", which the repository does not contain.");
      }
      shards.add(shard);
    }
    return List.copyOf(shards);
  }

  /**
   * What a snapshot folder lacks to be loadable (empty when complete), judged without a listing:
   * the required files and the first weights layout present (with its shards).
   */
  static List<String> missingIn(Path snapshot) {
    List<String> missing = new ArrayList<>();
    for (String file : REQUIRED) {
      if (!Files.isRegularFile(snapshot.resolve(file))) {
        missing.add(file);
      }
    }
    Weights weights =
        WEIGHTS.stream().filter(w -> Files.isRegularFile(snapshot.resolve(w.file()))).findFirst().orElse(null);
    if (weights == null) {
      missing.add("weights (" + WEIGHTS_DESCRIPTION + ")");
    } else if (weights.isIndex()) {
      for (String shard : shards(snapshot.resolve(weights.file()), null)) {
        if (!Files.isRegularFile(snapshot.resolve(shard))) {
          missing.add(shard);
        }
      }
    }
    return missing;
  }

  /**
   * Also refuses control characters and names longer than a file name can be: a shard name goes on into
   * paths, URLs and messages after this check, unquoted.
   */
  static boolean isPlainFileName(String name) {
    return name != null
        && !name.isEmpty()
        && name.length() <= MAX_FILE_NAME
        && !CONTROL.matcher(name).find()
        && !name.equals(".")
        && !name.equals("..")
        && name.indexOf('/') < 0
        && name.indexOf('\\') < 0
        && name.indexOf(':') < 0
        && name.indexOf('\0') < 0;
  }
}
