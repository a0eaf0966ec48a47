package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * Several checkpoint files seen as one, described by a Hugging Face index
 * ({@code model.safetensors.index.json} or {@code pytorch_model.bin.index.json}):
 * <pre>{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}</pre>
 *
 * <p>Opening checks that index and shards agree exactly, so a stale or hand-edited index fails at load
 * time instead of producing a model with missing weights:
 * <ul>
 *   <li>shard names must stay inside the index's directory (no absolute paths, no {@code ..}); the check
 *       is on the names, not on resolved links, because the Hugging Face cache stores files as symlinks
 *       into a sibling {@code blobs/} folder;</li>
 *   <li>every shard exists, every listed tensor is in the shard the index names, and no tensor is in two
 *       shards;</li>
 *   <li>a tensor that a shard holds but the index does not list is an error (Hugging Face would load it
 *       anyway; here it is taken as a sign that index and shards come from different saves).</li>
 * </ul>
 * Shards are opened by the given function (for example {@link SafetensorsCheckpoint#open(Path)}) and all
 * must have the same format. Closing closes every shard.
 */
public final class ShardedCheckpoint implements Checkpoint {

  private final Path index;
  private final List<Checkpoint> shards;
  private final Map<String, Checkpoint> owners;
  private final List<TensorInfo> tensors;
  private volatile boolean closed;

  private ShardedCheckpoint(Path index, List<Checkpoint> shards, Map<String, Checkpoint> owners) {
    this.index = index;
    this.shards = List.copyOf(shards);
    this.owners = owners;
    List<TensorInfo> all = new ArrayList<>();
    for (Checkpoint shard : shards) {
      all.addAll(shard.tensors());
    }
    all.sort(Comparator.comparing(TensorInfo::name));
    this.tensors = List.copyOf(all);
  }

  /**
   * Opens every shard an index names and checks that they agree with it.
   *
   * @param indexJson the {@code *.index.json} file; shard names are resolved against its directory
   * @param opener    opens one shard file (and validates it)
   * @throws CheckpointException naming the index (and shard, tensor) on any disagreement; shards opened
   *     before the failure are closed again
   */
  public static ShardedCheckpoint open(Path indexJson, Function<Path, Checkpoint> opener) {
    Map<String, String> weightMap = readWeightMap(indexJson);
    Path dir = indexJson.toAbsolutePath().normalize().getParent();
    Map<String, Path> shardFiles = new TreeMap<>();
    for (String shardName : weightMap.values()) {
      shardFiles.computeIfAbsent(shardName, n -> resolveShard(indexJson, dir, n));
    }
    Map<String, Checkpoint> opened = new LinkedHashMap<>();
    try {
      for (Map.Entry<String, Path> shard : shardFiles.entrySet()) {
        opened.put(shard.getKey(), openShard(indexJson, shard.getValue(), opener));
      }
      Map<String, Checkpoint> owners = crossCheck(indexJson, weightMap, opened);
      return new ShardedCheckpoint(indexJson, new ArrayList<>(opened.values()), owners);
    } catch (RuntimeException e) {
      closeAll(opened.values(), e);
      throw e;
    }
  }

  private static Map<String, String> readWeightMap(Path indexJson) {
    JsonNode root;
    Untrusted.requireSmallFile(indexJson, "the weights index");
    try {
      root = SafetensorsHeader.JSON.readTree(Files.readString(indexJson));
    } catch (NoSuchFileException e) {
      throw new CheckpointException(indexJson + ": file does not exist", e);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(indexJson + ": not valid JSON (" + Untrusted.parserMessage(e) + ")", e);
    } catch (CharacterCodingException e) {
      // Files.readString's MalformedInputException would otherwise read as an I/O failure ("cannot read").
      throw new CheckpointException(indexJson + ": not valid UTF-8 text: not a sharded-checkpoint index, or a "
          + "corrupted one (download it again)", e);
    } catch (IOException e) {
      throw new CheckpointException(indexJson + ": cannot read: " + e, e);
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new CheckpointException(indexJson + ": not a sharded-checkpoint index: expected an object with a "
          + "\"weight_map\" object of tensor name -> shard file");
    }
    if (map.isEmpty()) {
      throw new CheckpointException(indexJson + ": weight_map lists no tensors");
    }
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (Map.Entry<String, JsonNode> e : map.properties()) {
      if (!e.getValue().isTextual() || e.getValue().textValue().isEmpty()) {
        throw new CheckpointException(indexJson + ": weight_map entry for tensor " + Untrusted.quote(e.getKey())
            + " must be a shard file name, found " + Untrusted.json(e.getValue()));
      }
      weightMap.put(e.getKey(), e.getValue().textValue());
    }
    return weightMap;
  }

  /** Resolves a shard name against the index's directory, refusing anything that could leave it. */
  private static Path resolveShard(Path indexJson, Path dir, String name) {
    Path relative;
    try {
      relative = Path.of(name);
    } catch (InvalidPathException e) {
      throw new CheckpointException(indexJson + ": shard name " + Untrusted.quote(name) + " is not a valid file name",
          e);
    }
    if (relative.isAbsolute()) {
      throw new CheckpointException(indexJson + ": shard name " + Untrusted.quote(name)
          + " is an absolute path; shards must be files next to the index");
    }
    for (Path part : relative) {
      if (part.toString().equals("..")) {
        throw new CheckpointException(indexJson + ": shard name " + Untrusted.quote(name)
            + " contains '..' (path traversal); shards must be files next to the index");
      }
    }
    Path resolved = dir.resolve(relative).normalize();
    if (!resolved.startsWith(dir) || resolved.equals(dir)) {
      throw new CheckpointException(indexJson + ": shard name " + Untrusted.quote(name)
          + " does not name a file inside " + dir);
    }
    if (!Files.isRegularFile(resolved)) {
      throw new CheckpointException(indexJson + ": shard " + Untrusted.quote(name) + " listed in weight_map does not "
          + "exist in " + dir + ": the download is incomplete");
    }
    return resolved;
  }

  private static Checkpoint openShard(Path indexJson, Path shard, Function<Path, Checkpoint> opener) {
    try {
      return opener.apply(shard);
    } catch (CheckpointException e) {
      throw e; // already names the shard file
    } catch (RuntimeException e) {
      throw new CheckpointException(indexJson + ": cannot open shard " + shard + ": " + e, e);
    }
  }

  /** Checks that the shards hold exactly the tensors the index says, each in one shard. */
  private static Map<String, Checkpoint> crossCheck(Path indexJson, Map<String, String> weightMap,
      Map<String, Checkpoint> shards) {
    Map<String, String> actual = new HashMap<>();
    Map<String, Checkpoint> owners = new HashMap<>();
    String format = null;
    for (Map.Entry<String, Checkpoint> shard : shards.entrySet()) {
      Checkpoint c = shard.getValue();
      if (format != null && !format.equals(c.format())) {
        throw new CheckpointException(indexJson + ": shard " + Untrusted.quote(shard.getKey()) + " is " + c.format()
            + " but earlier shards are " + format + "; all shards must have the same format");
      }
      format = c.format();
      for (TensorInfo t : c.tensors()) {
        String other = actual.putIfAbsent(t.name(), shard.getKey());
        if (other != null) {
          throw new CheckpointException(indexJson + ": tensor " + Untrusted.quote(t.name()) + " is in two shards, "
              + Untrusted.quote(other) + " and " + Untrusted.quote(shard.getKey()));
        }
        owners.put(t.name(), c);
      }
    }
    for (Map.Entry<String, String> e : weightMap.entrySet()) {
      String where = actual.get(e.getKey());
      if (!e.getValue().equals(where)) {
        throw new CheckpointException(indexJson + ": weight_map puts tensor " + Untrusted.quote(e.getKey())
            + " in shard " + Untrusted.quote(e.getValue()) + " but "
            + (where == null ? "no shard holds it" : "it is in shard " + Untrusted.quote(where))
            + ": index and shards do not match");
      }
    }
    for (Map.Entry<String, String> e : new TreeMap<>(actual).entrySet()) {
      if (!weightMap.containsKey(e.getKey())) {
        throw new CheckpointException(indexJson + ": shard " + Untrusted.quote(e.getValue()) + " holds tensor "
            + Untrusted.quote(e.getKey()) + " which weight_map does not list: index and shards come from different "
            + "saves");
      }
    }
    return owners;
  }

  private static void closeAll(Collection<Checkpoint> shards, Throwable failure) {
    for (Checkpoint c : shards) {
      try {
        c.close();
      } catch (RuntimeException e) {
        failure.addSuppressed(e);
      }
    }
  }

  /** The index file this checkpoint was opened from. */
  public Path index() {
    return index;
  }

  /** The shards, in file-name order. */
  public List<Checkpoint> shards() {
    return shards;
  }

  @Override
  public String format() {
    return shards.get(0).format();
  }

  @Override
  public Collection<TensorInfo> tensors() {
    return tensors;
  }

  @Override
  public boolean contains(String name) {
    return owners.containsKey(name);
  }

  @Override
  public Tensor tensor(String name) {
    if (closed) {
      throw new IllegalStateException(index + " is closed");
    }
    Checkpoint shard = owners.get(name);
    if (shard == null) {
      throw new CheckpointException(index + ": no tensor named " + Untrusted.quote(name));
    }
    return shard.tensor(name);
  }

  /** Lets each shard check its own data (a format may do that faster than tensor by tensor). */
  @Override
  public void validateData() {
    for (Checkpoint shard : shards) {
      shard.validateData();
    }
  }

  /** Closes every shard, even if closing one fails (the first failure is thrown, the rest suppressed). */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    RuntimeException first = null;
    for (Checkpoint c : shards) {
      try {
        c.close();
      } catch (RuntimeException e) {
        if (first == null) {
          first = e;
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }

  @Override
  public String toString() {
    return format() + " " + index + " (" + shards.size() + " shards, " + tensors.size() + " tensors)";
  }
}
