package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * What session 27's review of the Hub client found, against a fake hub: the ref named a snapshot before it was
 * complete, regular files were not checked, killed downloads left their partial files, processes downloaded the same
 * blob at once, a huge or trickling answer exhausted the heap or held the caller, a rate limit or a CDN's refusal was
 * misreported.
 */
class HubRobustnessTest extends FakeHubTestBase {

  private static final String NEWER = "99887766554433221100ffeeddccbbaa99887766";

  private Path refMain() {
    return repoDir().resolve("refs").resolve("main");
  }

  @Test
  void theRefNamesACommitOnlyOnceItsSnapshotIsComplete() throws IOException {
    hub.truncate("model.safetensors");
    assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertFalse(Files.exists(refMain()), "a failed first download names no snapshot");
    hub.heal("model.safetensors");
    Path complete = resolve(settings());
    assertEquals(FakeHub.SHA, Files.readString(refMain()));

    // A newer commit whose download fails: the complete snapshot still serves, offline and as the fallback.
    hub.setCommit(NEWER);
    hub.serve("model.safetensors", "changed weights".getBytes(StandardCharsets.UTF_8));
    hub.truncate("model.safetensors");
    assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertEquals(FakeHub.SHA, Files.readString(refMain()));
    assertEquals(complete, resolve(settings().withOffline(true)));
    hub.heal("model.safetensors");
    hub.failWith("/cdn/model.safetensors", 503, null); // the file server is down: the cached snapshot serves
    assertEquals(complete, resolve(settings()));
  }

  @Test
  void aRegularFileIsCheckedAgainstItsGitBlobSha1() throws IOException {
    hub.corrupt("config.json");
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertTrue(e.getMessage().contains("'config.json'") && e.getMessage().contains("git blob sha1"), e.getMessage());
    assertNoPartialFiles();
    hub.heal("config.json");
    assertArrayEquals(hub.content("config.json"), Files.readAllBytes(resolve(settings()).resolve("config.json")));
  }

  @Test
  void partialFilesOfAKilledDownloadAreDeletedByTheNext() throws IOException {
    byte[] weights = hub.content("model.safetensors");
    Path blobs = repoDir().resolve("blobs");
    Files.createDirectories(blobs);
    String etag = FakeHub.sha256(weights);
    java.nio.file.attribute.FileTime old = java.nio.file.attribute.FileTime.fromMillis(
        System.currentTimeMillis() - BlobDownloader.LEFTOVER_AGE.toMillis() - 60_000);
    Path leftover = blobs.resolve(etag + "." + java.util.UUID.randomUUID() + HubCache.INCOMPLETE_SUFFIX);
    Files.write(leftover, new byte[weights.length / 2]);
    Files.setLastModifiedTime(leftover, old);
    // Not ours to delete: one being written now (an opt-java before the lock), Python's (it resumes it), another blob's.
    Path live = blobs.resolve(etag + "." + java.util.UUID.randomUUID() + HubCache.INCOMPLETE_SUFFIX);
    Files.write(live, new byte[1]);
    Path python = blobs.resolve(etag + HubCache.INCOMPLETE_SUFFIX);
    Files.write(python, new byte[1]);
    Files.setLastModifiedTime(python, old);
    Path other = blobs.resolve("0123" + "." + java.util.UUID.randomUUID() + HubCache.INCOMPLETE_SUFFIX);
    Files.write(other, new byte[1]);
    Files.setLastModifiedTime(other, old);
    resolve(settings());
    assertFalse(Files.exists(leftover), "the killed download's partial file is gone");
    for (Path kept : List.of(live, python, other)) {
      assertTrue(Files.exists(kept), kept.getFileName().toString());
    }
  }

  @Test
  void concurrentResolvesDownloadEachBlobOnce() throws Exception {
    hub.slow("model.safetensors");
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<Path>> results = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        results.add(pool.submit(() -> resolve(settings())));
      }
      for (Future<Path> r : results) {
        assertEquals(snapshot(), r.get(60, TimeUnit.SECONDS));
      }
    } finally {
      pool.shutdownNow();
    }
    assertEquals(1, getsOf("model.safetensors").stream().filter(r -> r.path().startsWith("/cdn/")).count(),
        "GETs of the weights");
    assertNoPartialFiles();
  }

  @Test
  void aHugeListingIsRefusedNotReadWhole() {
    hub.padListing(HubClient.MAX_LISTING_BYTES + (1 << 20));
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertTrue(e.getMessage().contains("its answer is larger than 64 MiB"), e.getMessage());
  }

  @Test
  void aTricklingListingEndsAfterTheConnectAndFourReadTimeouts() {
    hub.trickleListing(50); // never 300 ms without a byte: the read timeout alone would wait for the whole answer
    HubSettings settings = settings().withTimeouts(Duration.ofSeconds(1), Duration.ofMillis(300));
    long t0 = System.nanoTime();
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings));
    double seconds = (System.nanoTime() - t0) / 1e9;
    assertTrue(e.getMessage().contains("the answer took more than 2.2 s"), e.getMessage());
    assertTrue(seconds < 10, seconds + " s");
  }

  @Test
  void aRateLimitFallsBackToTheCacheLikeAnOutage() {
    Path complete = resolve(settings());
    hub.failWith("/revision/main", 429, null);
    assertEquals(complete, resolve(settings()));
  }

  @Test
  void aFileServersRefusalIsNotReportedAsAGatedModel() {
    hub.failWith("/cdn/model.safetensors", 403, null);
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertTrue(e.getMessage().contains("where the hub sent it, failed with HTTP 403")
        && e.getMessage().contains("signed link may have expired"), e.getMessage());
    assertFalse(e.getMessage().contains("gated"), e.getMessage());
  }

  @Test
  void aCacheThatCannotBeWrittenServesTheCompleteSnapshotItHolds() throws IOException {
    Path complete = resolve(settings());
    hub.setCommit(NEWER);
    Files.writeString(repoDir().resolve("snapshots").resolve(NEWER), "a file where the new snapshot's folder goes");
    assertEquals(complete, resolve(settings()));
    assertEquals(FakeHub.SHA, Files.readString(refMain()));
  }

  /** Session 27's review: a proxy's gzip failed as "the connection closed early" after part of the bytes. */
  @Test
  void anEncodedDownloadIsNamedAndNothingIsStored() throws IOException {
    hub.gzip("merges.txt");
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertTrue(e.getMessage().contains("came encoded (Content-Encoding: gzip)"), e.getMessage());
    assertNoPartialFiles();
  }
}
