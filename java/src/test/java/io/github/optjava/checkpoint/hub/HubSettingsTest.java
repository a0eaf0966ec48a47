package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class HubSettingsTest {

  @TempDir Path home;

  private HubSettings fromEnv(Map<String, String> env) {
    return HubSettings.fromEnvironment(env, home, false);
  }

  @Test
  void defaultsMatchHuggingfaceHub() {
    HubSettings s = fromEnv(Map.of());

    assertEquals(home.resolve(".cache/huggingface/hub"), s.cacheDir());
    assertEquals(URI.create("https://huggingface.co"), s.endpoint());
    assertNull(s.token());
    assertFalse(s.offline());
    assertFalse(s.progressBar());
    assertEquals(Duration.ofSeconds(10), s.connectTimeout());
    assertEquals(Duration.ofSeconds(30), s.readTimeout());
  }

  @Test
  void xdgCacheHomeMovesTheDefaultHome() {
    assertEquals(Path.of("/xdg/huggingface/hub"), fromEnv(Map.of("XDG_CACHE_HOME", "/xdg")).cacheDir());
  }

  @Test
  void hfHomeWinsOverXdgAndHfHubCacheWinsOverBoth() {
    assertEquals(Path.of("/hf/hub"),
        fromEnv(Map.of("XDG_CACHE_HOME", "/xdg", "HF_HOME", "/hf")).cacheDir());
    assertEquals(Path.of("/cache"),
        fromEnv(Map.of("HF_HOME", "/hf", "HF_HUB_CACHE", "/cache")).cacheDir());
    assertEquals(home.resolve("c"), fromEnv(Map.of("HF_HUB_CACHE", "~/c")).cacheDir());
  }

  @Test
  void theTokenComesFromHfTokenElseTheTokenFile() throws IOException {
    Path hfHome = Files.createDirectories(home.resolve("hf"));
    Files.writeString(hfHome.resolve("token"), "hf_from_file\n");

    assertEquals("hf_from_file", fromEnv(Map.of("HF_HOME", hfHome.toString())).token());
    assertEquals("hf_env", fromEnv(Map.of("HF_HOME", hfHome.toString(), "HF_TOKEN", " hf_env ")).token());
    assertNull(fromEnv(Map.of("HF_HOME", home.resolve("elsewhere").toString())).token());
  }

  @Test
  void theTokenFileDefaultsToTheDefaultHome() throws IOException {
    Path hfHome = Files.createDirectories(home.resolve(".cache/huggingface"));
    Files.writeString(hfHome.resolve("token"), "hf_login");

    assertEquals("hf_login", fromEnv(Map.of()).token());
  }

  @ParameterizedTest
  @ValueSource(strings = {"1", "ON", "yes", "True", " true "})
  void offlineAcceptsHuggingfaceHubsTrueValues(String value) {
    assertTrue(fromEnv(Map.of("HF_HUB_OFFLINE", value)).offline());
  }

  @ParameterizedTest
  @ValueSource(strings = {"0", "off", "no", "false", "", "2"})
  void offlineIsOffForOtherValues(String value) {
    assertFalse(fromEnv(Map.of("HF_HUB_OFFLINE", value)).offline());
  }

  @Test
  void theEndpointLosesItsTrailingSlashAndMustBeHttp() {
    assertEquals(URI.create("http://mirror.local:8080/hf"),
        fromEnv(Map.of("HF_ENDPOINT", "http://mirror.local:8080/hf/")).endpoint());
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> fromEnv(Map.of("HF_ENDPOINT", "ftp://x")));
    assertTrue(e.getMessage().contains("HF_ENDPOINT"), e.getMessage());
  }

  @Test
  void aRejectedVariableIsQuotedAndCut() {
    String hostile = "x\nERROR forged" + "y".repeat(10_000);

    for (String variable : List.of("HF_ENDPOINT", "HF_HUB_DOWNLOAD_TIMEOUT")) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> fromEnv(Map.of(variable, hostile)));

      assertTrue(e.getMessage().startsWith(variable + " "), e.getMessage());
      assertTrue(e.getMessage().contains("'x?ERROR forgedyyy"), e.getMessage());
      assertTrue(e.getMessage().endsWith("y…'"), e.getMessage());
      assertFalse(e.getMessage().contains("\n"), e.getMessage());
      assertTrue(e.getMessage().length() < 1_000, e.getMessage().length() + " characters");
    }
  }

  @Test
  void theReadTimeoutComesFromHfHubDownloadTimeout() {
    assertEquals(Duration.ofMillis(2500),
        fromEnv(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", "2.5")).readTimeout());
    assertThrows(CheckpointException.class, () -> fromEnv(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", "soon")));
    assertThrows(CheckpointException.class, () -> fromEnv(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", "-1")));
  }

  @Test
  void theProgressBarNeedsATerminalAndCanBeDisabled() {
    assertTrue(HubSettings.fromEnvironment(Map.of(), home, true).progressBar());
    assertFalse(HubSettings.fromEnvironment(
        Map.of("HF_HUB_DISABLE_PROGRESS_BARS", "1"), home, true).progressBar());
  }

  @Test
  void toStringNeverShowsTheToken() {
    String text = fromEnv(Map.of("HF_TOKEN", "hf_secret")).toString();

    assertFalse(text.contains("hf_secret"), text);
    assertTrue(text.contains("token=***"), text);
  }

  /** Session 27's review: such a token reached the user whole in the JDK's "invalid header value" message. */
  @Test
  void aTokenWithAControlCharacterIsRefusedWithoutShowingIt() {
    for (String token : new String[] {"hf_SECRET\u0001tok", "hf_SECRET\u001b[2Jtok", "hf_SECRET\u00e9tok"}) {
      io.github.optjava.checkpoint.CheckpointException e = assertThrows(
          io.github.optjava.checkpoint.CheckpointException.class, () -> fromEnv(Map.of("HF_TOKEN", token)));
      assertTrue(e.getMessage().contains("position 10 of " + token.length()), e.getMessage());
      assertFalse(e.getMessage().contains("SECRET"), e.getMessage());
    }
  }

  /** Session 27's review: the password was printed in every message that named the endpoint, and never sent. */
  @Test
  void anEndpointWithAPasswordIsRefusedWithoutShowingIt() {
    io.github.optjava.checkpoint.CheckpointException e = assertThrows(
        io.github.optjava.checkpoint.CheckpointException.class,
        () -> fromEnv(Map.of("HF_ENDPOINT", "http://user:s3cretpw@127.0.0.1:8765")));
    assertTrue(e.getMessage().contains("must not hold a user name or password (http://127.0.0.1:8765 has one)"),
        e.getMessage());
    assertFalse(e.getMessage().contains("s3cret"), e.getMessage());
  }
}
