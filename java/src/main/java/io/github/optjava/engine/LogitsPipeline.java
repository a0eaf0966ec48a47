package io.github.optjava.engine;

import io.github.optjava.api.SamplingParams;
import java.util.ArrayList;
import java.util.List;

/**
 * The logits processors of one sequence, applied in order; built from {@link SamplingParams} in the
 * order Hugging Face's {@code generate()} (4.36) uses.
 *
 * <p>HF applies {@code _get_logits_processor} first, then, when sampling, {@code _get_logits_warper}.
 * The parts this library supports, in that order, each added only when it is on:
 *
 * <ol>
 *   <li>{@link LogitBiasProcessor} ({@code logitBias} not empty): OpenAI's; first, where HF puts its nearest
 *       equivalent ({@code sequence_bias}) and vLLM applies it (before its penalties)
 *   <li>{@link RepetitionPenaltyProcessor} ({@code repetitionPenalty != 1})
 *   <li>{@link PresenceFrequencyPenaltyProcessor} (either penalty {@code != 0}). Not in HF; placed
 *       right after the repetition penalty, as vLLM applies its three penalties together (repetition
 *       first, then frequency and presence). It only subtracts finite amounts, so its position relative
 *       to the -inf bans below does not change any result.
 *   <li>{@link NoRepeatNgramProcessor} ({@code noRepeatNgramSize > 0})
 *   <li>{@link BadWordsProcessor} ({@code badWordsIds} not empty)
 *   <li>{@link MinNewTokensProcessor} ({@code minTokens > 0}); HF's min-length slot
 *   <li>only when sampling ({@code temperature > 0}, no beam search), the warpers:
 *       {@link TemperatureProcessor} ({@code temperature != 1}), {@link TopKProcessor}
 *       ({@code topK > 0}), {@link TopPProcessor} ({@code topP < 1}), {@link MinPProcessor} ({@code minP > 0}),
 *       {@link TypicalProcessor} ({@code typicalP < 1}): HF's order (its epsilon and eta cutoffs, which would
 *       follow, are not offered)
 * </ol>
 *
 * <p>Greedy and beam search use no warpers, as in HF (SamplingParams rejects top-k/top-p there).
 * Note for beam search: HF applies these processors to {@code log_softmax(logits)}, not to the raw
 * logits, so there the repetition penalty always multiplies a negative score.
 *
 * <p>A pipeline is not thread-safe (some processors keep scratch buffers): build one per sequence.
 */
public final class LogitsPipeline implements LogitsProcessor {

  private final List<LogitsProcessor> processors;

  private LogitsPipeline(List<LogitsProcessor> processors) {
    this.processors = List.copyOf(processors);
  }

  /**
   * The pipeline HF's {@code generate()} would build for these parameters.
   *
   * @param params     validated sampling parameters
   * @param eosTokenId the model's EOS token (2 for OPT), banned while {@code minTokens} is not reached
   */
  public static LogitsPipeline forParams(SamplingParams params, int eosTokenId) {
    List<LogitsProcessor> list = new ArrayList<>();
    if (!params.logitBias().isEmpty()) {
      list.add(new LogitBiasProcessor(params.logitBias()));
    }
    if (params.repetitionPenalty() != 1.0) {
      list.add(new RepetitionPenaltyProcessor(params.repetitionPenalty()));
    }
    if (params.presencePenalty() != 0 || params.frequencyPenalty() != 0) {
      list.add(new PresenceFrequencyPenaltyProcessor(params.presencePenalty(), params.frequencyPenalty()));
    }
    if (params.noRepeatNgramSize() > 0) {
      list.add(new NoRepeatNgramProcessor(params.noRepeatNgramSize()));
    }
    if (!params.badWordsIds().isEmpty()) {
      list.add(new BadWordsProcessor(params.badWordsIds(), eosTokenId));
    }
    if (params.minTokens() > 0) {
      list.add(new MinNewTokensProcessor(params.minTokens(), eosTokenId));
    }
    if (params.isSampling()) {
      if (params.temperature() != 1.0) {
        list.add(new TemperatureProcessor(params.temperature()));
      }
      if (params.topK() > 0) {
        list.add(new TopKProcessor(params.topK()));
      }
      if (params.topP() < 1.0) {
        list.add(new TopPProcessor(params.topP()));
      }
      if (params.minP() > 0) {
        list.add(new MinPProcessor(params.minP()));
      }
      if (params.typicalP() < 1.0) {
        list.add(new TypicalProcessor(params.typicalP()));
      }
    }
    return new LogitsPipeline(list);
  }

  /** A pipeline of the given processors, applied in the given order. */
  public static LogitsPipeline of(LogitsProcessor... processors) {
    return new LogitsPipeline(List.of(processors));
  }

  /** The processors, in the order they run; empty when every option is off. */
  public List<LogitsProcessor> processors() {
    return processors;
  }

  /** True when processing leaves the logits unchanged (then raw and processed log-probs agree). */
  public boolean isEmpty() {
    return processors.isEmpty();
  }

  /**
   * Whether the model can run this pipeline where the logits are: its processors are {@link SparseLogitsProcessor}s
   * in {@link io.github.optjava.backend.LogitEdits}' order ({@link #edits}), followed only by the warpers a device
   * sampler applies itself (temperature, top-k, top-p, min-p).
   */
  boolean runsAsEdits() {
    return runsAsEdits(false);
  }

  /**
   * As {@link #runsAsEdits()}, typical sampling among the warpers too when {@code typical} (a model that draws typical
   * rows where the logits are: {@link io.github.optjava.model.CausalLm#samplesTypicalOnDevice}).
   */
  boolean runsAsEdits(boolean typical) {
    int stage = -1;
    boolean warpers = false;
    for (LogitsProcessor p : processors) {
      // each of the stages 0-2 at most once (an edit holds one bias, one penalty, one pair of terms); bans repeat
      if (p instanceof SparseLogitsProcessor sp && !warpers && (sp.stage() > stage || sp.stage() == 3)) {
        stage = sp.stage();
      } else if (p instanceof TemperatureProcessor || p instanceof TopKProcessor || p instanceof TopPProcessor
          || p instanceof MinPProcessor || (typical && p instanceof TypicalProcessor)) {
        warpers = true;
      } else {
        return false;
      }
    }
    return true;
  }

  /** Whether it has a processor before the warpers (then {@link #edits} names something). */
  boolean hasEdits() {
    return !processors.isEmpty() && processors.get(0) instanceof SparseLogitsProcessor;
  }

  /** The edits of its processors before the warpers ({@link #runsAsEdits} must hold), into {@code out}'s row. */
  void edits(int[] inputIds, int inputLength, int promptLength, io.github.optjava.backend.LogitEdits.Builder out) {
    for (LogitsProcessor p : processors) {
      if (p instanceof SparseLogitsProcessor sp) {
        sp.edits(inputIds, inputLength, promptLength, out);
      }
    }
  }

  /** Runs only its processors before the warpers on the host: what {@link #edits} does where the logits are. */
  void processBeforeWarpers(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    for (LogitsProcessor p : processors) {
      if (p instanceof SparseLogitsProcessor) {
        p.process(inputIds, inputLength, promptLength, logits);
      }
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    for (LogitsProcessor p : processors) {
      p.process(inputIds, inputLength, promptLength, logits);
    }
  }

  @Override
  public String toString() {
    return "LogitsPipeline" + processors;
  }
}
