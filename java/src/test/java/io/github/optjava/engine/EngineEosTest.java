package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import io.github.optjava.tokenizer.OptTokenizer;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Stopping on EOS, with HF's {@code eos_override} case: random weights never pick the real EOS (2), so
 * the model runs with eos_token_id set to a token its greedy path produces, as the fixture did.
 */
class EngineEosTest {

  @Test
  void greedyStopsRightAfterEosAndMinTokensDefersIt() throws Exception {
    Path dir = Path.of(getClass().getResource("/fixtures/models/tiny-opt").toURI());
    JsonNode e;
    try (InputStream in = getClass().getResourceAsStream("/fixtures/reference/tiny-opt/reference.json")) {
      e = new ObjectMapper().readTree(in).get("eos_override");
    }
    int eos = e.get("greedy").get("eos_token_id").asInt();
    Map<String, Object> json = new HashMap<>(OptConfig.load(dir).toJsonMap());
    json.put("eos_token_id", eos);
    OptConfig config = OptConfig.fromJson(new ObjectMapper().writeValueAsString(json));
    CpuOps ops = new CpuOps();
    OptModel model;
    try (Checkpoint ck = Checkpoints.open(dir)) {
      model = new OptModel(config, new OptWeights(config, ck), ops);
    }
    KvCache cache = new KvCache(ops.kvStore(config.numHiddenLayers(), 32, 16, config.hiddenSize()));
    int[] prompt = new int[e.get("input_ids").size()];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = e.get("input_ids").get(i).asInt();
    }
    try (Engine engine = new Engine(model, OptTokenizer.load(dir), cache, 4, 128)) {
      Completion c = engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(16).build(), null).join();
      assertEquals(FinishReason.EOS, c.finishReason());
      // HF's new tokens end with the EOS; ours leave it out of the ids (and the text)
      List<Integer> hf = new ObjectMapper().convertValue(e.get("greedy").get("new_tokens"),
          new com.fasterxml.jackson.core.type.TypeReference<List<Integer>>() {});
      assertEquals(hf.subList(0, hf.size() - 1), c.choices().get(0).tokenIds());

      Completion longer = engine.submit(prompt,
          SamplingParams.greedy().toBuilder().maxTokens(16).minTokens(8).build(), null).join();
      assertTrue(longer.completionTokens() >= 8, "min_tokens must defer EOS: " + longer.completionTokens());
      assertEquals(hf.subList(0, hf.size() - 1), longer.choices().get(0).tokenIds().subList(0, hf.size() - 1));
    }
    assertEquals(cache.store().blocks(), cache.freeBlocks(), "every block returned to the pool");
  }
}
