package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One repository's folder in the huggingface_hub cache, laid out exactly as Python writes it so both
 * share downloads:
 *
 * <pre>
 * models--org--name/
 *   refs/main                 the commit sha that "main" pointed to when last resolved
 *   blobs/&lt;etag&gt;              file contents, named by ETag (sha256 for LFS files, git sha1 otherwise)
 *   snapshots/&lt;sha&gt;/&lt;file&gt;    relative symlink to ../../blobs/&lt;etag&gt;
 * </pre>
 *
 * Every write is atomic (temporary name, then rename), so a reader, or another process downloading
 * the same model, never sees a partial file under a final name.
 */
final class HubCache {

  private static final Logger LOG = LoggerFactory.getLogger(HubCache.class);
  /** Suffix of in-progress downloads; huggingface_hub uses the same one. */
  static final String INCOMPLETE_SUFFIX = ".incomplete";

  /**
   * The cache could not be written (read-only, full, no permission): a complete snapshot it already holds may still
   * serve, as when the hub is unreachable.
   */
  static final class CacheWriteException extends CheckpointException {
    CacheWriteException(String message, Throwable cause) {
      super(message + (message.endsWith(".") ? "" : ".") + " Is the cache read-only or full? HF_HUB_CACHE (or HF_HOME)"
          + " moves it; HF_HUB_OFFLINE=1 uses what it holds.", cause);
    }
  }
  private static final Pattern COMMIT_SHA = Pattern.compile("[0-9a-f]{40}");
  // Etags and commit shas become file names: allow nothing that could escape the folder, and no
  // more than a file name can hold (255), which also keeps them short in URLs and messages.
  private static final Pattern SAFE_NAME = Pattern.compile("[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}");

  private final Path repoDir;
  private final boolean symlinks;

  /**
   * @param symlinks whether to try symlinks at all; false forces the plain-file fallback that is
   *     otherwise used only where the file system refuses symlinks
   */
  HubCache(Path cacheDir, RepoId repo, boolean symlinks) {
    this.repoDir = cacheDir.resolve(repo.cacheFolderName());
    this.symlinks = symlinks;
  }

  HubCache(Path cacheDir, RepoId repo) {
    this(cacheDir, repo, true);
  }

  Path repoDir() {
    return repoDir;
  }

  Path snapshotDir(String commitSha) {
    return repoDir.resolve("snapshots").resolve(requireSafeName(commitSha, "commit"));
  }

  Path blobPath(String etag) {
    return repoDir.resolve("blobs").resolve(requireSafeName(etag, "ETag"));
  }

  /** Where a blob's download lock lives: huggingface_hub's place, {@code .locks/<repo folder>/<etag>.lock}. */
  Path lockPath(String etag) {
    return repoDir.resolveSibling(".locks").resolve(repoDir.getFileName().toString())
        .resolve(requireSafeName(etag, "ETag") + ".lock");
  }

  static boolean isCommitSha(String revision) {
    return COMMIT_SHA.matcher(revision).matches();
  }

  /**
   * The commit a revision points to in the cache: the revision itself if it is a commit sha, else
   * the content of {@code refs/<revision>}; empty if this revision was never resolved here.
   */
  Optional<String> commitFor(String revision) {
    if (isCommitSha(revision)) {
      return Optional.of(revision);
    }
    Path ref = refPath(revision);
    if (!Files.isRegularFile(ref)) {
      return Optional.empty();
    }
    try {
      String sha = Files.readString(ref, StandardCharsets.UTF_8).trim();
      return SAFE_NAME.matcher(sha).matches() ? Optional.of(sha) : Optional.empty();
    } catch (IOException e) {
      throw new CheckpointException("Cannot read the cached ref " + ref + ": " + e.getMessage(), e);
    }
  }

  /** Records which commit a branch or tag resolved to (nothing to do for a commit sha). */
  void writeRef(String revision, String commitSha) {
    requireSafeName(commitSha, "commit");
    if (revision.equals(commitSha)) {
      return;
    }
    Path ref = refPath(revision);
    try {
      if (Files.isRegularFile(ref)
          && Files.readString(ref, StandardCharsets.UTF_8).equals(commitSha)) {
        return;
      }
      Files.createDirectories(ref.getParent());
      Path temp = uniqueTemp(ref);
      try {
        Files.writeString(temp, commitSha, StandardCharsets.UTF_8);
        moveAtomically(temp, ref);
      } finally {
        Files.deleteIfExists(temp);
      }
    } catch (IOException e) {
      throw new CacheWriteException("Cannot write the cached ref " + ref + ": " + e.getMessage(), e);
    }
  }

  /** A fresh, unique path next to {@code target} for writing it before an atomic rename. */
  static Path uniqueTemp(Path target) {
    // Unique per writer so two processes never write into the same temporary file; the name
    // differs from huggingface_hub's "<etag>.incomplete", which Python would try to resume.
    return target.resolveSibling(
        target.getFileName() + "." + UUID.randomUUID() + INCOMPLETE_SUFFIX);
  }

  /** Renames atomically, replacing an existing target (a concurrent writer's identical file). */
  static void moveAtomically(Path source, Path target) throws IOException {
    try {
      Files.move(source, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(source, target, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /**
   * Makes {@code snapshots/<sha>/<file>} point at a complete blob: a relative symlink, as Python
   * makes it; where symlinks are unavailable a hard link (no extra disk), else a copy written
   * atomically.
   */
  Path link(String commitSha, String file, Path blob) {
    Path pointer = snapshotDir(commitSha).resolve(file);
    try {
      Files.createDirectories(pointer.getParent());
      if (Files.isSymbolicLink(pointer) && !Files.exists(pointer)) {
        Files.delete(pointer); // dangling: its blob was deleted (e.g. by a cache cleanup)
      }
      if (Files.exists(pointer)) {
        return pointer;
      }
      if (symlinks && trySymlink(pointer, blob)) {
        return pointer;
      }
      if (tryHardLink(pointer, blob)) {
        return pointer;
      }
      Path temp = uniqueTemp(pointer);
      try {
        Files.copy(blob, temp);
        moveAtomically(temp, pointer);
      } finally {
        Files.deleteIfExists(temp);
      }
      return pointer;
    } catch (IOException e) {
      throw new CacheWriteException(
          "Cannot create " + pointer + " in the Hugging Face cache: " + e.getMessage(), e);
    }
  }

  private boolean trySymlink(Path pointer, Path blob) {
    Path relative = pointer.getParent().relativize(blob);
    try {
      Files.createSymbolicLink(pointer, relative);
      return true;
    } catch (FileAlreadyExistsException e) {
      return true; // another process linked it meanwhile; links to the same etag are identical
    } catch (UnsupportedOperationException | IOException e) {
      LOG.warn(
          "Symlinks are not supported in {} ({}); storing {} as a hard link or copy instead.",
          pointer.getParent(), e.toString(), pointer.getFileName());
      return false;
    }
  }

  private static boolean tryHardLink(Path pointer, Path blob) {
    try {
      Files.createLink(pointer, blob);
      return true;
    } catch (FileAlreadyExistsException e) {
      return true; // another process created it meanwhile
    } catch (UnsupportedOperationException | IOException e) {
      return false;
    }
  }

  private Path refPath(String revision) {
    Path refs = repoDir.resolve("refs");
    Path ref = refs.resolve(revision).normalize();
    if (!ref.startsWith(refs) || ref.equals(refs)) {
      throw new CheckpointException("Invalid revision '" + revision + "'");
    }
    return ref;
  }

  private static String requireSafeName(String name, String what) {
    if (name == null || !SAFE_NAME.matcher(name).matches()) {
      throw new CheckpointException(
          "The hub returned an unusable " + what + " " + (name == null ? "(none)" : Untrusted.quote(name))
              + " (expected up to 255 letters, digits, '.', '_' or '-'); is HF_ENDPOINT a Hugging Face Hub?");
    }
    return name;
  }
}
