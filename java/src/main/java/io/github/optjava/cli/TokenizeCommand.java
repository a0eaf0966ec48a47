package io.github.optjava.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.tokenizer.OptTokenizer;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Mixin;

/**
 * {@code opt tokenize --model MODEL}: JSON Lines {@code {"text": "..."}} on stdin, one
 * {@code {"ids": [...]}} line per input line on stdout, in order (ids without special tokens). A bad
 * line gets {@code {"error": "..."}} and processing goes on; the exit status is 1 if any line failed.
 */
@Command(name = "tokenize", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Tokenize JSON Lines from stdin: {\"text\": \"...\"} -> {\"ids\": [...]} (no special tokens).",
    "A malformed line yields {\"error\": \"...\"}; the exit status is 1 if any line failed."})
final class TokenizeCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  private static final ObjectMapper JSON = JsonLines.JSON;

  @Override
  public Integer call() throws IOException {
    OptTokenizer tokenizer = OptTokenizer.load(model.resolve());
    PrintStream out = parent.out;
    JsonLines lines = new JsonLines(new BufferedInputStream(parent.in));
    int failed = 0;
    long lineNo = 0;
    byte[] line;
    while ((line = lines.next()) != null) {
      lineNo++;
      ObjectNode result = JSON.createObjectNode();
      try {
        int[] ids = tokenizer.encode(JsonLines.text(line));
        ArrayNode arr = result.putArray("ids");
        for (int id : ids) {
          arr.add(id);
        }
      } catch (IllegalArgumentException e) {
        failed++;
        result.removeAll();
        result.put("error", "line " + lineNo + ": " + e.getMessage());
      }
      out.println(JSON.writeValueAsString(result));
      out.flush(); // one answer per line as soon as it is known: pipelines may wait for it
      if (Main.outputClosed(out, parent.err, lineNo)) {
        return 1;
      }
    }
    out.flush();
    return failed == 0 ? 0 : 1;
  }
}
