package io.github.optjava.checkpoint;

import java.util.Arrays;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeMap;

/**
 * The Hugging Face {@code config.json} of a converted metaseq checkpoint. Sizes come from the merged weight
 * shapes; what shapes cannot say comes from the caller (heads, post-LN) or from OPT's published values.
 */
final class MetaseqConfig {
  private MetaseqConfig() {}

  /**
   * Attention heads of the released OPT sizes by hidden size (metaseq's {@code opt_job_constants.py}, the
   * facebook/opt-* configs); heads cannot be read from weight shapes.
   */
  private static final Map<Long, Integer> KNOWN_HEADS = Map.of(768L, 12, 1024L, 16, 2048L, 32, 2560L, 32,
      4096L, 32, 5120L, 40, 7168L, 56, 9216L, 72, 12288L, 96);

  /** Rows before position 0 in the learned position table (fairseq's padding offset). */
  static final int POSITION_OFFSET = 2;

  /**
   * Builds config.json's fields (sorted by name, as Hugging Face writes them).
   *
   * @param shapes        merged shape of every output tensor, by Hugging Face name
   * @param parts         number of model-parallel parts (heads must split evenly over them)
   * @param numHeads      heads given by the user, if any
   * @param postLayerNorm whether the user says the model is post-LN (opt-350m)
   * @param dtype         the dtype the weights are written in
   */
  static Map<String, Object> infer(Map<String, long[]> shapes, int parts, OptionalInt numHeads,
      boolean postLayerNorm, DType dtype) {
    long[] embed = shape(shapes, "decoder.embed_tokens.weight");
    long[] positions = shape(shapes, "decoder.embed_positions.weight");
    long[] fc1 = shape(shapes, "decoder.layers.0.fc1.weight");
    long vocab = embed[0];
    long proj = embed[1];
    long hidden = positions[1];
    if (positions[0] <= POSITION_OFFSET) {
      throw new CheckpointException("decoder.embed_positions.weight has " + positions[0] + " rows; an OPT "
          + "position table has max_positions + " + POSITION_OFFSET + " rows");
    }
    long[] projectIn = shapes.get(MetaseqLayout.PREFIX + "decoder.project_in.weight");
    if (projectIn != null && !Arrays.equals(projectIn, new long[] {hidden, proj})) {
      throw new CheckpointException("decoder.project_in_dim.weight has shape " + Arrays.toString(projectIn)
          + " but the embeddings imply [" + hidden + ", " + proj + "]");
    }
    if (projectIn == null && proj != hidden) {
      throw new CheckpointException("the token embedding is " + proj + " wide but the hidden size is " + hidden
          + ", and there is no decoder.project_in_dim.weight to project between them");
    }
    int layers = 0;
    while (shapes.containsKey(MetaseqLayout.PREFIX + "decoder.layers." + layers + ".fc1.weight")) {
      layers++;
    }
    int heads = heads(hidden, parts, numHeads);

    Map<String, Object> c = new TreeMap<>();
    c.put("_remove_final_layer_norm", false);
    c.put("activation_dropout", 0.0);
    c.put("activation_function", "relu");
    c.put("architectures", new String[] {"OPTForCausalLM"});
    c.put("attention_dropout", 0.0);
    c.put("bos_token_id", 2);
    c.put("do_layer_norm_before", preLayerNorm(shapes, postLayerNorm));
    c.put("dropout", 0.1);
    c.put("enable_bias", true);
    c.put("eos_token_id", 2);
    c.put("ffn_dim", fc1[0]);
    c.put("hidden_size", hidden);
    c.put("init_std", 0.02);
    c.put("layer_norm_elementwise_affine", true);
    c.put("layerdrop", 0.0);
    c.put("max_position_embeddings", positions[0] - POSITION_OFFSET);
    c.put("model_type", "opt");
    c.put("num_attention_heads", heads);
    c.put("num_hidden_layers", layers);
    c.put("pad_token_id", 1);
    c.put("prefix", "</s>");
    c.put("torch_dtype", switch (dtype) {
      case F16 -> "float16";
      case BF16 -> "bfloat16";
      case F32 -> "float32";
    });
    c.put("use_cache", true);
    c.put("vocab_size", vocab);
    c.put("word_embed_proj_dim", proj);
    return c;
  }

  /**
   * metaseq creates the final {@code decoder.layer_norm} only for pre-LN models, so its presence decides
   * pre-LN; its absence fits a post-LN model (opt-350m), which the user has to confirm.
   */
  private static boolean preLayerNorm(Map<String, long[]> shapes, boolean postLayerNorm) {
    boolean finalNorm = shapes.containsKey(MetaseqLayout.PREFIX + "decoder.final_layer_norm.weight");
    if (finalNorm && postLayerNorm) {
      throw new CheckpointException("--post-layer-norm was given, but the checkpoint has a final "
          + "decoder.layer_norm, which metaseq creates only for pre-LN models: drop --post-layer-norm");
    }
    if (!finalNorm && !postLayerNorm) {
      throw new CheckpointException("the checkpoint has no final decoder.layer_norm, which every pre-LN OPT "
          + "has: it looks like a post-LN model such as opt-350m; pass --post-layer-norm if it is one");
    }
    return finalNorm;
  }

  private static int heads(long hidden, int parts, OptionalInt numHeads) {
    Integer heads = numHeads.isPresent() ? Integer.valueOf(numHeads.getAsInt()) : KNOWN_HEADS.get(hidden);
    if (heads == null) {
      throw new CheckpointException("hidden size " + hidden + " is not one of the released OPT sizes, and "
          + "the number of attention heads cannot be read from the weights: pass --num-heads N (the model's "
          + "decoder_attention_heads)");
    }
    if (heads <= 0 || hidden % heads != 0) {
      throw new CheckpointException(heads + " attention heads do not divide the hidden size " + hidden
          + ": check --num-heads");
    }
    if (heads % parts != 0) {
      throw new CheckpointException(heads + " attention heads cannot be split over " + parts + " model-parallel "
          + "parts (metaseq gives each part whole heads): check --num-heads");
    }
    return heads;
  }

  private static long[] shape(Map<String, long[]> shapes, String name) {
    long[] s = shapes.get(MetaseqLayout.PREFIX + name);
    if (s == null || s.length != 2) {
      throw new CheckpointException("the checkpoint has no 2-D " + name + ": not an OPT checkpoint");
    }
    return s;
  }
}
