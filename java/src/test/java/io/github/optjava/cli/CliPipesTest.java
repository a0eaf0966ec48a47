package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The JSON Lines commands in pipelines: an answer goes out as soon as it is known (a client may wait for it before
 * writing the next request), and a closed standard output (a reader such as {@code head} gone) stops the command
 * instead of letting it compute answers nobody reads.
 */
class CliPipesTest {
  private static final String REQUEST = "{\"prompt\": \"Hello\", \"temperature\": 0, \"max_tokens\": 4}\n";

  private static String model() {
    return fixture("tiny-opt").toString();
  }

  /** An output that takes the first line and then fails every write, as a closed pipe does. */
  private static final class ClosesAfterOneLine extends OutputStream {
    final ByteArrayOutputStream taken = new ByteArrayOutputStream();
    private boolean closed;

    @Override
    public synchronized void write(int b) throws IOException {
      if (closed) {
        throw new IOException("Broken pipe");
      }
      taken.write(b);
      closed = b == '\n';
    }
  }

  /** Counts the bytes read, to show that the rest of the input was left unread. */
  private static final class CountingInput extends ByteArrayInputStream {
    final AtomicInteger read = new AtomicInteger();

    CountingInput(byte[] bytes) {
      super(bytes);
    }

    @Override
    public synchronized int read(byte[] b, int off, int len) {
      int n = super.read(b, off, Math.min(len, 64)); // small reads, so that "not all" is visible
      if (n > 0) {
        read.addAndGet(n);
      }
      return n;
    }
  }

  @Test
  void batchAnswersARequestBeforeTheNextOneArrives() throws Exception {
    PipedOutputStream requests = new PipedOutputStream();
    InputStream stdin = new PipedInputStream(requests, 1 << 16);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    CompletableFuture<Integer> exit = CompletableFuture.supplyAsync(() -> Main.run(stdin,
        new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
        "batch", "--model", model(), "--device", "cpu"));
    requests.write(REQUEST.getBytes(StandardCharsets.UTF_8));
    requests.flush();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (!out.toString(StandardCharsets.UTF_8).contains("\n") && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    String first = out.toString(StandardCharsets.UTF_8);
    assertTrue(first.contains("\"choices\"") && first.endsWith("\n"),
        "the first answer, while the input is still open: " + first + err.toString(StandardCharsets.UTF_8));
    requests.write(REQUEST.getBytes(StandardCharsets.UTF_8));
    requests.close();
    assertEquals(0, exit.get(60, TimeUnit.SECONDS), err.toString(StandardCharsets.UTF_8));
    assertEquals(2, out.toString(StandardCharsets.UTF_8).lines().count());
  }

  @Test
  void batchStopsWhenItsOutputIsClosed() {
    byte[] input = REQUEST.repeat(400).getBytes(StandardCharsets.UTF_8);
    CountingInput stdin = new CountingInput(input);
    ClosesAfterOneLine stdout = new ClosesAfterOneLine();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit = Main.run(stdin, new PrintStream(stdout, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8), "batch", "--model", model(), "--device", "cpu");
    String e = err.toString(StandardCharsets.UTF_8);
    assertEquals(1, exit, e);
    assertTrue(e.contains("standard output closed (at answer 2); stopped"), e);
    assertTrue(stdin.read.get() < input.length, "read " + stdin.read.get() + " of " + input.length + " bytes");
  }

  /**
   * An Error while writing an answer (an OutOfMemoryError building a large reply, say) ends the command with that
   * error: it neither exits 0 with answers missing nor hangs once the queue of pending requests is full.
   */
  @Test
  void anErrorWhileWritingEndsTheCommandWithoutHanging() {
    class Boom extends Error {
      Boom() {
        super("boom");
      }
    }
    for (int requests : new int[] {5, 600}) {
      OutputStream failsOnSecondLine = new OutputStream() {
        private int lines;

        @Override
        public void write(int b) {
          if (lines == 1) {
            throw new Boom();
          }
          if (b == '\n') {
            lines++;
          }
        }
      };
      Boom thrown = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(120),
          () -> org.junit.jupiter.api.Assertions.assertThrows(Boom.class, () -> Main.run(
              new ByteArrayInputStream(REQUEST.repeat(requests).getBytes(StandardCharsets.UTF_8)),
              new PrintStream(failsOnSecondLine, true, StandardCharsets.UTF_8),
              new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8), "batch", "--model", model(),
              "--device", "cpu")));
      assertEquals("boom", thrown.getMessage(), requests + " requests");
    }
  }

  @Test
  void tokenizeAndScoreStopWhenTheirOutputIsClosed() {
    for (String command : new String[] {"tokenize", "score"}) {
      byte[] input = "{\"text\": \"Hello world\"}\n".repeat(20_000).getBytes(StandardCharsets.UTF_8);
      CountingInput stdin = new CountingInput(input);
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      int exit = Main.run(stdin, new PrintStream(new ClosesAfterOneLine(), true, StandardCharsets.UTF_8),
          new PrintStream(err, true, StandardCharsets.UTF_8), command.equals("score")
              ? new String[] {command, "--model", model(), "--device", "cpu"} : new String[] {command, "--model", model()});
      String e = err.toString(StandardCharsets.UTF_8);
      assertEquals(1, exit, command + ": " + e);
      assertTrue(e.contains("standard output closed (at answer 2); stopped"), command + ": " + e);
      assertTrue(stdin.read.get() < input.length, command + " read all " + input.length + " bytes");
    }
  }

  @Test
  void generateStopsWhenItsOutputIsClosed() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    OutputStream closesAfterThreeBytes = new OutputStream() {
      private int taken;

      @Override
      public void write(int b) throws IOException {
        if (++taken > 3) {
          throw new IOException("Broken pipe");
        }
      }
    };
    int exit = Main.run(new ByteArrayInputStream(new byte[0]), new PrintStream(closesAfterThreeBytes, true,
        StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8), "generate", "--model", model(),
        "--device", "cpu", "--prompt", "Hello\nworld", "--temperature", "0", "--max-tokens", "100");
    String e = err.toString(StandardCharsets.UTF_8);
    assertEquals(1, exit, e);
    assertTrue(e.contains("standard output closed; generation stopped"), e);
  }

  @Test
  void anEmptyTextScoresWithANullPerplexity() throws IOException {
    CliTest.Run r = cli("{\"text\": \"\"}\n", "score", "--model", model(), "--device", "cpu");
    assertEquals(0, r.exit(), r.err());
    var line = new ObjectMapper().readTree(r.out());
    assertTrue(line.get("perplexity").isNull(), r.out());
    assertNull(line.get("error"), r.out());
  }
}
