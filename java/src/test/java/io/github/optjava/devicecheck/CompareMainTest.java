package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU host's HF comparison, dry-run on the CPU with the tiny fixture model: {@link CompareMain} must
 * reproduce HF's fixture logits and greedy tokens, and its output must be what {@code scripts/hf_peer.py
 * compare} reads (checked end to end when python3 is available; the compare step needs no torch).
 */
class CompareMainTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String FOUR = "english,dutch,code,long";

  private static Path resource(String path) throws URISyntaxException {
    return Path.of(CompareMainTest.class.getResource(path).toURI());
  }

  private static JsonNode reference() throws Exception {
    try (InputStream in = Files.newInputStream(resource("/fixtures/reference/tiny-opt/reference.json"))) {
      return JSON.readTree(in);
    }
  }

  private static int run(String... args) {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8);
    int rc = CompareMain.run(args, ps, ps);
    System.out.print(buf.toString(StandardCharsets.UTF_8));
    return rc;
  }

  @Test
  void cpuRunOnTinyOptReproducesHfFixture(@TempDir Path tmp) throws Exception {
    JsonNode ref = reference();
    Path prompts = tmp.resolve("prompts.jsonl");
    StringBuilder lines = new StringBuilder();
    for (JsonNode p : ref.get("prompts")) {
      lines.append(JSON.writeValueAsString(JSON.createObjectNode().put("name", p.get("name").asText())
          .set("input_ids", p.get("input_ids")))).append('\n');
    }
    Files.writeString(prompts, lines);
    Path out = tmp.resolve("ours");
    int rc = run("--model", resource("/fixtures/models/tiny-opt").toString(), "--prompts", prompts.toString(),
        "--out", out.toString(), "--new-tokens", "16", "--device", "cpu");
    assertEquals(0, rc);

    JsonNode ours = JSON.readTree(out.resolve("ours.json").toFile());
    int vocab = ref.get("config").get("vocab_size").asInt();
    assertEquals(vocab, ours.get("vocab_size").asInt());
    float[] all = CompareMain.readFloats(resource("/fixtures/reference/tiny-opt/last_logits.bin"));
    for (int i = 0; i < ref.get("prompts").size(); i++) {
      JsonNode p = ref.get("prompts").get(i);
      JsonNode o = ours.get("prompts").get(i);
      String name = p.get("name").asText();
      assertEquals(name, o.get("name").asText());
      assertEquals(p.get("input_ids"), o.get("input_ids"));
      float[] logits = CompareMain.readFloats(out.resolve(o.get("logits_file").asText()));
      assertEquals(vocab, logits.length, name);
      int row = p.get("last_logits_row").asInt();
      float diff = 0;
      for (int v = 0; v < vocab; v++) {
        diff = Math.max(diff, Math.abs(logits[v] - all[row * vocab + v]));
      }
      assertTrue(diff <= 1e-3f, name + ": max |logit diff| " + diff);
      int[] want = ints(p.get("greedy").get("new_tokens"));
      assertArrayEquals(want, ints(o.get("new_tokens")), name);
      assertArrayEquals(want, ints(o.get("batched_tokens")), name + " batched");
      assertTrue(o.get("batched_equals_unbatched").asBoolean(), name);
      JsonNode steps = o.get("steps");
      assertEquals(want.length, steps.size());
      for (int s = 0; s < want.length; s++) {
        JsonNode st = steps.get(s);
        assertEquals(CompareMain.TOP_K, st.get("top_ids").size());
        assertEquals(want[s], st.get("top_ids").get(0).asInt(), name + " step " + s);
        JsonNode hf = p.get("greedy").get("steps").get(s);
        assertEquals(hf.get("top2").asInt(), st.get("top_ids").get(1).asInt(), name + " step " + s + " top2");
        assertEquals(hf.get("margin").asDouble(),
            st.get("top_logits").get(0).asDouble() - st.get("top_logits").get(1).asDouble(), 2e-3);
      }
      assertTrue(o.get("prefill_ms").asDouble() > 0);
      assertTrue(o.get("decode_ms_per_token").asDouble() > 0);
    }
  }

  @Test
  void badInputGivesStatus2(@TempDir Path tmp) throws Exception {
    assertEquals(2, run("--prompts", "x", "--out", "y"));
    assertEquals(2, run("--model", "m", "--prompts", "p", "--out", "o", "--dtype", "F8"));
    assertEquals(2, run("--model", "m", "--prompts", tmp.resolve("missing.jsonl").toString(), "--out", "o"));
    Path bad = tmp.resolve("bad.jsonl");
    Files.writeString(bad, "{\"input_ids\": []}\n");
    assertEquals(2, run("--model", "m", "--prompts", bad.toString(), "--out", "o", "--device", "cpu"));
    Path tooLong = tmp.resolve("long.jsonl");
    Files.writeString(tooLong, "{\"input_ids\": [2, 100]}\n");
    assertEquals(2, run("--model", resource("/fixtures/models/tiny-opt").toString(), "--prompts", tooLong.toString(),
        "--out", tmp.resolve("o").toString(), "--device", "cpu", "--new-tokens", "200"));
  }

  @Test
  void topKAndArgmax() {
    float[] v = {1f, 5f, 3f, 5f, Float.NaN, -2f, 4f};
    assertEquals(1, CompareMain.argmax(v, v.length));
    assertArrayEquals(new int[] {1, 3, 6}, CompareMain.topK(v, v.length, 3));
    assertArrayEquals(new int[] {1, 3, 6, 2, 0, 5}, CompareMain.topK(v, v.length, 10));
  }

  // ---- end to end with scripts/hf_peer.py (standard-library parts only) ----

  private static Path script() {
    return HfPeerScript.find();
  }

  private static boolean python3() {
    return HfPeerScript.python3();
  }

  private static int python(Path script, String... args) throws Exception {
    return HfPeerScript.run(script, args);
  }

  @Test
  void hfPeerCompareReadsOursAndJudgesFlips(@TempDir Path tmp) throws Exception {
    Path script = script();
    assumeTrue(script != null && python3(), "python3 or scripts/hf_peer.py not available");
    Path prompts = tmp.resolve("prompts.jsonl");
    Path hf = tmp.resolve("hf");
    Path ours = tmp.resolve("ours");
    Path ref = resource("/fixtures/reference/tiny-opt/reference.json");
    assertEquals(0, python(script, "prompts", "--reference", ref.toString(), "--names", FOUR, "--out", prompts.toString()));
    assertEquals(0, python(script, "fixture", "--reference", ref.toString(), "--names", FOUR, "--out", hf.toString()));
    assertEquals(0, run("--model", resource("/fixtures/models/tiny-opt").toString(), "--prompts", prompts.toString(),
        "--out", ours.toString(), "--new-tokens", "16", "--device", "cpu"));

    // 1. As produced: fp32 CPU against HF's fp32 CPU numbers, everything agrees.
    Path rows = tmp.resolve("rows.tsv");
    assertEquals(0, python(script, "compare", "--hf", hf.toString(), "--ours", ours.toString(), "--rows", rows.toString()));
    JsonNode s = JSON.readTree(ours.resolve("compare.json").toFile()).get("summary");
    assertTrue(s.get("ok").asBoolean());
    assertEquals(64, s.get("greedy_tokens_agree").asInt());
    assertEquals(64, s.get("greedy_tokens_compared").asInt());
    assertEquals(4, s.get("batched_equals_unbatched").asInt());
    assertTrue(s.get("max_rel_logit_error").asDouble() < 1e-4, s.toString());
    List<String> rowLines = Files.readAllLines(rows);
    assertEquals(5, rowLines.size());
    assertTrue(rowLines.get(0).startsWith("hf vs ours: logits\tok\t"), rowLines.get(0));
    assertTrue(rowLines.get(1).startsWith("hf vs ours: greedy\tok\t"), rowLines.get(1));

    // 2. A near tie: english's first HF step has margin 0.33; our logits 0.2 off somewhere (rel < 1 % of ~27,
    //    within tolerance) and our greedy picking HF's runner-up there is a flip the error can explain.
    JsonNode hfEnglish = JSON.readTree(hf.resolve("hf.json").toFile()).get("prompts").get(0);
    int runnerUp = hfEnglish.get("steps").get(0).get("top_ids").get(1).asInt();
    Path logits0 = ours.resolve("logits_0.bin");
    float[] l0 = CompareMain.readFloats(logits0);
    l0[12345] += 0.2f;
    CompareMain.writeFloats(logits0, l0);
    ObjectNode doc = (ObjectNode) JSON.readTree(ours.resolve("ours.json").toFile());
    ((ArrayNode) doc.get("prompts").get(0).get("new_tokens")).set(0, runnerUp);
    JSON.writeValue(ours.resolve("ours.json").toFile(), doc);
    assertEquals(0, python(script, "compare", "--hf", hf.toString(), "--ours", ours.toString()));
    JsonNode c = JSON.readTree(ours.resolve("compare.json").toFile());
    assertEquals(1, c.get("summary").get("near_tie_flips").asInt());
    assertEquals("near-tie flip", c.get("prompts").get(0).get("flip").get("verdict").asText());
    assertEquals(0, c.get("prompts").get(0).get("flip").get("step").asInt());

    // 3. A real mismatch: code's step 5 token replaced by our 8th choice there (gap far above the error).
    JsonNode code = doc.get("prompts").get(2);
    int eighth = code.get("steps").get(5).get("top_ids").get(7).asInt();
    ((ArrayNode) code.get("new_tokens")).set(5, eighth);
    JSON.writeValue(ours.resolve("ours.json").toFile(), doc);
    assertEquals(1, python(script, "compare", "--hf", hf.toString(), "--ours", ours.toString(), "--rows", rows.toString()));
    c = JSON.readTree(ours.resolve("compare.json").toFile());
    assertEquals("MISMATCH", c.get("prompts").get(2).get("flip").get("verdict").asText());
    assertTrue(Files.readAllLines(rows).get(1).startsWith("hf vs ours: greedy\tFAIL\t"));

    // 4. Logits beyond tolerance: 1.0 off is > 1 % of a ~30 logit row.
    ((ArrayNode) code.get("new_tokens")).set(5, ((ArrayNode) code.get("batched_tokens")).get(5).asInt());
    JSON.writeValue(ours.resolve("ours.json").toFile(), doc);
    l0[12345] += 1.0f;
    CompareMain.writeFloats(logits0, l0);
    assertEquals(1, python(script, "compare", "--hf", hf.toString(), "--ours", ours.toString(), "--rows", rows.toString()));
    assertTrue(Files.readAllLines(rows).get(0).startsWith("hf vs ours: logits\tFAIL\t"));
  }

  private static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).asInt();
    }
    return out;
  }
}
