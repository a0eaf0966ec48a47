package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A server that answers with hostile text (control characters, kilobytes) in bodies, headers and its status
 * line: every message shows that text quoted and cut, and still says what is wrong.
 */
class HubHostileAnswerTest {

  /** A forged log line and then far more text than a message should hold. */
  private static final String HOSTILE = "x\u001b[31m\tERROR forged" + "y".repeat(10_000);
  /** For headers: the JDK's client refuses a header with a control character, but not a long one. */
  private static final String LONG = "x ERROR forged" + "y".repeat(10_000);

  private static final String FILES = "[{\"rfilename\":\"config.json\"},{\"rfilename\":\"vocab.json\"},"
      + "{\"rfilename\":\"merges.txt\"},{\"rfilename\":\"model.safetensors\"}]";

  @TempDir Path cache;
  private HttpServer server;
  private volatile Answer answer;

  private interface Answer {
    void handle(HttpExchange exchange) throws IOException;
  }

  @BeforeEach
  void start() throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4);
    server.createContext("/", exchange -> {
      try (exchange) {
        answer.handle(exchange);
      }
    });
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  private Path resolve(URI endpoint) {
    return ModelLocator.resolve(FakeHub.REPO, HubSettings.of(cache, endpoint), "main");
  }

  private URI endpoint() {
    return URI.create("http://127.0.0.1:" + server.getAddress().getPort());
  }

  /** Answers the listing with this body, and each HEAD with these headers (200, no body). */
  private void answerListingThenHead(String listing, String commitHeader, String sizeHeader) {
    answer = exchange -> {
      if (exchange.getRequestURI().getPath().startsWith("/api/")) {
        byte[] body = listing.getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(200, body.length);
        exchange.getResponseBody().write(body);
        return;
      }
      exchange.getResponseHeaders().set("X-Repo-Commit", commitHeader);
      exchange.getResponseHeaders().set("ETag", "\"abc\"");
      exchange.getResponseHeaders().set("X-Linked-Size", sizeHeader);
      exchange.sendResponseHeaders(200, -1);
    };
  }

  private static String listing(String sha) {
    return "{\"sha\":\"" + sha + "\",\"siblings\":" + FILES + "}";
  }

  /** Asserts the hostile text shows only quoted, cut and without its control characters. */
  private static void assertQuotedAndCut(String message) {
    assertTrue(message.contains("x?[31m?ERROR forgedyyy"), message);
    assertFalse(message.contains("\u001b") || message.contains("\t"), message);
    assertCut(message);
  }

  private static void assertCut(String message) {
    assertTrue(message.contains("y…'"), message);
    assertTrue(message.length() < 1_000, message.length() + " characters");
  }

  @Test
  void aListingWithAKeyGivenTwiceIsRefusedNamingTheKey() {
    answerListingThenHead("{\"sha\":\"" + FakeHub.SHA + "\",\"sha\":\"0\",\"siblings\":" + FILES + "}",
        FakeHub.SHA, "2");

    HubUnavailableException e = assertThrows(HubUnavailableException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("its answer is not valid JSON (Duplicate field 'sha')"), e.getMessage());
    assertTrue(e.getMessage().contains("Is HF_ENDPOINT"), e.getMessage());
  }

  @Test
  void anUnusableSizeHeaderIsQuotedAndCut() {
    answerListingThenHead(listing(FakeHub.SHA), FakeHub.SHA, LONG);

    HubUnavailableException e = assertThrows(HubUnavailableException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("its size header is not a number: 'x ERROR forgedyyy"), e.getMessage());
    assertCut(e.getMessage());
    assertTrue(e.getMessage().contains("Is HF_ENDPOINT"), e.getMessage());
  }

  @Test
  void anInvalidStatusLineIsQuotedAndCut() throws IOException {
    try (ServerSocket raw = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      Thread thread = new Thread(() -> {
        try (Socket socket = raw.accept(); OutputStream out = socket.getOutputStream()) {
          socket.getInputStream().read(new byte[4096]);
          out.write(("NOT-HTTP " + HOSTILE + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
          // the client gave up: nothing to report
        }
      });
      thread.setDaemon(true);
      thread.start();

      HubUnavailableException e = assertThrows(HubUnavailableException.class,
          () -> resolve(URI.create("http://127.0.0.1:" + raw.getLocalPort())));

      assertTrue(e.getMessage().contains("Cannot reach http://127.0.0.1:"), e.getMessage());
      assertQuotedAndCut(e.getMessage());
      assertTrue(e.getMessage().contains("HF_HUB_OFFLINE=1"), e.getMessage());
    }
  }

  @Test
  void theHubsErrorMessageHeaderIsQuotedAndCut() {
    answer = exchange -> {
      exchange.getResponseHeaders().set("X-Error-Code", "GatedRepo");
      exchange.getResponseHeaders().set("X-Error-Message", LONG);
      exchange.sendResponseHeaders(403, -1);
    };

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("is restricted (HTTP 403)"), e.getMessage());
    assertTrue(e.getMessage().contains("set HF_TOKEN"), e.getMessage());
    assertTrue(e.getMessage().contains(" Hub message: 'x ERROR forgedyyy"), e.getMessage());
    assertCut(e.getMessage());
  }

  @Test
  void anUnusableCommitInTheListingIsQuotedAndCut() {
    // The JSON escape \u001b arrives as the control character itself.
    answerListingThenHead(listing("x\\u001b[31m\\tERROR forged" + "y".repeat(10_000)), FakeHub.SHA, "2");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("The hub returned an unusable commit "), e.getMessage());
    assertQuotedAndCut(e.getMessage());
  }

  @Test
  void aLongCommitInTheListingIsRefused() {
    answerListingThenHead(listing("a".repeat(10_000)), FakeHub.SHA, "2");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("unusable commit 'aaa"), e.getMessage());
    assertTrue(e.getMessage().contains("expected up to 255 letters"), e.getMessage());
    assertTrue(e.getMessage().length() < 1_000, e.getMessage().length() + " characters");
  }

  @Test
  void anotherCommitInAFilesAnswerIsQuotedAndCut() {
    answerListingThenHead(listing(FakeHub.SHA), LONG, "2");

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(endpoint()));

    assertTrue(e.getMessage().contains("The hub answered for commit 'x ERROR forgedyyy"), e.getMessage());
    assertTrue(e.getMessage().contains("when asked for 'config.json' at commit " + FakeHub.SHA), e.getMessage());
    assertTrue(e.getMessage().contains("Run again."), e.getMessage());
    assertCut(e.getMessage());
  }
}
