package io.github.optjava.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.api.Completion;
import io.github.optjava.api.Generator;
import io.github.optjava.api.GeneratorStats;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.ParentCommand;

/**
 * {@code opt batch --model M}: JSON Lines requests on stdin (OpenAI / metaseq field names), one JSON
 * line per request on stdout in input order. Requests run batched together; a bad request gets
 * {@code {"error": "..."}} on its line and the others still run; the exit status is 1 if any failed.
 */
@Command(name = "batch", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Run JSON Lines requests from stdin ({\"prompt\": \"...\", \"max_tokens\": 16, ...}), batched; one JSON "
        + "line per request on stdout, in input order. A bad request yields {\"error\": \"...\"}; the exit status "
        + "is 1 if any failed."})
final class BatchCommand implements Callable<Integer> {
  /** Requests in flight at once: enough to fill any batch, bounded so a huge input does not fill memory. */
  private static final int WINDOW = 256;

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  @Mixin
  EngineOptions engine;

  private final ObjectMapper json = JsonLines.JSON;

  private record Pending(long line, boolean logprobs, CompletableFuture<Completion> result, String error) {}

  @Override
  public Integer call() throws IOException, InterruptedException {
    java.util.Optional<Generator> opened = engine.open(model);
    if (opened.isEmpty()) {
      return 0; // a worker rank of a multi-process job: its part is served, rank 0 wrote the results
    }
    try (Generator gen = opened.get()) {
      long start = System.nanoTime();
      JsonLines lines = new JsonLines(new BufferedInputStream(parent.in));
      // Answers are written by their own thread as soon as each is done, in input order, so a client that writes
      // one request and waits for its answer gets it (the reading thread is blocked on stdin meanwhile). The queue
      // bounds the requests in flight: a huge input does not fill memory.
      BlockingQueue<Pending> pending = new ArrayBlockingQueue<>(WINDOW);
      AnswerWriter writer = new AnswerWriter(pending, gen);
      writer.start();
      long lineNo = 0;
      boolean idleBroken = false;
      try (AbandonableLines input = new AbandonableLines(lines)) {
        byte[] line;
        // A job lost with no request in flight (a heartbeat gave up) fails no answer: gen.broken() says so.
        while (!writer.outputClosed && (line = input.next(() -> writer.outputClosed || gen.broken())) != null) {
          lineNo++;
          hand(pending, submit(gen, lineNo, line), writer);
        }
        idleBroken = !writer.outputClosed && gen.broken();
      } finally {
        hand(pending, END, writer);
        writer.join();
      }
      if (writer.failure instanceof Error e) {
        throw e;
      }
      if (writer.failure != null) {
        throw new IllegalStateException("writing the answers failed: " + writer.failure, writer.failure);
      }
      if (writer.jobBroken) {
        parent.err.printf(java.util.Locale.ROOT, "opt: error: the multi-process job failed (see the error of answer "
            + "%d and the other ranks' logs); stopped without reading the rest of the input: restart every process%n",
            writer.written);
        return 1;
      }
      if (idleBroken) {
        parent.err.printf(java.util.Locale.ROOT, "opt: error: the multi-process job failed while waiting for input (see "
            + "this process's log and the other ranks' logs); stopped without reading the rest of the input: restart "
            + "every process%n");
        return 1;
      }
      if (writer.outputClosed && Main.outputClosed(parent.out, parent.err, writer.written)) {
        return 1; // the requests still pending were cancelled
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      GeneratorStats s = gen.stats();
      String extras = (s.prefixCachedTokens() > 0 ? ", " + s.prefixCachedTokens() + " prompt tokens from cached prefixes"
          : "") + (s.draftTokens() > 0 ? ", " + s.acceptedDraftTokens() + " of " + s.draftTokens()
          + " draft tokens accepted" : "");
      parent.err.printf(java.util.Locale.ROOT,
          "[%d line%s (%d failed) in %.2f s: %d model steps, %d tokens processed (%.1f tokens/s), %d preemptions%s]%n",
          lineNo, lineNo == 1 ? "" : "s", writer.failed, seconds, s.steps(), s.tokensProcessed(),
          s.tokensProcessed() / Math.max(seconds, 1e-9), s.preemptions(), extras);
      return writer.failed == 0 ? 0 : 1;
    }
  }

  /**
   * Queues {@code p} for the writer; if the writer has ended (it drains every entry while it runs, so only a
   * failure that escaped it could end it early), {@code p}'s request is cancelled instead of waiting for ever.
   */
  private static void hand(BlockingQueue<Pending> queue, Pending p, AnswerWriter writer) throws InterruptedException {
    while (!queue.offer(p, 100, java.util.concurrent.TimeUnit.MILLISECONDS)) {
      if (!writer.isAlive()) {
        if (p.result != null) {
          p.result.cancel(false);
        }
        return;
      }
    }
  }

  /** The end of the input, for {@link AnswerWriter}. */
  private static final Pending END = new Pending(-1, false, null, null);

  /**
   * Writes each request's answer line in input order as soon as it is done. When standard output is closed (a
   * reader such as {@code head} went away: PrintStream swallows the broken pipe, {@code checkError} says so), the
   * requests still pending are cancelled instead, which frees their batch slots.
   */
  private final class AnswerWriter extends Thread {
    private final BlockingQueue<Pending> queue;
    volatile boolean outputClosed;
    volatile int failed;
    volatile int written;
    volatile Throwable failure;
    volatile boolean jobBroken;
    private final Generator gen;

    AnswerWriter(BlockingQueue<Pending> queue, Generator gen) {
      super("opt-batch-writer");
      setDaemon(true);
      this.queue = queue;
      this.gen = gen;
    }

    @Override
    public void run() {
      while (true) {
        Pending p;
        try {
          p = queue.take();
        } catch (InterruptedException e) {
          return; // nothing interrupts this thread
        }
        if (p == END) {
          return;
        }
        if (outputClosed) {
          if (p.result != null) {
            p.result.cancel(false);
          }
          continue;
        }
        try {
          int bad = write(p);
          failed += bad;
          written++;
          if (parent.out.checkError()) {
            outputClosed = true;
          }
          if (bad > 0 && gen.broken()) {
            jobBroken = true; // a multi-process job lost a process: every later request would fail too
            outputClosed = true; // stop reading; what is pending is cancelled
          }
        } catch (JsonProcessingException | RuntimeException | Error e) { // an OutOfMemoryError building a reply
          failure = e; // stop reading and drain (cancelling): the reading thread waits for this one
          outputClosed = true;
        }
      }
    }
  }

  private Pending submit(Generator gen, long lineNo, byte[] line) {
    try {
      BatchRequest r = BatchRequest.parse(JsonLines.object(line, "{\"prompt\": \"...\"}"));
      // OpenAI's legacy completions (and vLLM): "logprobs" is null unless asked for, echo or not. The Generator
      // scores an echoed prompt either way (Choice.logprobs); only the JSON leaves it out.
      boolean lp = r.params().logprobs().isPresent();
      return new Pending(lineNo, lp, gen.generateAsync(r.prompt(), r.params()), null);
    } catch (IllegalArgumentException e) {
      return new Pending(lineNo, false, null, ParamNames.json(e.getMessage())); // ("raise --kv-cache-tokens")
    }
  }

  /** Writes one result line; returns 1 if it is an error line. */
  private int write(Pending p) throws JsonProcessingException {
    ObjectNode out;
    String error = p.error;
    if (error == null) {
      try {
        out = CompletionJson.of(json, p.result.join(), p.logprobs);
      } catch (CompletionException e) {
        error = Main.describe(e.getCause() == null ? e : e.getCause());
        out = null;
      }
    } else {
      out = null;
    }
    if (error != null) {
      out = json.createObjectNode();
      out.put("error", "line " + p.line + ": " + error);
    }
    parent.out.println(json.writeValueAsString(out));
    parent.out.flush();
    return error == null ? 0 : 1;
  }
}
