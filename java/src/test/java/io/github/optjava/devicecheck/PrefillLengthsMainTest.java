package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device check's new-prompt-length probe, dry-run on the CPU with a tiny shape: its row is written. */
class PrefillLengthsMainTest {

  @Test
  void cpuDryRunWritesOneRowWithBothMedians(@TempDir Path tmp) throws Exception {
    Path config = tmp.resolve("config.json");
    Files.writeString(config, "{\"model_type\": \"opt\", \"vocab_size\": 50272, \"hidden_size\": 64,"
        + " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"ffn_dim\": 256, \"max_position_embeddings\": 128}");
    Path rows = tmp.resolve("rows.tsv");
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    int rc = PrefillLengthsMain.run(new String[] {"--shape", config.toString(), "--rows", rows.toString(),
        "--device", "cpu", "--from", "9", "--to", "12", "--label", "cpu"},
        new PrintStream(buf, true, StandardCharsets.UTF_8));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertEquals(0, rc, out);
    List<String> lines = Files.readAllLines(rows);
    assertEquals(1, lines.size(), lines.toString());
    String row = lines.get(0);
    assertTrue(row.startsWith("prefill of new lengths (cpu)\tinfo\tcpu: lengths 9-12, prefill ms first time "), row);
    assertTrue(row.matches(".*first time \\d+\\.\\d\\d, again \\d+\\.\\d\\d .* of 4 first runs > 2 ms slower.*"),
        row);
    // each length's two runs are printed, four lengths each
    assertTrue(out.matches("(?s).*first \\[[^,\\]]+(, [^,\\]]+){3}\\].*again \\[[^,\\]]+(, [^,\\]]+){3}\\].*"), out);
  }

  @Test
  void badRangesAndMissingOptionsAreRefused(@TempDir Path tmp) {
    PrintStream sink = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    String rows = tmp.resolve("r.tsv").toString();
    IllegalArgumentException warmed = assertThrows(IllegalArgumentException.class, () -> PrefillLengthsMain.run(
        new String[] {"--shape", "125m", "--rows", rows, "--device", "cpu", "--from", "8"}, sink));
    assertTrue(warmed.getMessage().contains("lengths the warm-up did not prefill"), warmed.getMessage());
    IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> PrefillLengthsMain.run(
        new String[] {"--rows", rows}, sink));
    assertTrue(missing.getMessage().contains("give --shape"), missing.getMessage());
    IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class, () -> PrefillLengthsMain.run(
        new String[] {"--shape", "125m", "--rows", rows, "--device", "cpu", "--to", "4000"}, sink));
    assertTrue(tooLong.getMessage().contains("more than the model's 2048 positions"), tooLong.getMessage());
    assertEquals(2.5, PrefillLengthsMain.median(new double[] {4, 1, 2, 3}));
  }
}
