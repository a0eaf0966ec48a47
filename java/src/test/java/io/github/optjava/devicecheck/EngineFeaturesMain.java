package io.github.optjava.devicecheck;

import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.Engine;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import io.github.optjava.tokenizer.OptTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

/**
 * The engine features that change speed but not tokens, timed on one model in one process, each against itself
 * off (scripts/device-check.sh step 6c; runs on the CPU too):
 * <ul>
 *   <li>prefix caching: requests sharing a long prefix (random token ids), first one after another, then all at
 *       once, with and without it: time, mean time to first token, tokens equal;</li>
 *   <li>prompt lookup decoding: one greedy request, with and without draft tokens: decode ms/token, steps,
 *       drafts accepted, tokens equal (a random-weight model repeats itself, the case drafts are for);</li>
 *   <li>decode paths: one request each of greedy, greedy with a repetition penalty, sampled, sampled with a
 *       repetition penalty, greedy with 5 log-prob alternatives, sampled with min-p, sampled with 5 alternatives:
 *       decode ms/token through the engine (session 19 moved the penalties and the greedy alternatives to where the
 *       logits are, session 20 min-p and the sampled alternatives);</li>
 *   <li>sampler weights cache (CUDA only): the sampled request of the decode paths with {@code
 *       CudaOps.useSamplerWeights} on: ms/token, and whether its tokens are equal (FAIL when not);</li>
 *   <li>greedy and sampled in one step (CUDA only): 4 greedy and 4 sampled requests at once, picked on the device
 *       ({@code CudaOps.useDeviceMixedPicks}) and with the step's rows copied to the host: time, and whether the
 *       token lists are equal (FAIL when a greedy one differs);</li>
 *   <li>beam search (CUDA only): 4 beams, without processors and with two, each beam's candidates found on the host
 *       and on the device ({@code CudaOps.useDeviceBeams}): ms/token, and whether the best beams are equal;</li>
 *   <li>echo steps among sampled: 7 sampled requests and 8 prompts to score at once, each echo prefill's
 *       step picking for the others where the logits are and bringing every row: time (session 23);</li>
 *   <li>prompt lookup, sampled: one sampled request with and without draft tokens (drawn where the logits are on a
 *       GPU, session 24): decode ms/token, steps, drafts accepted, tokens;</li>
 *   <li>n=4 forks: 8 sampled requests of n = 4, the other completions' first picks on the host and where the logits
 *       are (session 24): time, completions equal;</li>
 *   <li>echo scores (CUDA only): one long prompt scored ({@code score}: echo, no new token) with its log-probs
 *       computed on the host and on the device ({@code CudaOps.useDeviceScores}): time, and the largest difference
 *       between the two (FAIL above 1e-3 of the log-prob's size, or where only one is NaN); then the same with 5
 *       alternatives per row (session 24).</li>
 * </ul>
 * Writes one tab-separated row per result (name, ok|FAIL|info, detail) to {@code --rows}: "FAIL" when a feature
 * changed a greedy token, which it must not do beyond float rounding.
 *
 * <pre>
 * java -cp ... io.github.optjava.devicecheck.EngineFeaturesMain --model DIR --rows FILE [--device cuda|cpu]
 *     [--dtype F16] [--prefix 512] [--requests 8] [--new-tokens 64] [--lookup 4]
 * </pre>
 */
public final class EngineFeaturesMain {
  private record Options(Path model, Path rows, String device, DType dtype, int prefix, int requests, int newTokens,
      int lookup) {}

  /** One configuration's run: the tokens of every request and what it took. */
  private record Result(List<List<Integer>> tokens, double sequentialMs, double sequentialTtft, double burstMs,
      double burstTtft, GeneratorStats stats, double score) {
    Result(List<List<Integer>> tokens, double sequentialMs, double sequentialTtft, double burstMs, double burstTtft,
        GeneratorStats stats) {
      this(tokens, sequentialMs, sequentialTtft, burstMs, burstTtft, stats, Double.NaN);
    }
  }

  private EngineFeaturesMain() {}

  public static void main(String[] args) throws IOException {
    System.exit(run(args, System.out));
  }

  static int run(String[] args, PrintStream out) throws IOException {
    Options o = parse(args);
    Ops ops = o.device.equals("cuda") ? new io.github.optjava.backend.cuda.CudaOps(0, o.dtype) : new FastCpuOps();
    OptConfig config = OptConfig.load(o.model);
    OptTokenizer tokenizer = OptTokenizer.load(o.model);
    List<String> rows = new ArrayList<>();
    try (Checkpoint ck = Checkpoints.open(o.model);
        OptModel model = new OptModel(config, new OptWeights(config, ck), ops)) {
      Random rnd = new Random(1);
      int[] shared = randomIds(rnd, o.prefix, config.vocabSize());
      shared[0] = 2; // BOS
      List<int[]> prompts = new ArrayList<>();
      for (int r = 0; r < 2 * o.requests; r++) {
        int[] p = Arrays.copyOf(shared, o.prefix + 32);
        System.arraycopy(randomIds(rnd, 32, config.vocabSize()), 0, p, o.prefix, 32);
        prompts.add(p);
      }
      SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(16).minTokens(16).build();
      int blocks = 2 * o.requests * ((o.prefix + 32 + 16) / 16 + 1);
      prefixRun(model, tokenizer, blocks, prompts.subList(0, 2), greedy, false, 0, 1); // warm-up, not timed
      Result off = prefixRun(model, tokenizer, blocks, prompts, greedy, false, 0, o.requests);
      Result on = prefixRun(model, tokenizer, blocks, prompts, greedy, true, 0, o.requests);
      int same = countSame(off.tokens, on.tokens);
      String detail = String.format(Locale.ROOT, "%d requests one by one: %.0f -> %.0f ms (TTFT %.1f -> %.1f ms); "
          + "%d at once: %.0f -> %.0f ms (TTFT %.1f -> %.1f); %d of %d token lists equal", o.requests, off.sequentialMs,
          on.sequentialMs, off.sequentialTtft, on.sequentialTtft, o.requests, off.burstMs, on.burstMs, off.burstTtft,
          on.burstTtft, same, off.tokens.size());
      out.println("EngineFeaturesMain: prefix caching (" + o.prefix + "-token shared prefix): " + detail);
      rows.add(row("engine: prefix caching", same == off.tokens.size() ? "ok" : "FAIL", detail));

      int[] prompt = randomIds(rnd, Math.min(128, config.maxPositionEmbeddings() / 4), config.vocabSize());
      prompt[0] = 2;
      SamplingParams longGreedy = SamplingParams.greedy().toBuilder().maxTokens(o.newTokens).minTokens(o.newTokens)
          .build();
      lookupRun(model, tokenizer, prompt, SamplingParams.greedy().toBuilder().maxTokens(8).build(), o.lookup);
      // Each timed run follows one untimed run of the same request on the same cache, as the draft-graph run below
      // does: graphs are keyed by the cache, so on a fresh one the timed run would also pay for captures (session 17:
      // draft graphs measured 14 % faster than eager drafts that had no such warm-up; session 11: 1.5 %).
      Result plain = lookupRun(model, tokenizer, prompt, longGreedy, 0, 1);
      // Eager drafts first, then (below) draft graphs, the default since session 18, whatever this JVM's setting
      io.github.optjava.backend.cuda.CudaOps cudaOps =
          ops instanceof io.github.optjava.backend.cuda.CudaOps c ? c : null;
      boolean draftGraphsSetting = cudaOps != null && cudaOps.usesDraftGraphs();
      if (cudaOps != null) {
        cudaOps.useDraftGraphs(false);
      }
      Result drafted = lookupRun(model, tokenizer, prompt, longGreedy, o.lookup, 1);
      boolean equal = plain.tokens.equals(drafted.tokens);
      detail = String.format(Locale.ROOT, "batch 1, %d tokens: %.3f -> %.3f ms/token (%.2fx), steps %d -> %d (x2 "
          + "with the warm-up), drafts %d accepted %d, tokens %s", o.newTokens, plain.sequentialMs, drafted.sequentialMs,
          plain.sequentialMs / drafted.sequentialMs, plain.stats.steps(), drafted.stats.steps(),
          drafted.stats.draftTokens(), drafted.stats.acceptedDraftTokens(), equal ? "equal" : "DIFFER");
      out.println("EngineFeaturesMain: prompt lookup " + o.lookup + ": " + detail);
      rows.add(row("engine: prompt lookup " + o.lookup, equal ? "ok" : "FAIL", detail));
      if (cudaOps != null) {
        // the same with the steps of drafts replayed as CUDA graphs (-Dopt.cuda.draftGraphs, session 8)
        cudaOps.useDraftGraphs(true);
        try {
          // one untimed run of the same request on the same cache first: its steps' graphs are then captured
          long launchesBefore = cudaOps.graphLaunches();
          Result graphed = lookupRun(model, tokenizer, prompt, longGreedy, o.lookup, 1);
          boolean graphedEqual = plain.tokens.equals(graphed.tokens);
          detail = String.format(Locale.ROOT, "batch 1, %d tokens: %.3f -> %.3f ms/token (%.2fx; eager drafts "
              + "%.3f), steps %d (x2 with the warm-up), graph launches %d, graphs %d, tokens %s", o.newTokens,
              plain.sequentialMs, graphed.sequentialMs, plain.sequentialMs / graphed.sequentialMs,
              drafted.sequentialMs, graphed.stats.steps(), cudaOps.graphLaunches() - launchesBefore,
              cudaOps.graphCount(),
              graphedEqual ? "equal" : "DIFFER");
          out.println("EngineFeaturesMain: prompt lookup " + o.lookup + " with draft graphs: " + detail);
          rows.add(row("engine: prompt lookup, draft graphs", graphedEqual ? "ok" : "FAIL", detail));
        } finally {
          cudaOps.useDraftGraphs(draftGraphsSetting);
        }
      }

      // Decode through the engine for the kinds of request a user sends (session 19): greedy and sampling pick their
      // tokens where the logits are, a repetition penalty as logit edits there too, and a greedy request's log-prob
      // alternatives as the top k there. Compare the greedy row with opt bench's model loop, the others with greedy.
      SamplingParams greedyN = SamplingParams.greedy().toBuilder().maxTokens(o.newTokens).build();
      SamplingParams sampledN = SamplingParams.builder().temperature(0.8).topP(0.9).seed(1L).maxTokens(o.newTokens)
          .build();
      SamplingParams[] kinds = {greedyN, greedyN.toBuilder().repetitionPenalty(1.2).build(), sampledN,
          sampledN.toBuilder().repetitionPenalty(1.2).build(), greedyN.toBuilder().logprobs(5).build(),
          SamplingParams.builder().temperature(0.8).minP(0.05).seed(1L).maxTokens(o.newTokens).build(),
          sampledN.toBuilder().logprobs(5).build()};
      double[] perToken = new double[kinds.length];
      for (int k = 0; k < kinds.length; k++) {
        perToken[k] = lookupRun(model, tokenizer, prompt, kinds[k], 0, 1).sequentialMs;
      }
      detail = String.format(Locale.ROOT, "batch 1, up to %d tokens, ms/token: greedy %.3f, + repetition penalty "
          + "1.2 %.3f (edits); sampled t=0.8 top-p 0.9 %.3f, + repetition penalty 1.2 %.3f (edits); greedy, logprobs "
          + "5 %.3f (top-k); sampled t=0.8 min-p 0.05 %.3f; sampled t=0.8 top-p 0.9, logprobs 5 %.3f", o.newTokens,
          perToken[0], perToken[1], perToken[2], perToken[3], perToken[4], perToken[5], perToken[6]);
      out.println("EngineFeaturesMain: decode paths: " + detail);
      rows.add(row("engine: decode paths", "info", detail));
      // (on the CPU both runs take the host path: the model does not sample on the device; it runs there as a check)
      rows.add(echoStepRow(model, tokenizer, o.newTokens, out));
      rows.add(sampledLookupRow(model, tokenizer, prompt, o, cudaOps == null, out));
      rows.add(forkRow(model, tokenizer, o.newTokens, cudaOps == null, out));
      if (cudaOps != null) {
        rows.add(samplerWeightsRow(model, tokenizer, cudaOps, prompt, sampledN, kinds[5], perToken[2], out));
        rows.add(typicalRow(model, tokenizer, cudaOps, prompt, sampledN.toBuilder().topP(1.0).typicalP(0.9).build(),
            out));
      }

      if (cudaOps != null) {
        // Beam search (4 beams, session 20): each beam's candidates where the logits are against its rows copied to
        // the host, without processors and with two (as edits on the log-probabilities there). The two log-sums
        // differ in float rounding only, so the beams should agree; a differing beam with an equal score (within
        // float32) is a near-tie that rounding broke apart: info, not FAIL.
        SamplingParams plainBeams = SamplingParams.builder().numBeams(4).maxTokens(o.newTokens).build();
        SamplingParams[] beamKinds = {plainBeams,
            plainBeams.toBuilder().noRepeatNgramSize(3).repetitionPenalty(1.2).build()};
        String[] beamNames = {"engine: beam search", "engine: beam search, processors"};
        for (int b = 0; b < beamKinds.length; b++) {
          boolean beamSetting = cudaOps.usesDeviceBeams();
          Result hostBeams;
          Result deviceBeams;
          try {
            cudaOps.useDeviceBeams(false);
            hostBeams = lookupRun(model, tokenizer, prompt, beamKinds[b], 0, 1);
            cudaOps.useDeviceBeams(true);
            deviceBeams = lookupRun(model, tokenizer, prompt, beamKinds[b], 0, 1);
          } finally {
            cudaOps.useDeviceBeams(beamSetting);
          }
          boolean beamsEqual = hostBeams.tokens.equals(deviceBeams.tokens);
          boolean scoresEqual =
              Math.abs(hostBeams.score - deviceBeams.score) <= 1e-4 * (1 + Math.abs(hostBeams.score));
          detail = String.format(Locale.ROOT, "4 beams%s, up to %d tokens, ms/token of the best beam (prefill "
              + "included): candidates on the host %.3f, on the device %.3f (%.2fx); best beam %s, score %.6f vs "
              + "%.6f", b == 0 ? "" : ", no_repeat_ngram 3, repetition penalty 1.2", o.newTokens,
              hostBeams.sequentialMs, deviceBeams.sequentialMs, hostBeams.sequentialMs / deviceBeams.sequentialMs,
              beamsEqual ? "equal" : "DIFFERS", hostBeams.score, deviceBeams.score);
          out.println("EngineFeaturesMain: " + beamNames[b].substring("engine: ".length()) + ": " + detail);
          rows.add(row(beamNames[b], beamsEqual ? "ok" : scoresEqual ? "info" : "FAIL", detail));
        }

        rows.add(mixedStepRow(model, tokenizer, cudaOps, o.newTokens, out));
      }

      if (ops instanceof io.github.optjava.backend.cuda.CudaOps cuda) {
        int[] text = randomIds(rnd, config.maxPositionEmbeddings() - 8, config.vocabSize());
        text[0] = 2;
        rows.add(echoScoresRow(model, tokenizer, cuda, text, 0, out));
        // with 5 alternatives per prompt row (session 24: listed on the device, where the rows used to come back)
        rows.add(echoScoresRow(model, tokenizer, cuda, text, 5, out));
        Files.write(o.rows, rows); // kept if the step's time limit ends the run below

        // Continuous batching with requests of different lengths, decode steps padded to batch buckets or not
        // (-Dopt.cuda.batchBuckets, session 13): the batch size changes as requests finish and waiting ones join;
        // each run on a cache of its own, so each captures its own graphs (the cost buckets save).
        List<int[]> mixed = new ArrayList<>();
        List<SamplingParams> mixedParams = new ArrayList<>();
        for (int r = 0; r < 3 * o.requests; r++) {
          int[] p = randomIds(rnd, 16 + rnd.nextInt(64), config.vocabSize());
          p[0] = 2;
          mixed.add(p);
          int n = 8 + rnd.nextInt(57);
          mixedParams.add(SamplingParams.greedy().toBuilder().maxTokens(n).minTokens(n).build());
        }
        boolean bucketsBefore = cuda.usesBatchBuckets();
        Result unpadded;
        Result padded;
        long capturesUnpadded;
        long capturesPadded;
        try {
          cuda.useBatchBuckets(false);
          batchRun(model, tokenizer, mixed.subList(0, 4), mixedParams.subList(0, 4), 4); // warm-up (JIT)
          long c0 = cuda.graphCaptures();
          unpadded = batchRun(model, tokenizer, mixed, mixedParams, o.requests);
          capturesUnpadded = cuda.graphCaptures() - c0;
          cuda.useBatchBuckets(true);
          c0 = cuda.graphCaptures();
          padded = batchRun(model, tokenizer, mixed, mixedParams, o.requests);
          capturesPadded = cuda.graphCaptures() - c0;
        } finally {
          cuda.useBatchBuckets(bucketsBefore);
        }
        int sameLists = countSame(unpadded.tokens, padded.tokens);
        detail = String.format(Locale.ROOT, "%d requests (8-64 new tokens), at most %d at once: %.0f -> %.0f ms "
            + "(%.2fx), graphs captured %d -> %d, %d of %d token lists equal", mixed.size(), o.requests,
            unpadded.burstMs, padded.burstMs, unpadded.burstMs / padded.burstMs, capturesUnpadded, capturesPadded,
            sameLists, mixed.size());
        out.println("EngineFeaturesMain: batch buckets: " + detail);
        // the GEMMs see more rows when padded, so cuBLASLt may sum in another order and flip a near tie (the
        // logits are GpuGraphTest.paddedDecodeBatchesReplayEqualEagerSteps's): "info" then, not a failure
        rows.add(row("engine: batch buckets", sameLists == mixed.size() ? "ok" : "info", detail));
      }
    } finally {
      ops.close();
    }
    Files.write(o.rows, rows);
    return 0;
  }

  /**
   * The sampler's scratch row (sessions 21-22, {@code CudaOps.useSamplerWeights}): the sampled (top-p) and min-p
   * requests of the decode paths again, each off then on; tokens must not change (FAIL), and the ms/token says what
   * the passes' divisions and {@code expf}s cost (top-p against {@code without}, its run just before, cache off).
   */
  private static String samplerWeightsRow(OptModel model, OptTokenizer tokenizer,
      io.github.optjava.backend.cuda.CudaOps cudaOps, int[] prompt, SamplingParams topP, SamplingParams minP,
      double without, PrintStream out) {
    boolean setting = cudaOps.usesSamplerWeights();
    Result[] off = new Result[2];
    Result[] on = new Result[2];
    SamplingParams[] kinds = {topP, minP};
    try {
      for (int k = 0; k < 2; k++) {
        cudaOps.useSamplerWeights(false);
        off[k] = lookupRun(model, tokenizer, prompt, kinds[k], 0, 1);
        cudaOps.useSamplerWeights(true);
        on[k] = lookupRun(model, tokenizer, prompt, kinds[k], 0, 1);
      }
    } finally {
      cudaOps.useSamplerWeights(setting);
    }
    boolean equal = off[0].tokens.equals(on[0].tokens) && off[1].tokens.equals(on[1].tokens);
    String detail = String.format(Locale.ROOT, "batch 1, sampled t=0.8 top-p 0.9: %.3f ms/token (before: %.3f) -> "
        + "%.3f with the scratch row (%.2fx); t=0.8 min-p 0.05: %.3f -> %.3f (%.2fx); tokens %s", off[0].sequentialMs,
        without, on[0].sequentialMs, off[0].sequentialMs / on[0].sequentialMs, off[1].sequentialMs,
        on[1].sequentialMs, off[1].sequentialMs / on[1].sequentialMs, equal ? "equal" : "DIFFER");
    out.println("EngineFeaturesMain: sampler weights: " + detail);
    return row("engine: sampler weights cache", equal ? "ok" : "FAIL", detail);
  }

  /**
   * Typical sampling where the logits are (session 23, {@code CudaOps.useDeviceTypical}): a typical request (t 0.8,
   * typical-p 0.9) with its row brought to the host each step, where the HF-exact processors run, then drawn by the
   * sampler. The two rules agree but for rounding at the cut, and a random-weight model's flat rows put many tokens
   * near it, so differing tokens are information here (check_ops {@code typical} and the tag {@code gpu-new-typical}
   * hold the kernel to its twin); the ms/token say what the device path saves.
   */
  private static String typicalRow(OptModel model, OptTokenizer tokenizer,
      io.github.optjava.backend.cuda.CudaOps cudaOps, int[] prompt, SamplingParams typical, PrintStream out) {
    boolean setting = cudaOps.samplesTypicalOnDevice();
    Result host;
    Result device;
    try {
      cudaOps.useDeviceTypical(false);
      host = lookupRun(model, tokenizer, prompt, typical, 0, 1);
      cudaOps.useDeviceTypical(true);
      device = lookupRun(model, tokenizer, prompt, typical, 0, 1);
    } finally {
      cudaOps.useDeviceTypical(setting);
    }
    String detail = String.format(Locale.ROOT, "batch 1, sampled t=0.8 typical-p 0.9: %.3f ms/token with the row on "
        + "the host -> %.3f drawn on the device (%.2fx); tokens %s", host.sequentialMs, device.sequentialMs,
        host.sequentialMs / device.sequentialMs, host.tokens.equals(device.tokens) ? "equal" : "differ (rounding)");
    out.println("EngineFeaturesMain: typical: " + detail);
    return row("engine: typical sampling on device", "info", detail);
  }

  /**
   * Greedy and sampled requests in one step (session 21): the greedy rows are the sampler's temperature-0 rows and
   * both kinds of pick come back in one copy, against the same step with its rows copied to the host. Greedy tokens
   * must not change (the same argmax of the same logits); a sampled token may, where a draw sits on a cumulative
   * boundary that the host twin's rounding places elsewhere (info).
   */
  private static String mixedStepRow(OptModel model, OptTokenizer tokenizer,
      io.github.optjava.backend.cuda.CudaOps cudaOps, int newTokens, PrintStream out) {
    Random rnd = new Random(21); // its own: the later rows' prompts stay those of earlier sessions
    List<int[]> prompts = new ArrayList<>();
    List<SamplingParams> mixedKinds = new ArrayList<>();
    for (int r = 0; r < 8; r++) {
      int[] p = randomIds(rnd, 32, model.config().vocabSize());
      p[0] = 2;
      prompts.add(p);
      SamplingParams.Builder kind = r % 2 == 0 ? SamplingParams.greedy().toBuilder()
          : SamplingParams.builder().temperature(0.8).topP(0.9).seed(r);
      mixedKinds.add(kind.maxTokens(newTokens).minTokens(newTokens).build());
    }
    boolean mixedSetting = cudaOps.usesDeviceMixedPicks();
    Result hostMixed;
    Result deviceMixed;
    try {
      cudaOps.useDeviceMixedPicks(false);
      batchRun(model, tokenizer, prompts, mixedKinds, 8); // warm-up
      hostMixed = batchRun(model, tokenizer, prompts, mixedKinds, 8);
      cudaOps.useDeviceMixedPicks(true);
      batchRun(model, tokenizer, prompts, mixedKinds, 8);
      deviceMixed = batchRun(model, tokenizer, prompts, mixedKinds, 8);
    } finally {
      cudaOps.useDeviceMixedPicks(mixedSetting);
    }
    int greedySame = 0;
    int sampledSame = 0;
    for (int r = 0; r < prompts.size(); r++) {
      boolean same = hostMixed.tokens.get(r).equals(deviceMixed.tokens.get(r));
      greedySame += r % 2 == 0 && same ? 1 : 0;
      sampledSame += r % 2 == 1 && same ? 1 : 0;
    }
    String detail = String.format(Locale.ROOT, "4 greedy + 4 sampled requests at once, %d tokens each: rows to the "
        + "host %.0f ms, picked on the device %.0f ms (%.2fx); token lists equal: greedy %d of 4, sampled %d of 4",
        newTokens, hostMixed.burstMs, deviceMixed.burstMs, hostMixed.burstMs / deviceMixed.burstMs, greedySame,
        sampledSame);
    out.println("EngineFeaturesMain: greedy and sampled in one step: " + detail);
    return row("engine: greedy and sampled in one step", greedySame < 4 ? "FAIL" : sampledSame < 4 ? "info"
        : "ok", detail);
  }

  /**
   * Echo prefills among sampled requests (session 23): 7 sampled requests and 8 prompts of 256 tokens to score (echo,
   * no new token), all at once in batches of 8, so that each of the first steps holds an echo prefill. Since session
   * 23 such a step scores the echo and picks for the others where the logits are; before (and with partial picks
   * off) it brought every sequence's rows to the host. Time of both; the sampled token lists may differ where a draw
   * sits on a rounding boundary (the host twin's rules), so their count is information.
   */
  private static String echoStepRow(OptModel model, OptTokenizer tokenizer, int newTokens, PrintStream out) {
    Random rnd = new Random(23);
    List<int[]> prompts = new ArrayList<>();
    List<SamplingParams> kinds = new ArrayList<>();
    int echoLength = Math.min(256, model.config().maxPositionEmbeddings() / 2); // (the CPU check's tiny model: 64)
    for (int r = 0; r < 15; r++) {
      boolean echo = r >= 7;
      int[] p = randomIds(rnd, echo ? echoLength : 32, model.config().vocabSize());
      p[0] = 2;
      prompts.add(p);
      kinds.add(echo ? SamplingParams.greedy().toBuilder().echo(true).maxTokens(0).build()
          : SamplingParams.builder().temperature(0.8).topP(0.9).seed(r).maxTokens(newTokens).minTokens(newTokens)
              .build());
    }
    batchRun(model, tokenizer, prompts, kinds, 8, false); // warm-up
    Result every = batchRun(model, tokenizer, prompts, kinds, 8, false);
    batchRun(model, tokenizer, prompts, kinds, 8, true);
    Result picked = batchRun(model, tokenizer, prompts, kinds, 8, true);
    int same = 0;
    for (int r = 0; r < 7; r++) {
      same += every.tokens.get(r).equals(picked.tokens.get(r)) ? 1 : 0;
    }
    String detail = String.format(Locale.ROOT, "7 sampled requests (%d tokens) + 8 prompts of %d scored, batches of "
        + "8: echo steps bring every row %.0f ms, the others picked %.0f ms (%.2fx); sampled token lists equal %d of 7",
        newTokens, echoLength, every.burstMs, picked.burstMs, every.burstMs / picked.burstMs, same);
    out.println("EngineFeaturesMain: echo steps among sampled: " + detail);
    return row("engine: echo steps among sampled", "info", detail);
  }

  private static Result prefixRun(OptModel model, OptTokenizer tokenizer, int blocks, List<int[]> prompts,
      SamplingParams params, boolean prefixCaching, int lookup, int requests) {
    KvCache cache = model.newCache(blocks, 16);
    Engine engine = new Engine(model, tokenizer, cache, requests, model.config().maxPositionEmbeddings(), 0,
        prefixCaching, lookup);
    List<List<Integer>> tokens = new ArrayList<>();
    double seqTtft = 0;
    double burstTtft = 0;
    long t0 = System.nanoTime();
    try {
      for (int r = 0; r < requests; r++) {
        Completion c = engine.submit(prompts.get(r), params, null).join();
        seqTtft += c.timeToFirstTokenMillis();
        tokens.add(c.choices().get(0).tokenIds());
      }
      double sequential = (System.nanoTime() - t0) / 1e6;
      long t1 = System.nanoTime();
      List<CompletableFuture<Completion>> burst = new ArrayList<>();
      for (int r = requests; r < Math.min(2 * requests, prompts.size()); r++) {
        burst.add(engine.submit(prompts.get(r), params, null));
      }
      for (CompletableFuture<Completion> f : burst) {
        Completion c = f.join();
        burstTtft += c.timeToFirstTokenMillis();
        tokens.add(c.choices().get(0).tokenIds());
      }
      double burstMs = (System.nanoTime() - t1) / 1e6;
      engine.close();
      return new Result(tokens, sequential, seqTtft / requests, burstMs, burstTtft / Math.max(1, burst.size()),
          engine.stats());
    } finally {
      engine.close();
      cache.close(); // its device memory: the engine does not own the cache
    }
  }

  /**
   * {@code prompts} submitted at once to an engine of at most {@code maxBatch} running sequences, on a cache of its
   * own; burstMs is the time until the last completes.
   */
  private static Result batchRun(OptModel model, OptTokenizer tokenizer, List<int[]> prompts,
      List<SamplingParams> params, int maxBatch) {
    return batchRun(model, tokenizer, prompts, params, maxBatch, true);
  }

  /** As above; {@code partialPicks} false: a step where a sequence needs its rows brings every row (Engine). */
  private static Result batchRun(OptModel model, OptTokenizer tokenizer, List<int[]> prompts,
      List<SamplingParams> params, int maxBatch, boolean partialPicks) {
    int blocks = 0;
    for (int r = 0; r < prompts.size(); r++) {
      blocks += (prompts.get(r).length + params.get(r).maxTokens()) / 16 + 2;
    }
    KvCache cache = model.newCache(blocks, 16);
    Engine engine = new Engine(model, tokenizer, cache, maxBatch, model.config().maxPositionEmbeddings(), 0, false, 0);
    engine.usePartialPicks(partialPicks);
    try {
      long t0 = System.nanoTime();
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (int r = 0; r < prompts.size(); r++) {
        futures.add(engine.submit(prompts.get(r), params.get(r), null));
      }
      List<List<Integer>> tokens = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        tokens.add(f.join().choices().get(0).tokenIds());
      }
      double ms = (System.nanoTime() - t0) / 1e6;
      engine.close();
      return new Result(tokens, 0, 0, ms, 0, engine.stats());
    } finally {
      engine.close();
      cache.close();
    }
  }

  /** One request alone; sequentialMs is its decode time per token (after the first token). */
  private static Result lookupRun(OptModel model, OptTokenizer tokenizer, int[] prompt, SamplingParams params,
      int lookup) {
    return lookupRun(model, tokenizer, prompt, params, lookup, 0);
  }

  /**
   * 8 sampled requests of n = 4 (t 0.8, top-p 0.9) at once, the 3 other completions of each taking their first tokens
   * from the first one's row on the host, then as extra picks where the logits are ({@code Engine.usePickedForks},
   * session 24): time, and whether every completion's tokens are equal (on the CPU they must be: FAIL; on a GPU the
   * sampler kernel and its host twin may round a draw apart: information).
   */
  private static String forkRow(OptModel model, OptTokenizer tokenizer, int newTokens, boolean exactRows,
      PrintStream out) {
    Random rnd = new Random(29);
    List<int[]> prompts = new ArrayList<>();
    for (int r = 0; r < 8; r++) {
      int[] p = randomIds(rnd, 64, model.config().vocabSize());
      p[0] = 2;
      prompts.add(p);
    }
    double[] ms = new double[2];
    List<List<List<Integer>>> tokens = new ArrayList<>();
    for (boolean picked : new boolean[] {false, true}) {
      forkRun(model, tokenizer, prompts, newTokens, picked, null); // warm-up
      tokens.add(forkRun(model, tokenizer, prompts, newTokens, picked, ms));
    }
    boolean equal = tokens.get(0).equals(tokens.get(1));
    String detail = String.format(Locale.ROOT, "8 sampled requests of n=4 (%d tokens) at once: forks' first picks on "
        + "the host %.0f ms, picked where the logits are %.0f ms (%.2fx); completions %s%s", newTokens, ms[0], ms[1],
        ms[0] / ms[1], equal ? "equal" : "differ", model.samplesOnDevice() ? ""
            : " (host path: this model does not sample where the logits are)");
    out.println("EngineFeaturesMain: forks: " + detail);
    return row("engine: n=4 forks", equal ? "ok" : exactRows ? "FAIL" : "info", detail);
  }

  /** {@link #forkRow}'s run: every completion's tokens; its time into {@code ms[picked ? 1 : 0]} when not null. */
  private static List<List<Integer>> forkRun(OptModel model, OptTokenizer tokenizer, List<int[]> prompts,
      int newTokens, boolean picked, double[] ms) {
    int blocks = 0;
    for (int[] p : prompts) {
      blocks += 4 * ((p.length + newTokens) / 16 + 2);
    }
    KvCache cache = model.newCache(blocks, 16);
    Engine engine = new Engine(model, tokenizer, cache, 32, model.config().maxPositionEmbeddings(), 0, false, 0);
    engine.usePickedForks(picked);
    try {
      long t0 = System.nanoTime();
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (int r = 0; r < prompts.size(); r++) {
        futures.add(engine.submit(prompts.get(r), SamplingParams.builder().temperature(0.8).topP(0.9).seed(r).n(4)
            .maxTokens(newTokens).build(), null));
      }
      List<List<Integer>> tokens = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        f.join().choices().forEach(c -> tokens.add(c.tokenIds()));
      }
      if (ms != null) {
        ms[picked ? 1 : 0] = (System.nanoTime() - t0) / 1e6;
      }
      return tokens;
    } finally {
      engine.close();
      cache.close();
    }
  }

  /**
   * One sampled request (t 0.7, top-p 0.9) without and with {@code --lookup} drafts per step (session 24: on a model
   * that samples where the logits are, its draft rows are drawn there; before, such a request got no drafts): decode
   * ms/token, steps, drafts accepted, tokens. On the CPU the tokens must be equal (FAIL); on a GPU a draft step
   * computes a row with other rows than a plain step, so a differing draw is information.
   */
  private static String sampledLookupRow(OptModel model, OptTokenizer tokenizer, int[] prompt, Options o,
      boolean exactRows, PrintStream out) {
    SamplingParams sampled = SamplingParams.builder().temperature(0.7).topP(0.9).seed(5L).maxTokens(o.newTokens)
        .build();
    Result plain = lookupRun(model, tokenizer, prompt, sampled, 0, 1);
    Result drafted = lookupRun(model, tokenizer, prompt, sampled, o.lookup, 1);
    boolean equal = plain.tokens.equals(drafted.tokens);
    String detail = String.format(Locale.ROOT, "batch 1, sampled t=0.7 top-p 0.9, %d drafts: %.3f -> %.3f ms/token "
        + "(%.2fx), steps %d -> %d (x2 with the warm-up), drafts %d accepted %d, tokens %s", o.lookup,
        plain.sequentialMs, drafted.sequentialMs, plain.sequentialMs / drafted.sequentialMs, plain.stats.steps(),
        drafted.stats.steps(), drafted.stats.draftTokens(), drafted.stats.acceptedDraftTokens(),
        equal ? "equal" : "differ") + (model.samplesOnDevice() ? "" : " (host path: this model does not sample where "
        + "the logits are)");
    out.println("EngineFeaturesMain: prompt lookup, sampled: " + detail);
    return row("engine: prompt lookup, sampled", equal ? "ok" : exactRows ? "FAIL" : "info", detail);
  }

  /**
   * One greedy request with up to {@code lookup} draft tokens per step, timed after {@code warmUps} untimed runs of
   * the same request on the same cache (CUDA graphs are keyed by the cache: a new one would start without any).
   */
  private static Result lookupRun(OptModel model, OptTokenizer tokenizer, int[] prompt, SamplingParams params,
      int lookup, int warmUps) {
    // every beam (or completion) holds its own blocks (the H200 run of session 21 found 4 beams refused)
    int blocks = ((prompt.length + params.maxTokens() + lookup) / 16 + 2) * Math.max(params.numBeams(), params.n());
    KvCache cache = model.newCache(blocks, 16);
    Engine engine = new Engine(model, tokenizer, cache, 1, model.config().maxPositionEmbeddings(), 0, false, lookup);
    try {
      for (int i = 0; i < warmUps; i++) {
        engine.submit(prompt, params, null).join();
      }
      Completion c = engine.submit(prompt, params, null).join();
      engine.close();
      int n = c.choices().get(0).tokenIds().size();
      // a beam search's tokens all come at its end: its time per token of the best beam, prefill included
      double perToken = params.numBeams() > 1 ? c.totalMillis() / Math.max(1, n)
          : (c.totalMillis() - c.timeToFirstTokenMillis()) / Math.max(1, n - 1);
      return new Result(List.of(c.choices().get(0).tokenIds()), perToken, c.timeToFirstTokenMillis(), 0, 0,
          engine.stats(), c.choices().get(0).score());
    } finally {
      engine.close();
      cache.close();
    }
  }

  /**
   * One long prompt scored (echo, no new token; {@code top} log-prob alternatives per row) with its scores computed
   * on the host and on the device ({@code CudaOps.useDeviceScores}): time, the largest difference between the two
   * (FAIL above 1e-3 of the log-prob's size, or where only one is NaN) and, with alternatives, the largest difference
   * of theirs and the rows whose listed tokens differ (a near tie in float32 can swap two: information).
   */
  private static String echoScoresRow(OptModel model, OptTokenizer tokenizer, io.github.optjava.backend.cuda.CudaOps
      cuda, int[] text, int top, PrintStream out) {
    SamplingParams score = SamplingParams.greedy().toBuilder().echo(true).maxTokens(0)
        .logprobs(top == 0 ? null : top).build();
    boolean before = cuda.usesDeviceScores();
    double[] hostMs = new double[1];
    double[] deviceMs = new double[1];
    List<io.github.optjava.api.TokenLogprob> host;
    List<io.github.optjava.api.TokenLogprob> device;
    try {
      cuda.useDeviceScores(false);
      scoreRun(model, tokenizer, text, score, hostMs); // warm-up
      host = scoreRun(model, tokenizer, text, score, hostMs);
      cuda.useDeviceScores(true);
      scoreRun(model, tokenizer, text, score, deviceMs);
      device = scoreRun(model, tokenizer, text, score, deviceMs);
    } finally {
      cuda.useDeviceScores(before);
    }
    double worst = 0;
    double worstTop = 0;
    int listsDiffer = 0;
    boolean nanMismatch = false;
    for (int i = 1; i < host.size(); i++) {
      double h = host.get(i).logprob();
      double d = device.get(i).logprob();
      nanMismatch |= Double.isNaN(h) != Double.isNaN(d);
      if (!Double.isNaN(h) && !Double.isNaN(d)) {
        worst = Math.max(worst, Math.abs(h - d) / (1 + Math.abs(h)));
      }
      java.util.Map<String, Double> ht = host.get(i).top();
      java.util.Map<String, Double> dt = device.get(i).top();
      listsDiffer += ht.keySet().equals(dt.keySet()) ? 0 : 1;
      for (var e : ht.entrySet()) {
        Double other = dt.get(e.getKey());
        if (other != null && !Double.isNaN(e.getValue()) && !Double.isNaN(other)) {
          worstTop = Math.max(worstTop, Math.abs(e.getValue() - other) / (1 + Math.abs(e.getValue())));
        }
      }
    }
    String detail = String.format(Locale.ROOT, "%d-token prompt scored%s: host %.1f ms, device %.1f ms (%.2fx); "
        + "largest difference %.2g of the log-prob%s%s", text.length, top == 0 ? "" : ", " + top + " alternatives",
        hostMs[0], deviceMs[0], hostMs[0] / deviceMs[0], worst, nanMismatch ? "; NaN on one side only" : "",
        top == 0 ? "" : String.format(Locale.ROOT, "; alternatives: largest difference %.2g, lists differ in %d of "
            + "%d rows", worstTop, listsDiffer, host.size() - 1));
    out.println("EngineFeaturesMain: echo scores: " + detail);
    boolean ok = worst <= 1e-3 && !nanMismatch && worstTop <= 1e-3 && listsDiffer <= (host.size() - 1) / 100;
    return row("engine: echo scores on device" + (top == 0 ? "" : ", alternatives"), ok ? "ok" : "FAIL", detail);
  }

  /** One echo request (its prompt's log-probs, no new token); {@code ms[0]} receives its time. */
  private static List<io.github.optjava.api.TokenLogprob> scoreRun(OptModel model, OptTokenizer tokenizer,
      int[] prompt, SamplingParams params, double[] ms) {
    KvCache cache = model.newCache(prompt.length / 16 + 2, 16);
    Engine engine = new Engine(model, tokenizer, cache, 1, model.config().maxPositionEmbeddings(), 0, false, 0);
    try {
      long t0 = System.nanoTime();
      Completion c = engine.submit(prompt, params, null).join();
      ms[0] = (System.nanoTime() - t0) / 1e6;
      return c.choices().get(0).logprobs();
    } finally {
      engine.close();
      cache.close();
    }
  }

  private static int countSame(List<List<Integer>> a, List<List<Integer>> b) {
    int same = 0;
    for (int i = 0; i < a.size(); i++) {
      same += a.get(i).equals(b.get(i)) ? 1 : 0;
    }
    return same;
  }

  private static int[] randomIds(Random rnd, int n, int vocab) {
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = 4 + rnd.nextInt(Math.min(vocab, 50_000) - 4); // no BOS/EOS/pad
    }
    return ids;
  }

  private static String row(String name, String status, String detail) {
    return name + "\t" + status + "\t" + detail;
  }

  private static Options parse(String[] args) {
    Path model = null;
    Path rows = null;
    String device = "cuda";
    DType dtype = DType.F16;
    int prefix = 512;
    int requests = 8;
    int newTokens = 64;
    int lookup = 4;
    for (int i = 0; i < args.length; i++) {
      String v = i + 1 < args.length ? args[i + 1] : null;
      if (v == null) {
        throw new IllegalArgumentException("option " + args[i] + " needs a value");
      }
      switch (args[i++]) {
        case "--model" -> model = Path.of(v);
        case "--rows" -> rows = Path.of(v);
        case "--device" -> device = v;
        case "--dtype" -> dtype = DType.valueOf(v);
        case "--prefix" -> prefix = Integer.parseInt(v);
        case "--requests" -> requests = Integer.parseInt(v);
        case "--new-tokens" -> newTokens = Integer.parseInt(v);
        case "--lookup" -> lookup = Integer.parseInt(v);
        default -> throw new IllegalArgumentException("unknown option " + args[i - 1]);
      }
    }
    if (model == null || rows == null) {
      throw new IllegalArgumentException("--model DIR and --rows FILE are required");
    }
    return new Options(model, rows, device, dtype, prefix, requests, newTokens, lookup);
  }
}
