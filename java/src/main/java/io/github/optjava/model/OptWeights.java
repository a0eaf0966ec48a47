package io.github.optjava.model;

import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import io.github.optjava.checkpoint.Untrusted;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The weights of an OPT model, checked against its {@link OptConfig} and addressed by canonical names.
 *
 * <p>Canonical names are those of Hugging Face's {@code OPTForCausalLM} without the {@code model.} prefix:
 * {@code decoder.embed_tokens.weight}, {@code decoder.layers.3.fc1.weight}, {@code lm_head.weight}, ...
 * ({@link #expectedShapes} lists them all). Released checkpoints store them in one of two styles:
 * {@code model.decoder.*} (opt-125m, 1.3b, 2.7b, 66b) or bare {@code decoder.*} (350m, 6.7b, 13b, 30b).
 * The style is detected from the token embedding and must be used consistently.
 *
 * <p>{@code lm_head.weight} is tied to {@code decoder.embed_tokens.weight} when the checkpoint does not
 * store it (as Hugging Face does; OPT always ties them). When stored, the stored copy is used.
 *
 * <p>Policy for tensors the configuration does not describe:
 * <ul>
 *   <li>a {@code decoder.*} or {@code lm_head.*} tensor that is not expected (an extra layer, a final
 *       LayerNorm in a post-LN model, projections when word_embed_proj_dim equals hidden_size, the other
 *       key style) means config.json and weights disagree: an error;</li>
 *   <li>{@code decoder.version} (a fairseq leftover Hugging Face also ignores) and anything outside
 *       {@code decoder.}/{@code lm_head.} are ignored and listed by {@link #ignoredTensors()}.</li>
 * </ul>
 * This object does not own the checkpoint: the caller closes it.
 */
public final class OptWeights {

  public static final String EMBED_TOKENS = "decoder.embed_tokens.weight";
  public static final String EMBED_POSITIONS = "decoder.embed_positions.weight";
  public static final String PROJECT_IN = "decoder.project_in.weight";
  public static final String PROJECT_OUT = "decoder.project_out.weight";
  public static final String FINAL_LAYER_NORM_WEIGHT = "decoder.final_layer_norm.weight";
  public static final String FINAL_LAYER_NORM_BIAS = "decoder.final_layer_norm.bias";
  public static final String LM_HEAD = "lm_head.weight";

  private static final String MODEL_PREFIX = "model.";
  private static final String FAIRSEQ_VERSION = "decoder.version";
  private static final int LISTED = 8;

  private final OptConfig config;
  private final Checkpoint checkpoint;
  private final String prefix;
  private final Map<String, String> storedNames;
  private final List<String> names;
  private final Map<String, long[]> shapes;
  private final boolean lmHeadTied;
  private final List<String> ignored;

  /**
   * Checks a checkpoint against a configuration.
   *
   * @throws CheckpointException if a tensor is missing, has a shape the configuration does not imply, or
   *     the checkpoint holds model tensors the configuration does not describe (see the class comment)
   */
  public OptWeights(OptConfig config, Checkpoint checkpoint) {
    this.config = config;
    this.checkpoint = checkpoint;
    this.prefix = detectPrefix(checkpoint);
    long layerTensors = 16L * config.numHiddenLayers();
    if (checkpoint.tensors().size() < layerTensors) { // before 16 names per layer of a config that may say 2^31 - 1
      throw new CheckpointException(checkpoint + ": config.json says num_hidden_layers " + config.numHiddenLayers()
          + " (" + layerTensors + " layer tensors), but the checkpoint holds " + checkpoint.tensors().size()
          + " tensors in all; the config and the weights belong to different models");
    }
    this.shapes = expectedShapes(config);
    Map<String, TensorInfo> infos = new HashMap<>();
    for (TensorInfo t : checkpoint.tensors()) {
      infos.put(t.name(), t);
    }
    Map<String, String> stored = new LinkedHashMap<>();
    List<String> missing = new ArrayList<>();
    for (Map.Entry<String, long[]> e : shapes.entrySet()) {
      String canonical = e.getKey();
      String name = canonical.equals(LM_HEAD) ? LM_HEAD : prefix + canonical;
      TensorInfo info = infos.get(name);
      if (info != null) {
        checkShape(checkpoint, canonical, info, e.getValue());
        stored.put(canonical, name);
      } else if (!canonical.equals(LM_HEAD)) {
        missing.add(name);
      }
    }
    if (!missing.isEmpty()) {
      throw new CheckpointException(checkpoint + ": missing " + missing.size() + " tensor(s) config.json implies: "
          + list(missing) + "; the weights are incomplete or belong to a different configuration");
    }
    this.lmHeadTied = !stored.containsKey(LM_HEAD);
    if (lmHeadTied) {
      stored.put(LM_HEAD, stored.get(EMBED_TOKENS));
    }
    this.storedNames = Collections.unmodifiableMap(stored);
    this.names = List.copyOf(stored.keySet());
    this.ignored = List.copyOf(checkExtras(checkpoint, prefix, new HashSet<>(stored.values())));
  }

  /** The canonical name of a per-layer tensor, for example {@code layer(3, "fc1.weight")}. */
  public static String layer(int layer, String suffix) {
    return "decoder.layers." + layer + "." + suffix;
  }

  /**
   * Every tensor a model of this configuration has, canonical name to shape, in model order
   * (embeddings, projections, layers, final LayerNorm, lm_head).
   */
  public static Map<String, long[]> expectedShapes(OptConfig c) {
    long h = c.hiddenSize();
    long ffn = c.ffnDim();
    long vocab = c.vocabSize();
    long proj = c.wordEmbedProjDim();
    Map<String, long[]> m = new LinkedHashMap<>();
    m.put(EMBED_TOKENS, new long[] {vocab, proj});
    m.put(EMBED_POSITIONS, new long[] {c.positionTableRows(), h});
    if (c.hasProjections()) {
      m.put(PROJECT_IN, new long[] {h, proj});
      m.put(PROJECT_OUT, new long[] {proj, h});
    }
    for (int l = 0; l < c.numHiddenLayers(); l++) {
      for (String p : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        m.put(layer(l, "self_attn." + p + ".weight"), new long[] {h, h});
        m.put(layer(l, "self_attn." + p + ".bias"), new long[] {h});
      }
      m.put(layer(l, "self_attn_layer_norm.weight"), new long[] {h});
      m.put(layer(l, "self_attn_layer_norm.bias"), new long[] {h});
      m.put(layer(l, "fc1.weight"), new long[] {ffn, h});
      m.put(layer(l, "fc1.bias"), new long[] {ffn});
      m.put(layer(l, "fc2.weight"), new long[] {h, ffn});
      m.put(layer(l, "fc2.bias"), new long[] {h});
      m.put(layer(l, "final_layer_norm.weight"), new long[] {h});
      m.put(layer(l, "final_layer_norm.bias"), new long[] {h});
    }
    if (c.hasFinalLayerNorm()) {
      m.put(FINAL_LAYER_NORM_WEIGHT, new long[] {h});
      m.put(FINAL_LAYER_NORM_BIAS, new long[] {h});
    }
    m.put(LM_HEAD, new long[] {vocab, proj});
    return m;
  }

  private static String detectPrefix(Checkpoint checkpoint) {
    boolean prefixed = checkpoint.contains(MODEL_PREFIX + EMBED_TOKENS);
    boolean bare = checkpoint.contains(EMBED_TOKENS);
    if (prefixed && bare) {
      throw new CheckpointException(checkpoint + ": holds both " + MODEL_PREFIX + EMBED_TOKENS + " and "
          + EMBED_TOKENS + "; a checkpoint must use one key style");
    }
    if (!prefixed && !bare) {
      List<String> some = new ArrayList<>();
      for (TensorInfo t : checkpoint.tensors()) {
        some.add(t.name());
      }
      throw new CheckpointException(checkpoint + ": no " + EMBED_TOKENS + " (with or without the '" + MODEL_PREFIX
          + "' prefix): not an OPT checkpoint; it holds " + list(some));
    }
    return prefixed ? MODEL_PREFIX : "";
  }

  private static void checkShape(Checkpoint checkpoint, String canonical, TensorInfo info, long[] expected) {
    long[] found = info.shape();
    String name = info.name();
    if (!Arrays.equals(found, expected)) {
      throw new CheckpointException(checkpoint + ": tensor " + name + " has shape " + Arrays.toString(found)
          + " but config.json implies " + Arrays.toString(expected)
          + (name.equals(canonical) ? "" : " for " + canonical) + ": the weights belong to a different configuration");
    }
  }

  /** Applies the policy for tensors nothing maps to; returns the ignored ones. */
  private static List<String> checkExtras(Checkpoint checkpoint, String prefix, Set<String> used) {
    List<String> ignored = new ArrayList<>();
    List<String> unexpected = new ArrayList<>();
    for (TensorInfo t : checkpoint.tensors()) {
      String name = t.name();
      if (used.contains(name)) {
        continue;
      }
      String bare = name.startsWith(MODEL_PREFIX) ? name.substring(MODEL_PREFIX.length()) : name;
      if (bare.equals(FAIRSEQ_VERSION) || !(bare.startsWith("decoder.") || bare.startsWith("lm_head."))) {
        ignored.add(name);
      } else {
        unexpected.add(name);
      }
    }
    if (!unexpected.isEmpty()) {
      throw new CheckpointException(checkpoint + ": " + unexpected.size() + " tensor(s) config.json does not "
          + "describe: " + list(unexpected) + " (key style '" + prefix + "decoder.*'); check num_hidden_layers, "
          + "word_embed_proj_dim, do_layer_norm_before and _remove_final_layer_norm against the weights");
    }
    return ignored;
  }

  /** The first {@link #LISTED} names, each cut and without control characters (a checkpoint's names may be hostile). */
  private static String list(List<String> names) {
    List<String> shown = names.stream().limit(LISTED).map(Untrusted::shown).toList();
    return String.join(", ", shown) + (names.size() <= LISTED ? "" : " and " + (names.size() - LISTED) + " more");
  }


  /**
   * The tensor of a canonical name (for {@link #LM_HEAD} possibly the token embedding, see
   * {@link #lmHeadTied()}). Its shape is the one {@link #expectedShapes} gives; its dtype is as stored.
   *
   * @throws IllegalArgumentException if the name is not a tensor of this model
   */
  public Tensor get(String canonicalName) {
    return checkpoint.tensor(storedName(canonicalName));
  }

  /** The name a canonical tensor has in the checkpoint (for example with the {@code model.} prefix). */
  public String storedName(String canonicalName) {
    String stored = storedNames.get(canonicalName);
    if (stored == null) {
      throw new IllegalArgumentException("not a tensor of this model: " + canonicalName
          + " (canonical names look like " + layer(0, "fc1.weight") + ")");
    }
    return stored;
  }

  /** The shape of a canonical tensor. */
  public long[] shape(String canonicalName) {
    storedName(canonicalName); // same check and message as get()
    return shapes.get(canonicalName).clone();
  }

  /** Every canonical name, in model order. */
  public List<String> names() {
    return names;
  }

  /** Whether {@code lm_head.weight} is absent from the checkpoint and served by the token embedding. */
  public boolean lmHeadTied() {
    return lmHeadTied;
  }

  /** The key style: {@code "model."} or {@code ""}. */
  public String keyPrefix() {
    return prefix;
  }

  /** Checkpoint tensors that were ignored (see the class comment), by stored name. */
  public List<String> ignoredTensors() {
    return ignored;
  }

  public OptConfig config() {
    return config;
  }

  public Checkpoint checkpoint() {
    return checkpoint;
  }
}
