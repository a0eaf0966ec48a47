package io.github.optjava.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Shared access to the reference fixtures (produced by Hugging Face, see docs/fixtures-tokenizer.md). */
final class TokenizerFixtures {

  static final ObjectMapper JSON = new ObjectMapper();

  /** One line of cases.jsonl. */
  record Case(int line, String text, int[] ids, int[] idsWithBos, List<String> tokens, String decoded,
      String decodedNoCleanup) {

    @Override
    public String toString() {
      return "case " + line + " " + JSON.valueToTree(text);
    }
  }

  private static OptTokenizer shared;
  private static List<Case> cases;

  private TokenizerFixtures() {}

  /** A classpath resource as a file path (test resources are plain files under target/). */
  static Path resource(String name) {
    URL url = TokenizerFixtures.class.getResource(name);
    if (url == null) {
      throw new IllegalStateException("test resource " + name + " is missing");
    }
    try {
      return Path.of(url.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A classpath resource's lines (UTF-8), read as a stream so it also works from a jar. */
  static List<String> resourceLines(String name) throws java.io.IOException {
    try (java.io.InputStream in = TokenizerFixtures.class.getResourceAsStream(name)) {
      if (in == null) {
        throw new IllegalStateException("test resource " + name + " is missing");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList();
    }
  }

  /** fixtures/tokenizer: vocab.json, merges.txt and cases.jsonl, no tokenizer_config.json. */
  static Path tokenizerDir() {
    return resource("/fixtures/tokenizer/vocab.json").getParent();
  }

  /** A Hugging Face model directory with tokenizer_config.json and config.json (vocab_size 50272). */
  static Path modelDir() {
    return resource("/fixtures/models/tiny-opt/config.json").getParent();
  }

  /** The tokenizer of the fixture files, loaded once (loading takes a good fraction of a second). */
  static synchronized OptTokenizer tokenizer() {
    if (shared == null) {
      shared = OptTokenizer.load(tokenizerDir().resolve("vocab.json"), tokenizerDir().resolve("merges.txt"));
    }
    return shared;
  }

  static synchronized List<Case> cases() {
    if (cases == null) {
      cases = readCases();
    }
    return cases;
  }

  private static List<Case> readCases() {
    List<Case> result = new ArrayList<>();
    try {
      List<String> lines = Files.readAllLines(tokenizerDir().resolve("cases.jsonl"), StandardCharsets.UTF_8);
      for (int i = 0; i < lines.size(); i++) {
        JsonNode c = JSON.readTree(lines.get(i));
        result.add(new Case(i + 1, c.get("text").textValue(), ints(c.get("ids")), ints(c.get("ids_with_bos")),
            JSON.convertValue(c.get("tokens"), JSON.getTypeFactory().constructCollectionType(List.class,
                String.class)), c.get("decoded").textValue(), c.get("decoded_no_cleanup").textValue()));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return result;
  }

  private static int[] ints(JsonNode array) {
    return JSON.convertValue(array, int[].class);
  }
}
