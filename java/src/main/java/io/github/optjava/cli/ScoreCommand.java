package io.github.optjava.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.api.Generator;
import io.github.optjava.api.Score;
import io.github.optjava.api.TokenLogprob;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.ParentCommand;

/**
 * {@code opt score --model M}: JSON Lines {@code {"text": "..."}} on stdin; per line the log-probability of
 * every token given its prefix: {@code {"token_ids", "token_logprobs" (first null), "total_logprob",
 * "perplexity"}}. Bad lines get {@code {"error"}}; the exit status is 1 if any failed.
 */
@Command(name = "score", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Score JSON Lines {\"text\": \"...\"}: per-token log-probs, total and perplexity.",
    "A bad line yields {\"error\": \"...\"}; the exit status is 1 if any line failed."})
final class ScoreCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  @Mixin
  EngineOptions engine;

  @Override
  public Integer call() throws IOException, InterruptedException {
    ObjectMapper json = JsonLines.JSON;
    int failed = 0;
    java.util.Optional<Generator> opened = engine.open(model);
    if (opened.isEmpty()) {
      return 0; // a worker rank of a multi-process job: its part is served, rank 0 wrote the results
    }
    try (Generator gen = opened.get();
        AbandonableLines input = new AbandonableLines(new JsonLines(new BufferedInputStream(parent.in)))) {
      long lineNo = 0;
      byte[] line;
      while ((line = input.next(gen::broken)) != null) {
        lineNo++;
        ObjectNode out = json.createObjectNode();
        try {
          Score s = gen.score(JsonLines.text(line));
          ArrayNode ids = out.putArray("token_ids");
          s.tokenIds().forEach(ids::add);
          ArrayNode lps = out.putArray("token_logprobs");
          for (TokenLogprob t : s.logprobs()) {
            if (t.logprob() == null) {
              lps.addNull();
            } else {
              CompletionJson.add(lps, t.logprob());
            }
          }
          // Null where not finite: no token scored (an empty text), or a model that produced NaN
          CompletionJson.put(out, "total_logprob", s.totalLogprob());
          CompletionJson.put(out, "perplexity", s.perplexity());
        } catch (IllegalArgumentException e) {
          failed++;
          out.removeAll().put("error", "line " + lineNo + ": " + e.getMessage());
        }
        parent.out.println(json.writeValueAsString(out));
        parent.out.flush();
        if (Main.outputClosed(parent.out, parent.err, lineNo)) {
          return 1;
        }
      }
      if (gen.broken()) { // lost while waiting for input (a heartbeat gave up): nothing more can be scored
        parent.err.println("opt: error: the multi-process job failed while waiting for input (see this process's log "
            + "and the other ranks' logs): restart every process");
        return 1;
      }
    }
    return failed == 0 ? 0 : 1;
  }
}
