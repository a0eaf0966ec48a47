package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.ints;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.LocalTpGroup;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Megatron-style tensor parallelism on the CPU: each rank's {@link OptModel} runs on its own thread
 * with its own ops and a KV cache of width hidden / world, joined by a {@link LocalTpGroup}. Rank 0's
 * logits must equal the unsharded model's (TP = 1) within fp32 rounding (the partial sums are added in
 * another order), every rank's logits are bit-identical (the all-reduce hands all ranks the same sum),
 * and greedy tokens are identical.
 */
class TensorParallelCpuTest {
  private static final float TOL = 1e-4f;
  private static final int GREEDY_STEPS = 12;

  /** Both CPU backends × both fixture models (4 heads, ffn 256) × every valid degree. */
  static Stream<Arguments> cases() {
    return Stream.of("reference", "fast").flatMap(b -> Stream.of("tiny-opt", "tiny-opt-postln")
        .flatMap(m -> Stream.of(1, 2, 4).map(world -> Arguments.of(b, m, world))));
  }

  static Ops backend(String name) {
    return name.equals("fast") ? new FastCpuOps(2) : new CpuOps();
  }

  /** One rank: its group member, ops, model slice and KV cache. */
  record Rank(TpGroup tp, Ops ops, OptModel model, KvCache cache) implements AutoCloseable {
    @Override
    public void close() {
      cache.close();
      model.close();
      ops.close();
      tp.close();
    }
  }

  /** Every rank of a tensor-parallel model, sliced from one open checkpoint (closed once all are built). */
  static List<Rank> ranks(HfReference ref, String backend, int world) {
    OptConfig config = OptConfig.load(ref.modelDir);
    List<TpGroup> group = LocalTpGroup.create(world);
    List<Rank> ranks = new ArrayList<>();
    try (Checkpoint ck = Checkpoints.open(ref.modelDir)) {
      OptWeights weights = new OptWeights(config, ck);
      for (TpGroup tp : group) {
        Ops ops = backend(backend);
        OptModel model = new OptModel(config, weights, ops, null, tp);
        ranks.add(new Rank(tp, ops, model,
            new KvCache(ops.kvStore(config.numHiddenLayers(), 64, 16, model.kvWidth()))));
      }
    }
    return ranks;
  }

  /** Runs {@code body} on every rank, each on its own thread; the results in rank order. */
  static <T> List<T> onRanks(List<Rank> ranks, Function<Rank, T> body) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(ranks.size());
    try {
      List<Future<T>> futures = new ArrayList<>();
      for (Rank r : ranks) {
        futures.add(pool.submit(() -> body.apply(r)));
      }
      List<T> out = new ArrayList<>();
      for (Future<T> f : futures) {
        out.add(f.get(120, TimeUnit.SECONDS));
      }
      return out;
    } finally {
      pool.shutdownNow();
    }
  }

  /** The same forward on every rank; asserts the ranks agree bit for bit and returns rank 0's logits. */
  static float[][] forward(List<Rank> ranks, List<OptModel.SeqStep> step) throws Exception {
    List<float[][]> all = onRanks(ranks, r -> r.model().forward(step, r.cache()));
    for (int r = 1; r < all.size(); r++) {
      for (int s = 0; s < step.size(); s++) {
        assertArrayEquals(all.get(0)[s], all.get(r)[s], 0f, "rank " + r + " disagrees with rank 0, sequence " + s);
      }
    }
    return all.get(0);
  }

  static void closeAll(List<Rank> ranks) {
    ranks.forEach(Rank::close);
  }

  @ParameterizedTest(name = "{0} {1} tp={2}")
  @MethodSource("cases")
  void promptsAndGreedyDecodeMatchTheUnshardedModel(String backend, String name, int world) throws Exception {
    HfReference ref = new HfReference(name);
    List<Rank> ranks = ranks(ref, backend, world);
    try (Ops ops = backend(backend); OptModel single = ref.load(ops, null);
        KvCache cache = HfReference.cache(ops, single.config())) {
      int vocab = single.config().vocabSize();
      long seq = 0;
      for (JsonNode p : ref.json.get("prompts")) {
        int[] next = ints(p.get("input_ids"));
        int[] expectedTokens = new int[GREEDY_STEPS];
        int[] gotTokens = new int[GREEDY_STEPS];
        for (int t = 0; t < GREEDY_STEPS; t++) {
          List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(seq, next, t == 0));
          float[] expected = single.forward(step, cache)[0];
          float[] got = forward(ranks, step)[0];
          float diff = maxAbsDiff(got, expected);
          assertTrue(diff <= TOL, name + " tp=" + world + " " + p.get("name") + " step " + t + ": max |logit diff| "
              + diff);
          int rows = expected.length / vocab;
          expectedTokens[t] = argmax(expected, (rows - 1) * vocab, vocab);
          gotTokens[t] = argmax(got, (rows - 1) * vocab, vocab);
          next = new int[] {expectedTokens[t]};
        }
        assertArrayEquals(expectedTokens, gotTokens, name + " tp=" + world + " " + p.get("name"));
        cache.release(seq);
        for (Rank r : ranks) {
          r.cache().release(seq);
        }
        seq++;
      }
    } finally {
      closeAll(ranks);
    }
  }

  @ParameterizedTest(name = "{0} {1} tp={2}")
  @MethodSource("cases")
  void raggedBatchMatchesTheUnshardedModelAndHf(String backend, String name, int world) throws Exception {
    HfReference ref = new HfReference(name);
    List<Rank> ranks = ranks(ref, backend, world);
    try (Ops ops = backend(backend); OptModel single = ref.load(ops, null);
        KvCache cache = HfReference.cache(ops, single.config())) {
      int vocab = single.config().vocabSize();
      JsonNode rows = ref.json.get("batch").get("rows");
      List<OptModel.SeqStep> step = new ArrayList<>();
      int[][] generated = new int[rows.size()][];
      int steps = ref.json.get("batch").get("max_new_tokens").asInt();
      for (int r = 0; r < rows.size(); r++) {
        int[] ids = ints(rows.get(r).get("input_ids"));
        int[] mask = ints(rows.get(r).get("attention_mask"));
        int pad = 0;
        while (mask[pad] == 0) {
          pad++;
        }
        step.add(new OptModel.SeqStep(r, Arrays.copyOfRange(ids, pad, ids.length), false));
        generated[r] = new int[steps];
      }
      for (int t = 0; t < steps; t++) {
        float[][] expected = single.forward(step, cache);
        float[][] got = forward(ranks, step);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int r = 0; r < rows.size(); r++) {
          float diff = maxAbsDiff(got[r], expected[r]);
          assertTrue(diff <= TOL, name + " tp=" + world + " batch row " + r + " step " + t + ": max |logit diff| " + diff);
          generated[r][t] = argmax(got[r], 0, vocab);
          next.add(new OptModel.SeqStep(r, new int[] {generated[r][t]}, false));
        }
        step = next;
      }
      for (int r = 0; r < rows.size(); r++) {
        assertArrayEquals(ints(rows.get(r).get("new_tokens")), generated[r], name + " tp=" + world + " batch row " + r);
      }
    } finally {
      closeAll(ranks);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void aDegreeThatDoesNotDivideHeadsIsRefused(String name) {
    HfReference ref = new HfReference(name);
    OptConfig config = OptConfig.load(ref.modelDir);
    List<TpGroup> group = LocalTpGroup.create(3);
    try (Checkpoint ck = Checkpoints.open(ref.modelDir); Ops ops = new CpuOps()) {
      OptWeights weights = new OptWeights(config, ck);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> new OptModel(config, weights, ops, null, group.get(0)));
      assertTrue(e.getMessage().contains("tensor-parallel degree 3 does not divide num_attention_heads 4 and ffn_dim 256"),
          e.getMessage());
      assertTrue(e.getMessage().contains("degrees that do: [1, 2, 4]"), e.getMessage());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt"})
  void aKvCacheOfTheWrongWidthIsRefused(String name) {
    HfReference ref = new HfReference(name);
    OptConfig config = OptConfig.load(ref.modelDir);
    TpGroup rank0 = LocalTpGroup.create(2).get(0);
    try (Checkpoint ck = Checkpoints.open(ref.modelDir); Ops ops = new CpuOps();
        OptModel model = new OptModel(config, new OptWeights(config, ck), ops, null, rank0);
        KvCache full = HfReference.cache(ops, config)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> model.forward(List.of(new OptModel.SeqStep(0, new int[] {2, 100}, false)), full));
      assertTrue(e.getMessage().contains("KV cache of width 64") && e.getMessage().contains("keeps 32"), e.getMessage());
    }
  }
}
