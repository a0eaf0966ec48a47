package io.github.optjava.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The architecture of an OPT model, as read from a Hugging Face {@code config.json} ({@code OPTConfig}).
 *
 * <p>The six size fields ({@code vocab_size}, {@code hidden_size}, {@code num_hidden_layers},
 * {@code num_attention_heads}, {@code ffn_dim}, {@code max_position_embeddings}) are required: Hugging Face
 * would default them to opt-125m's values, which for any other checkpoint only moves the error to a
 * confusing shape mismatch. Every other field defaults as in Hugging Face's {@code OPTConfig}. Fields this
 * library does not use (dropout, init_std, architectures, ...) are ignored.
 *
 * <p>The constructor rejects impossible or unsupported values, so every instance describes a model this
 * library can run. Messages use the {@code config.json} field names.
 *
 * @param vocabSize                  {@code vocab_size}: rows of the token embedding (50272 for every OPT)
 * @param hiddenSize                 {@code hidden_size}
 * @param numHiddenLayers            {@code num_hidden_layers}
 * @param numAttentionHeads          {@code num_attention_heads}
 * @param ffnDim                     {@code ffn_dim}: width of the feed-forward layer
 * @param maxPositionEmbeddings      {@code max_position_embeddings}: longest sequence (prompt + generated)
 * @param wordEmbedProjDim           {@code word_embed_proj_dim}: token embedding width (default hidden_size;
 *                                   512 for opt-350m, which projects in and out)
 * @param doLayerNormBefore          {@code do_layer_norm_before}: pre-LN (true) or post-LN (opt-350m)
 * @param removeFinalLayerNorm       {@code _remove_final_layer_norm}: drops the final LayerNorm of a pre-LN
 *                                   model (for checkpoints fine-tuned before transformers 4.20.1)
 * @param layerNormElementwiseAffine {@code layer_norm_elementwise_affine}; only true is supported
 * @param enableBias                 {@code enable_bias}; only true is supported
 * @param activationFunction         {@code activation_function}; only {@code relu} is supported
 * @param bosTokenId                 {@code bos_token_id}
 * @param eosTokenId                 {@code eos_token_id}
 * @param padTokenId                 {@code pad_token_id}
 * @param torchDtype                 {@code torch_dtype} (or {@code dtype}, its newer name), for example
 *                                   {@code float16}; empty if the config does not say
 */
public record OptConfig(
    int vocabSize,
    int hiddenSize,
    int numHiddenLayers,
    int numAttentionHeads,
    int ffnDim,
    int maxPositionEmbeddings,
    int wordEmbedProjDim,
    boolean doLayerNormBefore,
    boolean removeFinalLayerNorm,
    boolean layerNormElementwiseAffine,
    boolean enableBias,
    String activationFunction,
    int bosTokenId,
    int eosTokenId,
    int padTokenId,
    Optional<String> torchDtype) {

  /** Entries in the GPT-2 byte-level BPE vocabulary OPT uses; the embedding must have a row for each. */
  public static final int TOKENIZER_VOCAB_SIZE = 50265;

  /** Rows before position 0 in the learned position table (fairseq's padding offset, kept by HF). */
  public static final int POSITION_OFFSET = 2;

  /** Validates the configuration; messages name the {@code config.json} field. */
  public OptConfig {
    Objects.requireNonNull(activationFunction, "activationFunction");
    Objects.requireNonNull(torchDtype, "torchDtype");
    requirePositive("vocab_size", vocabSize);
    requirePositive("hidden_size", hiddenSize);
    requirePositive("num_hidden_layers", numHiddenLayers);
    requirePositive("num_attention_heads", numAttentionHeads);
    requirePositive("ffn_dim", ffnDim);
    requirePositive("max_position_embeddings", maxPositionEmbeddings);
    requirePositive("word_embed_proj_dim", wordEmbedProjDim);
    if (maxPositionEmbeddings > Integer.MAX_VALUE - POSITION_OFFSET) {
      throw new CheckpointException("max_position_embeddings " + maxPositionEmbeddings + " is too large");
    }
    if (hiddenSize % numAttentionHeads != 0) {
      throw new CheckpointException("num_attention_heads " + numAttentionHeads + " does not divide hidden_size "
          + hiddenSize + " (each head gets hidden_size / num_attention_heads dimensions): "
          + nearestDivisors(hiddenSize, numAttentionHeads));
    }
    if (vocabSize < TOKENIZER_VOCAB_SIZE) {
      throw new CheckpointException("vocab_size " + vocabSize + " is smaller than the " + TOKENIZER_VOCAB_SIZE
          + " tokens of OPT's tokenizer (OPT checkpoints have 50272)");
    }
    requireTokenId("bos_token_id", bosTokenId, vocabSize);
    requireTokenId("eos_token_id", eosTokenId, vocabSize);
    requireTokenId("pad_token_id", padTokenId, vocabSize);
    if (!activationFunction.equals("relu")) {
      throw new CheckpointException("activation_function " + Untrusted.quote(activationFunction)
          + " is not supported: OPT models use relu");
    }
    if (!enableBias) {
      throw new CheckpointException("enable_bias false is not supported yet: every released OPT model has "
          + "biases in its linear layers");
    }
    if (!layerNormElementwiseAffine) {
      throw new CheckpointException("layer_norm_elementwise_affine false is not supported yet: every released "
          + "OPT model has LayerNorm weights and biases");
    }
  }

  /** Dimensions per attention head: hidden_size / num_attention_heads (64 for most OPT, 80 for 2.7b). */
  public int headDim() {
    return hiddenSize / numAttentionHeads;
  }

  /** Whether token embeddings are narrower than the hidden state, with project_in/project_out (opt-350m). */
  public boolean hasProjections() {
    return wordEmbedProjDim != hiddenSize;
  }

  /** Whether a LayerNorm follows the last layer: pre-LN models, unless _remove_final_layer_norm is set. */
  public boolean hasFinalLayerNorm() {
    return doLayerNormBefore && !removeFinalLayerNorm;
  }

  /** Rows of {@code decoder.embed_positions.weight}: max_position_embeddings + 2. */
  public int positionTableRows() {
    return maxPositionEmbeddings + POSITION_OFFSET;
  }

  /**
   * Reads {@code config.json} from a model directory.
   *
   * @throws CheckpointException naming the file if the directory or file is missing, the JSON is
   *     malformed, a required field is missing, or a value is impossible or unsupported
   */
  public static OptConfig load(Path modelDir) {
    if (!Files.isDirectory(modelDir)) {
      throw new CheckpointException("model directory " + modelDir + " does not exist"
          + ": pass a directory containing config.json and weights, or a Hugging Face id such as facebook/opt-125m");
    }
    Path file = modelDir.resolve("config.json");
    if (!Files.isRegularFile(file)) {
      throw new CheckpointException("model directory " + modelDir + " has no config.json: it is not a Hugging Face "
          + "model directory, or the download is incomplete");
    }
    Untrusted.requireSmallFile(file, "config.json");
    String text;
    try {
      text = Files.readString(file);
    } catch (CharacterCodingException e) {
      // Files.readString's MalformedInputException would otherwise read as an I/O failure ("cannot read").
      throw new CheckpointException(file + ": not valid UTF-8 text: not a config.json, or a corrupted one "
          + "(download it again)", e);
    } catch (IOException e) {
      throw new CheckpointException(file + ": cannot read: " + e, e);
    }
    return parse(readTree(text, file.toString()), file.toString());
  }

  /** Parses the text of a {@code config.json}; see {@link #load}. */
  public static OptConfig fromJson(String json) {
    return parse(readTree(json, "config.json"), "config.json");
  }

  /** Builds a configuration from a parsed {@code config.json}; see {@link #load}. */
  public static OptConfig fromJson(JsonNode json) {
    return parse(json, "config.json");
  }

  /**
   * The configuration with {@code config.json}'s field names, in a stable order, for display (defaults
   * filled in, unused fields left out).
   */
  public Map<String, Object> toJsonMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("model_type", "opt");
    m.put("vocab_size", vocabSize);
    m.put("hidden_size", hiddenSize);
    m.put("num_hidden_layers", numHiddenLayers);
    m.put("num_attention_heads", numAttentionHeads);
    m.put("ffn_dim", ffnDim);
    m.put("max_position_embeddings", maxPositionEmbeddings);
    m.put("word_embed_proj_dim", wordEmbedProjDim);
    m.put("do_layer_norm_before", doLayerNormBefore);
    m.put("_remove_final_layer_norm", removeFinalLayerNorm);
    m.put("layer_norm_elementwise_affine", layerNormElementwiseAffine);
    m.put("enable_bias", enableBias);
    m.put("activation_function", activationFunction);
    m.put("bos_token_id", bosTokenId);
    m.put("eos_token_id", eosTokenId);
    m.put("pad_token_id", padTokenId);
    torchDtype.ifPresent(d -> m.put("torch_dtype", d));
    return m;
  }

  private static JsonNode readTree(String text, String source) {
    try {
      return Untrusted.JSON.readTree(text);
    } catch (JsonProcessingException e) {
      throw new CheckpointException(source + ": not valid JSON (" + Untrusted.parserMessage(e) + ")", e);
    }
  }

  private static OptConfig parse(JsonNode json, String source) {
    if (json == null || !json.isObject()) {
      throw new CheckpointException(source + ": expected a JSON object (an OPT config.json)");
    }
    ConfigFields f = new ConfigFields(json, source);
    String modelType = f.string("model_type", null);
    if (modelType != null && !modelType.equals("opt")) {
      throw new CheckpointException(source + ": model_type is " + Untrusted.quote(modelType) + ", not 'opt': this library runs "
          + "only OPT models");
    }
    int hidden = f.requiredInt("hidden_size");
    String dtype = f.string("torch_dtype", f.string("dtype", null));
    try {
      return new OptConfig(
          f.requiredInt("vocab_size"),
          hidden,
          f.requiredInt("num_hidden_layers"),
          f.requiredInt("num_attention_heads"),
          f.requiredInt("ffn_dim"),
          f.requiredInt("max_position_embeddings"),
          f.optionalInt("word_embed_proj_dim", hidden),
          f.bool("do_layer_norm_before", true),
          f.bool("_remove_final_layer_norm", false),
          f.bool("layer_norm_elementwise_affine", true),
          f.bool("enable_bias", true),
          f.string("activation_function", "relu"),
          f.optionalInt("bos_token_id", 2),
          f.optionalInt("eos_token_id", 2),
          f.optionalInt("pad_token_id", 1),
          Optional.ofNullable(dtype));
    } catch (CheckpointException e) {
      throw new CheckpointException(source + ": " + e.getMessage(), e);
    }
  }

  private static void requirePositive(String field, int value) {
    if (value <= 0) {
      throw new CheckpointException(field + " is " + value + "; it must be positive");
    }
  }

  private static void requireTokenId(String field, int id, int vocabSize) {
    if (id < 0 || id >= vocabSize) {
      throw new CheckpointException(field + " " + id + " is not a token id of a " + vocabSize + "-entry vocabulary");
    }
  }

  /**
   * Names the head counts next to a rejected one that do divide the hidden size. Divisors come in pairs
   * (d, hidden / d) with d <= sqrt(hidden), so this takes at most ~46k steps: a linear scan from the head
   * count took billions for a hostile config (a prime hidden_size, or num_attention_heads 2147483647, where
   * heads + 1 overflowed and the scan ran up from Integer.MIN_VALUE).
   */
  private static String nearestDivisors(int hidden, int heads) {
    int below = 1;
    int above = 0;
    for (int d = 1; (long) d * d <= hidden; d++) {
      if (hidden % d == 0) {
        for (int c : new int[] {d, hidden / d}) {
          if (c <= heads && c > below) {
            below = c;
          }
          if (c > heads && (above == 0 || c < above)) {
            above = c;
          }
        }
      }
    }
    return above == 0
        ? "the largest head count that divides it is " + below
        : "the nearest head counts that divide it are " + below + " and " + above;
  }
}
