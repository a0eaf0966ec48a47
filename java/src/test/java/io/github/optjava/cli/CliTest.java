package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLI contract (formats, error lines, exit codes), run in-process on fixture models. */
class CliTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  record Run(int exit, String out, String err) {}

  static Run cli(byte[] stdin, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit = Main.run(new ByteArrayInputStream(stdin), new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8), args);
    return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  static Run cli(String stdin, String... args) {
    return cli(stdin.getBytes(StandardCharsets.UTF_8), args);
  }

  static Path fixture(String name) {
    try {
      return Path.of(CliTest.class.getResource("/fixtures/models/" + name).toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void tokenizeWritesOneLinePerInputInOrder() throws IOException {
    Run r = cli("{\"text\": \"Hello world!\"}\n{\"text\": \"\"}\n{\"text\": \" Hello</s>\"}\r\n",
        "tokenize", "--model", fixture("tiny-opt").toString());
    assertEquals(0, r.exit, r.err);
    List<String> lines = r.out.lines().toList();
    assertEquals(List.of("{\"ids\":[31414,232,328]}", "{\"ids\":[]}", "{\"ids\":[20920,2]}"), lines);
  }

  @Test
  void tokenizeAndScoreRefuseUnknownFieldsAsBatchDoes() {
    Run r = cli("{\"text\": \"a\", \"foo\": 1}\n{\"text\": \"a\"}\n", "tokenize", "--model", fixture("tiny-opt").toString());
    assertEquals(1, r.exit, r.err);
    List<String> lines = r.out.lines().toList();
    assertEquals("{\"error\":\"line 1: unknown field \\\"foo\\\"; the only field is \\\"text\\\"\"}", lines.get(0));
    assertTrue(lines.get(1).startsWith("{\"ids\":["), "the next line goes on: " + lines);
  }

  /** A heap too small for the model's files: one error line and exit 1, not a JVM stack trace (session 26's review). */
  @Test
  void aHeapTooSmallIsOneErrorLine() throws Exception {
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx12m",
        "-cp", System.getProperty("java.class.path"), Main.class.getName(), "generate", "--model",
        fixture("tiny-opt").toString(), "--device", "cpu", "--prompt", "Hello").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
    assertEquals(1, p.exitValue(), out);
    assertTrue(out.contains("opt: error: "), out);
    assertFalse(out.contains("Exception in thread"), out);
  }

  @Test
  void everyCommandPrintsTheVersion() {
    for (String command : new String[] {"generate", "score", "batch", "bench", "info"}) {
      Run r = cli("", command, "--version");
      assertEquals(0, r.exit, r.err);
      assertTrue(r.out.startsWith("opt-java "), command + ": " + r.out);
    }
  }

  @Test
  void tokenizeReportsEachBadLineAndGoesOn() throws IOException {
    ByteArrayOutputStream in = new ByteArrayOutputStream();
    in.write("{\"text\": \"a\"}\nnot json\n{\"txt\": \"a\"}\n[1]\n\n{\"text\": 5}\n{\"text\": \"a\"} trailing\n"
        .getBytes(StandardCharsets.UTF_8));
    in.write(new byte[] {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC3, '"', '}', '\n'}); // broken UTF-8
    in.write("{\"text\": \"b\"}".getBytes(StandardCharsets.UTF_8)); // last line without newline
    Run r = cli(in.toByteArray(), "tokenize", "--model", fixture("tiny-opt").toString());
    assertEquals(1, r.exit);
    List<JsonNode> lines = new ArrayList<>();
    for (String l : r.out.lines().toList()) {
      lines.add(JSON.readTree(l));
    }
    assertEquals(9, lines.size(), r.out);
    assertEquals("[102]", lines.get(0).get("ids").toString());
    for (int i = 1; i <= 7; i++) {
      assertTrue(lines.get(i).has("error"), "line " + (i + 1) + ": " + lines.get(i));
      assertTrue(lines.get(i).get("error").asText().startsWith("line " + (i + 1) + ": "), lines.get(i).toString());
    }
    assertTrue(lines.get(1).get("error").asText().contains("not valid JSON"));
    assertTrue(lines.get(2).get("error").asText().contains("unknown field \"txt\""), lines.get(2).toString());
    assertTrue(lines.get(5).get("error").asText().endsWith("field \"text\" must be a string, not a number (one text "
        + "per line)"), lines.get(5).toString());
    assertTrue(lines.get(7).get("error").asText().contains("UTF-8"));
    assertEquals("[428]", lines.get(8).get("ids").toString());
  }

  /** Under torchrun or mpirun without --multi-process every process would run the whole job: it is said. */
  @Test
  void aLaunchedJobWithoutMultiProcessIsWarnedAbout() {
    assertTrue(EngineOptions.warnIfLaunchedAsAJob(java.util.Map.of("WORLD_SIZE", "4", "RANK", "1"))
        .startsWith("WORLD_SIZE=4: a launcher started several processes, and without --multi-process"));
    assertTrue(EngineOptions.warnIfLaunchedAsAJob(java.util.Map.of("OMPI_COMM_WORLD_SIZE", "2")) != null);
    assertEquals(null, EngineOptions.warnIfLaunchedAsAJob(java.util.Map.of("WORLD_SIZE", "1")));
    assertEquals(null, EngineOptions.warnIfLaunchedAsAJob(java.util.Map.of("SLURM_NTASKS", "8")));
    assertEquals(null, EngineOptions.warnIfLaunchedAsAJob(java.util.Map.of("WORLD_SIZE", "many")));
    Run bad = cli("", "generate", "--model", fixture("tiny-opt").toString(), "--prompt", "a", "--multi-process",
        "--rendezvous-timeout", "0");
    assertEquals(1, bad.exit, bad.err);
    assertTrue(bad.err.contains("--rendezvous-timeout must be at least 1 second, got 0"), bad.err);
  }

  @Test
  void errorsAreOneLineWithoutStackTraceUnlessDebug() {
    Run r = cli("", "tokenize", "--model", "no/such/dir/anywhere");
    assertNotEquals(0, r.exit);
    assertEquals(1, r.err.strip().lines().count(), r.err);
    assertTrue(r.err.startsWith("opt: error: "), r.err);
    assertFalse(r.err.contains("\tat "), r.err);

    Run debug = cli("", "--debug", "tokenize", "--model", "no/such/dir/anywhere");
    assertNotEquals(0, debug.exit);
    assertTrue(debug.err.contains("\tat "), debug.err);
  }

  @Test
  void badArgumentsExitNonZeroWithUsage() {
    Run r = cli("", "tokenize", "--model", "x", "--modle", "y");
    assertEquals(2, r.exit);
    assertTrue(r.err.contains("--modle"), r.err);
    assertEquals(2, cli("", "no-such-command").exit);
  }

  @Test
  void inspectListsEveryTensorSortedWithTheConfigAsRead() throws IOException {
    // 2 layers × 16 tensors + token and position embeddings, then: final layer norm (2) + lm_head for
    // the pre-LN fixture, project_in + project_out for the post-LN one.
    for (var c : java.util.Map.of("tiny-opt", 37, "tiny-opt-postln", 36).entrySet()) {
      Path dir = fixture(c.getKey());
      Run r = cli("", "inspect", "--model", dir.toString());
      assertEquals(0, r.exit, r.err);
      JsonNode doc = JSON.readTree(r.out);
      assertEquals("safetensors", doc.get("format").asText());
      assertEquals(JSON.readTree(Files.readString(dir.resolve("config.json"))), doc.get("config"));
      List<String> names = new ArrayList<>();
      doc.get("tensors").forEach(t -> names.add(t.get("name").asText()));
      assertEquals(names.stream().sorted().toList(), names);
      assertEquals(c.getValue(), names.size(), names.toString());
      JsonNode first = doc.get("tensors").get(0);
      assertTrue(first.get("dtype").asText().equals("F16"), first.toString());
    }
  }

  /** A checkpoint that loads but holds a NaN: inspect says which tensor (session 26's review: it exited 0). */
  @Test
  void inspectRefusesNaNWeights(@TempDir Path tmp) throws IOException {
    Path src = fixture("tiny-opt");
    try (var files = Files.list(src)) {
      for (Path f : files.toList()) {
        Files.copy(f, tmp.resolve(f.getFileName().toString())); // (follows the tokenizer files' links)
      }
    }
    Path weights = tmp.resolve("model.safetensors");
    byte[] bytes = Files.readAllBytes(weights);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    int headerLength = (int) b.getLong(0);
    JsonNode header = JSON.readTree(new String(bytes, 8, headerLength, java.nio.charset.StandardCharsets.UTF_8));
    String name = "model.decoder.layers.0.fc1.weight";
    assertEquals("F16", header.get(name).get("dtype").asText());
    int at = 8 + headerLength + header.get(name).get("data_offsets").get(0).asInt() + 2 * 5; // its 6th value
    b.putShort(at, (short) 0x7e00); // fp16 NaN
    Files.write(weights, bytes);
    Run r = cli("", "inspect", "--model", tmp.toString());
    assertEquals(1, r.exit, r.out);
    assertTrue(r.err.contains("NaN or infinite values in '" + name + "' (1 of 16384)"), r.err);
  }

  @Test
  void inspectReadsPytorchBinToTheSameTensors(@TempDir Path tmp) throws IOException {
    Path src = fixture("tiny-opt-postln"); // the fixture with a .bin
    for (String f : List.of("config.json", "pytorch_model.bin", "vocab.json", "merges.txt")) {
      Files.copy(src.resolve(f), tmp.resolve(f));
    }
    Run bin = cli("", "inspect", "--model", tmp.toString());
    assertEquals(0, bin.exit, bin.err);
    JsonNode a = JSON.readTree(bin.out);
    JsonNode b = JSON.readTree(cli("", "inspect", "--model", src.toString()).out);
    assertEquals("pytorch", a.get("format").asText());
    assertEquals(b.get("tensors"), a.get("tensors"));
  }

  /** generate and score need the tokenizer: a model without a usable one does not pass inspection. */
  @Test
  void inspectChecksTheTokenizerFiles(@TempDir Path tmp) throws IOException {
    Path src = fixture("tiny-opt");
    for (String f : List.of("config.json", "model.safetensors", "merges.txt")) {
      Files.copy(src.resolve(f), tmp.resolve(f));
    }
    Run missing = cli("", "inspect", "--model", tmp.toString());
    assertEquals(1, missing.exit, missing.out);
    assertTrue(missing.err.startsWith("opt: error: ") && missing.err.contains("vocab.json"), missing.err);
    Files.copy(src.resolve("vocab.json"), tmp.resolve("vocab.json"));
    Files.writeString(tmp.resolve("merges.txt"), "garbage without a pair\n\u0000\n");
    Run broken = cli("", "inspect", "--model", tmp.toString());
    assertEquals(1, broken.exit, broken.out);
    assertTrue(broken.err.contains("merges.txt"), broken.err);
  }

  @Test
  void inspectRejectsACorruptCheckpointWithOneLine(@TempDir Path tmp) throws IOException {
    Path src = fixture("tiny-opt");
    Files.copy(src.resolve("config.json"), tmp.resolve("config.json"));
    byte[] st = Files.readAllBytes(src.resolve("model.safetensors"));
    Files.write(tmp.resolve("model.safetensors"), java.util.Arrays.copyOf(st, st.length / 2)); // truncated
    Run r = cli("", "inspect", "--model", tmp.toString());
    assertEquals(1, r.exit);
    assertTrue(r.err.startsWith("opt: error: ") && r.err.contains("model.safetensors"), r.err);
    assertEquals("", r.out);
  }

  @Test
  void infoRuns() {
    Run r = cli("", "info");
    assertEquals(0, r.exit, r.err);
    assertTrue(r.out.contains("cuda:"), r.out);
  }
}
