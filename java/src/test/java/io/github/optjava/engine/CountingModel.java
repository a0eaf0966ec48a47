package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.model.OptModel;
import java.util.List;

/**
 * A model that counts which step method the engine calls: the logits ({@link #forward}), the argmax where the
 * logits are ({@link #greedy}), a draw where they are ({@link #sample}), picks there for some sequences and rows for
 * the others ({@link #pickSome}), or beam search's candidates where they are ({@link #beamTopK});
 * {@code samplesOnDevice} says whether it claims to draw on the device (then, on the CPU, it draws with the device's
 * host twin), {@code typicalOnDevice} whether typical sampling's rows too.
 */
final class CountingModel extends WrappedModel {
  final boolean typicalOnDevice;
  int forwards;
  int greedies;
  int samples;
  int beamSteps; // beam search steps whose candidates the model found where the logits are
  int mixedSteps; // sampled steps with greedy rows (temperature 0) and drawn ones
  int typicalRows; // drawn rows with typical sampling handed to the model's draw (sample / pickSome)
  int partialSteps; // steps that picked some sequences' tokens and brought the others' rows to the host
  int pickedDraftRows; // rows of sequences with drafts that pickSome picked where the logits are (one per fed token)
  int scoredPartialSteps; // of those, steps that also scored an echo prefill where the logits are
  int scoredAlternatives; // steps whose scored echo prefill had its log-prob alternatives listed there (pickSome)
  int maxScoredInStep; // the most echo prefills one pickSome step scored
  int maxScoreTop; // the most alternatives per scored row one pickSome step asked for
  int forkPicks; // extra picks: other completions' first tokens from their first completion's row (pickSome)
  int maxStepTokens; // the most tokens one step fed
  int maxStepSequences; // the most sequences one step fed
  long editedLogits; // logit edits the engine passed with its greedy and sampled steps
  volatile Runnable beforeStep = () -> { }; // tests hold a step with it

  CountingModel(OptModel model, boolean samplesOnDevice) {
    this(model, samplesOnDevice, false);
  }

  CountingModel(OptModel model, boolean samplesOnDevice, boolean typicalOnDevice) {
    super(model, samplesOnDevice);
    this.typicalOnDevice = typicalOnDevice;
  }

  @Override
  public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
    forwards++;
    count(seqs);
    return model.forward(seqs, cache);
  }

  @Override
  public int[] greedy(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
    greedies++;
    count(seqs);
    return model.greedy(seqs, cache, logprobs);
  }

  @Override
  public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
    greedies++;
    count(seqs);
    return model.greedyRows(seqs, cache, logprobs);
  }

  @Override
  public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits) {
    greedies++;
    editedLogits += edits.count();
    count(seqs);
    return model.greedyRows(seqs, cache, logprobs, edits);
  }

  @Override
  public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits, int k,
      int[] topIds, double[] topLogprobs) {
    greedies++;
    editedLogits += edits.count();
    count(seqs);
    return model.greedyRows(seqs, cache, logprobs, edits, k, topIds, topLogprobs);
  }

  @Override
  public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs) {
    samples++;
    countMixed(spec);
    count(seqs);
    return model.sample(seqs, cache, spec, logprobs);
  }

  @Override
  public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
      LogitEdits edits) {
    samples++;
    countMixed(spec);
    editedLogits += edits.count();
    count(seqs);
    return model.sample(seqs, cache, spec, logprobs, edits);
  }

  @Override
  public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
      LogitEdits edits, int k, int[] topIds, double[] topLogprobs) {
    samples++;
    countMixed(spec);
    editedLogits += edits.count();
    count(seqs);
    return model.sample(seqs, cache, spec, logprobs, edits, k, topIds, topLogprobs);
  }

  @Override
  public Picks pickSome(List<OptModel.SeqStep> seqs, KvCache cache, Picking p) {
    forkPicks += p.extra();
    boolean anyToHost = false;
    for (int s = 0; s < seqs.size(); s++) {
      anyToHost |= p.toHost()[s];
      pickedDraftRows += !p.toHost()[s] && seqs.get(s).allLogits() ? seqs.get(s).newTokens().length : 0;
    }
    partialSteps += anyToHost ? 1 : 0;
    int[][] scoreTokens = p.scoreTokens();
    scoredPartialSteps += scoreTokens != null ? 1 : 0;
    countTypical(p.spec());
    editedLogits += p.edits().count();
    count(seqs);
    scoredAlternatives += scoreTokens != null && p.scoreTop() > 0 ? 1 : 0;
    if (scoreTokens != null) {
      maxScoredInStep = Math.max(maxScoredInStep,
          (int) java.util.Arrays.stream(scoreTokens).filter(java.util.Objects::nonNull).count());
      maxScoreTop = Math.max(maxScoreTop, p.scoreTop());
    }
    return model.pickSome(seqs, cache, p);
  }

  @Override
  public void beamTopK(List<OptModel.SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores) {
    beamSteps++;
    count(seqs);
    model.beamTopK(seqs, cache, rows, base, k, ids, scores);
  }

  @Override
  public void beamTopK(List<OptModel.SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores, LogitEdits edits) {
    beamSteps++;
    editedLogits += edits.count();
    count(seqs);
    model.beamTopK(seqs, cache, rows, base, k, ids, scores, edits);
  }

  private void countMixed(SamplingRows spec) {
    int greedy = 0;
    for (float t : spec.temperature()) {
      greedy += t == 0f ? 1 : 0;
    }
    mixedSteps += greedy > 0 && greedy < spec.temperature().length ? 1 : 0;
    countTypical(spec);
  }

  private void countTypical(SamplingRows spec) {
    for (int r = 0; r < spec.rows(); r++) {
      typicalRows += spec.temperature()[r] != 0f && io.github.optjava.backend.RowSampling.typicalOn(spec.typicalP()[r])
          ? 1 : 0;
    }
  }

  private void count(List<OptModel.SeqStep> seqs) {
    beforeStep.run();
    maxStepTokens = Math.max(maxStepTokens, seqs.stream().mapToInt(s -> s.newTokens().length).sum());
    maxStepSequences = Math.max(maxStepSequences, seqs.size());
  }

  @Override
  public boolean samplesTypicalOnDevice() {
    return samplesOnDevice && typicalOnDevice;
  }
}
