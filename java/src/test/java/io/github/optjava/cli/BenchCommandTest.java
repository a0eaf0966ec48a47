package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.backend.cuda.CudaProbe;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptShapes;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code opt bench} on a tiny shape: the table and JSON fields are there (the speed is not tested). Tests of
 * the CPU path say {@code --device cpu}: with the default (auto) they would run on CUDA on a GPU host.
 */
class BenchCommandTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Every JSON line has these fields (null where one does not apply). */
  private static final Set<String> FIELDS = Set.of("date", "commit", "device", "model", "dtype", "threads", "batch",
      "prompt_len", "gen_len", "engine", "cpu_kernels", "prefill_ms", "prefill_tokens_per_s", "decode_ms_per_token",
      "tokens_per_s",
      "device_name", "copy_gbps", "bytes_per_step", "roofline_fraction", "prefill_tflops", "gemm_tflops",
      "prefill_gemm_fraction", "decode_gpu_ms_per_step", "quantization", "kv_cache_dtype", "new_kernel_launches",
      "prefill_ms_runs", "decode_host_ms_per_step", "tokens_fingerprint", "run_id");
  private static final String HEADER =
      "batch  prompt  new  prefill ms  prefill tok/s  prefill/GEMM  decode ms/step  decode tok/s";

  /** Through {@code Main} once it registers the command; until then the command alone, with Main's error handling. */
  static CliTest.Run bench(String... args) {
    if (new CommandLine(new Main()).getSubcommands().containsKey("bench")) {
      String[] all = new String[args.length + 1];
      all[0] = "bench";
      System.arraycopy(args, 0, all, 1, args.length);
      return CliTest.cli("", all);
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    Main main = new Main();
    main.out = new PrintStream(out, true, StandardCharsets.UTF_8);
    BenchCommand command = new BenchCommand();
    command.parent = main;
    CommandLine cl = new CommandLine(command);
    PrintWriter errWriter = new PrintWriter(err, true, StandardCharsets.UTF_8);
    cl.setErr(errWriter);
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      errWriter.println("opt: error: " + Main.describe(e));
      return 1;
    });
    int exit = cl.execute(args);
    return new CliTest.Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** A 2-layer, 64-wide OPT config.json (the tiny-opt fixture's shape). */
  static Path tinyConfig(Path dir) throws IOException {
    Path file = dir.resolve("config.json");
    Files.writeString(file, "{\"model_type\": \"opt\", \"vocab_size\": 50272, \"hidden_size\": 64,"
        + " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"ffn_dim\": 256, \"max_position_embeddings\": 128}");
    return file;
  }

  @Test
  void printsATableAndAppendsOneJsonLinePerBatchSize(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("bench.jsonl");
    Files.writeString(json, "{\"earlier\": true}\n"); // appended to, never overwritten
    CliTest.Run r = bench("--device", "cpu", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "20",
        "--gen-len", "2", "--batch", "1,3", "--threads", "2", "--warm-up", "0", "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    assertTrue(lines.get(0).contains("cpu-fast on 2 threads") && lines.get(0).contains("random f16 weights"), r.out());
    int header = lines.indexOf(HEADER);
    assertTrue(header > 0, r.out());
    assertEquals(header + 3, lines.size(), r.out());
    assertTrue(lines.get(header + 1).trim().startsWith("1      20    2"), lines.get(header + 1));
    assertTrue(lines.get(header + 2).trim().startsWith("3      20    2"), lines.get(header + 2));

    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(3, jsonLines.size());
    assertEquals("{\"earlier\": true}", jsonLines.get(0));
    for (int i = 1; i <= 2; i++) {
      JsonNode j = JSON.readTree(jsonLines.get(i));
      assertEquals(FIELDS, Set.copyOf(iterable(j)));
      assertEquals(i == 1 ? 1 : 3, j.get("batch").asInt());
      assertEquals("cpu", j.get("device").asText());
      assertEquals("cpu-fast", j.get("engine").asText());
      assertTrue(j.get("cpu_kernels").asText().matches("vector \\d+-bit|scalar"), j.toString());
      assertEquals("f16", j.get("dtype").asText());
      assertEquals("none", j.get("quantization").asText());
      assertEquals("f32", j.get("kv_cache_dtype").asText());
      assertEquals(2, j.get("threads").asInt());
      assertEquals(20, j.get("prompt_len").asInt());
      assertEquals(2, j.get("gen_len").asInt());
      assertTrue(j.get("date").asText().matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"), j.toString());
      assertNotEquals("", j.get("commit").asText());
      double prefillMs = j.get("prefill_ms").asDouble();
      double prefillTps = j.get("prefill_tokens_per_s").asDouble();
      assertTrue(prefillMs > 0 && j.get("decode_ms_per_token").asDouble() > 0, j.toString());
      // every timed run's prefill, in the order run; the reported figure is their median
      JsonNode runs = j.get("prefill_ms_runs");
      assertEquals(3, runs.size(), j.toString()); // --repeats' default
      double[] each = new double[3];
      for (int k = 0; k < 3; k++) {
        each[k] = runs.get(k).asDouble();
        assertTrue(each[k] > 0, j.toString());
      }
      assertEquals(BenchCommand.median(each), prefillMs, 0.0015, j.toString());
      // the greedy tokens of the timed runs (all three the same): the prefill's and 2 decode steps' per sequence
      assertTrue(j.get("tokens_fingerprint").asText().matches("[0-9a-f]{16}:" + 3 * j.get("batch").asInt()),
          j.toString());
      // one run: the same run_id on every line of it
      assertEquals(JSON.readTree(jsonLines.get(1)).get("run_id").asText(), j.get("run_id").asText());
      assertTrue(j.get("run_id").asText().matches("[0-9a-f]+-\\d+"), j.toString());
      // tokens/s are the batch's tokens over the measured time, not something else
      assertEquals(j.get("batch").asInt() * 20 / (prefillMs / 1e3), prefillTps, 0.01 * prefillTps + 0.01);
      double decodeMs = j.get("decode_ms_per_token").asDouble();
      double tps = j.get("tokens_per_s").asDouble();
      assertEquals(j.get("batch").asInt() / (decodeMs / 1e3), tps, 0.01 * tps + 0.01);
      // the prefill against the GEMM rate: the fraction is the ratio of the two rates reported
      double prefillTflops = j.get("prefill_tflops").asDouble();
      double gemmTflops = j.get("gemm_tflops").asDouble();
      assertTrue(prefillTflops > 0 && gemmTflops > 0, j.toString());
      assertEquals(GemmRate.prefillFlops(OptConfig.fromJson(Files.readString(tmp.resolve("config.json"))),
          j.get("batch").asInt(), 20) / (prefillMs / 1e3) / 1e12, prefillTflops, 0.002 + 0.01 * prefillTflops);
      assertEquals(prefillTflops / gemmTflops, j.get("prefill_gemm_fraction").asDouble(),
          0.01 * prefillTflops / gemmTflops + 0.002);
      // no bandwidth measurement on the CPU
      for (String f : List.of("device_name", "copy_gbps", "bytes_per_step", "roofline_fraction",
          "decode_gpu_ms_per_step", "decode_host_ms_per_step", "new_kernel_launches")) {
        assertTrue(j.get(f).isNull(), f + " in " + j);
      }
    }
  }

  @Test
  void genLenZeroTimesThePrefillAlone(@TempDir Path tmp) throws IOException {
    String config = tinyConfig(tmp).toString();
    Path json = tmp.resolve("prefill.jsonl");
    CliTest.Run r = bench("--device", "cpu", "--shape", config, "--prompt-len", "20", "--gen-len", "0",
        "--batch", "2", "--threads", "2", "--warm-up", "0", "--repeats", "1", "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    String row = lines.get(lines.indexOf(HEADER) + 1);
    assertTrue(row.trim().startsWith("2      20    0"), row);
    assertTrue(row.matches(".*\\d%\\s+-\\s+-"), row); // prefill numbers, then "-" for both decode columns
    JsonNode j = JSON.readTree(Files.readAllLines(json).get(0));
    assertEquals(FIELDS, Set.copyOf(iterable(j)));
    assertEquals(0, j.get("gen_len").asInt());
    assertTrue(j.get("prefill_ms").asDouble() > 0, j.toString());
    assertTrue(j.get("decode_ms_per_token").isNull() && j.get("tokens_per_s").isNull()
        && j.get("roofline_fraction").isNull(), j.toString());

    // the positions check still holds: the prompt alone must fit the 128 positions
    CliTest.Run tooLong = bench("--device", "cpu", "--shape", config, "--prompt-len", "129", "--gen-len", "0");
    assertTrue(tooLong.exit() != 0 && tooLong.err().contains("128 positions"), tooLong.err());
    CliTest.Run negative = bench("--device", "cpu", "--shape", config, "--gen-len", "-1");
    assertTrue(negative.exit() != 0 && negative.err().contains("--gen-len must be at least 0, not -1"), negative.err());
  }

  /** {@code --prefill-len}: one more row, one sequence, prefill only, from the same model and process. */
  @Test
  void prefillLenAddsAOneSequencePrefillRow(@TempDir Path tmp) throws IOException {
    String config = tinyConfig(tmp).toString();
    Path json = tmp.resolve("rows.jsonl");
    // 2 × (20 + 2) positions for the batch rows, 100 for the prefill row: the cache must hold the larger
    CliTest.Run r = bench("--device", "cpu", "--shape", config, "--prompt-len", "20", "--gen-len", "2",
        "--batch", "2", "--prefill-len", "100", "--threads", "2", "--warm-up", "0", "--repeats", "2",
        "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    int header = lines.indexOf(HEADER);
    assertEquals(header + 3, lines.size(), r.out());
    assertTrue(lines.get(header + 1).trim().startsWith("2      20    2"), lines.get(header + 1));
    String prefillRow = lines.get(header + 2);
    assertTrue(prefillRow.trim().startsWith("1     100    0") && prefillRow.matches(".*\\d%\\s+-\\s+-"),
        prefillRow);
    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(2, jsonLines.size());
    JsonNode batchRow = JSON.readTree(jsonLines.get(0));
    JsonNode prefill = JSON.readTree(jsonLines.get(1));
    assertEquals(FIELDS, Set.copyOf(iterable(prefill)));
    assertEquals(2, batchRow.get("batch").asInt());
    assertEquals(20, batchRow.get("prompt_len").asInt());
    assertEquals(1, prefill.get("batch").asInt());
    assertEquals(100, prefill.get("prompt_len").asInt());
    assertEquals(0, prefill.get("gen_len").asInt());
    assertEquals(2, prefill.get("prefill_ms_runs").size());
    double ms = prefill.get("prefill_ms").asDouble();
    assertEquals(100 / (ms / 1e3), prefill.get("prefill_tokens_per_s").asDouble(), 0.01 * 100 / (ms / 1e3) + 0.01);
    assertEquals(GemmRate.prefillFlops(OptConfig.fromJson(Files.readString(Path.of(config))), 1, 100) / (ms / 1e3)
        / 1e12, prefill.get("prefill_tflops").asDouble(), 0.002 + 0.01 * prefill.get("prefill_tflops").asDouble());
    assertTrue(prefill.get("decode_ms_per_token").isNull() && prefill.get("roofline_fraction").isNull(),
        prefill.toString());

    CliTest.Run tooLong = bench("--device", "cpu", "--shape", config, "--prompt-len", "4", "--gen-len", "1",
        "--prefill-len", "129");
    assertTrue(tooLong.exit() != 0 && tooLong.err().contains("--prefill-len is 129, more than the 128 positions"),
        tooLong.err());
    CliTest.Run negative = bench("--device", "cpu", "--shape", config, "--prompt-len", "4", "--gen-len", "1",
        "--prefill-len", "-1");
    assertTrue(negative.exit() != 0 && negative.err().contains("--prefill-len must be at least 0, not -1"),
        negative.err());
  }

  // Found by fuzzing: it read "--shape ...: cannot read: Input length = 1".
  @Test
  void aShapeFileThatIsNotUtf8IsNamedSo(@TempDir Path tmp) throws IOException {
    Path file = Files.write(tmp.resolve("config.json"), new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}'});
    CliTest.Run r = bench("--device", "cpu", "--shape", file.toString());
    assertNotEquals(0, r.exit());
    assertTrue(r.err().contains("--shape " + file + ": not valid UTF-8 text"), r.err());
  }

  /** The prefill FLOP count, by hand: opt-125m (12 layers, hidden 768, ffn 3072, vocab 50272). */
  @Test
  void prefillFlopsAreLinearsPerTokenCausalAttentionAndOneLogitRowPerPrompt() {
    OptConfig c = OptShapes.of("125m");
    double linears = 12 * (4.0 * 768 * 768 + 2.0 * 768 * 3072); // per token
    // 2 prompts of 3 tokens: 6 pairs of (query, visible key) per layer, each 768 wide, for Q·Kᵀ and for P·V
    double attention = 12 * 2 * 6 * 768.0;
    double head = 768.0 * 50272; // lm_head for the last token
    assertEquals(2 * 2 * (3 * linears + attention + head), GemmRate.prefillFlops(c, 2, 3), 1);
    // opt-350m projects 1024 → 512 for its 512-wide embeddings: project_in per token, project_out once
    OptConfig m = OptShapes.of("350m");
    double mLinears = 24 * (4.0 * 1024 * 1024 + 2.0 * 1024 * 4096) + 512.0 * 1024;
    assertEquals(2 * (mLinears + 24 * 2 * 1 * 1024.0 + 1024.0 * 512 + 512.0 * 50272),
        GemmRate.prefillFlops(m, 1, 1), 1);
  }

  /** The GEMM timing reports a rate: 2 m k n per repeat over the time, positive and finite. */
  @Test
  void theGemmRateOfTheReferenceOpsIsPositive() {
    double tflops = GemmRate.tflops(new io.github.optjava.backend.cpu.CpuOps(), 16, 32, 48);
    assertTrue(tflops > 0 && Double.isFinite(tflops), String.valueOf(tflops));
  }

  /** The roofline arithmetic, by hand for the tiny shape (2 layers, hidden 64, ffn 256, 130 position rows). */
  @Test
  void bytesPerDecodeStepAreWeightsOnceAndTheAverageKvCache(@TempDir Path tmp) throws IOException {
    OptConfig tiny = OptConfig.fromJson(Files.readString(tinyConfig(tmp)));
    // token embedding 50272×64 = 3,217,408 (lm_head tied: not again); positions 130×64 = 8,320;
    // per layer q,k,v,out 4×(64×64+64) = 16,640, fc1 256×64+256 = 16,640, fc2 64×256+64 = 16,448,
    // two LayerNorms 2×128 = 256: 49,984, ×2 layers = 99,968; final LayerNorm 128
    assertEquals(3_217_408L + 8_320 + 99_968 + 128, OptShapes.parameterCount(tiny));
    long weightsRead = 3_217_408L + 99_968 + 128; // the position table is not read whole
    // batch 3, prompt 20, gen 4: decode steps attend over 21..24 positions, 22.5 on average;
    // K and V × 2 layers × 64 wide: 3 × 22.5 × 2 × 2 × 64 = 17,280 elements
    assertEquals((weightsRead + 17_280) * 2, BenchCommand.bytesPerDecodeStep(tiny, DType.F16, false, 3, 20, 4));
    // batch 1, prompt 10, gen 1: one step over 11 positions: 11 × 2 × 2 × 64 = 2,816 elements of 4 bytes
    assertEquals((weightsRead + 2_816) * 4, BenchCommand.bytesPerDecodeStep(tiny, DType.F32, false, 1, 10, 1));
    // a real shape: opt-6.7b in f16 is about 13.3 GB of weights per step
    assertEquals(13.3e9, BenchCommand.bytesPerDecodeStep(OptShapes.of("6.7b"), DType.F16, false, 1, 1, 0), 0.05e9);
    // int8 Linears: opt-1.3b's 24 × (4 × 2048² + 2 × 2048 × 8192) Linear weights at one byte (plus their row scales)
    // instead of two
    OptConfig b13 = OptShapes.of("1.3b");
    long linear = 24L * (4L * 2048 * 2048 + 2L * 2048 * 8192);
    assertEquals(BenchCommand.bytesPerDecodeStep(b13, DType.F16, false, 1, 1, 0) - linear + 4L * 24 * (5 * 2048 + 8192),
        BenchCommand.bytesPerDecodeStep(b13, DType.F16, true, 1, 1, 0));

    // 2 GB at 2000 GB/s is 1 ms: a 2 ms step is half the limit, a 1 ms step all of it
    assertEquals(0.5, BenchCommand.rooflineFraction(2_000_000_000L, 2000, 2.0), 1e-12);
    assertEquals(1.0, BenchCommand.rooflineFraction(2_000_000_000L, 2000, 1.0), 1e-12);
  }

  /** On a GPU host: the bandwidth line and the roofline fields are there and consistent (values not judged). */
  @Test
  @GpuTest
  void cudaReportsTheCopyBandwidthAndRooflineFraction(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("gpu.jsonl");
    CliTest.Run r = bench("--device", "cuda", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "20",
        "--gen-len", "4", "--batch", "1,2", "--warm-up", "0", "--repeats", "1", "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("device-to-device copy"), r.out());
    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(2, jsonLines.size());
    for (String text : jsonLines) {
      JsonNode j = JSON.readTree(text);
      assertEquals(FIELDS, Set.copyOf(iterable(j)));
      assertEquals("cuda", j.get("device").asText());
      assertNotEquals("", j.get("device_name").asText());
      double gbps = j.get("copy_gbps").asDouble();
      assertTrue(gbps > 0, j.toString());
      long bytes = j.get("bytes_per_step").asLong();
      assertEquals(BenchCommand.bytesPerDecodeStep(OptConfig.fromJson(Files.readString(tmp.resolve("config.json"))),
          DType.F16, false, j.get("batch").asInt(), 20, 4), bytes);
      double expected = BenchCommand.rooflineFraction(bytes, gbps, j.get("decode_ms_per_token").asDouble());
      assertEquals(expected, j.get("roofline_fraction").asDouble(), 0.01 * expected);
      // the host's part of the replayed steps (session 18): three non-negative parts within the step's wall time
      JsonNode host = j.get("decode_host_ms_per_step");
      assertTrue(host != null && host.isObject(), j.toString());
      double sum = 0;
      for (String part : List.of("ops_walk", "graph_launch", "wait")) {
        assertTrue(host.get(part).asDouble() >= 0, j.toString());
        sum += host.get(part).asDouble();
      }
      assertTrue(sum <= 1.05 * j.get("decode_ms_per_token").asDouble() + 0.01, j.toString());
    }
    assertTrue(r.out().contains("host per replayed step: ops walk "), r.out());
  }

  /** On a GPU host: each variant gets its table and JSON lines, marked with its spec, on the same model. */
  @Test
  @GpuTest
  void cudaTimesEachVariantInTurn(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("variants.jsonl");
    CliTest.Run r = bench("--device", "cuda", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "20",
        "--gen-len", "4", "--batch", "1,2", "--warm-up", "0", "--repeats", "1", "--json", json.toString(),
        "--variants", "default;attention=tc,gemv=on;gemm=lt");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("variant: attention=tc,gemv=on"), r.out());
    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(3 * 2, jsonLines.size());
    List<String> variants = new java.util.ArrayList<>();
    for (String text : jsonLines) {
      JsonNode j = JSON.readTree(text);
      Set<String> fields = new java.util.HashSet<>(FIELDS);
      fields.add("variant");
      assertEquals(fields, Set.copyOf(iterable(j)));
      variants.add(j.get("variant").asText());
    }
    assertEquals(List.of("default", "default", "attention=tc,gemv=on", "attention=tc,gemv=on", "gemm=lt", "gemm=lt"),
        variants);
  }

  /**
   * On a GPU host: a variant's lines say which counted kernels it launched (session 13), so that a variant whose
   * kernel never ran is not read as that kernel's speed. The split gemv (session 11, the default as auto since session
   * 17) as the example: gemvsplit=1 runs the one-warp-per-row kernel, which is not counted.
   */
  @Test
  @GpuTest
  @org.junit.jupiter.api.Tag("gpu-new-gemvsplit")
  void cudaVariantsReportTheNewKernelsTheyLaunched(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("variants.jsonl");
    CliTest.Run r = bench("--device", "cuda", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "20",
        "--gen-len", "4", "--batch", "1", "--warm-up", "0", "--repeats", "1", "--json", json.toString(),
        "--variants", "gemvsplit=1;gemvsplit=2");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("counted kernels that ran (eager steps and graph captures): {")
        && r.out().contains("split_gemv="), r.out());
    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(2, jsonLines.size());
    JsonNode oneWarp = JSON.readTree(jsonLines.get(0)).get("new_kernel_launches");
    JsonNode split = JSON.readTree(jsonLines.get(1)).get("new_kernel_launches");
    assertEquals(0, oneWarp.get("split_gemv").asLong(), oneWarp.toString());
    assertTrue(split.get("split_gemv").asLong() > 0, split.toString());
    assertEquals(0, split.get("grouped_split").asLong(), split.toString());
  }

  private static List<String> iterable(JsonNode node) {
    List<String> names = new java.util.ArrayList<>();
    node.fieldNames().forEachRemaining(names::add);
    return names;
  }

  @Test
  void referenceEngineRunsSingleThreadedWithOtherDtypes(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("b.jsonl");
    CliTest.Run r = bench("--shape", tinyConfig(tmp).toString(), "--prompt-len", "3", "--gen-len", "1",
        "--reference", "--dtype", "bf16", "--warm-up", "0", "--repeats", "1", "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("cpu-reference on 1 thread"), r.out());
    JsonNode j = JSON.readTree(Files.readAllLines(json).get(0));
    assertEquals("cpu-reference", j.get("engine").asText());
    assertEquals(1, j.get("threads").asInt());
    assertEquals("bf16", j.get("dtype").asText());
  }

  @Test
  void int8LinearsAreNamedInTheHeaderAndTheJson(@TempDir Path tmp) throws IOException {
    Path json = tmp.resolve("b.jsonl");
    CliTest.Run r = bench("--device", "cpu", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "5",
        "--gen-len", "2", "--threads", "2", "--quantize", "int8", "--warm-up", "0", "--repeats", "1",
        "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().contains("random f16 weights (Linears int8)") && r.out().contains("cpu-fast-int8"), r.out());
    JsonNode j = JSON.readTree(Files.readAllLines(json).get(0));
    assertEquals("cpu-fast-int8", j.get("engine").asText());
    assertEquals("int8", j.get("quantization").asText());
    assertTrue(j.get("decode_ms_per_token").asDouble() > 0, j.toString());
    CliTest.Run kv16 = bench("--device", "cpu", "--shape", tinyConfig(tmp).toString(), "--prompt-len", "5",
        "--gen-len", "2", "--threads", "2", "--kv-cache-dtype", "f16", "--warm-up", "0", "--repeats", "1",
        "--json", json.toString());
    assertEquals(0, kv16.exit(), kv16.err());
    JsonNode k = JSON.readTree(Files.readAllLines(json).get(1));
    assertEquals("cpu-fast-kv16", k.get("engine").asText());
    assertEquals("f16", k.get("kv_cache_dtype").asText());
    CliTest.Run bad = bench("--device", "cpu", "--shape", tinyConfig(tmp).toString(), "--quantize", "int4");
    assertTrue(bad.exit() != 0 && bad.err().contains("--quantize must be none or int8"), bad.err());
    if (!CudaProbe.probe().usable()) { // int8 on CUDA is allowed: without a GPU the device is what is refused
      CliTest.Run cuda = bench("--device", "cuda", "--shape", tinyConfig(tmp).toString(), "--quantize", "int8");
      assertTrue(cuda.exit() != 0 && cuda.err().contains("CUDA is not usable here"), cuda.err());
    }
  }

  @Test
  void badOptionsAreOneClearErrorLine(@TempDir Path tmp) throws IOException {
    String config = tinyConfig(tmp).toString();
    if (!CudaProbe.probe().usable()) { // on a GPU host --device cuda is accepted
      CliTest.Run cuda = bench("--device", "cuda", "--shape", config);
      assertEquals(1, cuda.exit());
      assertTrue(cuda.err().contains("CUDA is not usable here"), cuda.err());
    }
    CliTest.Run dtype = bench("--dtype", "int8", "--shape", config);
    assertTrue(dtype.exit() == 2 && dtype.err().contains("--dtype must be f16, bf16 or f32"), dtype.err());
    CliTest.Run size = bench("--shape", "7b");
    assertTrue(size.exit() != 0 && size.err().contains("unknown OPT size '7b'"), size.err());
    CliTest.Run tooLong = bench("--shape", config, "--prompt-len", "120", "--gen-len", "9");
    assertTrue(tooLong.exit() != 0 && tooLong.err().contains("128 positions"), tooLong.err());
    CliTest.Run zero = bench("--shape", config, "--batch", "1,0");
    assertTrue(zero.exit() != 0 && zero.err().contains("--batch must be at least 1, not 0"), zero.err());
    CliTest.Run repeats = bench("--shape", config, "--repeats", "0");
    assertTrue(repeats.exit() != 0 && repeats.err().contains("--repeats must be at least 1, not 0"), repeats.err());
    for (String warmUp : new String[] {"-1", "NaN", "Infinity"}) {
      CliTest.Run w = bench("--shape", config, "--warm-up", warmUp);
      assertTrue(w.exit() != 0 && w.err().contains("--warm-up must be a number of seconds, 0 or more"), w.err());
    }
    CliTest.Run missing = bench("--shape", tmp.resolve("nope/config.json").toString());
    assertTrue(missing.exit() != 0 && missing.err().contains("no such file"), missing.err());
    CliTest.Run negativeThreads = bench("--shape", config, "--threads", "-1");
    assertTrue(negativeThreads.exit() != 0 && negativeThreads.err().contains("--threads must be 0 (all processors) or "
        + "more, not -1"), negativeThreads.err());
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    CliTest.Run emptyDir = bench("--shape", empty.toString());
    assertTrue(emptyDir.exit() != 0 && emptyDir.err().contains("a directory without config.json"), emptyDir.err());
    CliTest.Run cpuVariants = bench("--device", "cpu", "--shape", config, "--prompt-len", "4", "--variants",
        "default;gemv=on");
    assertTrue(cpuVariants.exit() != 0 && cpuVariants.err().contains("use it with --device cuda"), cpuVariants.err());
    CliTest.Run badVariant = bench("--shape", config, "--prompt-len", "4", "--variants", "attention=fast");
    assertTrue(badVariant.exit() != 0 && badVariant.err().contains("attention must be one of"), badVariant.err());
    // Session 27's review: a --json file in a missing folder failed only after the whole run (minutes at 6.7b), and a
    // huge batch overflowed the KV-cache block count into a negative number.
    CliTest.Run noDir = bench("--shape", config, "--prompt-len", "4", "--gen-len", "2", "--json",
        tmp.resolve("nodir/x.json").toString());
    assertTrue(noDir.exit() != 0 && noDir.err().contains("nodir does not exist") && !noDir.out().contains("batch "),
        noDir.err() + noDir.out());
    for (String[] lengths : new String[][] {{"1", "2147483647"}, {"2147483647", "1"}}) {
      CliTest.Run wraps = bench("--shape", config, "--prompt-len", lengths[0], "--gen-len", lengths[1]);
      assertTrue(wraps.exit() != 0 && wraps.err().contains("is 2147483648, more than the 128 positions"), wraps.err());
    }
    CliTest.Run root = bench("--shape", config, "--prompt-len", "4", "--gen-len", "2", "--json", "/");
    assertTrue(root.exit() != 0 && root.err().contains("a folder, not a file"), root.err());
    CliTest.Run huge = bench("--shape", config, "--gen-len", "0", "--prompt-len", "100", "--batch", "2000000000");
    assertTrue(huge.exit() != 0 && huge.err().contains("KV-cache blocks of 16 tokens, more than one cache can index: "
        + "lower --batch or the lengths"), huge.err());
  }

  @Test
  void medianOfAnEvenCountIsTheMeanOfTheMiddleTwo() {
    assertEquals(2.5, BenchCommand.median(new double[] {4, 1, 2, 3}));
    assertEquals(3.0, BenchCommand.median(new double[] {5, 3, 1}));
  }
}
