package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Downloads one file into its blob in the cache, all or nothing: the bytes go to a uniquely named
 * temporary file next to the blob, are checked (size, and the hash the ETag names: sha256 for LFS files, the git blob
 * sha1 for the others), flushed to disk, then renamed atomically. On any failure the temporary file is deleted, so the
 * cache never holds a partial file. One opt-java process at a time downloads a blob ({@link BlobLock}); the one that
 * holds the lock first deletes temporary files of that blob that a killed opt-java process left.
 */
final class BlobDownloader {

  private static final Logger LOG = LoggerFactory.getLogger(BlobDownloader.class);

  private final HubClient client;
  private final HubSettings settings;

  BlobDownloader(HubClient client, HubSettings settings) {
    this.client = client;
    this.settings = settings;
  }

  /** The blob holding {@code file}'s content, downloaded unless already complete in the cache. */
  Path fetch(HubCache cache, RepoId repo, String file, HubClient.FileMetadata meta) {
    Path blob = cache.blobPath(meta.etag());
    if (isComplete(blob, meta.size())) {
      return blob;
    }
    Path temp = HubCache.uniqueTemp(blob);
    try (BlobLock lock = BlobLock.acquire(cache.lockPath(meta.etag()), "'" + file + "' of " + repo)) {
      if (isComplete(blob, meta.size())) {
        return blob; // the download we waited for stored it
      }
      Files.createDirectories(blob.getParent());
      deleteLeftovers(blob);
      warnIfLowOnSpace(blob.getParent(), meta.size());
      download(temp, repo, file, meta);
      try {
        HubCache.moveAtomically(temp, blob);
      } catch (IOException e) {
        // Another process may have stored the same blob and hold it open (Windows refuses to
        // replace an open file): its copy is as good as ours.
        if (!isComplete(blob, meta.size())) {
          throw e;
        }
      }
      return blob;
    } catch (java.io.InterruptedIOException e) {
      throw new CheckpointException("Interrupted while waiting to download '" + file + "' of " + repo + ".", e);
    } catch (IOException e) {
      throw new HubCache.CacheWriteException(
          "Cannot store '" + file + "' of " + repo + " in " + blob.getParent() + ": " + e, e);
    } finally {
      deleteQuietly(temp);
    }
  }

  /**
   * Deletes the temporary files of {@code blob} that a killed opt-java process left (it had no chance to delete them):
   * only this project's names ({@code <etag>.<uuid>.incomplete}; huggingface_hub's {@code <etag>.incomplete} is
   * Python's to resume), and only those untouched for {@link #LEFTOVER_AGE}: a live download writes all the time (a
   * stalled one fails within its read timeout), and the lock does not exclude huggingface_hub or an opt-java before
   * session 27. Without this each interrupted download of a large model left its partial copy in the cache for good.
   */
  private static void deleteLeftovers(Path blob) throws IOException {
    java.util.regex.Pattern ours = java.util.regex.Pattern.compile(java.util.regex.Pattern.quote(
        blob.getFileName() + ".") + "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        + java.util.regex.Pattern.quote(HubCache.INCOMPLETE_SUFFIX));
    long before = System.currentTimeMillis() - LEFTOVER_AGE.toMillis();
    try (java.util.stream.Stream<Path> siblings = Files.list(blob.getParent())) {
      for (Path p : (Iterable<Path>) siblings::iterator) {
        if (ours.matcher(p.getFileName().toString()).matches() && Files.isRegularFile(p)
            && Files.getLastModifiedTime(p).toMillis() < before) {
          LOG.info("Deleting {} ({} bytes), left by an interrupted download.", p, Files.size(p));
          Files.deleteIfExists(p);
        }
      }
    }
  }

  /** How long a temporary file must have been untouched to count as a killed download's. */
  static final java.time.Duration LEFTOVER_AGE = java.time.Duration.ofMinutes(10);

  private void download(Path temp, RepoId repo, String file, HubClient.FileMetadata meta)
      throws IOException {
    LOG.info("Downloading {} of {} ({} bytes)", file, repo, meta.size());
    MessageDigest digest = newDigest(meta);
    try (FileChannel out = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        DownloadProgress progress = DownloadProgress.start(settings.progressBar(), file, meta.size())) {
      FileSink sink = new FileSink(out, digest, progress, meta.size());
      try {
        client.download(repo, meta.commit(), file, meta.location(), sink);
      } catch (CheckpointException e) {
        sink.stop();
        if (!sink.started()) {
          throw e; // refused before any byte (404, 401, unreachable): the message says it all
        }
        throw failed(repo, file, sink.received(), meta.size(), e.getMessage(), e);
      } finally {
        sink.stop(); // whatever happened, no write may follow the temporary file's deletion
      }
      if (sink.received() != meta.size()) {
        throw failed(repo, file, sink.received(), meta.size(), "the connection closed early.", null);
      }
      if (digest != null) {
        verify(digest, meta.etag(), repo, file);
      }
      // Durable before the rename: after a crash the blob's name must never hold missing data.
      out.force(true);
    }
  }

  private static CheckpointException failed(
      RepoId repo, String file, long received, long expected, String why, Throwable cause) {
    String said = why.endsWith(".") ? why : why + ".";
    return new CheckpointException("The download of '" + file + "' of " + repo + " failed after "
        + received + " of " + expected + " bytes: " + said + " Nothing was stored; "
        + (said.contains("No space left") ? "free some disk space and run again." : "run again."), cause);
  }

  /**
   * The hash the ETag names, primed: sha256 of the bytes for an LFS file; for a regular file git's blob sha1, of a
   * "blob SIZE\0" header and the bytes (so a config or tokenizer file corrupted on the way is refused too, rather
   * than kept in the cache for good). No hash for an ETag of another shape (a proxy's own).
   */
  private static MessageDigest newDigest(HubClient.FileMetadata meta) {
    try {
      if (meta.etagIsSha256()) {
        return MessageDigest.getInstance("SHA-256");
      }
      if (meta.etagIsGitSha1()) {
        MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
        sha1.update(("blob " + meta.size() + "\0").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        return sha1;
      }
      return null;
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java runtime has SHA-256 and SHA-1", e);
    }
  }

  private static void verify(MessageDigest digest, String expected, RepoId repo, String file) {
    String actual = HexFormat.of().formatHex(digest.digest());
    if (!actual.equals(expected)) {
      String hash = digest.getAlgorithm().equals("SHA-1") ? "git blob sha1" : "sha256";
      throw new CheckpointException("The download of '" + file + "' of " + repo + " is corrupt: its "
          + hash + " is " + actual + " but the hub says " + expected + "; nothing was stored. "
          + "Run again; if it persists, a proxy may be altering downloads.");
    }
  }

  private static boolean isComplete(Path blob, long size) {
    try {
      if (!Files.isRegularFile(blob)) {
        return false;
      }
      if (Files.size(blob) == size) {
        return true;
      }
      LOG.warn("Cached blob {} has the wrong size; downloading it again.", blob);
      return false;
    } catch (IOException e) {
      return false;
    }
  }

  private static void warnIfLowOnSpace(Path dir, long needed) {
    try {
      long usable = Files.getFileStore(dir).getUsableSpace();
      if (usable < needed) {
        LOG.warn("Only {} bytes free in {} but {} bytes are about to be downloaded.", usable, dir, needed);
      }
    } catch (IOException e) {
      // Only a courtesy check: the write itself reports a full disk.
    }
  }

  private static void deleteQuietly(Path temp) {
    try {
      Files.deleteIfExists(temp);
    } catch (IOException e) {
      LOG.warn("Could not delete the temporary download {}: {}", temp, e.toString());
    }
  }
}
