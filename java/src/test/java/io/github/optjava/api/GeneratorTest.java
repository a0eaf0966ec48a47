package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The public API end to end on the pre-LN fixture model, against Hugging Face's recorded results. */
class GeneratorTest {
  private static Generator gen;
  private static JsonNode ref;

  @BeforeAll
  static void open() throws IOException, URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    gen = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU).withKvCacheTokens(4096));
    try (InputStream in = GeneratorTest.class.getResourceAsStream("/fixtures/reference/tiny-opt/reference.json")) {
      ref = new ObjectMapper().readTree(in);
    }
  }

  @AfterAll
  static void close() {
    gen.close();
  }

  private static List<Integer> list(JsonNode array) {
    List<Integer> out = new ArrayList<>();
    array.forEach(n -> out.add(n.asInt()));
    return out;
  }

  /**
   * int8 Linear weights through the public API: the text's log-probabilities move (the weights really are
   * quantized) but stay within 0.3 of the float32 model's (measured: 0.116 at most, on this random model of hidden
   * size 64); int8 over several GPUs is refused before anything loads (one GPU runs it; AUTO picks CUDA where it is
   * usable, as without int8).
   */
  @Test
  void int8WeightsScoreCloseToFloat32() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    String text = ref.get("prompts").get(0).get("text").asText();
    Score exact = gen.score(text);
    try (Generator int8 = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.AUTO)
        .withKvCacheTokens(4096).withQuantization(Quantization.INT8))) {
      assertEquals(io.github.optjava.backend.cuda.CudaProbe.probe().usable() ? Device.CUDA : Device.CPU,
          int8.device(), "AUTO runs int8 where it runs the model without int8");
      Score quantized = int8.score(text);
      assertEquals(exact.tokenIds(), quantized.tokenIds());
      double worst = 0;
      for (int i = 1; i < exact.logprobs().size(); i++) {
        worst = Math.max(worst, Math.abs(exact.logprobs().get(i).logprob() - quantized.logprobs().get(i).logprob()));
      }
      assertTrue(worst > 1e-4 && worst < 0.3, "largest log-prob change " + worst);
      assertEquals(12, int8.generate("Hello", SamplingParams.greedy().toBuilder().maxTokens(12).minTokens(12).build())
          .choices().get(0).tokenIds().size());
      // Two tensor-parallel ranks, each quantizing its own slices (row-parallel rows get per-rank scales).
      try (Generator sliced = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
          .withKvCacheTokens(4096).withQuantization(Quantization.INT8).withTensorParallel(2).withThreads(2))) {
        Score ranks = sliced.score(text);
        double moved = 0;
        for (int i = 1; i < exact.logprobs().size(); i++) {
          double a = ranks.logprobs().get(i).logprob();
          assertEquals(quantized.logprobs().get(i).logprob(), a, 0.3, "token " + i);
          moved = Math.max(moved, Math.abs(a - exact.logprobs().get(i).logprob()));
        }
        assertTrue(moved > 1e-4 && moved < 0.3, "largest log-prob change with 2 ranks " + moved);
      }
    }
    GeneratorOptions int8Options = GeneratorOptions.defaults().withQuantization(Quantization.INT8);
    // Refused before the model is looked for: a Hub id that is nowhere would otherwise fail first.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Generator.open("nobody/no-such-model", int8Options.withDevice(Device.CUDA).withTensorParallel(2)));
    assertTrue(e.getMessage().contains("--quantize int8") && e.getMessage().contains("one GPU only")
        && e.getMessage().contains("tensor parallel 2 × pipeline parallel 1"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Backends.requireSupported(int8Options.withPipelineParallel(2),
        Device.CUDA));
    Backends.requireSupported(int8Options, Device.CUDA); // one GPU
    Backends.requireSupported(int8Options, Device.CPU);
    Backends.requireSupported(int8Options, Device.AUTO);
    Backends.requireSupported(int8Options.withTensorParallel(2), Device.CPU);
    Backends.requireSupported(GeneratorOptions.defaults(), Device.CUDA);
    // The load log's line: opt-1.3b's 24 × (4 × 2048² + 2 × 2048 × 8192) Linear weights and their row scales.
    assertTrue(Generator.int8Summary(io.github.optjava.model.OptShapes.of("1.3b"))
        .startsWith("decoder Linear weights stored as int8 with a scale per row: 1209.7 MB (2415.9 MB as fp16)"));
    assertThrows(IllegalArgumentException.class, () -> GeneratorOptions.defaults().withQuantization(null));
  }

  /**
   * An fp16 KV cache: HF's greedy tokens on the fixture prompts, log-probs within 0.01 of the float32 cache's; BF16
   * is refused on the CPU, and on CUDA a dtype other than the activations'.
   */
  @Test
  void anFp16KvCacheKeepsHfGreedyTokens() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator half = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withKvCacheTokens(4096).withKvCacheDtype(io.github.optjava.checkpoint.DType.F16))) {
      for (JsonNode p : ref.get("prompts")) {
        JsonNode g = p.get("greedy");
        Completion c = half.generate(p.get("text").asText(), SamplingParams.greedy().toBuilder()
            .maxTokens(g.get("max_new_tokens").asInt()).build());
        assertEquals(list(g.get("new_tokens")), c.choices().get(0).tokenIds(), p.get("name").asText());
      }
      String text = ref.get("prompts").get(0).get("text").asText();
      Score exact = gen.score(text);
      Score rounded = half.score(text);
      double worst = 0;
      for (int i = 1; i < exact.logprobs().size(); i++) {
        worst = Math.max(worst, Math.abs(exact.logprobs().get(i).logprob() - rounded.logprobs().get(i).logprob()));
      }
      assertTrue(worst > 0 && worst < 0.01, "largest log-prob change " + worst);
    }
    IllegalArgumentException bf16 = assertThrows(IllegalArgumentException.class, () -> Generator.open(dir.toString(),
        GeneratorOptions.defaults().withDevice(Device.CPU).withKvCacheDtype(io.github.optjava.checkpoint.DType.BF16)));
    assertTrue(bf16.getMessage().contains("F32 or F16, not BF16"), bf16.getMessage());
    IllegalArgumentException cuda = assertThrows(IllegalArgumentException.class,
        () -> Backends.requireCudaKvCacheDtype(io.github.optjava.checkpoint.DType.F32, null));
    assertTrue(cuda.getMessage().contains("activations' dtype (F16)"), cuda.getMessage());
    Backends.requireCudaKvCacheDtype(io.github.optjava.checkpoint.DType.BF16, io.github.optjava.checkpoint.DType.BF16);
  }

  @Test
  void statsCountEachFinishedRequest() {
    // The generator is shared by this class's tests: compare counts before and after.
    GeneratorStats before = gen.stats();
    assertEquals(4096 / before.kvCacheBlockSize(), before.kvCacheBlocks());
    gen.generate("Hello", SamplingParams.greedy().toBuilder().maxTokens(3).minTokens(3).build());
    GeneratorStats after = gen.stats();
    assertEquals(before.requestsFinished() + 1, after.requestsFinished());
    assertTrue(after.steps() >= before.steps() + 2, "the snapshot lags by at most the last of the 3 steps");
  }

  @Test
  void prefixCachingGivesHfTokensAndSkipsTheCachedPrompt() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator cached = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withKvCacheTokens(4096).withKvBlockSize(4).withPrefixCaching(true))) {
      for (int round = 0; round < 2; round++) { // the second round finds every prompt's whole blocks cached
        for (JsonNode p : ref.get("prompts")) {
          JsonNode g = p.get("greedy");
          Completion c = cached.generate(p.get("text").asText(), SamplingParams.greedy().toBuilder()
              .maxTokens(g.get("max_new_tokens").asInt()).build());
          assertEquals(list(g.get("new_tokens")), c.choices().get(0).tokenIds(), p.get("name").asText());
        }
      }
      long expected = 0;
      for (JsonNode p : ref.get("prompts")) {
        int promptTokens = p.get("input_ids").size();
        expected += (promptTokens - 1) / 4 * 4; // whole blocks of 4, the last prompt token always computed
      }
      assertTrue(expected > 0, "the fixture has a prompt of more than one block");
      assertTrue(cached.stats().prefixCachedTokens() >= expected, cached.stats().toString());
      assertEquals(4, cached.stats().kvCacheBlockSize());
    }
  }

  @Test
  void promptLookupGivesHfGreedyTokensInFewerSteps() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator drafting = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withKvCacheTokens(4096).withPromptLookup(4))) {
      int tokens = 0;
      for (JsonNode p : ref.get("prompts")) {
        JsonNode g = p.get("greedy");
        Completion c = drafting.generate(p.get("text").asText(), SamplingParams.greedy().toBuilder()
            .maxTokens(g.get("max_new_tokens").asInt()).build());
        assertEquals(list(g.get("new_tokens")), c.choices().get(0).tokenIds(), p.get("name").asText());
        tokens += c.choices().get(0).tokenIds().size();
      }
      GeneratorStats s = drafting.stats();
      assertTrue(s.acceptedDraftTokens() > 0, s.toString());
      assertTrue(s.steps() < tokens, "fewer steps than tokens: " + s);
    }
  }

  @Test
  void greedyEqualsHfTokensAndText() {
    for (JsonNode p : ref.get("prompts")) {
      JsonNode g = p.get("greedy");
      Completion c = gen.generate(p.get("text").asText(), SamplingParams.greedy().toBuilder()
          .maxTokens(g.get("max_new_tokens").asInt()).build());
      assertEquals(list(p.get("input_ids")), c.promptTokenIds(), p.get("name").asText());
      assertEquals(list(g.get("new_tokens")), c.choices().get(0).tokenIds(), p.get("name").asText());
      assertEquals(g.get("text_raw").asText(), c.text(), p.get("name").asText());
      assertEquals(FinishReason.LENGTH, c.finishReason());
    }
  }

  @Test
  void float32WeightsGiveTheSameGreedyTokens() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator g32 = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withDtype(io.github.optjava.checkpoint.DType.F32).withKvCacheTokens(1024))) {
      JsonNode p = ref.get("prompts").get(0);
      assertEquals(list(p.get("greedy").get("new_tokens")), g32.generate(p.get("text").asText(),
          SamplingParams.greedy().toBuilder().maxTokens(16).build()).choices().get(0).tokenIds());
    }
  }

  @Test
  void beamSearchEqualsHfSequencesAndScores() {
    for (JsonNode p : ref.get("prompts")) {
      JsonNode b = p.get("beam");
      SamplingParams params = SamplingParams.builder().temperature(0).numBeams(b.get("num_beams").asInt())
          .n(b.get("num_return_sequences").asInt()).maxTokens(b.get("max_new_tokens").asInt())
          .lengthPenalty(b.get("length_penalty").asDouble()).earlyStopping(b.get("early_stopping").asBoolean())
          .build();
      Completion c = gen.generate(p.get("text").asText(), params);
      for (int i = 0; i < c.choices().size(); i++) {
        List<Integer> expected = list(b.get("new_tokens").get(i));
        while (!expected.isEmpty() && (expected.get(expected.size() - 1) == 1 || expected.get(expected.size() - 1) == 2)) {
          expected.remove(expected.size() - 1); // HF pads finished rows with 1 and ends them with EOS 2
        }
        assertEquals(expected, c.choices().get(i).tokenIds(), p.get("name") + " beam " + i);
        assertEquals(b.get("sequences_scores").get(i).asDouble(), c.choices().get(i).score(), 1e-4);
      }
    }
    // With log-probs, each beam is rescored: the per-token log-probs sum to its unnormalised score.
    Completion c = gen.generate("This", SamplingParams.builder().temperature(0).numBeams(2).maxTokens(4)
        .logprobs(1).build());
    List<TokenLogprob> lps = c.choices().get(0).logprobs();
    assertEquals(c.choices().get(0).tokenIds().size(), lps.size());
    double sum = lps.stream().mapToDouble(TokenLogprob::logprob).sum();
    assertEquals(c.choices().get(0).score() * lps.size(), sum, 1e-3);
  }

  @Test
  void defaultOptionsSizeTheKvCacheFromMemory() throws URISyntaxException {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator g = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU))) {
      assertEquals(FinishReason.LENGTH, g.generate("This", SamplingParams.greedy()).finishReason());
    }
    assertThrows(IllegalArgumentException.class, () -> GeneratorOptions.defaults().withKvCacheTokens(-1));
  }

  /**
   * Session 27's review: threads = Integer.MAX_VALUE ran out of memory making the pool's thread array (an Error, no
   * message), and degrees whose product overflows an int divided by zero before their own checks ran.
   */
  @Test
  void sizesThatOverflowAreRefusedNamingTheOption() throws URISyntaxException {
    IllegalArgumentException threads = assertThrows(IllegalArgumentException.class,
        () -> GeneratorOptions.defaults().withThreads(Integer.MAX_VALUE));
    assertTrue(threads.getMessage().startsWith("threads must be 0 (all processors) to 4096"), threads.getMessage());
    GeneratorOptions.defaults().withThreads(4096);
    String dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI()).toString();
    IllegalArgumentException degrees = assertThrows(IllegalArgumentException.class, () -> Generator.open(dir,
        GeneratorOptions.defaults().withDevice(Device.CPU).withTensorParallel(65536).withPipelineParallel(65536)));
    assertTrue(degrees.getMessage().contains("65536"), degrees.getMessage());
    // A huge degree: its own check, not the heap check that came first ("-Xmx15005g").
    IllegalArgumentException million = assertThrows(IllegalArgumentException.class, () -> Generator.open(dir,
        GeneratorOptions.defaults().withDevice(Device.CPU).withTensorParallel(1_000_000)));
    assertTrue(million.getMessage().startsWith("tensor-parallel degree 1000000 does not divide"), million.getMessage());
    IllegalArgumentException stages = assertThrows(IllegalArgumentException.class, () -> Generator.open(dir,
        GeneratorOptions.defaults().withDevice(Device.CPU).withPipelineParallel(1_000_000)));
    assertTrue(stages.getMessage().startsWith("a pipeline of 1000000 stages"), stages.getMessage());
  }

  @Test
  void batchedPromptsEqualOneAtATime() {
    List<String> prompts = new ArrayList<>();
    ref.get("prompts").forEach(p -> prompts.add(p.get("text").asText()));
    SamplingParams params = SamplingParams.greedy().toBuilder().maxTokens(10).build();
    List<Completion> batched = gen.generate(prompts, params);
    for (int i = 0; i < prompts.size(); i++) {
      assertEquals(gen.generate(prompts.get(i), params).choices().get(0).tokenIds(),
          batched.get(i).choices().get(0).tokenIds(), prompts.get(i));
    }
  }

  @Test
  void manyThreadsShareOneGenerator() throws Exception {
    List<String> prompts = new ArrayList<>();
    ref.get("prompts").forEach(p -> prompts.add(p.get("text").asText()));
    SamplingParams params = SamplingParams.builder().temperature(0.8).topK(50).seed(7L).maxTokens(8).build();
    ExecutorService pool = Executors.newFixedThreadPool(6);
    try {
      List<Future<Completion>> fs = new ArrayList<>();
      for (String p : prompts) {
        fs.add(pool.submit(() -> gen.generate(p, params)));
      }
      for (int i = 0; i < prompts.size(); i++) {
        // seeded sampling: the same tokens whatever else shares the batch
        assertEquals(gen.generate(prompts.get(i), params).choices().get(0).tokenIds(),
            fs.get(i).get().choices().get(0).tokenIds());
      }
    } finally {
      pool.shutdown();
    }
  }

  @Test
  void nSeededCompletionsDifferFromEachOther() {
    Completion c = gen.generate("This", SamplingParams.builder().temperature(1.0).seed(3L).n(3).maxTokens(8).build());
    assertEquals(3, c.choices().size());
    assertNotEquals(c.choices().get(0).tokenIds(), c.choices().get(1).tokenIds());
    assertEquals(24, c.completionTokens());
  }

  @Test
  void scoreEqualsHfPromptLogProbs() {
    for (JsonNode p : ref.get("prompts")) {
      Score s = gen.score(p.get("text").asText());
      JsonNode expected = p.get("prompt_token_logprobs");
      assertEquals(expected.size(), s.logprobs().size());
      assertNull(s.logprobs().get(0).logprob());
      for (int i = 1; i < expected.size(); i++) {
        assertEquals(expected.get(i).asDouble(), s.logprobs().get(i).logprob(), 1e-3, p.get("name") + " " + i);
      }
    }
  }

  @Test
  void stopStringEndsTheTextBeforeIt() {
    // HF's greedy text for the "english" prompt: " cab definescgi projection projection ..."
    Completion c = gen.generate("Our team won the championship last year",
        SamplingParams.greedy().toBuilder().maxTokens(16).stop(List.of("projection projection")).build());
    assertEquals(FinishReason.STOP, c.finishReason());
    assertEquals(" cab definescgi ", c.text());
  }

  @Test
  void streamingChunksAddUpToTheTextAndCancelStops() {
    SamplingParams params = SamplingParams.greedy().toBuilder().maxTokens(16).build();
    StringBuilder sb = new StringBuilder();
    try (TokenStream stream = gen.stream("This", params)) {
      for (TokenStream.Chunk ch : stream) {
        sb.append(ch.text());
      }
      assertEquals(stream.completion().join().text(), sb.toString());
    }
    StringBuilder cb = new StringBuilder();
    Completion viaCallback = gen.generate("This", params, ch -> cb.append(ch.text()));
    assertEquals(viaCallback.text(), cb.toString());

    TokenStream s = gen.stream("This", params.toBuilder().maxTokens(100).build());
    s.iterator().next();
    s.cancel();
    Completion cancelled = s.completion().join();
    assertEquals(FinishReason.CANCELLED, cancelled.finishReason());
    assertTrue(cancelled.completionTokens() < 100);
  }

  /** Beam search streams nothing while it runs (the beams are known at the end): each choice comes as one chunk. */
  @Test
  void beamSearchStreamsEachChoiceWhenItEnds() {
    SamplingParams params = SamplingParams.builder().temperature(0).numBeams(3).n(2).maxTokens(6).build();
    List<TokenStream.Chunk> chunks = new ArrayList<>();
    try (TokenStream stream = gen.stream("This", params)) {
      stream.forEach(chunks::add);
      Completion c = stream.completion().join();
      assertEquals(List.of(new TokenStream.Chunk(0, -1, c.choices().get(0).text()),
          new TokenStream.Chunk(1, -1, c.choices().get(1).text())), chunks);
    }
    List<TokenStream.Chunk> called = new ArrayList<>();
    Completion c = gen.generate("This", params, called::add);
    assertEquals(List.of(new TokenStream.Chunk(0, -1, c.choices().get(0).text()),
        new TokenStream.Chunk(1, -1, c.choices().get(1).text())), called);
  }

  /**
   * A thread waiting in generate() is interrupted: its request is cancelled (it frees its slot at the next step),
   * the call ends with CancellationException and the interrupt stays set; queued requests of other threads run on.
   */
  @Test
  void interruptingAWaitingCallCancelsItsRequest() throws Exception {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    try (Generator one = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withMaxBatchSize(1).withKvCacheTokens(512))) {
      SamplingParams longRun = SamplingParams.greedy().toBuilder().maxTokens(120).build();
      CompletableFuture<Completion> first = one.generateAsync("This", longRun); // holds the only batch slot
      java.util.concurrent.atomic.AtomicReference<Throwable> thrown = new java.util.concurrent.atomic.AtomicReference<>();
      java.util.concurrent.atomic.AtomicBoolean stillInterrupted = new java.util.concurrent.atomic.AtomicBoolean();
      Thread waiter = new Thread(() -> {
        try {
          one.generate("That", longRun);
        } catch (RuntimeException e) {
          thrown.set(e);
          stillInterrupted.set(Thread.currentThread().isInterrupted());
        }
      });
      waiter.start();
      while (waiter.getState() != Thread.State.WAITING) { // blocked in generate(), behind the first request
        Thread.onSpinWait();
      }
      waiter.interrupt();
      waiter.join(10_000);
      assertFalse(waiter.isAlive(), "the interrupted call must return at once, not after its generation");
      assertTrue(thrown.get() instanceof java.util.concurrent.CancellationException, String.valueOf(thrown.get()));
      assertTrue(stillInterrupted.get());
      assertEquals(FinishReason.LENGTH, first.join().finishReason(), "the other request runs on");
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (one.stats().running() + one.stats().waiting() > 0 && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
      assertEquals(0, one.stats().running() + one.stats().waiting(), "the cancelled request left the queue");
    }
  }

  /**
   * Closing a generator from a thread whose interrupt flag is set (as an interrupted generate() leaves it) still
   * waits for the step loop and frees everything: its CPU pool threads end.
   */
  @Test
  void closeFromAnInterruptedThreadStillFreesTheModel() throws Exception {
    Path dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    java.util.Set<Thread> existing = Thread.getAllStackTraces().keySet();
    Generator g = Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU)
        .withKvCacheTokens(512).withThreads(2));
    g.generate("This", SamplingParams.greedy().toBuilder().maxTokens(4).build());
    List<Thread> before = Thread.getAllStackTraces().keySet().stream().filter(t -> !existing.contains(t))
        .filter(t -> t.getName().startsWith("opt-cpu") || t.getName().startsWith("opt-engine")).toList();
    assertTrue(before.size() >= 2, "its engine loop and CPU worker: " + before);
    Thread.currentThread().interrupt();
    try {
      g.close();
      assertTrue(Thread.interrupted(), "the flag is kept (and cleared here)");
    } finally {
      Thread.interrupted();
    }
    long deadline = System.nanoTime() + 5_000_000_000L;
    java.util.List<String> alive;
    do {
      alive = before.stream().filter(Thread::isAlive).map(Thread::getName).toList();
      Thread.sleep(10);
    } while (!alive.isEmpty() && System.nanoTime() < deadline);
    assertEquals(List.of(), alive, "the generator's threads end");
  }

  /** One prompt of a list that cannot run fails the call before the others take any batch slot. */
  @Test
  void aBadPromptInAListStopsTheOthers() {
    long steps = gen.stats().steps();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gen.generate(
        List.of("a", "b", "word ".repeat(300)), SamplingParams.greedy().toBuilder().maxTokens(50).build()));
    assertTrue(e.getMessage().contains("max_tokens"), e.getMessage());
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (gen.stats().running() + gen.stats().waiting() > 0 && System.nanoTime() < deadline) {
      Thread.onSpinWait();
    }
    assertEquals(0, gen.stats().running() + gen.stats().waiting());
    // Left running, "a" and "b" would take 50 steps; cancelled, they stop at the next one (a step may have begun).
    assertTrue(gen.stats().steps() - steps < 10, (gen.stats().steps() - steps) + " steps");
  }

  @Test
  void nullArgumentsAreNamed() {
    assertTrue(assertThrows(IllegalArgumentException.class, () -> gen.generate("hi", (SamplingParams) null))
        .getMessage().startsWith("params must not be null"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> gen.stream("hi", null))
        .getMessage().startsWith("params must not be null"));
    assertTrue(assertThrows(IllegalArgumentException.class,
        () -> gen.generate("hi", SamplingParams.greedy(), null)).getMessage().startsWith("onChunk must not be null"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> Generator.open("x", null))
        .getMessage().startsWith("options must not be null"));
    assertTrue(assertThrows(IllegalArgumentException.class, () -> Generator.open(null, GeneratorOptions.defaults()))
        .getMessage().startsWith("the model must not be null"));
  }

  @Test
  void aTextTooLongToScoreSaysSoInScoringTerms() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> gen.score("word ".repeat(130)));
    assertTrue(e.getMessage().startsWith("the text has 132 tokens (with BOS), more than the 128 this model reads"),
        e.getMessage());
  }

  @Test
  void promptPlusMaxTokensBeyondThePositionsIsAClearError() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> gen.generate("This", SamplingParams.greedy().toBuilder().maxTokens(200).build()));
    assertTrue(e.getMessage().contains("by 74") && e.getMessage().contains("max_tokens"), e.getMessage());
  }

  @Test
  void logprobsListTopAlternatives() {
    Completion c = gen.generate("This", SamplingParams.greedy().toBuilder().maxTokens(3).logprobs(2).build());
    List<TokenLogprob> lps = c.choices().get(0).logprobs();
    assertEquals(3, lps.size());
    for (TokenLogprob t : lps) {
      assertEquals(2, t.top().size());
      assertEquals(t.logprob(), t.top().values().iterator().next(), 1e-9); // greedy: the chosen is the best
    }
  }
}
