package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code scripts/hf_peer.py benchtable}, the tables and summary rows the GPU host's check prints from its bench lines,
 * on hand-written lines (no GPU, no torch): the ours-vs-HF table, the variants' table with its {@code new} column, and
 * issue #5's targets judged met, missed or open. The GPU run is the only place these tables ran before.
 */
class BenchTableTest {
  private static final String OURS_B1 = "{\"model\":\"opt-1.3b\",\"dtype\":\"f16\",\"batch\":1,\"prompt_len\":128,"
      + "\"gen_len\":128,\"engine\":\"cuda:0-f16\",\"prefill_ms\":3.19,\"decode_ms_per_token\":2.5,"
      + "\"tokens_per_s\":400,\"roofline_fraction\":0.37,\"copy_gbps\":2912,\"gemm_tflops\":600}";
  private static final String OURS_B32 = "{\"model\":\"opt-1.3b\",\"dtype\":\"f16\",\"batch\":32,\"prompt_len\":128,"
      + "\"gen_len\":128,\"engine\":\"cuda:0-f16\",\"prefill_ms\":22.1,\"decode_ms_per_token\":3.55,"
      + "\"tokens_per_s\":9014,\"roofline_fraction\":0.37,\"copy_gbps\":2912,\"gemm_tflops\":600}";
  // 2047 tokens of opt-1.3b are ~5.3 TFLOP of GEMMs and attention: 11.1 ms at 600 TFLOP/s is ~80 % of the GEMM rate
  private static final String OURS_PREFILL = "{\"model\":\"opt-1.3b\",\"dtype\":\"f16\",\"batch\":1,"
      + "\"prompt_len\":2047,\"gen_len\":0,\"engine\":\"cuda:0-f16\",\"prefill_ms\":11.1,\"copy_gbps\":2912,"
      + "\"gemm_tflops\":600}";
  private static final String HF_EAGER_B1 = "{\"model\":\"opt-1.3b\",\"batch\":1,\"prompt_len\":128,\"gen_len\":128,"
      + "\"engine\":\"hf-eager\",\"prefill_ms\":21.8,\"decode_ms_per_token\":21.9,\"device\":\"NVIDIA H100\"}";
  private static final String HF_EAGER_B32 = "{\"model\":\"opt-1.3b\",\"batch\":32,\"prompt_len\":128,"
      + "\"gen_len\":128,\"engine\":\"hf-eager\",\"prefill_ms\":26.2,\"decode_ms_per_token\":19.5}";
  private static final String VARIANT_DEFAULT = "{\"model\":\"opt-1.3b\",\"batch\":1,\"prompt_len\":128,"
      + "\"gen_len\":128,\"engine\":\"cuda:0-f16\",\"variant\":\"default\",\"decode_ms_per_token\":2.5,"
      + "\"roofline_fraction\":0.37,\"new_kernel_launches\":{\"split_gemv\":0}}";
  private static final String VARIANT_SPLIT = "{\"model\":\"opt-1.3b\",\"batch\":1,\"prompt_len\":128,"
      + "\"gen_len\":128,\"engine\":\"cuda:0-f16\",\"variant\":\"gemvsplit=auto\",\"decode_ms_per_token\":2.0,"
      + "\"roofline_fraction\":0.46,\"new_kernel_launches\":{\"split_gemv\":960,\"grouped_split\":0}}";

  private static String compiledB32(double decodeMs, int rerecords) {
    return "{\"model\":\"opt-1.3b\",\"batch\":32,\"prompt_len\":128,\"gen_len\":128,\"engine\":\"hf-static-compiled\","
        + "\"prefill_ms\":26.0,\"decode_ms_per_token\":" + decodeMs + ",\"compile_counts_timed\":{\"dynamo_graphs\":0,"
        + "\"cudagraph_skips\":0,\"cudagraph_rerecords\":" + rerecords + "},\"static_cache_reused\":true}";
  }

  /** benchtable over these lines: the summary rows by name (their detail), after checking the exit status. */
  private static Map<String, String> rows(Path tmp, List<String> lines, StringBuilder table) throws Exception {
    Path script = HfPeerScript.find();
    assumeTrue(script != null && HfPeerScript.python3(), "python3 or scripts/hf_peer.py not available");
    Path bench = tmp.resolve("bench.jsonl");
    Path rows = tmp.resolve("rows.tsv");
    Files.writeString(bench, String.join("\n", lines) + "\n");
    HfPeerScript.Result r = HfPeerScript.runCapturing(script, "benchtable", bench.toString(), "--rows",
        rows.toString());
    assertEquals(0, r.exitStatus(), r.output());
    table.append(r.output());
    return Files.readAllLines(rows).stream().map(l -> l.split("\t", 3))
        .collect(Collectors.toMap(p -> p[0], p -> p[1] + "\t" + p[2]));
  }

  @Test
  void targetsAreJudgedFromTheLinesOfOneRun(@TempDir Path tmp) throws Exception {
    StringBuilder table = new StringBuilder();
    Map<String, String> rows = rows(tmp, List.of(OURS_B1, OURS_B32, OURS_PREFILL, HF_EAGER_B1, HF_EAGER_B32,
        compiledB32(4.1, 0), VARIANT_DEFAULT, VARIANT_SPLIT), table);

    String roof = rows.get("target b1 roofline opt-1.3b");
    assertTrue(roof.startsWith("info\tmissed: 128+128: 37% of the bandwidth limit (target 70%)"), roof);
    assertTrue(roof.contains("best variant gemvsplit=auto: 46%"), roof);
    String eager = rows.get("target b1 vs HF eager opt-1.3b");
    assertTrue(eager.startsWith("info\tmet: 8.76x"), eager);
    String best = rows.get("target b32 vs HF best opt-1.3b");
    assertTrue(best.startsWith("info\tmissed: 1.15x (target 1.5x) against hf-static-compiled 4.10"), best);
    String prefill = rows.get("target prefill/GEMM opt-1.3b");
    assertTrue(prefill.startsWith("info\tmet: 2047 tokens: "), prefill);
    assertTrue(rows.get("speed opt-1.3b b1").contains("8.76× faster"), rows.toString());
    String compiled = rows.get("speed opt-1.3b b32 vs HF compiled");
    assertTrue(compiled.contains("re-recorded in its timed calls: nothing; StaticCache reused: yes"), compiled);

    String t = table.toString();
    assertTrue(t.contains("== issue #5's targets"), t);
    // the variants' table: the split gemv variant launched its kernel (s), the default none (.)
    // (then the tokens column: '-', these lines record no tokens_fingerprint)
    assertTrue(t.lines().anyMatch(l -> l.contains("gemvsplit=auto") && l.contains(" s      - |")), t);
    assertTrue(t.lines().anyMatch(l -> l.contains(" default ") && l.contains(" .      - |")), t);
  }

  @Test
  void targetsFallBackToTheDefaultVariantWhenThePlainBenchDidNotRun(@TempDir Path tmp) throws Exception {
    // a full check short of time: `opt bench --variants` ran (its 'default' variant is our default kernels), the
    // plain speed comparison did not; the peer-only call added HF's lines
    String variantB32 = OURS_B32.replace("\"engine\":\"cuda:0-f16\"", "\"engine\":\"cuda:0-f16\",\"variant\":\"default\"");
    String variantPrefill = OURS_PREFILL.replace("\"engine\":\"cuda:0-f16\"",
        "\"engine\":\"cuda:0-f16\",\"variant\":\"default\"");
    StringBuilder table = new StringBuilder();
    Map<String, String> rows = rows(tmp, List.of(VARIANT_DEFAULT, VARIANT_SPLIT, variantB32, variantPrefill,
        HF_EAGER_B1, HF_EAGER_B32, compiledB32(4.1, 0)), table);
    assertTrue(rows.get("target b1 roofline opt-1.3b").startsWith("info\tmissed: 128+128: 37%"), rows.toString());
    assertTrue(rows.get("target b1 vs HF eager opt-1.3b").startsWith("info\tmet: 8.76x"), rows.toString());
    assertTrue(rows.get("target b32 vs HF best opt-1.3b").startsWith("info\tmissed: 1.15x"), rows.toString());
    assertTrue(rows.get("target prefill/GEMM opt-1.3b").startsWith("info\tmet: 2047 tokens"), rows.toString());
  }

  /**
   * Session 18's opt-6.7b lines: 5× HF eager (18.2 ms/token) asks for 3.64 ms/token, less than the 4.64 ms the step's
   * bytes take at the copy rate (roofline 0.806 of 5.76 ms); the row says so. 1.3b, missed but reachable, does not.
   */
  @Test
  void aBatchOneTargetBelowTheBandwidthFloorIsCalledUnreachable(@TempDir Path tmp) throws Exception {
    String ours67 = "{\"model\":\"opt-6.7b\",\"dtype\":\"f16\",\"batch\":1,\"prompt_len\":128,\"gen_len\":128,"
        + "\"engine\":\"cuda:0-f16\",\"prefill_ms\":16.2,\"decode_ms_per_token\":5.76,\"roofline_fraction\":0.8055,"
        + "\"copy_gbps\":2962,\"gemm_tflops\":600}";
    String hf67 = "{\"model\":\"opt-6.7b\",\"batch\":1,\"prompt_len\":128,\"gen_len\":128,\"engine\":\"hf-eager\","
        + "\"prefill_ms\":22.6,\"decode_ms_per_token\":18.2}";
    // opt-1.3b at 2.5 ms against HF's 10 ms: 4x, missed, but 2 ms is above its floor (0.37 x 2.5 = 0.93 ms)
    String hf13 = HF_EAGER_B1.replace("\"decode_ms_per_token\":21.9", "\"decode_ms_per_token\":10.0");
    StringBuilder table = new StringBuilder();
    Map<String, String> rows = rows(tmp, List.of(ours67, hf67, OURS_B1, hf13), table);
    String big = rows.get("target b1 vs HF eager opt-6.7b");
    assertTrue(big.startsWith("info\tmissed: 3.16x") && big.contains("unreachable: 5x needs 3.64 ms/token, below "
        + "the 4.64 ms the step's bytes take at the copy rate"), big);
    String small = rows.get("target b1 vs HF eager opt-1.3b");
    assertTrue(small.startsWith("info\tmissed: 4.00x") && !small.contains("unreachable"), small);
  }

  /** Session 25: each variant's greedy tokens against the default's of the same run (bench field tokens_fingerprint). */
  @Test
  void variantsWhoseTokensDifferFromTheDefaultsAreMarked(@TempDir Path tmp) throws Exception {
    String fp = ",\"tokens_fingerprint\":";
    String base = VARIANT_DEFAULT.replace("}}", "}" + fp + "\"00000000000000aa:129\"}");
    String same = VARIANT_SPLIT.replace("\"gemvsplit=auto\"", "\"chained=on\"")
        .replace("}}", "}" + fp + "\"00000000000000aa:129\"}");
    String differs = VARIANT_SPLIT.replace("\"decode_ms_per_token\":2.0", "\"decode_ms_per_token\":1.9")
        .replace("}}", "}" + fp + "\"00000000000000bb:129\"}");
    String unsteady = VARIANT_SPLIT.replace("\"gemvsplit=auto\"", "\"combine=inline\"")
        .replace("}}", "}" + fp + "null}");
    String unrecorded = VARIANT_SPLIT.replace("\"gemvsplit=auto\"", "\"gemv=0\"");
    StringBuilder table = new StringBuilder();
    Map<String, String> rows = rows(tmp, List.of(base, same, differs, unsteady, unrecorded), table);
    String t = table.toString();
    assertTrue(t.lines().anyMatch(l -> l.contains("chained=on") && l.contains(" same |")), t);
    assertTrue(t.lines().anyMatch(l -> l.contains("gemvsplit=auto") && l.contains(" DIFF |")), t);
    assertTrue(t.lines().anyMatch(l -> l.contains("combine=inline") && l.contains(" runs? |")), t);
    assertTrue(t.lines().anyMatch(l -> l.contains("gemv=0 ") && l.contains(" - |")), t);
    // the summary row names the fastest variant and whether its tokens are the default's
    String summary = rows.get("variants opt-1.3b");
    assertTrue(summary.contains("gemvsplit=auto 1.90 ms/tok (1.32× default), tokens DIFF"), summary);
  }

  /**
   * Session 25's review: two `opt bench --variants` runs of one shape in one file (the launch-gap row and the tclinear
   * row) each have a 'default'; each variant is compared with the default of its own run (run_id), and int8 lines with
   * their own run's int8 default, not with whichever default came last.
   */
  @Test
  void eachVariantIsComparedWithTheDefaultOfItsOwnRun(@TempDir Path tmp) throws Exception {
    java.util.function.BiFunction<String, String, String> line = (variant, rest) -> "{\"model\":\"opt-1.3b\","
        + "\"batch\":1,\"prompt_len\":128,\"gen_len\":128,\"engine\":\"cuda:0-f16\",\"variant\":\"" + variant + "\","
        + rest + "}";
    List<String> lines = List.of(
        line.apply("default", "\"decode_ms_per_token\":1.50,\"run_id\":\"a-1\",\"tokens_fingerprint\":\"aa:129\""),
        line.apply("chained=on", "\"decode_ms_per_token\":1.25,\"run_id\":\"a-1\",\"tokens_fingerprint\":\"aa:129\""),
        line.apply("default", "\"decode_ms_per_token\":1.40,\"run_id\":\"b-2\",\"tokens_fingerprint\":\"aa:129\""),
        line.apply("tclinear=32", "\"decode_ms_per_token\":1.30,\"run_id\":\"b-2\",\"tokens_fingerprint\":\"bb:129\""),
        line.apply("default", "\"decode_ms_per_token\":1.20,\"run_id\":\"c-3\",\"quantization\":\"int8\","
            + "\"tokens_fingerprint\":\"cc:129\""),
        line.apply("tclinear=32", "\"decode_ms_per_token\":1.00,\"run_id\":\"c-3\",\"quantization\":\"int8\","
            + "\"tokens_fingerprint\":\"cc:129\""));
    StringBuilder table = new StringBuilder();
    Map<String, String> rows = rows(tmp, lines, table);
    String t = table.toString();
    // chained=on: 1.50 / 1.25 = 1.20x its own run's default (not 1.12x against the second run's 1.40)
    assertTrue(t.lines().anyMatch(l -> l.contains(" chained=on ") && l.contains("1.20×") && l.contains(" same |")), t);
    // the second run's default is its own row, and its tclinear compares with it: 1.40 / 1.30 = 1.08x, tokens DIFF
    assertTrue(t.lines().anyMatch(l -> l.contains("default (run 2)") && l.contains("1.00×")), t);
    assertTrue(t.lines().anyMatch(l -> l.contains(" tclinear=32 ") && !l.contains("[int8]") && l.contains("1.08×")
        && l.contains(" DIFF |")), t);
    // int8 against the int8 default of its run: 1.20 / 1.00 = 1.20x, tokens the same
    assertTrue(t.lines().anyMatch(l -> l.contains("tclinear=32 [int8]") && l.contains("1.20×") && l.contains(" same |")),
        t);
    // the summary names the fastest (int8 tclinear, 1.00 ms) against its own default
    String summary = rows.get("variants opt-1.3b");
    assertTrue(summary.contains("tclinear=32 [int8] 1.00 ms/tok (1.20× default), tokens same"), summary);
  }

  @Test
  void batch32TargetStaysOpenWithoutAUsableCompiledLine(@TempDir Path tmp) throws Exception {
    StringBuilder table = new StringBuilder();
    Map<String, String> eagerOnly = rows(tmp, List.of(OURS_B32, HF_EAGER_B32), table);
    String row = eagerOnly.get("target b32 vs HF best opt-1.3b");
    assertTrue(row.startsWith("info\topen: 5.49x (target 1.5x) against hf-eager"), row);
    assertTrue(row.contains("HF static cache + torch.compile not measured"), row);

    // a compiled line whose timed calls re-recorded its CUDA graph measured the recording, not the replay
    Map<String, String> rerecorded = rows(tmp, List.of(OURS_B32, HF_EAGER_B32, compiledB32(3.0, 2)), table);
    row = rerecorded.get("target b32 vs HF best opt-1.3b");
    assertTrue(row.startsWith("info\topen: 5.49x"), row);
    assertTrue(row.contains("ignored hf-static-compiled (compiled or re-recorded while timed"), row);

    Map<String, String> faster = rows(tmp, List.of(OURS_B32, HF_EAGER_B32, compiledB32(2.0, 0)), table);
    row = faster.get("target b32 vs HF best opt-1.3b");
    assertTrue(row.startsWith("info\tmissed: 0.56x"), row);
  }
}
