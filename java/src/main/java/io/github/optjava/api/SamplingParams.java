package io.github.optjava.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * How to generate: length, decoding strategy (greedy, sampling or beam search), logits processors and
 * what to return. Immutable and thread-safe; every instance has been validated.
 *
 * <pre>{@code
 * SamplingParams p = SamplingParams.builder()
 *     .maxTokens(64)
 *     .temperature(0.7).topP(0.9)
 *     .seed(42)
 *     .stop(List.of("\n\n"))
 *     .build();
 * SamplingParams g = SamplingParams.greedy().toBuilder().maxTokens(32).build();
 * }</pre>
 *
 * <p><b>Decoding strategy</b> follows from three fields:
 *
 * <ul>
 *   <li>{@code numBeams > 1}: deterministic Hugging Face beam search ({@code do_sample=False}), as transformers
 *       4.36 to 4.49 run it (the golden data's version is 4.36.2). From 4.50 transformers stops a search with
 *       {@code early_stopping=False} by another heuristic and ends beams at a stop string, so such searches can
 *       return other beams there; with {@code earlyStopping(true)} every version agrees. Beam sampling is not
 *       supported, so {@code temperature} must be 0 or 1 (both mean "no warping" here), {@code topK}/{@code topP}
 *       must be off and no seed may be given.
 *   <li>{@code temperature == 0}: greedy decoding (argmax). {@code topK}/{@code topP}/{@code minP}/{@code typicalP}
 *       would have no effect and are rejected, as are a seed and {@code n > 1} (every completion would be the same;
 *       Hugging Face rejects {@code num_return_sequences > 1} for greedy search too).
 *   <li>otherwise: multinomial sampling from the processed logits, {@code n} independent completions.
 * </ul>
 *
 * <p>Defaults are those of OpenAI's completions API where it has the parameter (note that Hugging
 * Face's {@code generate()} defaults {@code top_k} to 50; here top-k is off unless set). Hugging Face
 * names are given with each field. Parameters that need the model (prompt length against the
 * model's positions) are checked when generating, not here.
 */
public final class SamplingParams {

  /** OpenAI's cap on {@code logprobs} for completions. */
  public static final int MAX_LOGPROBS = 20;

  /** The smallest temperature above 0 (greedy): logits divided by a smaller one can overflow float32. */
  public static final double MIN_TEMPERATURE = 1e-30;

  /** OpenAI's cap on the number of stop sequences. */
  public static final int MAX_STOP_SEQUENCES = 4;

  /** OpenAI's range for presence and frequency penalties is [-2, 2]. */
  public static final double MAX_ABS_PENALTY = 2.0;

  /** OpenAI's range for a logit bias is [-100, 100]. */
  public static final double MAX_ABS_LOGIT_BIAS = 100.0;

  private final int maxTokens;
  private final double temperature;
  private final int topK;
  private final double topP;
  private final double minP;
  private final double typicalP;
  private final Long seed;
  private final int n;
  private final int numBeams;
  private final double lengthPenalty;
  private final boolean earlyStopping;
  private final double repetitionPenalty;
  private final double presencePenalty;
  private final double frequencyPenalty;
  private final int noRepeatNgramSize;
  private final int minTokens;
  private final List<String> stop;
  private final java.util.Map<Integer, Double> logitBias;
  private final List<List<Integer>> badWordsIds;
  private final Integer logprobs;
  private final boolean echo;

  private SamplingParams(Builder b) {
    maxTokens = b.maxTokens;
    temperature = b.temperature;
    topK = b.topK;
    topP = b.topP;
    minP = b.minP;
    typicalP = b.typicalP;
    seed = b.seed;
    n = b.n;
    numBeams = b.numBeams;
    lengthPenalty = b.lengthPenalty;
    earlyStopping = b.earlyStopping;
    repetitionPenalty = b.repetitionPenalty;
    presencePenalty = b.presencePenalty;
    frequencyPenalty = b.frequencyPenalty;
    noRepeatNgramSize = b.noRepeatNgramSize;
    minTokens = b.minTokens;
    stop = copyStops(b.stop);
    logitBias = copyLogitBias(b.logitBias);
    badWordsIds = copyBadWords(b.badWordsIds);
    logprobs = b.logprobs;
    echo = b.echo;
    validate();
  }

  /** A builder holding every default. */
  public static Builder builder() {
    return new Builder();
  }

  /** OpenAI-style defaults: 16 new tokens, plain sampling at temperature 1.0, random seed. */
  public static SamplingParams defaults() {
    return builder().build();
  }

  /** Greedy decoding (temperature 0), otherwise the defaults; what HF's default generation config does. */
  public static SamplingParams greedy() {
    return builder().temperature(0).build();
  }

  /** A builder starting from this instance's values. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.maxTokens = maxTokens;
    b.temperature = temperature;
    b.topK = topK;
    b.topP = topP;
    b.minP = minP;
    b.typicalP = typicalP;
    b.seed = seed;
    b.n = n;
    b.numBeams = numBeams;
    b.lengthPenalty = lengthPenalty;
    b.earlyStopping = earlyStopping;
    b.repetitionPenalty = repetitionPenalty;
    b.presencePenalty = presencePenalty;
    b.frequencyPenalty = frequencyPenalty;
    b.noRepeatNgramSize = noRepeatNgramSize;
    b.minTokens = minTokens;
    b.stop = stop;
    b.logitBias = logitBias;
    b.badWordsIds = badWordsIds;
    b.logprobs = logprobs;
    b.echo = echo;
    return b;
  }

  /** Most new tokens per completion (HF {@code max_new_tokens}); 0 with {@code echo} only scores. */
  public int maxTokens() {
    return maxTokens;
  }

  /** Softmax temperature; 0 means greedy decoding. */
  public double temperature() {
    return temperature;
  }

  /** Keep only the {@code topK} highest-scoring tokens; 0 = off. */
  public int topK() {
    return topK;
  }

  /** Nucleus sampling: keep the smallest top set with probability mass {@code >= topP}; 1.0 = off. */
  public double topP() {
    return topP;
  }

  /**
   * Min-p sampling (HF {@code min_p}): drop every token whose probability is below {@code minP} times the most
   * likely token's, after temperature, top-k and top-p; 0 = off. Typical values 0.01 to 0.2.
   */
  public double minP() {
    return minP;
  }

  /**
   * Locally typical sampling (HF {@code typical_p}): keep the tokens whose surprise is closest to the
   * distribution's entropy until they hold {@code typicalP} of the mass, after min-p; 1.0 = off.
   */
  public double typicalP() {
    return typicalP;
  }

  /** Seed for sampling; empty means a fresh random seed per request. */
  public OptionalLong seed() {
    return seed == null ? OptionalLong.empty() : OptionalLong.of(seed);
  }

  /** Completions per prompt (HF {@code num_return_sequences}). */
  public int n() {
    return n;
  }

  /** Beams of beam search; 1 = no beam search. */
  public int numBeams() {
    return numBeams;
  }

  /** Beam search: a hypothesis scores {@code sum_logprobs / generated_len ** lengthPenalty}. */
  public double lengthPenalty() {
    return lengthPenalty;
  }

  /**
   * Beam search: stop as soon as {@code numBeams} finished hypotheses exist (HF {@code True}). With
   * {@code false} HF's heuristic stop applies, as transformers 4.36 to 4.49 compute it: done when the step's best
   * candidate, normalised by the current length, cannot beat the worst kept hypothesis (4.50 and later compare the
   * best beam still running instead, and may stop earlier). HF's third value {@code "never"} is not offered.
   */
  public boolean earlyStopping() {
    return earlyStopping;
  }

  /** HF/CTRL repetition penalty over every input token (prompt and generated); 1.0 = off. */
  public double repetitionPenalty() {
    return repetitionPenalty;
  }

  /** OpenAI presence penalty: subtracted once from every token already generated; 0 = off. */
  public double presencePenalty() {
    return presencePenalty;
  }

  /** OpenAI frequency penalty: subtracted per earlier generation of the token; 0 = off. */
  public double frequencyPenalty() {
    return frequencyPenalty;
  }

  /** Forbid repeating any n-gram of this size (prompt included, as HF); 0 = off. */
  public int noRepeatNgramSize() {
    return noRepeatNgramSize;
  }

  /** New tokens to generate before EOS is allowed (HF {@code min_new_tokens}). */
  public int minTokens() {
    return minTokens;
  }

  /**
   * Stop sequences: generation ends before the first occurrence of any of them in the generated text (OpenAI's
   * meaning: the text excludes the stop string; Hugging Face's {@code stop_strings} keep it). Beam search runs to its
   * end and then cuts each returned beam at its first stop string (transformers 4.50 and later end a beam there
   * while searching); never null.
   */
  public List<String> stop() {
    return stop;
  }

  /**
   * OpenAI {@code logit_bias}: token id to an amount in [-100, 100] added to its logit before sampling or the
   * argmax (before every other processor, as vLLM and HF's {@code sequence_bias} do); never null, empty = none. Token ids must be
   * within the model's vocabulary (checked when generating).
   */
  public java.util.Map<Integer, Double> logitBias() {
    return logitBias;
  }

  /**
   * HF {@code bad_words_ids}: token sequences never generated (a one-token one is banned outright, a longer one
   * bans its last token after the rest; the EOS token alone is ignored, as HF does); never null, empty = none.
   * Token ids must be within the model's vocabulary (checked when generating).
   */
  public List<List<Integer>> badWordsIds() {
    return badWordsIds;
  }

  /**
   * Log-probabilities to return per generated token: the chosen token's plus the top {@code k}
   * alternatives; empty = none, 0 = the chosen token's only.
   *
   * <p>They are of the distribution the token was drawn from: the model's log-softmax after this request's logits
   * processors and warpers (penalties, bias, bans, temperature, top-k, top-p, min-p, typical; as vLLM's processed
   * log-probs). So when sampling with {@code topK(1)} every chosen token has log-prob 0, and a high temperature
   * flattens them. Greedy decoding (which applies no warper) without processors gives the model's own. Alternatives
   * the warpers cut (probability 0) are not listed, so fewer than {@code k} may come; the chosen token is not added
   * to them. An echoed prompt's tokens, {@link Generator#score} and beam search (its beams rescored once at the end)
   * give the model's raw log-softmax. {@link TokenLogprob#top} is keyed by text: two alternatives that decode to the
   * same text show as one, the likelier.
   */
  public OptionalInt logprobs() {
    return logprobs == null ? OptionalInt.empty() : OptionalInt.of(logprobs);
  }

  /**
   * Return the prompt in front of the completion. {@link Choice#logprobs()} then scores every token, the prompt's
   * included, whether or not {@code logprobs} is set (which adds alternatives); {@code opt batch} shows them only
   * when the request sets it, as OpenAI does.
   */
  public boolean echo() {
    return echo;
  }

  /** True when decoding is greedy: temperature 0 and no beam search. */
  public boolean isGreedy() {
    return temperature == 0 && numBeams == 1;
  }

  /** True when tokens are drawn at random: no beam search and temperature above 0. */
  public boolean isSampling() {
    return temperature > 0 && numBeams == 1;
  }

  /** True when beam search decides the tokens. */
  public boolean isBeamSearch() {
    return numBeams > 1;
  }

  /** Checks every field and their combinations; messages name the field and say what to do. */
  private void validate() {
    require(maxTokens >= 0, "maxTokens must be >= 0 (got " + maxTokens + ")");
    require(Double.isFinite(temperature) && temperature >= 0,
        "temperature must be a finite number >= 0 (got " + temperature + "); use 0 for greedy decoding");
    // Below this, logits divided by the temperature overflow float32 to infinity and the draw becomes uniform among
    // every overflowed token (session 27's review: random text at 1e-39), where the limit is greedy decoding.
    require(temperature == 0 || temperature >= MIN_TEMPERATURE, "temperature " + temperature + " is below "
        + MIN_TEMPERATURE + ", where logits divided by it overflow float32; use 0 for greedy decoding");
    require(topK >= 0, "topK must be >= 0 (got " + topK + "); use 0 to turn top-k off");
    require(topP > 0 && topP <= 1,
        "topP must be in (0, 1] (got " + topP + "); use 1.0 to turn top-p off");
    require(minP >= 0 && minP <= 1, "minP must be in [0, 1] (got " + minP + "); use 0 to turn min-p off");
    require(typicalP > 0 && typicalP <= 1,
        "typicalP must be in (0, 1] (got " + typicalP + "); use 1.0 to turn typical sampling off");
    require(n >= 1, "n must be >= 1 (got " + n + ")");
    require(numBeams >= 1, "numBeams must be >= 1 (got " + numBeams + "); use 1 for no beam search");
    require(Double.isFinite(lengthPenalty), "lengthPenalty must be finite (got " + lengthPenalty + ")");
    require(Double.isFinite(repetitionPenalty) && repetitionPenalty > 0,
        "repetitionPenalty must be a finite number > 0 (got " + repetitionPenalty + "); use 1.0 to turn it off");
    requirePenalty("presencePenalty", presencePenalty);
    requirePenalty("frequencyPenalty", frequencyPenalty);
    require(noRepeatNgramSize >= 0,
        "noRepeatNgramSize must be >= 0 (got " + noRepeatNgramSize + "); use 0 to turn it off");
    require(minTokens >= 0, "minTokens must be >= 0 (got " + minTokens + ")");
    require(minTokens <= maxTokens, "minTokens (" + minTokens + ") must not exceed maxTokens ("
        + maxTokens + "): EOS could never be generated; lower minTokens or raise maxTokens");
    require(logprobs == null || (logprobs >= 0 && logprobs <= MAX_LOGPROBS), "logprobs must be in [0, "
        + MAX_LOGPROBS + "] (got " + logprobs + "; " + MAX_LOGPROBS + " is OpenAI's limit), or unset for none");
    require(stop.size() <= MAX_STOP_SEQUENCES, "at most " + MAX_STOP_SEQUENCES
        + " stop sequences are allowed (got " + stop.size() + "; OpenAI's limit)");
    if (numBeams > 1) {
      validateBeamSearch();
    } else {
      validateWithoutBeams();
    }
  }

  private void validateBeamSearch() {
    String why = " with numBeams=" + numBeams + ": beam search here is Hugging Face's deterministic beam"
        + " search (no beam sampling)";
    require(temperature == 0 || temperature == 1,
        "temperature must be 0 or 1" + why + " (got " + temperature + "); leave it at its default");
    require(topK == 0, "topK must be 0" + why + " (got " + topK + ")");
    require(topP == 1, "topP must be 1.0" + why + " (got " + topP + ")");
    require(minP == 0, "minP must be 0" + why + " (got " + minP + ")");
    require(typicalP == 1, "typicalP must be 1.0" + why + " (got " + typicalP + ")");
    require(seed == null, "a seed has no effect" + why + "; remove it");
    require(maxTokens >= 1, "maxTokens must be >= 1" + why + " (got 0): a search needs a token to rank; for the "
        + "prompt's log-probs alone use score (or echo without beams)");
    require(n <= numBeams, "n (" + n + ") must not exceed numBeams (" + numBeams
        + "): beam search returns at most numBeams hypotheses; raise numBeams or lower n");
  }

  private void validateWithoutBeams() {
    String beamOnly = " only applies to beam search; set numBeams > 1 or leave it at its default";
    require(lengthPenalty == 1.0, "lengthPenalty (" + lengthPenalty + ")" + beamOnly);
    require(!earlyStopping, "earlyStopping" + beamOnly);
    if (temperature == 0) {
      String greedy = " has no effect with temperature 0 (greedy decoding); ";
      require(topK == 0, "topK=" + topK + greedy + "remove it, or set temperature > 0 to sample");
      require(topP == 1, "topP=" + topP + greedy + "remove it, or set temperature > 0 to sample");
      require(minP == 0, "minP=" + minP + greedy + "remove it, or set temperature > 0 to sample");
      require(typicalP == 1, "typicalP=" + typicalP + greedy + "remove it, or set temperature > 0 to sample");
      require(seed == null, "a seed" + greedy + "remove it, or set temperature > 0 to sample");
      require(n == 1, "n=" + n + " with temperature 0 (greedy decoding) would return " + n
          + " identical completions; set temperature > 0 to sample, or numBeams >= n for beam search");
    }
  }

  private static void requirePenalty(String name, double value) {
    require(Double.isFinite(value) && Math.abs(value) <= MAX_ABS_PENALTY, name + " must be in [-"
        + MAX_ABS_PENALTY + ", " + MAX_ABS_PENALTY + "] (got " + value + "; OpenAI's range); use 0 to turn it off");
  }

  private static void require(boolean ok, String message) {
    if (!ok) {
      throw new IllegalArgumentException(message);
    }
  }

  /** Copies (sorted by token id) before checking, as {@link #copyStops}. */
  private static java.util.Map<Integer, Double> copyLogitBias(java.util.Map<Integer, Double> bias) {
    java.util.TreeMap<Integer, Double> copy = new java.util.TreeMap<>();
    for (java.util.Map.Entry<Integer, Double> e : bias.entrySet()) {
      Integer token = e.getKey();
      Double value = e.getValue();
      require(token != null && token >= 0, "logitBias has token id " + token + "; token ids are >= 0");
      require(value != null && Math.abs(value) <= MAX_ABS_LOGIT_BIAS, "logitBias[" + token + "] must be in [-"
          + MAX_ABS_LOGIT_BIAS + ", " + MAX_ABS_LOGIT_BIAS + "] (got " + value + "; OpenAI's range)");
      copy.put(token, value);
    }
    return java.util.Collections.unmodifiableMap(copy);
  }

  /** Copies (deeply) before checking, as {@link #copyStops}. */
  private static List<List<Integer>> copyBadWords(List<List<Integer>> words) {
    List<List<Integer>> copy = new ArrayList<>();
    for (List<Integer> word : words) {
      require(word != null && !word.isEmpty(), "badWordsIds has an empty or null entry; each is a non-empty list of "
          + "token ids");
      List<Integer> w = new ArrayList<>(word);
      for (Integer token : w) {
        require(token != null && token >= 0, "badWordsIds has token id " + token + "; token ids are >= 0");
      }
      copy.add(List.copyOf(w));
    }
    return List.copyOf(copy);
  }

  /** Copies before checking so that a caller's later change cannot slip past validation. */
  private static List<String> copyStops(List<String> stops) {
    List<String> copy = new ArrayList<>(stops);
    for (int i = 0; i < copy.size(); i++) {
      String s = copy.get(i);
      require(s != null && !s.isEmpty(), "stop[" + i + "] is " + (s == null ? "null" : "empty")
          + "; every stop sequence must be a non-empty string");
    }
    return List.copyOf(copy);
  }

  @Override
  public boolean equals(Object o) {
    if (this == o) {
      return true;
    }
    if (!(o instanceof SamplingParams p)) {
      return false;
    }
    return maxTokens == p.maxTokens && Double.compare(temperature, p.temperature) == 0 && topK == p.topK
        && Double.compare(topP, p.topP) == 0 && Double.compare(minP, p.minP) == 0
        && Double.compare(typicalP, p.typicalP) == 0 && Objects.equals(seed, p.seed) && n == p.n
        && numBeams == p.numBeams && Double.compare(lengthPenalty, p.lengthPenalty) == 0
        && earlyStopping == p.earlyStopping && Double.compare(repetitionPenalty, p.repetitionPenalty) == 0
        && Double.compare(presencePenalty, p.presencePenalty) == 0
        && Double.compare(frequencyPenalty, p.frequencyPenalty) == 0
        && noRepeatNgramSize == p.noRepeatNgramSize && minTokens == p.minTokens && stop.equals(p.stop)
        && logitBias.equals(p.logitBias) && badWordsIds.equals(p.badWordsIds)
        && Objects.equals(logprobs, p.logprobs) && echo == p.echo;
  }

  @Override
  public int hashCode() {
    return Objects.hash(maxTokens, temperature, topK, topP, minP, typicalP, seed, n, numBeams, lengthPenalty, earlyStopping,
        repetitionPenalty, presencePenalty, frequencyPenalty, noRepeatNgramSize, minTokens, stop, logitBias, badWordsIds,
        logprobs, echo);
  }

  @Override
  public String toString() {
    return "SamplingParams{maxTokens=" + maxTokens + ", temperature=" + temperature + ", topK=" + topK
        + ", topP=" + topP + ", minP=" + minP + ", typicalP=" + typicalP + ", seed=" + seed + ", n=" + n + ", numBeams=" + numBeams
        + ", lengthPenalty=" + lengthPenalty + ", earlyStopping=" + earlyStopping
        + ", repetitionPenalty=" + repetitionPenalty + ", presencePenalty=" + presencePenalty
        + ", frequencyPenalty=" + frequencyPenalty + ", noRepeatNgramSize=" + noRepeatNgramSize
        + ", minTokens=" + minTokens + ", stop=" + stop + ", logitBias=" + logitBias + ", badWordsIds=" + badWordsIds
        + ", logprobs=" + logprobs + ", echo=" + echo + "}";
  }

  /** Mutable builder; {@link #build()} validates. Not thread-safe. */
  public static final class Builder {
    /** OpenAI's default completion length. */
    private int maxTokens = 16;
    /** 1.0 = sample from the model's distribution unchanged (OpenAI default). */
    private double temperature = 1.0;
    /** 0 = top-k off (OpenAI has none; HF's generate() would default to 50). */
    private int topK = 0;
    /** 1.0 = nucleus filtering off. */
    private double topP = 1.0;
    /** 0 = min-p off. */
    private double minP = 0;
    /** 1.0 = typical sampling off. */
    private double typicalP = 1.0;
    /** null = random seed. */
    private Long seed = null;
    /** One completion per prompt. */
    private int n = 1;
    /** 1 = no beam search. */
    private int numBeams = 1;
    /** HF default: divide by the generated length. */
    private double lengthPenalty = 1.0;
    /** HF default: the heuristic stop. */
    private boolean earlyStopping = false;
    /** 1.0 = no repetition penalty. */
    private double repetitionPenalty = 1.0;
    /** 0 = off. */
    private double presencePenalty = 0;
    /** 0 = off. */
    private double frequencyPenalty = 0;
    /** 0 = off. */
    private int noRepeatNgramSize = 0;
    /** 0 = EOS allowed from the first new token. */
    private int minTokens = 0;
    /** No stop sequences. */
    private List<String> stop = List.of();
    /** No logit bias. */
    private java.util.Map<Integer, Double> logitBias = java.util.Map.of();
    /** No bad words. */
    private List<List<Integer>> badWordsIds = List.of();
    /** null = no log-probs. */
    private Integer logprobs = null;
    /** Completion text only. */
    private boolean echo = false;

    private Builder() {}

    /** See {@link SamplingParams#maxTokens()}; default 16. */
    public Builder maxTokens(int maxTokens) {
      this.maxTokens = maxTokens;
      return this;
    }

    /** See {@link SamplingParams#temperature()}; default 1.0. */
    public Builder temperature(double temperature) {
      this.temperature = temperature;
      return this;
    }

    /** See {@link SamplingParams#topK()}; default 0 (off). */
    public Builder topK(int topK) {
      this.topK = topK;
      return this;
    }

    /** See {@link SamplingParams#topP()}; default 1.0 (off). */
    public Builder topP(double topP) {
      this.topP = topP;
      return this;
    }

    /** See {@link SamplingParams#minP()}; default 0 (off). */
    public Builder minP(double minP) {
      this.minP = minP;
      return this;
    }

    /** See {@link SamplingParams#typicalP()}; default 1.0 (off). */
    public Builder typicalP(double typicalP) {
      this.typicalP = typicalP;
      return this;
    }

    /** See {@link SamplingParams#seed()}; default none (random). */
    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    /** Sets the seed, or clears it with {@code null} (random seed). */
    public Builder seed(Long seed) {
      this.seed = seed;
      return this;
    }

    /** See {@link SamplingParams#n()}; default 1. */
    public Builder n(int n) {
      this.n = n;
      return this;
    }

    /** See {@link SamplingParams#numBeams()}; default 1. */
    public Builder numBeams(int numBeams) {
      this.numBeams = numBeams;
      return this;
    }

    /** See {@link SamplingParams#lengthPenalty()}; default 1.0. */
    public Builder lengthPenalty(double lengthPenalty) {
      this.lengthPenalty = lengthPenalty;
      return this;
    }

    /** See {@link SamplingParams#earlyStopping()}; default false. */
    public Builder earlyStopping(boolean earlyStopping) {
      this.earlyStopping = earlyStopping;
      return this;
    }

    /** See {@link SamplingParams#repetitionPenalty()}; default 1.0 (off). */
    public Builder repetitionPenalty(double repetitionPenalty) {
      this.repetitionPenalty = repetitionPenalty;
      return this;
    }

    /** See {@link SamplingParams#presencePenalty()}; default 0 (off). */
    public Builder presencePenalty(double presencePenalty) {
      this.presencePenalty = presencePenalty;
      return this;
    }

    /** See {@link SamplingParams#frequencyPenalty()}; default 0 (off). */
    public Builder frequencyPenalty(double frequencyPenalty) {
      this.frequencyPenalty = frequencyPenalty;
      return this;
    }

    /** See {@link SamplingParams#noRepeatNgramSize()}; default 0 (off). */
    public Builder noRepeatNgramSize(int noRepeatNgramSize) {
      this.noRepeatNgramSize = noRepeatNgramSize;
      return this;
    }

    /** See {@link SamplingParams#minTokens()}; default 0. */
    public Builder minTokens(int minTokens) {
      this.minTokens = minTokens;
      return this;
    }

    /** See {@link SamplingParams#stop()}; default none. The list is copied by {@link #build()}. */
    public Builder stop(List<String> stop) {
      this.stop = Objects.requireNonNull(stop, "stop (use an empty list for none)");
      return this;
    }

    /** See {@link SamplingParams#logitBias()}; default none. The map is copied by {@link #build()}. */
    public Builder logitBias(java.util.Map<Integer, Double> logitBias) {
      this.logitBias = Objects.requireNonNull(logitBias, "logitBias (use an empty map for none)");
      return this;
    }

    /** See {@link SamplingParams#badWordsIds()}; default none. The lists are copied by {@link #build()}. */
    public Builder badWordsIds(List<List<Integer>> badWordsIds) {
      this.badWordsIds = Objects.requireNonNull(badWordsIds, "badWordsIds (use an empty list for none)");
      return this;
    }

    /** See {@link SamplingParams#logprobs()}; {@code null} (the default) = off. */
    public Builder logprobs(Integer logprobs) {
      this.logprobs = logprobs;
      return this;
    }

    /** See {@link SamplingParams#echo()}; default false. */
    public Builder echo(boolean echo) {
      this.echo = echo;
      return this;
    }

    /**
     * Validates and builds.
     *
     * @throws IllegalArgumentException naming the first invalid field or combination
     */
    public SamplingParams build() {
      return new SamplingParams(this);
    }
  }
}
