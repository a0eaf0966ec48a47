package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ModelLocatorTest extends FakeHubTestBase {

  @Test
  void anExistingDirectoryIsReturnedUnchanged() {
    Path fixture = FakeHub.tinyOptFixture();

    assertEquals(Path.of(fixture.toString()), ModelLocator.resolve(fixture.toString(), settings(), "main"));
    assertEquals(List.of(), hub.requests());
  }

  @Test
  void theNoSettingsOverloadReturnsADirectoryWithoutReadingTheEnvironment() {
    Path fixture = FakeHub.tinyOptFixture();

    assertEquals(fixture, ModelLocator.resolve(fixture.toString()));
  }

  @Test
  void aFileIsNotAModelDirectory() {
    Path config = FakeHub.tinyOptFixture().resolve("config.json");

    CheckpointException e = assertThrows(CheckpointException.class,
        () -> ModelLocator.resolve(config.toString(), settings(), "main"));

    assertTrue(e.getMessage().contains("is a file"), e.getMessage());
  }

  @ParameterizedTest
  @ValueSource(strings = {
    "no-such-dir", "./no/such/dir", "/abs/no-such-dir", "facebook/../opt", "facebook/opt..x",
    "facebook/opt 125m", "face book/opt", "facebook/opt/125m", "facebook/-opt", "facebook/opt-",
    "facebook/.opt", "face--book/opt", "facebook/opt.git", "facebook/", "/opt-125m", "facebook\\opt",
    "facebook/opt?x", "facebook/ópt"
  })
  void neitherADirectoryNorAValidIdIsRejectedWithoutNetwork(String text) {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> ModelLocator.resolve(text, settings(), "main"));

    assertTrue(e.getMessage().contains("'" + text + "' does not exist"), e.getMessage());
    assertTrue(e.getMessage().contains("facebook/opt-125m"), e.getMessage());
    assertEquals(List.of(), hub.requests());
  }

  /** A mistyped local path that reads as an id: the hub's answer, and that it was no local directory either. */
  @Test
  void aMistypedLocalPathSaysItIsNoLocalDirectory() throws Exception {
    Path parent = Files.createDirectories(Path.of("target-locator-test"));
    try {
      String typo = parent + "/opt-125n";
      CheckpointException e = assertThrows(CheckpointException.class,
          () -> ModelLocator.resolve(typo, settings(), "main"));
      assertTrue(e.getMessage().contains("there is no local directory '" + typo + "', though '" + parent
          + "' exists"), e.getMessage());
      assertTrue(hub.requests().size() > 0, "asked the hub first");
    } finally {
      Files.delete(parent);
    }
  }

  @Test
  void aBlankNameIsRejected() {
    assertThrows(CheckpointException.class, () -> ModelLocator.resolve(" ", settings(), "main"));
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "../main", "refs/../../x", "/main", "main/", "ma in", "a..b"})
  void invalidRevisionsAreRejectedWithoutNetwork(String revision) {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> ModelLocator.resolve(FakeHub.REPO, settings(), revision));

    assertTrue(e.getMessage().contains("Invalid revision"), e.getMessage());
    assertEquals(List.of(), hub.requests());
  }

  @Test
  void aValidIdResolvesToItsSnapshot() {
    Path snapshot = ModelLocator.resolve(FakeHub.REPO, settings(), "main");

    assertSame(true, Files.isDirectory(snapshot));
    assertEquals(snapshot(), snapshot);
  }
}
