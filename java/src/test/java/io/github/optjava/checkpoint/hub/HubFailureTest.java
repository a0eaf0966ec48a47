package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Failed downloads leave nothing partial in the cache, and HTTP errors say what to do. */
class HubFailureTest extends FakeHubTestBase {

  @Test
  void aCutOffDownloadFailsAndLeavesNoPartialFile() throws IOException {
    hub.truncate("model.safetensors");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    assertTrue(e.getMessage().contains("Nothing was stored"), e.getMessage());
    assertFalse(Files.exists(snapshot().resolve("model.safetensors")));
    assertFalse(Files.exists(repoDir().resolve("blobs").resolve(FakeHub.sha256(hub.content("model.safetensors")))));
    assertNoPartialFiles();
  }

  @Test
  void aRetryAfterACutOffCompletesTheSnapshot() throws IOException {
    hub.truncate("merges.txt"); // a small, non-LFS file served by the hub itself
    assertThrows(CheckpointException.class, () -> resolve(settings()));
    assertNoPartialFiles();

    try (FakeHub healthy = new FakeHub(FakeHub.tinyOptFixture())) {
      resolve(HubSettings.of(cache, healthy.endpoint()));
    }
    assertArrayEqualsToHub("merges.txt");
  }

  @Test
  void aSha256MismatchFailsAndLeavesNoFile() throws IOException {
    hub.announceWrongSha256("model.safetensors");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("sha256"), e.getMessage());
    assertTrue(e.getMessage().contains("corrupt"), e.getMessage());
    assertFalse(Files.exists(snapshot().resolve("model.safetensors")));
    assertNoPartialFiles();
  }

  @Test
  void aStalledDownloadTimesOutAndLeavesNoFile() throws IOException {
    hub.stall("model.safetensors");
    HubSettings settings = settings().withTimeouts(Duration.ofSeconds(5), Duration.ofMillis(400));

    long start = System.nanoTime();
    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings));

    assertTrue(e.getMessage().contains("no data for 0.4 s"), e.getMessage());
    assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
    assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(20), "gave up in time");
    assertNoPartialFiles();
  }

  @Test
  void anInterruptedDownloadFailsAndLeavesNoFile() throws Exception {
    hub.stall("model.safetensors");
    CompletableFuture<Boolean> interruptedAfter = new CompletableFuture<>();
    Thread thread = new Thread(() -> {
      try {
        resolve(settings());
        interruptedAfter.completeExceptionally(new AssertionError("resolve succeeded"));
      } catch (CheckpointException e) {
        interruptedAfter.complete(
            e.getMessage().contains("Interrupted while receiving") && Thread.currentThread().isInterrupted());
      }
    });
    thread.start();
    while (getsOf("model.safetensors").isEmpty()) {
      Thread.sleep(10);
    }
    Thread.sleep(100); // let the download block on the stalled body
    thread.interrupt();

    assertTrue(interruptedAfter.get(20, TimeUnit.SECONDS), "interrupt reported and preserved");
    thread.join(5000);
    assertNoPartialFiles();
  }

  @Test
  void anUnknownRepositoryIsNotFound() {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> ModelLocator.resolve("facebook/opt-nope", settings(), "main"));

    assertTrue(e.getMessage().contains("facebook/opt-nope"), e.getMessage());
    assertTrue(e.getMessage().contains("not found"), e.getMessage());
    assertTrue(e.getMessage().contains("HTTP 404"), e.getMessage());
  }

  @Test
  void anUnknownRevisionIsNotFound() {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> ModelLocator.resolve(FakeHub.REPO, settings(), "no-such-branch"));

    assertTrue(e.getMessage().contains("Revision 'no-such-branch'"), e.getMessage());
  }

  @Test
  void aListedFileTheHubCannotServeIsNamed() {
    hub.failWith("/merges.txt", 404, "EntryNotFound");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("File 'merges.txt' not found"), e.getMessage());
  }

  @Test
  void aGatedRepositorySaysToAcceptTheTermsAndSetAToken() {
    hub.failWith("/revision/main", 403, "GatedRepo");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("gated"), e.getMessage());
    assertTrue(e.getMessage().contains("HF_TOKEN"), e.getMessage());
  }

  @Test
  void aRejectedTokenIsReportedAsSuch() {
    hub.requireToken("hf_right");

    CheckpointException e = assertThrows(CheckpointException.class,
        () -> resolve(settings().withToken("hf_wrong")));

    assertTrue(e.getMessage().contains("token in HF_TOKEN was rejected"), e.getMessage());
    assertFalse(e.getMessage().contains("hf_wrong"), "the token itself is never printed");
  }

  private void assertArrayEqualsToHub(String name) throws IOException {
    assertArrayEquals(hub.content(name), Files.readAllBytes(snapshot().resolve(name)));
  }
}
