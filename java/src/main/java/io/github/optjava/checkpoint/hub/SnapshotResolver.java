package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns a repository id and revision into a complete snapshot folder in the huggingface_hub cache,
 * like {@code snapshot_download} restricted to {@link ModelFiles}:
 *
 * <ul>
 *   <li>offline: {@code refs/<revision>} names the snapshot; no request is made;
 *   <li>online: one listing request gives the commit; each needed file missing from that commit's
 *       snapshot is fetched (HEAD for its ETag, then GET unless the blob is already cached, e.g.
 *       shared with another commit); files already in the snapshot cost no request;
 *   <li>hub unreachable: a complete cached snapshot of the revision is used, with a warning.
 * </ul>
 */
final class SnapshotResolver {

  private static final Logger LOG = LoggerFactory.getLogger(SnapshotResolver.class);

  private final HubSettings settings;
  private final boolean symlinks;

  /**
   * @param symlinks false to store plain files instead of symlinks, as on file systems without
   *     them (tests use it to exercise that path)
   */
  SnapshotResolver(HubSettings settings, boolean symlinks) {
    this.settings = settings;
    this.symlinks = symlinks;
  }

  Path resolve(RepoId repo, String revision) {
    HubCache cache = new HubCache(settings.cacheDir(), repo, symlinks);
    if (settings.offline()) {
      return offlineSnapshot(cache, repo, revision);
    }
    HubClient client = new HubClient(settings);
    HubClient.RepoInfo info;
    try {
      info = client.repoInfo(repo, revision);
    } catch (HubUnavailableException e) {
      return fallbackSnapshot(cache, repo, revision, e);
    }
    String sha = info.sha();
    Path snapshot = cache.snapshotDir(sha); // validates the sha before it names anything

    BlobDownloader downloader = new BlobDownloader(client, settings);
    ModelFiles.Plan plan = ModelFiles.plan(repo, revision, info.files());
    try {
      for (String file : plan.files()) {
        fetch(client, downloader, cache, repo, sha, file);
      }
      if (plan.weightIndex() != null) {
        Path index = snapshot.resolve(plan.weightIndex());
        for (String shard : ModelFiles.shards(index, info.files())) {
          fetch(client, downloader, cache, repo, sha, shard);
        }
      }
      // Only now: a ref written first named a snapshot that a failed download left incomplete, and then the complete
      // snapshot before it could serve neither offline nor as the fallback (session 27's review).
      cache.writeRef(revision, sha);
    } catch (HubUnavailableException e) {
      return fallbackSnapshot(cache, repo, revision, e);
    } catch (HubCache.CacheWriteException e) {
      return readOnlyFallback(cache, repo, revision, sha, e);
    }
    return snapshot;
  }

  /** The cache cannot be written (read-only, full): a complete snapshot of the revision it holds serves. */
  private Path readOnlyFallback(HubCache cache, RepoId repo, String revision, String sha,
      HubCache.CacheWriteException e) {
    Optional<String> cached = cache.commitFor(revision);
    if (cached.isPresent() && ModelFiles.missingIn(cache.snapshotDir(cached.get())).isEmpty()) {
      LOG.warn("{} Using the cached snapshot {} of {} instead of the hub's newer commit {}.", e.getMessage(),
          cached.get(), repo, sha);
      return cache.snapshotDir(cached.get());
    }
    throw e;
  }

  private static void fetch(
      HubClient client, BlobDownloader downloader, HubCache cache, RepoId repo, String sha, String file) {
    if (Files.isRegularFile(cache.snapshotDir(sha).resolve(file))) {
      return; // already complete: every file under a snapshot name was written atomically
    }
    HubClient.FileMetadata meta = client.fileMetadata(repo, sha, file);
    if (!meta.commit().equals(sha)) {
      // The answered commit is a header's text, unchecked: quoted and cut.
      throw new CheckpointException("The hub answered for commit " + Untrusted.quote(meta.commit())
          + " when asked for '" + file + "' at commit " + sha + " of " + repo + "; the repository may have "
          + "been rewritten. Run again.");
    }
    Path blob = downloader.fetch(cache, repo, file, meta);
    cache.link(sha, file, blob);
  }

  private Path offlineSnapshot(HubCache cache, RepoId repo, String revision) {
    Optional<String> sha = cache.commitFor(revision);
    List<String> missing =
        sha.map(s -> ModelFiles.missingIn(cache.snapshotDir(s))).orElse(List.of());
    if (sha.isPresent() && missing.isEmpty()) {
      return cache.snapshotDir(sha.get());
    }
    String what =
        sha.isEmpty()
            ? "was never downloaded to " + cache.repoDir()
            : "is incomplete in " + cache.snapshotDir(sha.get()) + ": missing " + String.join(", ", missing);
    throw new CheckpointException("Offline mode (HF_HUB_OFFLINE) is on and " + repo + " (revision "
        + revision + ") " + what + ". Download it first: unset HF_HUB_OFFLINE and run again, or run `"
        + downloadCommand(repo, revision) + "`.");
  }

  private Path fallbackSnapshot(HubCache cache, RepoId repo, String revision, HubUnavailableException e) {
    Optional<String> sha = cache.commitFor(revision);
    if (sha.isPresent() && ModelFiles.missingIn(cache.snapshotDir(sha.get())).isEmpty()) {
      LOG.warn("Could not reach the hub to check for updates of {} ({}); using the cached snapshot {}.",
          repo, e.getMessage(), sha.get());
      return cache.snapshotDir(sha.get());
    }
    throw new HubUnavailableException(
        e.getMessage() + " No complete copy of " + repo + " (revision " + revision + ") is cached in "
            + settings.cacheDir() + " to fall back on.", e);
  }

  private static String downloadCommand(RepoId repo, String revision) {
    return "huggingface-cli download " + repo + (revision.equals("main") ? "" : " --revision " + revision);
  }
}
