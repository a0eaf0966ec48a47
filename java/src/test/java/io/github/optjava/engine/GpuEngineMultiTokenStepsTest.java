package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The engine's steps that feed several tokens after a filled KV cache, on the GPU: prefix caching (a prompt's
 * leading blocks taken from an earlier request), chunked prefill (a prompt fed over several steps) and prompt lookup
 * decoding (draft tokens checked in a decode step, the rejected ones' rows truncated). Greedy tokens must be
 * Hugging Face's, as without them.
 */
@GpuTest
class GpuEngineMultiTokenStepsTest {

  @ParameterizedTest(name = "{0}, budget {1}, {2} drafts")
  @CsvSource({"F16, 0, 0", "F32, 0, 0", "F16, 8, 0", "F16, 0, 4", "F32, 12, 3"})
  void cachedChunkedAndDraftedStepsGiveHfGreedyTokens(DType dtype, int maxStepTokens, int drafts) throws IOException {
    JsonNode ref;
    try (InputStream in = getClass().getResourceAsStream("/fixtures/reference/tiny-opt/reference.json")) {
      ref = new ObjectMapper().readTree(in);
    }
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    try (CudaOps ops = new CudaOps(0, dtype); OptModel model = TinyOpt.model(ops); KvCache cache = model.newCache(64, 4);
        Engine engine = new Engine(model, tokenizer, cache, 4, 128, maxStepTokens, true, drafts)) {
      for (int round = 0; round < 2; round++) { // the second round takes every prompt's whole blocks from the cache
        for (JsonNode p : ref.get("prompts")) {
          JsonNode g = p.get("greedy");
          int[] ids = new int[p.get("input_ids").size()];
          for (int i = 0; i < ids.length; i++) {
            ids[i] = p.get("input_ids").get(i).asInt();
          }
          SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(g.get("max_new_tokens").asInt())
              .build();
          List<Integer> want = new ArrayList<>();
          g.get("new_tokens").forEach(t -> want.add(t.asInt()));
          assertEquals(want, engine.submit(ids, greedy, null).join().choices().get(0).tokenIds(),
              dtype + " round " + round + " " + p.get("name"));
        }
      }
      assertTrue(engine.stats().prefixCachedTokens() > 0, engine.stats().toString());
      assertTrue(drafts == 0 || engine.stats().acceptedDraftTokens() > 0, engine.stats().toString());
    }
  }
}
