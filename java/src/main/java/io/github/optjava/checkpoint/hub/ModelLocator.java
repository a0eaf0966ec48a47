package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Finds a model's folder from what a user typed: a local directory, or a Hugging Face model id such
 * as {@code facebook/opt-125m}.
 *
 * <p>An id is resolved through the standard Hugging Face cache ({@code ~/.cache/huggingface/hub},
 * see {@link HubSettings}), shared with Python's {@code huggingface_hub} and {@code transformers}:
 * a model downloaded by either is reused by the other. Missing files are downloaded (config,
 * tokenizer, and one set of weights: {@code model.safetensors} preferred, else {@code
 * pytorch_model.bin}, sharded or not); nothing else of the repository is fetched. The returned
 * folder is the snapshot {@code models--org--name/snapshots/<commit>}, whose files are symlinks into
 * the cache's blobs.
 *
 * <p>An existing directory always wins, even when it is spelled like an id: {@code
 * facebook/opt-125m} names the hub model unless that relative directory exists.
 *
 * <p>With {@code HF_HUB_OFFLINE=1} no request is made at all. When the hub cannot be reached, a
 * complete cached copy of the revision is used with a warning.
 *
 * <p>All methods are thread-safe; concurrent downloads of the same model, also from other
 * processes, do not corrupt the cache.
 */
public final class ModelLocator {

  /** The revision used when none is given: the repository's default branch. */
  public static final String DEFAULT_REVISION = "main";

  // Branch, tag or commit; "refs/pr/1" style names have slashes. No "..": it becomes a cache path.
  private static final Pattern REVISION = Pattern.compile("[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*");

  private ModelLocator() {}

  /**
   * The model folder for a directory path or a hub id at revision {@code main}, with settings from
   * the environment ({@link HubSettings#fromEnvironment()}).
   *
   * @throws CheckpointException if the argument is neither an existing directory nor a valid id, or
   *     if the id cannot be resolved (not found, access denied, offline without a cached copy,
   *     download failure); the message says which and what to do
   */
  public static Path resolve(String modelDirOrId) {
    return resolve(modelDirOrId, DEFAULT_REVISION);
  }

  /**
   * Like {@link #resolve(String)} at a given revision (branch, tag or commit sha) of a hub id; the
   * revision is ignored for a local directory.
   */
  public static Path resolve(String modelDirOrId, String revision) {
    Optional<Path> dir = existingDirectory(modelDirOrId);
    if (dir.isPresent()) {
      if (revision != null && !revision.equals(DEFAULT_REVISION)) {
        org.slf4j.LoggerFactory.getLogger(ModelLocator.class).warn("revision {} ignored: {} is a local directory, "
            + "used as it is", Untrusted.quote(revision), dir.get());
      }
      return dir.get(); // read no environment: a bad HF_* variable must not break local models
    }
    return resolve(modelDirOrId, HubSettings.fromEnvironment(), revision);
  }

  /** Like {@link #resolve(String, String)} with explicit hub settings instead of the environment. */
  public static Path resolve(String modelDirOrId, HubSettings settings, String revision) {
    return resolve(modelDirOrId, settings, revision, true);
  }

  /** {@code symlinks=false} stores plain files in snapshots, as on file systems without symlinks. */
  static Path resolve(String modelDirOrId, HubSettings settings, String revision, boolean symlinks) {
    Objects.requireNonNull(settings, "settings");
    Optional<Path> dir = existingDirectory(modelDirOrId);
    if (dir.isPresent()) {
      return dir.get();
    }
    RepoId repo =
        RepoId.parse(modelDirOrId)
            .orElseThrow(
                () ->
                    new CheckpointException(
                        "Model directory '" + modelDirOrId + "' does not exist, and it is not a "
                            + "Hugging Face model id either: an id looks like '" + RepoId.EXAMPLE
                            + "' (organisation/name, using letters, digits, '-', '_' and '.')."));
    try {
      return new SnapshotResolver(settings, symlinks).resolve(repo, checkRevision(revision));
    } catch (CheckpointException e) {
      // "models/opt-125m" with a typo reads as a hub id: say that it was no local directory either
      Path parent = Path.of(modelDirOrId).getParent();
      if (parent != null && Files.isDirectory(parent)) {
        throw new CheckpointException(e.getMessage() + " (read as a Hugging Face id: there is no local directory '"
            + modelDirOrId + "', though '" + parent + "' exists; check the path's spelling)", e);
      }
      throw e;
    }
  }

  private static Optional<Path> existingDirectory(String modelDirOrId) {
    if (modelDirOrId == null || modelDirOrId.isBlank()) {
      throw new CheckpointException(
          "No model given: pass a model directory or a Hugging Face id such as " + RepoId.EXAMPLE + ".");
    }
    Path path;
    try {
      path = Path.of(modelDirOrId);
    } catch (InvalidPathException e) {
      return Optional.empty(); // not a path on this system, so maybe an id
    }
    if (Files.isDirectory(path)) {
      return Optional.of(path);
    }
    if (Files.exists(path)) {
      throw new CheckpointException("'" + modelDirOrId + "' is a file, not a model directory: pass the "
          + "directory that holds config.json and the weights.");
    }
    return Optional.empty();
  }

  private static String checkRevision(String revision) {
    if (revision == null || !REVISION.matcher(revision).matches()
        || revision.contains("..") || revision.length() > 255) {
      throw new CheckpointException("Invalid revision '" + revision + "': use a branch, tag or commit "
          + "sha such as 'main'.");
    }
    return revision;
  }
}
