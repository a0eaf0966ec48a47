package io.github.optjava.cli;

import io.github.optjava.checkpoint.hub.ModelLocator;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The {@code --model} option shared by every command that reads a checkpoint. */
final class ModelOption {

  @Option(names = {"-m", "--model"}, required = true, paramLabel = "MODEL",
      description = "A model directory (config.json, weights, vocab.json, merges.txt) or a Hugging Face id "
          + "such as facebook/opt-125m (downloaded into the Hugging Face cache; HF_HUB_OFFLINE=1 never downloads).")
  String model;

  @Option(names = "--revision", defaultValue = "main", paramLabel = "REV",
      description = "Hub revision (branch, tag or commit) when MODEL is an id. Default: ${DEFAULT-VALUE}.")
  String revision;

  /** The model directory: MODEL itself, or the cache snapshot of the id (downloading what is missing). */
  Path resolve() {
    return ModelLocator.resolve(model, revision);
  }
}
