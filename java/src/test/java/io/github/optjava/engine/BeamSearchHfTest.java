package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Beam search on the reference CPU backend against Hugging Face transformers 4.36.2's
 * {@code generate(num_beams=4, max_new_tokens=12, length_penalty=1.0, early_stopping=True,
 * num_return_sequences=2)} for every fixture prompt of both models, and the {@code eos_override} case
 * whose EOS id makes finished hypotheses appear. Tolerances (docs/fixtures.md): tokens exact,
 * {@code sequences_scores} within 1e-4.
 */
class BeamSearchHfTest {
  private static final double SCORE_TOL = 1e-4;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Ops ops = new CpuOps();

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void everyPromptMatchesHf(String name) throws Exception {
    JsonNode ref = reference(name);
    try (OptModel model = load(name); KvCache cache = cache(model.config())) {
      int free = cache.freeBlocks();
      AtomicLong ids = new AtomicLong(1000);
      for (JsonNode p : ref.get("prompts")) {
        JsonNode beam = p.get("beam");
        int[] prompt = ints(p.get("input_ids"));
        List<BeamSearch.Hypothesis> got = BeamSearch.run(model, cache, ids::getAndIncrement, prompt,
            config(beam, model.config().eosTokenId()), List.of());
        assertMatches(name + " " + p.get("name").asText(), beam, prompt, got);
        assertEquals(free, cache.freeBlocks(), "every block is back in the pool after " + p.get("name"));
      }
    }
  }

  /**
   * The candidates found where the logits are (no processors) and on the host (a processor that changes nothing)
   * give the same hypotheses bit for bit on the real model: the reference backend's twin of the GPU's path.
   */
  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void candidatesWhereTheLogitsAreEqualTheHostPath(String name) throws Exception {
    JsonNode ref = reference(name);
    LogitsProcessor unchanged = (inputIds, inputLength, promptLength, scores) -> { };
    try (OptModel model = load(name); KvCache cache = cache(model.config())) {
      AtomicLong ids = new AtomicLong(1000);
      for (JsonNode p : ref.get("prompts")) {
        int[] prompt = ints(p.get("input_ids"));
        BeamSearch.Config config = new BeamSearch.Config(3, 10, 1.0, false, 3, model.config().eosTokenId(), 1);
        assertEquals(BeamSearch.run(model, cache, ids::getAndIncrement, prompt, config, List.of(unchanged)),
            BeamSearch.run(model, cache, ids::getAndIncrement, prompt, config, List.of()), p.get("name").asText());
        // with processors that name their tokens: edits on the log-probabilities against the processors on the host
        List<LogitsProcessor> sparse = List.of(new RepetitionPenaltyProcessor(1.3), new NoRepeatNgramProcessor(3));
        List<LogitsProcessor> onHost = new java.util.ArrayList<>(sparse);
        onHost.add(unchanged);
        assertEquals(BeamSearch.run(model, cache, ids::getAndIncrement, prompt, config, onHost),
            BeamSearch.run(model, cache, ids::getAndIncrement, prompt, config, sparse),
            p.get("name").asText() + " with processors");
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void eosOverrideGivesHfFinishedHypotheses(String name) throws Exception {
    JsonNode ref = reference(name);
    JsonNode eos = ref.get("eos_override");
    JsonNode beam = eos.get("beam");
    int[] prompt = ints(eos.get("input_ids"));
    try (OptModel model = load(name); KvCache cache = cache(model.config())) {
      List<BeamSearch.Hypothesis> got = BeamSearch.run(model, cache, new AtomicLong()::getAndIncrement, prompt,
          config(beam, beam.get("eos_token_id").asInt()), List.of());
      assertMatches(name + " eos_override", beam, prompt, got);
      assertTrue(got.get(0).finished(), "the fixture's best hypothesis ends with its EOS token");
      assertEquals(beam.get("eos_token_id").asInt(), got.get(0).tokens()[got.get(0).tokens().length - 1]);
    }
  }

  private static void assertMatches(String what, JsonNode beam, int[] prompt, List<BeamSearch.Hypothesis> got) {
    JsonNode newTokens = beam.get("new_tokens");
    assertEquals(newTokens.size(), got.size(), what + ": number of returned sequences");
    for (int i = 0; i < got.size(); i++) {
      assertArrayEquals(ints(newTokens.get(i)), got.get(i).tokens(), what + " sequence " + i);
      double expected = beam.get("sequences_scores").get(i).asDouble();
      assertEquals(expected, got.get(i).score(), SCORE_TOL, what + " score " + i);
    }
    // HF's rows: prompt + tokens, the shorter ones right-padded with pad id 1.
    int[][] rows = BeamSearch.hfSequences(prompt, got, 1);
    for (int i = 0; i < rows.length; i++) {
      assertArrayEquals(ints(beam.get("sequences").get(i)), rows[i], what + " HF row " + i);
    }
  }

  private static BeamSearch.Config config(JsonNode beam, int eosTokenId) {
    return new BeamSearch.Config(beam.get("num_beams").asInt(), beam.get("max_new_tokens").asInt(),
        beam.get("length_penalty").asDouble(), beam.get("early_stopping").asBoolean(),
        beam.get("num_return_sequences").asInt(), eosTokenId, 1);
  }

  private OptModel load(String name) throws URISyntaxException {
    Path dir = Path.of(BeamSearchHfTest.class.getResource("/fixtures/models/" + name).toURI());
    OptConfig config = OptConfig.load(dir);
    try (Checkpoint ck = Checkpoints.open(dir)) {
      return new OptModel(config, new OptWeights(config, ck), ops);
    }
  }

  /** Small blocks so beams span several blocks and forks copy more than one. */
  private KvCache cache(OptConfig c) {
    return new KvCache(ops.kvStore(c.numHiddenLayers(), 64, 8, c.hiddenSize()));
  }

  private static JsonNode reference(String name) throws IOException {
    try (InputStream in = BeamSearchHfTest.class.getResourceAsStream(
        "/fixtures/reference/" + name + "/reference.json")) {
      if (in == null) {
        throw new IllegalStateException("missing fixture reference/" + name + "/reference.json");
      }
      return JSON.readTree(in);
    }
  }

  private static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asInt();
    }
    return out;
  }
}
