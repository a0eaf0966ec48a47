package io.github.optjava.checkpoint;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The mapping from metaseq's OPT weight names to Hugging Face's, and how each weight's model-parallel slices
 * form the whole tensor. Sources: transformers' {@code convert_opt_original_pytorch_checkpoint_to_pytorch.py}
 * (renames, dropped keys, qkv split in K, V, Q order) and metaseq's {@code stitch_fsdp_ckpt.py}
 * ({@code reshard_megatron_parts}: which weights are column-, row- or vocab-parallel, and that each part's
 * fused qkv is its own [K; V; Q]). See docs/metaseq.md.
 */
final class MetaseqLayout {
  private MetaseqLayout() {}

  /** How the parts' slices of one weight form the full tensor (Megatron's parallel layers). */
  enum Merge {
    /** Every part holds the whole tensor (layer norms, position table, row-parallel biases): part 0's. */
    REPLICATED,
    /** Column-parallel weights and biases, the vocab-parallel embedding: concatenated along dim 0. */
    ROWS,
    /** Row-parallel weights (out_proj, fc2): concatenated along dim 1. */
    COLUMNS,
    /** The first third of each part's fused qkv_proj rows, concatenated along dim 0. */
    KEY,
    /** The second third of each part's qkv_proj rows. */
    VALUE,
    /** The last third of each part's qkv_proj rows. */
    QUERY;

    /** Which third of a fused qkv_proj this takes, or -1. */
    int third() {
      return switch (this) {
        case KEY -> 0;
        case VALUE -> 1;
        case QUERY -> 2;
        default -> -1;
      };
    }
  }

  /**
   * One output tensor.
   *
   * @param name   its Hugging Face name ({@code model.decoder....})
   * @param source the metaseq weight it comes from, as stored in the parts
   * @param merge  how the parts' slices of {@code source} form it
   */
  record Planned(String name, String source, Merge merge) {}

  static final String PREFIX = "model.";
  static final String EMBED_TOKENS = "decoder.embed_tokens.weight";
  static final String OUTPUT_PROJECTION = "decoder.output_projection.weight";
  private static final String VERSION = "decoder.version";

  private static final Pattern LAYER = Pattern.compile("decoder\\.layers\\.(\\d{1,6})\\.(.+)");
  private static final Map<String, String> TOP = Map.of(
      EMBED_TOKENS, EMBED_TOKENS,
      "decoder.embed_positions.weight", "decoder.embed_positions.weight",
      "decoder.project_in_dim.weight", "decoder.project_in.weight",
      "decoder.project_out_dim.weight", "decoder.project_out.weight",
      "decoder.layer_norm.weight", "decoder.final_layer_norm.weight",
      "decoder.layer_norm.bias", "decoder.final_layer_norm.bias");

  /** The 16 tensors every Hugging Face OPT layer has, in the order they are written. */
  static final List<String> LAYER_TENSORS = List.of(
      "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
      "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
      "self_attn_layer_norm.weight", "self_attn_layer_norm.bias", "fc1.weight", "fc1.bias", "fc2.weight",
      "fc2.bias", "final_layer_norm.weight", "final_layer_norm.bias");

  /**
   * Plans the output tensors from the names stored in a part, in Hugging Face's model order.
   *
   * @throws CheckpointException for FSDP-flattened parts, names that are not an OPT decoder's, or layers
   *     that miss tensors
   */
  static List<Planned> plan(Collection<String> storedNames) {
    List<Planned> out = new ArrayList<>();
    List<String> unknown = new ArrayList<>();
    for (String stored : storedNames) {
      String n = normalize(stored);
      if (n.contains("flat_param")) {
        throw new CheckpointException("the parts hold FSDP-flattened parameters (" + Untrusted.quote(stored)
            + "), which are one vector per wrapped module rather than named weights: "
            + MetaseqParts.consolidateHint());
      }
      if (n.equals(VERSION) || n.equals(OUTPUT_PROJECTION)) {
        continue; // a fairseq version marker; the output projection is tied to embed_tokens (checked apart)
      }
      String top = TOP.get(n);
      Matcher m = LAYER.matcher(n);
      if (top != null) {
        out.add(new Planned(PREFIX + top, stored, n.equals(EMBED_TOKENS) ? Merge.ROWS : Merge.REPLICATED));
      } else if (m.matches() && planLayer(m.group(1), m.group(2), stored, out)) {
        continue;
      } else {
        unknown.add(stored);
      }
    }
    if (!unknown.isEmpty()) {
      throw new CheckpointException("the parts hold " + unknown.size() + " weight(s) that are not part of an "
          + "OPT decoder as metaseq stores it: " + list(unknown) + "; expected decoder.embed_tokens, "
          + "embed_positions, layers.N.{self_attn.qkv_proj, self_attn.out_proj, self_attn_layer_norm, fc1, fc2, "
          + "final_layer_norm}, layer_norm, project_in_dim/project_out_dim");
    }
    out.sort(Comparator.comparing(MetaseqLayout::orderKey));
    checkLayersComplete(out);
    return out;
  }

  /** Adds a layer weight's outputs; false if the suffix is not an OPT layer weight. */
  private static boolean planLayer(String layer, String suffix, String stored, List<Planned> out) {
    String base = PREFIX + "decoder.layers." + Integer.parseInt(layer) + ".";
    String kind = suffix.endsWith(".weight") ? "weight" : suffix.endsWith(".bias") ? "bias" : null;
    if (kind == null) {
      return false;
    }
    String module = suffix.substring(0, suffix.length() - kind.length() - 1);
    boolean weight = kind.equals("weight");
    switch (module) {
      case "self_attn.qkv_proj" -> {
        out.add(new Planned(base + "self_attn.k_proj." + kind, stored, Merge.KEY));
        out.add(new Planned(base + "self_attn.v_proj." + kind, stored, Merge.VALUE));
        out.add(new Planned(base + "self_attn.q_proj." + kind, stored, Merge.QUERY));
      }
      case "self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "fc1" ->
          out.add(new Planned(base + suffix, stored, Merge.ROWS));
      case "self_attn.out_proj", "fc2" ->
          out.add(new Planned(base + suffix, stored, weight ? Merge.COLUMNS : Merge.REPLICATED));
      case "self_attn_layer_norm", "final_layer_norm" -> out.add(new Planned(base + suffix, stored, Merge.REPLICATED));
      default -> {
        return false;
      }
    }
    return true;
  }

  /**
   * The stored name without FSDP's wrapper segments, which some consolidation paths leave in
   * ({@code decoder.layers.0._fsdp_wrapped_module._fpw_module.fc1.weight}).
   */
  static String normalize(String stored) {
    return stored.replace("_fsdp_wrapped_module.", "").replace("_fpw_module.", "");
  }

  /** Layers 0..L-1 must each have all 16 tensors, whether qkv is fused or not. */
  private static void checkLayersComplete(List<Planned> planned) {
    TreeMap<Integer, List<String>> layers = new TreeMap<>();
    for (Planned p : planned) {
      Matcher m = LAYER.matcher(p.name().substring(PREFIX.length()));
      if (m.matches()) {
        layers.computeIfAbsent(Integer.parseInt(m.group(1)), k -> new ArrayList<>()).add(m.group(2));
      }
    }
    if (layers.isEmpty()) {
      throw new CheckpointException("the parts hold no decoder.layers.N weights: not an OPT checkpoint");
    }
    List<String> missing = new ArrayList<>();
    for (int l = 0; l <= layers.lastKey(); l++) {
      List<String> have = layers.getOrDefault(l, List.of());
      for (String t : LAYER_TENSORS) {
        if (!have.contains(t)) {
          missing.add("decoder.layers." + l + "." + t);
        }
      }
      if (have.size() != new HashSet<>(have).size()) {
        throw new CheckpointException("layer " + l + " holds a weight twice (fused qkv_proj and separate "
            + "k/q/v_proj?): a corrupt or mixed checkpoint");
      }
    }
    if (!missing.isEmpty()) {
      throw new CheckpointException("the parts miss " + missing.size() + " layer weight(s) (Hugging Face "
          + "names): " + list(missing) + "; the checkpoint is incomplete");
    }
  }

  /** Embeddings and projections, then layers in order, then the final layer norm. */
  private static String orderKey(Planned p) {
    String n = p.name().substring(PREFIX.length());
    Matcher m = LAYER.matcher(n);
    if (m.matches()) {
      return String.format("1 %08d %02d", Integer.parseInt(m.group(1)), LAYER_TENSORS.indexOf(m.group(2)));
    }
    return (n.startsWith("decoder.final_layer_norm") ? "2 " : "0 ") + n;
  }

  static String list(List<String> names) {
    List<String> quoted = new ArrayList<>();
    for (String n : names.subList(0, Math.min(8, names.size()))) {
      quoted.add(Untrusted.quote(n));
    }
    return String.join(", ", quoted) + (names.size() > 8 ? " and " + (names.size() - 8) + " more" : "");
  }
}
