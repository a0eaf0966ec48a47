package io.github.optjava.model;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The configurations of the released OPT sizes, for random-weight models of real shapes (benchmarks,
 * memory planning, GPU parity runs) without downloading a checkpoint. The numbers are those of the
 * {@code config.json} files of {@code facebook/opt-*} on the Hugging Face Hub (175b: metaseq's release,
 * same layout); each preset is built through {@link OptConfig#fromJson} from the fields such a file has,
 * so it is validated like a downloaded one.
 */
public final class OptShapes {
  /** size → {layers, hidden, heads, ffn, word_embed_proj_dim, pre-LN (1) or post-LN (0)}. */
  private static final Map<String, int[]> SIZES = new LinkedHashMap<>();

  static {
    SIZES.put("125m", new int[] {12, 768, 12, 3072, 768, 1});
    SIZES.put("350m", new int[] {24, 1024, 16, 4096, 512, 0}); // post-LN, projects 512 ↔ 1024
    SIZES.put("1.3b", new int[] {24, 2048, 32, 8192, 2048, 1});
    SIZES.put("2.7b", new int[] {32, 2560, 32, 10240, 2560, 1}); // head_dim 80
    SIZES.put("6.7b", new int[] {32, 4096, 32, 16384, 4096, 1});
    SIZES.put("13b", new int[] {40, 5120, 40, 20480, 5120, 1});
    SIZES.put("30b", new int[] {48, 7168, 56, 28672, 7168, 1});
    SIZES.put("66b", new int[] {64, 9216, 72, 36864, 9216, 1});
    SIZES.put("175b", new int[] {96, 12288, 96, 49152, 12288, 1});
  }

  private OptShapes() {}

  /** Whether {@link #of} knows {@code size} ({@code 1.3b}, {@code opt-1.3b}, {@code facebook/opt-1.3b}, any case). */
  public static boolean isKnown(String size) {
    return SIZES.containsKey(key(size));
  }

  private static String key(String size) {
    String key = size.toLowerCase(Locale.ROOT);
    key = key.startsWith("facebook/") ? key.substring("facebook/".length()) : key;
    return key.startsWith("opt-") ? key.substring("opt-".length()) : key;
  }

  /** The size names, smallest first: {@code 125m, 350m, 1.3b, 2.7b, 6.7b, 13b, 30b, 66b, 175b}. */
  public static List<String> names() {
    return List.copyOf(SIZES.keySet());
  }

  /**
   * The configuration of an OPT size: {@code "125m"}, also written {@code "opt-125m"} or
   * {@code "facebook/opt-125m"} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the known sizes if {@code size} is not one of them
   */
  public static OptConfig of(String size) {
    int[] s = SIZES.get(key(size));
    if (s == null) {
      throw new IllegalArgumentException("unknown OPT size '" + size + "': choose one of "
          + String.join(", ", names()));
    }
    return OptConfig.fromJson(configJson(s[0], s[1], s[2], s[3], s[4], s[5] == 1));
  }

  /** A config.json as Hugging Face ships it for OPT (the fields OptConfig reads; training-only fields left out). */
  private static String configJson(int layers, int hidden, int heads, int ffn, int proj, boolean preLn) {
    return "{\"model_type\": \"opt\", \"architectures\": [\"OPTForCausalLM\"],"
        + " \"vocab_size\": 50272, \"max_position_embeddings\": 2048,"
        + " \"num_hidden_layers\": " + layers + ", \"hidden_size\": " + hidden
        + ", \"num_attention_heads\": " + heads + ", \"ffn_dim\": " + ffn
        + ", \"word_embed_proj_dim\": " + proj + ", \"do_layer_norm_before\": " + preLn
        + ", \"activation_function\": \"relu\", \"enable_bias\": true,"
        + " \"layer_norm_elementwise_affine\": true, \"_remove_final_layer_norm\": false,"
        + " \"bos_token_id\": 2, \"eos_token_id\": 2, \"pad_token_id\": 1, \"torch_dtype\": \"float16\"}";
  }

  /** Parameters of a configuration (lm_head tied, so counted once), as model cards count them. */
  public static long parameterCount(OptConfig config) {
    long n = 0;
    for (Map.Entry<String, long[]> e : OptWeights.expectedShapes(config).entrySet()) {
      if (!e.getKey().equals(OptWeights.LM_HEAD)) {
        long numel = 1;
        for (long d : e.getValue()) {
          numel *= d;
        }
        n += numel;
      }
    }
    return n;
  }
}
