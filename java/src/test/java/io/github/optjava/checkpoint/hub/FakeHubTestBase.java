package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/** A fresh {@link FakeHub} serving tiny-opt and an empty cache directory for each test. */
abstract class FakeHubTestBase {

  @TempDir Path cache;
  FakeHub hub;

  @BeforeEach
  void startHub() throws IOException {
    hub = new FakeHub(FakeHub.tinyOptFixture());
  }

  @AfterEach
  void stopHub() {
    hub.close();
  }

  HubSettings settings() {
    return HubSettings.of(cache, hub.endpoint());
  }

  Path resolve(HubSettings settings) {
    return ModelLocator.resolve(FakeHub.REPO, settings, "main");
  }

  Path repoDir() {
    return cache.resolve("models--facebook--opt-tiny");
  }

  Path snapshot() {
    return repoDir().resolve("snapshots").resolve(FakeHub.SHA);
  }

  /** Asserts the snapshot holds exactly these names, each with the hub's bytes. */
  void assertSnapshotHolds(Path snapshot, String... names) throws IOException {
    try (Stream<Path> entries = Files.list(snapshot)) {
      assertEquals(
          Arrays.stream(names).sorted().toList(),
          entries.map(p -> p.getFileName().toString()).sorted().toList());
    }
    for (String name : names) {
      assertArrayEquals(hub.content(name), Files.readAllBytes(snapshot.resolve(name)), name);
    }
  }

  List<FakeHub.Request> getsOf(String fileName) {
    return hub.requests().stream()
        .filter(r -> r.method().equals("GET") && r.path().endsWith("/" + fileName))
        .toList();
  }

  /**
   * Asserts nothing partial is anywhere in the cache: no temporary file, no dangling link, and every
   * regular file is either a ref naming the commit, an empty lock file or the complete content of a served file.
   */
  void assertNoPartialFiles() throws IOException {
    List<byte[]> served =
        hub.listing().stream().map(hub::content).filter(java.util.Objects::nonNull).toList();
    try (Stream<Path> walk = Files.walk(cache)) {
      for (Path path : (Iterable<Path>) walk::iterator) {
        String name = path.getFileName().toString();
        assertFalse(name.endsWith(".incomplete"), "temporary file left: " + path);
        if (Files.isSymbolicLink(path)) {
          assertTrue(Files.exists(path), "dangling link: " + path);
        } else if (Files.isRegularFile(path)) {
          byte[] content = Files.readAllBytes(path);
          if (path.getParent().getParent().getFileName().toString().equals(".locks")) {
            assertEquals(0, content.length, "a download's lock file, empty (as huggingface_hub leaves them)");
          } else if (path.getParent().getFileName().toString().equals("refs")) {
            assertEquals(FakeHub.SHA, new String(content, StandardCharsets.UTF_8));
          } else if (served.stream().noneMatch(s -> Arrays.equals(s, content))) {
            fail("partial or unknown file in the cache: " + path + " (" + content.length + " bytes)");
          }
        }
      }
    }
  }
}
