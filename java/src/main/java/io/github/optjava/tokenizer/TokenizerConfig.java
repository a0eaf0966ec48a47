package io.github.optjava.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * The settings of a model directory's tokenizer_config.json that change what the tokenizer does, with
 * the values of facebook/opt-* for whatever is absent.
 *
 * @param bos beginning-of-sequence token ({@code "</s>"} for OPT)
 * @param eos end-of-sequence token ({@code "</s>"})
 * @param pad padding token ({@code "<pad>"})
 * @param special every special token (bos, eos, unk, pad, any sep/cls/mask/additional ones and the
 *     special entries of added_tokens_decoder): matched in text, skipped by skip-special decoding
 * @param addedNotSpecial added_tokens_decoder entries marked not special: matched in text only
 * @param addBosToken whether {@code tokenizer(text)} starts with bos
 * @param addPrefixSpace whether a space is put before the text (GPT-2 style), false for OPT
 * @param cleanUpSpaces the decode default for clean_up_tokenization_spaces
 * @param source where the settings come from, for error messages
 */
record TokenizerConfig(String bos, String eos, String pad, List<String> special,
    List<String> addedNotSpecial, boolean addBosToken, boolean addPrefixSpace, boolean cleanUpSpaces,
    String source) {

  private static final String OPT_BOS = "</s>";
  private static final String OPT_EOS = "</s>";
  private static final String OPT_UNK = "</s>";
  private static final String OPT_PAD = "<pad>";

  /** OPT's settings, used when a directory has no tokenizer_config.json. */
  static TokenizerConfig opt() {
    return new TokenizerConfig(OPT_BOS, OPT_EOS, OPT_PAD, List.of(OPT_BOS, OPT_PAD), List.of(), true, false,
        true, "OPT's default tokenizer settings (no tokenizer_config.json)");
  }

  /** Reads {@code file}, or returns {@link #opt()} when it does not exist. */
  static TokenizerConfig read(Path file) {
    if (!Files.exists(file)) {
      return opt();
    }
    JsonNode root = BpeFiles.readJson(file, "tokenizer_config.json");
    if (!root.isObject()) {
      throw BpeFiles.corrupt(file, "expected a JSON object");
    }
    String errors = root.path("errors").asText("replace");
    if (!errors.equals("replace")) {
      throw unsupported(file, "\"errors\": " + Untrusted.jsonString(errors)
          + " (only \"replace\" is implemented)");
    }
    String bos = tokenField(root, "bos_token", OPT_BOS, file);
    String eos = tokenField(root, "eos_token", OPT_EOS, file);
    String unk = tokenField(root, "unk_token", OPT_UNK, file);
    String pad = tokenField(root, "pad_token", OPT_PAD, file);
    List<String> special = new ArrayList<>(List.of(bos, eos, unk, pad));
    for (String name : new String[] {"sep_token", "cls_token", "mask_token"}) {
      String token = tokenField(root, name, null, file);
      if (token != null) {
        special.add(token);
      }
    }
    for (JsonNode token : root.path("additional_special_tokens")) {
      special.add(tokenContent(token, "additional_special_tokens", file));
    }
    List<String> addedNotSpecial = new ArrayList<>();
    for (Map.Entry<String, JsonNode> entry : root.path("added_tokens_decoder").properties()) {
      JsonNode token = entry.getValue();
      String content = tokenContent(token, "added_tokens_decoder", file);
      (token.path("special").asBoolean(false) ? special : addedNotSpecial).add(content);
    }
    addedNotSpecial.removeAll(special);
    return new TokenizerConfig(bos, eos, pad, distinct(special), distinct(addedNotSpecial),
        bool(root, "add_bos_token", true, file), bool(root, "add_prefix_space", false, file),
        bool(root, "clean_up_tokenization_spaces", true, file), file.toString());
  }

  private static String tokenField(JsonNode root, String name, String absent, Path file) {
    JsonNode node = root.get(name);
    return node == null || node.isNull() ? absent : tokenContent(node, name, file);
  }

  /** A token written as a string or as an AddedToken object {"content": ..., "lstrip": ...}. */
  private static String tokenContent(JsonNode node, String field, Path file) {
    if (node.isTextual()) {
      return node.textValue();
    }
    JsonNode content = node.path("content");
    if (!node.isObject() || !content.isTextual()) {
      throw BpeFiles.corrupt(file, field + " holds " + Untrusted.json(node)
          + ", expected a string or {\"content\": ...}");
    }
    // These flags make Hugging Face strip spaces around, or refuse mid-word, matches of the token.
    // OPT never sets them; tokenizing differently from the reference would be worse than refusing.
    for (String flag : new String[] {"lstrip", "rstrip", "single_word"}) {
      if (node.path(flag).asBoolean(false)) {
        throw unsupported(file, field + " " + BpeFiles.quote(content.textValue()) + " sets \"" + flag
            + "\": true");
      }
    }
    return content.textValue();
  }

  private static boolean bool(JsonNode root, String name, boolean absent, Path file) {
    JsonNode node = root.get(name);
    if (node == null || node.isNull()) {
      return absent;
    }
    if (!node.isBoolean()) {
      throw BpeFiles.corrupt(file, "\"" + name + "\" is " + Untrusted.json(node) + ", expected true or false");
    }
    return node.booleanValue();
  }

  private static List<String> distinct(List<String> tokens) {
    return List.copyOf(new LinkedHashSet<>(tokens));
  }

  private static CheckpointException unsupported(Path file, String what) {
    return new CheckpointException(file + " asks for a tokenizer feature this library does not implement: "
        + what + ". OPT checkpoints do not need it; use the tokenizer_config.json of facebook/opt-125m or"
        + " remove the setting.");
  }
}
