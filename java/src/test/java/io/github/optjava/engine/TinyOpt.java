package io.github.optjava.engine;

import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import io.github.optjava.tokenizer.OptTokenizer;
import java.net.URISyntaxException;
import java.nio.file.Path;

/** The tiny-opt fixture (model + tokenizer) for engine tests. */
final class TinyOpt {
  private TinyOpt() {}

  static Path dir() {
    try {
      return Path.of(TinyOpt.class.getResource("/fixtures/models/tiny-opt").toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static OptModel model(Ops ops) {
    OptConfig config = OptConfig.load(dir());
    try (Checkpoint ck = Checkpoints.open(dir())) {
      return new OptModel(config, new OptWeights(config, ck), ops);
    }
  }

  /** The model split into {@code stages} pipeline stages, each on its own CpuOps and thread. */
  static io.github.optjava.model.PipelineOptModel pipeline(int stages) {
    OptConfig config = OptConfig.load(dir());
    try (Checkpoint ck = Checkpoints.open(dir())) {
      return new io.github.optjava.model.PipelineOptModel(config, new OptWeights(config, ck),
          s -> new io.github.optjava.backend.cpu.CpuOps(), null, stages);
    }
  }

  static OptTokenizer tokenizer() {
    return OptTokenizer.load(dir());
  }

  /** An engine over the model on CpuOps: a KV cache of {@code blocks} blocks of 4 tokens, batch 4, 128 positions. */
  static Engine engine(int blocks) {
    OptModel m = model(new io.github.optjava.backend.cpu.CpuOps());
    return new Engine(m, tokenizer(), m.newCache(blocks, 4), 4, 128);
  }
}
