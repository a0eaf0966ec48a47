package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Step 6c of the device check, dry-run on the CPU with the tiny fixture model: its rows are written and pass. */
class EngineFeaturesMainTest {

  @Test
  void cpuDryRunWritesPassingRows(@TempDir Path tmp) throws Exception {
    Path model = Path.of(EngineFeaturesMainTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    Path rows = tmp.resolve("rows.tsv");
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    int rc = EngineFeaturesMain.run(new String[] {"--model", model.toString(), "--rows", rows.toString(),
        "--device", "cpu", "--prefix", "64", "--requests", "3", "--new-tokens", "24", "--lookup", "3"},
        new PrintStream(buf, true, StandardCharsets.UTF_8));
    System.out.print(buf.toString(StandardCharsets.UTF_8));
    assertEquals(0, rc, buf.toString(StandardCharsets.UTF_8));
    List<String> lines = Files.readAllLines(rows);
    assertEquals(6, lines.size(), lines.toString());
    assertTrue(lines.get(0).startsWith("engine: prefix caching\tok\t"), lines.get(0));
    assertTrue(lines.get(0).contains("6 of 6 token lists equal"), lines.get(0));
    assertTrue(lines.get(1).startsWith("engine: prompt lookup 3\tok\t"), lines.get(1));
    assertTrue(lines.get(2).matches("engine: decode paths\tinfo\tbatch 1, up to 24 tokens, ms/token: greedy [0-9.]+, "
        + "\\+ repetition penalty 1\\.2 [0-9.]+ \\(edits\\); sampled .*greedy, logprobs 5 [0-9.]+ \\(top-k\\); "
        + "sampled t=0\\.8 min-p 0\\.05 [0-9.]+; sampled t=0\\.8 top-p 0\\.9, logprobs 5 [0-9.]+"),
        lines.get(2));
    // on the CPU both runs take the host path (the model does not sample on the device): the same tokens
    assertTrue(lines.get(3).startsWith("engine: echo steps among sampled\tinfo\t7 sampled requests (24 tokens) + 8 "
        + "prompts of 64 scored") && lines.get(3).endsWith("sampled token lists equal 7 of 7"), lines.get(3));
    assertTrue(lines.get(4).startsWith("engine: prompt lookup, sampled\tok\tbatch 1, sampled t=0.7 top-p 0.9, 3 "
        + "drafts: ") && lines.get(4).endsWith("tokens equal (host path: this model does not sample where the logits "
        + "are)"), lines.get(4));
    assertTrue(lines.get(5).startsWith("engine: n=4 forks\tok\t8 sampled requests of n=4 (24 tokens) at once: ")
        && lines.get(5).endsWith("completions equal (host path: this model does not sample where the logits are)"),
        lines.get(5));
  }
}
