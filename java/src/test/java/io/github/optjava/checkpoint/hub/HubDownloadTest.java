package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class HubDownloadTest extends FakeHubTestBase {

  private static final String[] TINY_OPT_FILES = {
    "config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "model.safetensors"
  };

  @Test
  void downloadsIntoTheHuggingFaceCacheLayout() throws IOException {
    hub.serve("README.md", "# tiny".getBytes(StandardCharsets.UTF_8));
    hub.serve("tf_model.h5", new byte[100]);

    Path snapshot = resolve(settings());

    assertEquals(snapshot(), snapshot);
    assertEquals(FakeHub.SHA, Files.readString(repoDir().resolve("refs/main")));
    // Only what opt-java needs: no README, no TensorFlow weights, no second copy as .bin.
    assertSnapshotHolds(snapshot, TINY_OPT_FILES);
    for (String name : TINY_OPT_FILES) {
      Path pointer = snapshot.resolve(name);
      assertTrue(Files.isSymbolicLink(pointer), name + " is a symlink");
      byte[] content = hub.content(name);
      String etag = FakeHub.isLfs(name) ? FakeHub.sha256(content) : FakeHub.gitBlobSha1(content);
      assertEquals(Path.of("../../blobs", etag), Files.readSymbolicLink(pointer), name);
      assertTrue(Files.isRegularFile(repoDir().resolve("blobs").resolve(etag)));
    }
    assertEquals(List.of(), getsOf("pytorch_model.bin"));
    assertEquals(List.of(), getsOf("README.md"));
    assertNoPartialFiles();
  }

  @Test
  void secondResolveMakesOnlyTheListingRequest() {
    Path first = resolve(settings());
    hub.clearRequests();

    Path second = resolve(settings());

    assertEquals(first, second);
    List<FakeHub.Request> requests = hub.requests();
    assertEquals(1, requests.size(), requests.toString());
    assertEquals("/api/models/" + FakeHub.REPO + "/revision/main", requests.get(0).path());
  }

  @Test
  void lfsFilesFollowTheRedirectToTheCdn() {
    resolve(settings());

    List<FakeHub.Request> gets = getsOf("model.safetensors");
    assertEquals(1, gets.size(), gets.toString());
    assertEquals("/cdn/model.safetensors", gets.get(0).path());
    assertTrue(gets.get(0).host().startsWith("localhost:"), gets.get(0).host());
    // Metadata came from the hub's 302 headers; the redirect was not followed for the HEAD.
    assertTrue(hub.requests().stream().noneMatch(r -> r.method().equals("HEAD") && r.path().startsWith("/cdn/")));
  }

  @Test
  void tokenGoesToTheHubAsBearerButNeverToTheCdn() {
    hub.requireToken("hf_secret");

    resolve(settings().withToken("hf_secret"));

    List<FakeHub.Request> requests = hub.requests();
    List<FakeHub.Request> cdn = requests.stream().filter(r -> r.path().startsWith("/cdn/")).toList();
    List<FakeHub.Request> toHub = requests.stream().filter(r -> !r.path().startsWith("/cdn/")).toList();
    assertFalse(cdn.isEmpty());
    assertFalse(toHub.isEmpty());
    toHub.forEach(r -> assertEquals("Bearer hf_secret", r.authorization(), r.toString()));
    cdn.forEach(r -> assertNull(r.authorization(), r.toString()));
  }

  @Test
  void anonymousRequestsCarryNoAuthorization() {
    resolve(settings());

    hub.requests().forEach(r -> assertNull(r.authorization(), r.toString()));
  }

  @Test
  void missingTokenForAPrivateRepoSaysToSetHfToken() {
    hub.requireToken("hf_secret");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("HTTP 401"), e.getMessage());
    assertTrue(e.getMessage().contains("HF_TOKEN"), e.getMessage());
    assertTrue(e.getMessage().contains(FakeHub.REPO), e.getMessage());
  }

  @Test
  void aCommitShaRevisionNeedsNoRef() throws IOException {
    Path snapshot = ModelLocator.resolve(FakeHub.REPO, settings(), FakeHub.SHA);

    assertEquals(snapshot(), snapshot);
    assertFalse(Files.exists(repoDir().resolve("refs").resolve(FakeHub.SHA)));
    assertSnapshotHolds(snapshot, TINY_OPT_FILES);
  }

  @Test
  void withoutSymlinksTheSnapshotHoldsPlainFiles() throws IOException {
    Path snapshot = ModelLocator.resolve(FakeHub.REPO, settings(), "main", false);

    assertSnapshotHolds(snapshot, TINY_OPT_FILES);
    for (String name : TINY_OPT_FILES) {
      assertFalse(Files.isSymbolicLink(snapshot.resolve(name)), name);
    }
    assertNoPartialFiles();
  }

  @Test
  void aBlobAlreadyCachedIsLinkedWithoutDownloading() throws IOException {
    resolve(settings());
    Files.delete(snapshot().resolve("model.safetensors")); // as if another commit shared the blob
    hub.clearRequests();

    resolve(settings());

    assertEquals(List.of(), getsOf("model.safetensors"));
    assertSnapshotHolds(snapshot(), TINY_OPT_FILES);
  }

  @Test
  void aPullRequestRevisionIsOneUrlSegmentAndANestedRef() throws IOException {
    Path snapshot = ModelLocator.resolve(FakeHub.REPO, settings(), "refs/pr/1");

    assertEquals(snapshot(), snapshot);
    assertEquals("/api/models/" + FakeHub.REPO + "/revision/refs%2Fpr%2F1", hub.requests().get(0).path());
    assertEquals(FakeHub.SHA, Files.readString(repoDir().resolve("refs/refs/pr/1")));
  }

  @Test
  void concurrentResolvesOfOneModelShareTheCacheSafely() throws Exception {
    int workers = 4;
    ExecutorService pool = Executors.newFixedThreadPool(workers);
    try {
      CountDownLatch start = new CountDownLatch(1);
      List<Future<Path>> results = new ArrayList<>();
      for (int i = 0; i < workers; i++) {
        // Without symlinks for half of them: plain copies must not clash with links either.
        boolean symlinks = i % 2 == 0;
        results.add(pool.submit(() -> {
          start.await();
          return ModelLocator.resolve(FakeHub.REPO, settings(), "main", symlinks);
        }));
      }
      start.countDown();
      for (Future<Path> result : results) {
        assertEquals(snapshot(), result.get(60, TimeUnit.SECONDS));
      }
    } finally {
      pool.shutdownNow();
    }
    assertSnapshotHolds(snapshot(), TINY_OPT_FILES);
    assertNoPartialFiles();
  }
}
