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
 * temporary file next to the blob, are checked (size, and sha256 for LFS files), flushed to disk,
 * then renamed atomically. On any failure the temporary file is deleted, so the cache never holds a
 * partial file, and two processes fetching the same blob cannot corrupt each other's copy.
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
    try {
      Files.createDirectories(blob.getParent());
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
    } catch (IOException e) {
      throw new CheckpointException(
          "Cannot store '" + file + "' of " + repo + " in " + blob.getParent() + ": " + e, e);
    } finally {
      deleteQuietly(temp);
    }
  }

  private void download(Path temp, RepoId repo, String file, HubClient.FileMetadata meta)
      throws IOException {
    LOG.info("Downloading {} of {} ({} bytes)", file, repo, meta.size());
    MessageDigest sha256 = meta.etagIsSha256() ? newSha256() : null;
    try (FileChannel out = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        DownloadProgress progress = DownloadProgress.start(settings.progressBar(), file, meta.size())) {
      FileSink sink = new FileSink(out, sha256, progress, meta.size());
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
      if (sha256 != null) {
        verify(sha256, meta.etag(), repo, file);
      }
      // Durable before the rename: after a crash the blob's name must never hold missing data.
      out.force(true);
    }
  }

  private static CheckpointException failed(
      RepoId repo, String file, long received, long expected, String why, Throwable cause) {
    return new CheckpointException("The download of '" + file + "' of " + repo + " failed after "
        + received + " of " + expected + " bytes: " + why + " Nothing was stored; run again.", cause);
  }

  private static void verify(MessageDigest sha256, String expected, RepoId repo, String file) {
    String actual = HexFormat.of().formatHex(sha256.digest());
    if (!actual.equals(expected)) {
      throw new CheckpointException("The download of '" + file + "' of " + repo + " is corrupt: its "
          + "sha256 is " + actual + " but the hub says " + expected + "; nothing was stored. "
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

  private static MessageDigest newSha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java runtime has SHA-256", e);
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
