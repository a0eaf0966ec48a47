package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.cli.Main;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The mapping end to end: a fixture model (whose logits match Hugging Face's, see OptModelHfTest) is split
 * into 2 metaseq model-parallel parts, converted back by {@code opt convert-metaseq}, and run: the logits
 * must be exactly the original model's.
 */
class MetaseqEndToEndTest {

  @TempDir
  Path tmp;

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void convertedTwoPartCheckpointGivesTheOriginalLogits(String fixture) throws IOException {
    Path original = SafetensorsTestFiles.fixtureModel(fixture);
    Map<String, MetaseqTestFiles.Ref> ref;
    try (Checkpoint c = Checkpoints.open(original)) {
      if (c.contains("lm_head.weight")) {
        // The fixture stores lm_head; metaseq ties it to embed_tokens, so they must be the same values.
        assertEquals(c.tensor("lm_head.weight").data(), c.tensor("model.decoder.embed_tokens.weight").data());
      }
      ref = MetaseqTestFiles.reference(c);
    }
    Path in = tmp.resolve("metaseq");
    java.nio.file.Files.createDirectories(in);
    MetaseqTestFiles.write(in, ref, 2, true);
    Path out = tmp.resolve("hf");

    List<String> args = new ArrayList<>(List.of("convert-metaseq", "--input", in.toString(), "--output",
        out.toString(), "--num-heads", "4", "--max-shard-size", "2MB"));
    if (fixture.endsWith("postln")) {
      args.add("--post-layer-norm");
    }
    ByteArrayOutputStream stdout = new ByteArrayOutputStream();
    ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    int rc = Main.run(new ByteArrayInputStream(new byte[0]), new PrintStream(stdout, true, StandardCharsets.UTF_8),
        new PrintStream(stderr, true, StandardCharsets.UTF_8), args.toArray(String[]::new));
    assertEquals(0, rc, stderr.toString(StandardCharsets.UTF_8));
    assertTrue(stdout.toString(StandardCharsets.UTF_8).contains("converted 2 model part(s)"), stdout.toString());

    assertEquals(OptConfig.load(original), OptConfig.load(out));
    int[] prompt = {2, 133, 812, 9, 1258, 16, 42, 4, 50118, 100};
    assertArrayEquals(lastLogits(original, prompt), lastLogits(out, prompt));
  }

  @ParameterizedTest
  @ValueSource(strings = {"--dtype=f8|--dtype f8 is not one of f16, bf16, f32",
      "--max-shard-size=lots|--max-shard-size lots is not a size",
      "--max-shard-size=0|--max-shard-size must be positive"})
  void badOptionsAreExplained(String caseLine) throws IOException {
    String[] c = caseLine.split("\\|");
    Path in = java.nio.file.Files.createDirectories(tmp.resolve("in"));
    ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    int rc = Main.run(new ByteArrayInputStream(new byte[0]), new PrintStream(new ByteArrayOutputStream()),
        new PrintStream(stderr, true, StandardCharsets.UTF_8), "convert-metaseq", "--input", in.toString(),
        "--output", tmp.resolve("out").toString(), c[0]);
    assertEquals(1, rc);
    assertTrue(stderr.toString(StandardCharsets.UTF_8).contains(c[1]), stderr.toString(StandardCharsets.UTF_8));
  }

  private static float[] lastLogits(Path dir, int[] prompt) {
    OptConfig config = OptConfig.load(dir);
    try (Ops ops = new CpuOps()) {
      OptModel model;
      try (Checkpoint c = Checkpoints.open(dir)) {
        model = new OptModel(config, new OptWeights(config, c), ops);
      }
      try (model; KvCache cache = model.newCache(8, 16)) {
        return model.forward(List.of(new OptModel.SeqStep(1, prompt, false)), cache)[0];
      }
    }
  }
}
