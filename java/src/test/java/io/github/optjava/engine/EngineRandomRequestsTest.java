package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Random requests (greedy, sampling on both paths, processors, min-p / typical-p, logit bias, bad words, stop strings,
 * EOS in the middle of accepted drafts, echo, n = 2, a listener that cancels after K tokens) through engines with
 * prompt lookup, caches that force preemption, step budgets and prefix caching, against the same engine with none of them: bit for bit
 * on {@link CpuOps}, and no block left held. (A reduced form of a second session's review stress test.)
 */
class EngineRandomRequestsTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String[] WORDS = {" the", " cat", " sat", " on", " mat", ",", ".", " a", " dog", " 1", " 2"};

  /**
   * The fixture model, with EOS made the top token on about one row in 64, as a function of the row alone (so the
   * same with or without drafts): the tiny model hardly ever ends a sequence by itself. Only {@link #forward} is
   * the model's: greedy, greedyRows and sample are {@link CausalLm}'s defaults over it.
   */
  private static final class EosModel extends WrappedModel {
    EosModel(OptModel model, boolean samplesOnDevice) {
      super(model, samplesOnDevice);
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
      float[][] out = model.forward(seqs, cache);
      int vocab = config().vocabSize();
      for (float[] rows : out) {
        for (int from = 0; from < rows.length; from += vocab) {
          int h = 0;
          float max = Float.NEGATIVE_INFINITY;
          for (int i = 0; i < vocab; i++) {
            max = Math.max(max, rows[from + i]);
          }
          for (int i = 100; i < 116; i++) {
            h = 31 * h + Float.floatToIntBits(rows[from + i]);
          }
          if ((h & 63) == 0) {
            rows[from + config().eosTokenId()] = max + 8;
          }
        }
      }
      return out;
    }
  }

  private record Request(int[] prompt, SamplingParams params, int cancelAfter) {}

  /** Prompts that repeat a short cycle of words (so drafts are found), with a random sampling setting each. */
  private static List<Request> requests(long seed, int count) {
    Random r = new Random(seed);
    List<Request> out = new ArrayList<>();
    for (int q = 0; q < count; q++) {
      int period = 1 + r.nextInt(5);
      String[] cycle = new String[period];
      for (int i = 0; i < period; i++) {
        cycle[i] = WORDS[r.nextInt(WORDS.length)];
      }
      StringBuilder text = new StringBuilder();
      for (int i = 0, words = 1 + r.nextInt(24); i < words; i++) {
        text.append(r.nextInt(6) == 0 ? WORDS[r.nextInt(WORDS.length)] : cycle[i % period]);
      }
      int[] prompt = TOKENIZER.encode(text.toString());
      int maxTokens = 1 + r.nextInt(Math.max(1, Math.min(40, 120 - prompt.length)));
      SamplingParams.Builder b = switch (r.nextInt(13)) {
        case 0 -> SamplingParams.greedy().toBuilder();
        case 1 -> SamplingParams.greedy().toBuilder().logprobs(r.nextInt(3));
        case 2 -> SamplingParams.greedy().toBuilder().repetitionPenalty(1.2).noRepeatNgramSize(3);
        case 3 -> SamplingParams.greedy().toBuilder().minTokens(r.nextInt(maxTokens + 1));
        case 4 -> SamplingParams.greedy().toBuilder().stop(List.of(r.nextBoolean() ? "e" : "a", "."));
        case 5 -> SamplingParams.builder().temperature(0.8).topK(40).topP(0.9).seed(r.nextLong());
        case 6 -> SamplingParams.builder().temperature(0.7).minP(0.05).typicalP(0.9).seed(r.nextLong());
        case 7 -> SamplingParams.builder().temperature(0.5).seed(r.nextLong()).n(2);
        case 8 -> SamplingParams.greedy().toBuilder().echo(true).logprobs(1);
        case 9 -> SamplingParams.builder().temperature(0.6).presencePenalty(0.5).frequencyPenalty(0.3)
            .seed(r.nextLong()).stop(List.of("o"));
        case 11 -> SamplingParams.greedy().toBuilder().logitBias(java.util.Map.of(prompt[prompt.length - 1], 2.0))
            .badWordsIds(List.of(List.of(prompt[1], prompt[prompt.length - 1])));
        case 12 -> SamplingParams.builder().temperature(0.9).seed(r.nextLong())
            .badWordsIds(List.of(List.of(prompt[prompt.length - 1])));
        default -> SamplingParams.builder().temperature(0.3).seed(r.nextLong()).minTokens(2);
      };
      SamplingParams p = b.maxTokens(maxTokens).build();
      // Cancellation is exact for n = 1 only (see Engine: a cancelled request's completions may stop elsewhere).
      int cancelAfter = p.n() == 1 && r.nextInt(4) == 0 ? 1 + r.nextInt(maxTokens) : Integer.MAX_VALUE;
      out.add(new Request(prompt, p, cancelAfter));
    }
    return out;
  }

  private record Run(List<List<Choice>> choices, GeneratorStats stats) {}

  private static Run run(List<Request> requests, boolean samplesOnDevice, int blocks, int maxStepTokens,
      boolean prefixCaching, int promptLookup) {
    EosModel model = new EosModel(TinyOpt.model(new CpuOps()), samplesOnDevice);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(blocks, 4), 6, 128, maxStepTokens, prefixCaching,
        promptLookup);
    try {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (Request q : requests) {
        int[] seen = new int[1];
        futures.add(engine.submit(q.prompt(), q.params(), new Engine.Listener() {
          @Override
          public void onToken(int choice, int tokenId, String text) {
            seen[0] += tokenId >= 0 ? 1 : 0;
          }

          @Override
          public boolean cancelled() {
            return seen[0] >= q.cancelAfter();
          }
        }));
      }
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      engine.close(); // the loop publishes its last figures as it ends
      return new Run(out, engine.stats());
    } finally {
      engine.close();
    }
  }

  @Test
  void randomRequestsGiveTheSameWithDraftsPreemptionBudgetsAndPrefixCaching() {
    List<Request> requests = requests(1, 20);
    assertTrue(requests.stream().anyMatch(q -> !q.params().logitBias().isEmpty())
        && requests.stream().anyMatch(q -> q.params().isSampling() && !q.params().badWordsIds().isEmpty()),
        "the mix has logit bias and bad words (greedy and sampled)");
    int need = 0; // the largest request, which the smallest cache must hold
    for (Request q : requests) {
      need = Math.max(need, q.params().n() * ((q.prompt().length + q.params().maxTokens() + 3) / 4));
    }
    long accepted = 0;
    for (boolean samplesOnDevice : new boolean[] {false, true}) {
      Run plain = run(requests, samplesOnDevice, 1024, 0, false, 0);
      long eos = plain.choices().stream().flatMap(List::stream)
          .filter(c -> c.finishReason() == io.github.optjava.api.FinishReason.EOS).count();
      assertTrue(eos > 0, "some completions end on the injected EOS");
      // {blocks, budget, prefix caching, drafts}: an exact-fit cache, a budget, a roomy cache with many drafts
      int[][] configs = {{need, 0, 1, 4}, {need + 2, 6, 1, 2}, {50, 9, 0, 8}};
      for (int[] c : configs) {
        Run d = run(requests, samplesOnDevice, c[0], c[1], c[2] == 1, c[3]);
        String what = "samplesOnDevice " + samplesOnDevice + ", " + c[0] + " blocks, budget " + c[1]
            + ", prefix caching " + (c[2] == 1) + ", " + c[3] + " drafts";
        SameChoices.assertSameChoices(plain.choices(), d.choices(), what);
        assertEquals(0, d.stats().kvCacheBlocksUsed(), what + ": blocks still held: " + d.stats());
        accepted += d.stats().acceptedDraftTokens();
      }
    }
    assertTrue(accepted > 0, "drafts were accepted");
  }
}
