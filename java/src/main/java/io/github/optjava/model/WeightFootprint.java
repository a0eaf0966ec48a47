package io.github.optjava.model;

import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.parallel.TpGroup;
import java.util.Arrays;
import java.util.function.Function;

/** How much a part of the model holds, asked of the backend before {@link OptModel} loads anything. */
public final class WeightFootprint {
  private WeightFootprint() {}

  /**
   * For parts that share one memory (CPU pipeline stages and tensor-parallel ranks share the Java heap): asks
   * {@code ops} (the first part's) for room for all {@code stages × tp} parts at once, before any loads; each part's
   * own check would let the first ones load and then refuse a later one, naming too small a heap.
   */
  public static void requireRoomForAllParts(OptConfig config, OptWeights w, Ops ops, DType weightDtype, int stages,
      int tp) {
    long linear = 0;
    long other = 0;
    for (int s = 0; s < stages; s++) {
      long[] part = weightElements(config, w, OptModel.Stage.of(s, stages, config), tp);
      linear += part[0] * tp;
      other += part[1] * tp;
    }
    ops.requireRoomForWeights("the weights of an OPT of " + config.numHiddenLayers() + " layers, hidden "
        + config.hiddenSize() + " (" + stages + " pipeline stage(s) × " + tp + " tensor-parallel rank(s), one heap)",
        linear, other, elementBytes(w, weightDtype, 0));
  }

  private static int elementBytes(OptWeights w, DType weightDtype, int layer) {
    return weightDtype != null ? weightDtype.bytes() : storedDtype(w, OptWeights.layer(layer, "fc1.weight")).bytes();
  }

  /**
   * Asks the backend whether this part's weights fit ({@link Ops#requireRoomForWeights}) before any is loaded:
   * the elements of the tensors the constructor uploads, counted from their shapes (a tensor-parallel rank holds
   * 1/world of the sharded ones).
   */
  static void requireRoom(OptConfig config, OptWeights w, Ops ops, DType weightDtype, TpGroup tp,
      OptModel.Stage stage) {
    long[] elements = weightElements(config, w, stage, tp.worldSize());
    int bytes = elementBytes(w, weightDtype, stage.firstLayer());
    int layers = config.numHiddenLayers();
    String what = "the weights of " + (stage.count() > 1 ? "layers " + stage.firstLayer() + "-"
        + (stage.endLayer() - 1) + " of " : "") + "an OPT of " + layers + " layers, hidden " + config.hiddenSize()
        + (tp.worldSize() > 1 ? " (tensor-parallel rank " + tp.rank() + " of " + tp.worldSize() + ")" : "");
    ops.requireRoomForWeights(what, elements[0], elements[1], bytes);
  }

  /** The dtype a tensor is stored in, from the checkpoint's index (without making the tensor). */
  private static DType storedDtype(OptWeights w, String canonicalName) {
    String stored = w.storedName(canonicalName);
    return w.checkpoint().tensors().stream().filter(t -> t.name().equals(stored)).findFirst().orElseThrow().dtype();
  }

  /**
   * {Linear-weight elements, all other elements} that this part's constructor uploads, from the shapes alone (a
   * generated checkpoint would make each tensor it is asked for).
   */
  static long[] weightElements(OptConfig config, OptWeights w, OptModel.Stage stage, int world) {
    boolean tied = w.lmHeadTied();
    Function<String, Long> size = name -> Arrays.stream(w.shape(name)).reduce(1, (a, b) -> a * b);
    boolean first = stage.isFirst();
    boolean last = stage.isLast();
    long other = 0;
    if (first || (last && tied)) {
      other += size.apply(OptWeights.EMBED_TOKENS);
    }
    if (first) {
      other += size.apply(OptWeights.EMBED_POSITIONS);
    }
    if (config.hasProjections()) {
      other += (first ? size.apply(OptWeights.PROJECT_IN) : 0) + (last ? size.apply(OptWeights.PROJECT_OUT) : 0);
    }
    if (last && config.hasFinalLayerNorm()) {
      other += size.apply(OptWeights.FINAL_LAYER_NORM_WEIGHT) + size.apply(OptWeights.FINAL_LAYER_NORM_BIAS);
    }
    if (last && !tied) {
      other += size.apply(OptWeights.LM_HEAD);
    }
    Function<String, Long> p = suffix -> size.apply(OptWeights.layer(stage.firstLayer(), suffix)); // alike layers
    long linear = (p.apply("self_attn.q_proj.weight") + p.apply("self_attn.k_proj.weight")
        + p.apply("self_attn.v_proj.weight") + p.apply("self_attn.out_proj.weight") + p.apply("fc1.weight")
        + p.apply("fc2.weight")) / world;
    long perLayer = (p.apply("self_attn.q_proj.bias") + p.apply("self_attn.k_proj.bias")
        + p.apply("self_attn.v_proj.bias") + p.apply("fc1.bias")) / world // column-parallel: sliced
        + p.apply("self_attn.out_proj.bias") + p.apply("fc2.bias") // row-parallel: whole on every rank
        + p.apply("self_attn_layer_norm.weight") + p.apply("self_attn_layer_norm.bias")
        + p.apply("final_layer_norm.weight") + p.apply("final_layer_norm.bias");
    long layers = stage.endLayer() - stage.firstLayer();
    return new long[] {layers * linear, other + layers * perLayer};
  }
}
