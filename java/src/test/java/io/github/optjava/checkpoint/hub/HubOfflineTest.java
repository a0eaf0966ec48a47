package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Offline mode, and falling back to the cache when the hub cannot be reached. */
class HubOfflineTest extends FakeHubTestBase {

  @Test
  void offlineWithACompleteCacheMakesNoRequestAtAll() {
    Path online = resolve(settings());
    hub.clearRequests();

    Path offline = resolve(settings().withOffline(true));

    assertEquals(online, offline);
    assertEquals(List.of(), hub.requests());
  }

  @Test
  void offlineWithoutACachedCopySaysHowToDownloadIt() {
    CheckpointException e =
        assertThrows(CheckpointException.class, () -> resolve(settings().withOffline(true)));

    assertTrue(e.getMessage().contains("HF_HUB_OFFLINE"), e.getMessage());
    assertTrue(e.getMessage().contains("huggingface-cli download " + FakeHub.REPO), e.getMessage());
    assertTrue(e.getMessage().contains("never downloaded"), e.getMessage());
    assertEquals(List.of(), hub.requests());
  }

  @Test
  void offlineWithAnIncompleteSnapshotNamesTheMissingFiles() throws IOException {
    resolve(settings());
    Files.delete(snapshot().resolve("merges.txt"));
    Files.delete(snapshot().resolve("model.safetensors"));
    hub.clearRequests();

    CheckpointException e =
        assertThrows(CheckpointException.class, () -> resolve(settings().withOffline(true)));

    assertTrue(e.getMessage().contains("missing merges.txt, weights"), e.getMessage());
    assertEquals(List.of(), hub.requests());
  }

  @Test
  void offlineChecksTheShardsOfACachedIndex() throws IOException {
    hub.setListing(List.of("config.json", "vocab.json", "merges.txt"));
    hub.serve("model-00001-of-00001.safetensors", new byte[64]);
    hub.serve("model.safetensors.index.json",
        "{\"weight_map\": {\"w\": \"model-00001-of-00001.safetensors\"}}".getBytes());
    resolve(settings());
    Files.delete(snapshot().resolve("model-00001-of-00001.safetensors"));

    CheckpointException e =
        assertThrows(CheckpointException.class, () -> resolve(settings().withOffline(true)));

    assertTrue(e.getMessage().contains("missing model-00001-of-00001.safetensors"), e.getMessage());
  }

  @Test
  void anUnreachableHubFallsBackToACompleteCachedSnapshot() {
    Path online = resolve(settings());
    hub.close(); // connection refused from now on

    assertEquals(online, resolve(settings()));
  }

  @Test
  void anUnreachableHubWithoutACachedCopyIsAClearError() {
    hub.close();

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("Cannot reach"), e.getMessage());
    assertTrue(e.getMessage().contains("No complete copy"), e.getMessage());
  }

  @Test
  void aHubServerErrorFallsBackToTheCacheToo() {
    Path online = resolve(settings());
    hub.failWith("/revision/main", 503, null);

    assertEquals(online, resolve(settings()));
  }

  @Test
  void aHubServerErrorWithoutACachedCopyReportsTheStatus() {
    hub.failWith("/revision/main", 500, null);

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertInstanceOf(HubUnavailableException.class, e);
    assertTrue(e.getMessage().contains("HTTP 500"), e.getMessage());
  }

  @Test
  void anUnreachableHubDoesNotHideAnIncompleteCache() throws IOException {
    resolve(settings());
    Files.delete(snapshot().resolve("vocab.json"));
    hub.close();

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("Cannot reach"), e.getMessage());
    assertFalse(Files.exists(snapshot().resolve("vocab.json")));
  }

  @Test
  void aHubThatNeverAnswersTimesOutAndFallsBackToTheCache() {
    Path online = resolve(settings());
    hub.hang("/revision/main");
    HubSettings impatient = settings().withTimeouts(Duration.ofMillis(300), Duration.ofMillis(300));

    long start = System.nanoTime();
    assertEquals(online, resolve(impatient));
    assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(10), "gave up in time");
  }
}
