package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
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

/** {@code opt bench} on a tiny shape: the table and JSON fields are there (the speed is not tested). */
class BenchCommandTest {
  private static final ObjectMapper JSON = new ObjectMapper();

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
    CliTest.Run r = bench("--shape", tinyConfig(tmp).toString(), "--prompt-len", "20", "--gen-len", "2",
        "--batch", "1,3", "--threads", "2", "--warm-up", "0", "--json", json.toString());
    assertEquals(0, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    assertTrue(lines.get(0).contains("cpu-fast on 2 threads") && lines.get(0).contains("random f16 weights"), r.out());
    int header = lines.indexOf("batch  prompt  new  prefill ms  prefill tok/s  decode ms/step  decode tok/s");
    assertTrue(header > 0, r.out());
    assertEquals(header + 3, lines.size(), r.out());
    assertTrue(lines.get(header + 1).trim().startsWith("1      20    2"), lines.get(header + 1));
    assertTrue(lines.get(header + 2).trim().startsWith("3      20    2"), lines.get(header + 2));

    List<String> jsonLines = Files.readAllLines(json);
    assertEquals(3, jsonLines.size());
    assertEquals("{\"earlier\": true}", jsonLines.get(0));
    for (int i = 1; i <= 2; i++) {
      JsonNode j = JSON.readTree(jsonLines.get(i));
      assertEquals(Set.of("date", "commit", "device", "model", "dtype", "threads", "batch", "prompt_len", "gen_len",
          "engine", "prefill_ms", "prefill_tokens_per_s", "decode_ms_per_token", "tokens_per_s"),
          Set.copyOf(iterable(j)));
      assertEquals(i == 1 ? 1 : 3, j.get("batch").asInt());
      assertEquals("cpu", j.get("device").asText());
      assertEquals("cpu-fast", j.get("engine").asText());
      assertEquals("f16", j.get("dtype").asText());
      assertEquals(2, j.get("threads").asInt());
      assertEquals(20, j.get("prompt_len").asInt());
      assertEquals(2, j.get("gen_len").asInt());
      assertTrue(j.get("date").asText().matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"), j.toString());
      assertNotEquals("", j.get("commit").asText());
      double prefillMs = j.get("prefill_ms").asDouble();
      double prefillTps = j.get("prefill_tokens_per_s").asDouble();
      assertTrue(prefillMs > 0 && j.get("decode_ms_per_token").asDouble() > 0, j.toString());
      // tokens/s are the batch's tokens over the measured time, not something else
      assertEquals(j.get("batch").asInt() * 20 / (prefillMs / 1e3), prefillTps, 0.01 * prefillTps + 0.01);
      double decodeMs = j.get("decode_ms_per_token").asDouble();
      double tps = j.get("tokens_per_s").asDouble();
      assertEquals(j.get("batch").asInt() / (decodeMs / 1e3), tps, 0.01 * tps + 0.01);
    }
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
  void badOptionsAreOneClearErrorLine(@TempDir Path tmp) throws IOException {
    String config = tinyConfig(tmp).toString();
    CliTest.Run cuda = bench("--device", "cuda", "--shape", config);
    assertEquals(1, cuda.exit());
    assertTrue(cuda.err().contains("CUDA is not usable here"), cuda.err());
    CliTest.Run dtype = bench("--dtype", "int8", "--shape", config);
    assertTrue(dtype.exit() != 0 && dtype.err().contains("--dtype must be f16, bf16 or f32"), dtype.err());
    CliTest.Run size = bench("--shape", "7b");
    assertTrue(size.exit() != 0 && size.err().contains("unknown OPT size '7b'"), size.err());
    CliTest.Run tooLong = bench("--shape", config, "--prompt-len", "120", "--gen-len", "9");
    assertTrue(tooLong.exit() != 0 && tooLong.err().contains("128 positions"), tooLong.err());
    CliTest.Run zero = bench("--shape", config, "--batch", "1,0");
    assertTrue(zero.exit() != 0 && zero.err().contains("at least 1"), zero.err());
  }
}
