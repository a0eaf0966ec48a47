package io.github.optjava.cli;

import io.github.optjava.api.Completion;
import io.github.optjava.api.Generator;
import io.github.optjava.api.SamplingParams;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code opt generate --model M --prompt TEXT}: streams one completion to the terminal, then its speed. */
@Command(name = "generate", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Generate a completion of --prompt, streamed as it is produced.")
final class GenerateCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  @Mixin
  EngineOptions engine;

  @picocli.CommandLine.Spec
  picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = {"-p", "--prompt"}, required = true, description = "The text to continue.")
  String prompt;

  @Option(names = "--max-tokens", defaultValue = "16", description = "New tokens at most. Default: ${DEFAULT-VALUE}.")
  int maxTokens;

  @Option(names = "--temperature", defaultValue = "1.0", description = "0 = greedy. Default: ${DEFAULT-VALUE}.")
  double temperature;

  @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely tokens (0 = off).")
  int topK;

  @Option(names = "--top-p", defaultValue = "1.0", description = "Nucleus sampling mass (1 = off).")
  double topP;

  @Option(names = "--min-p", defaultValue = "0", description = "Min-p: drop tokens below this fraction of the most "
      + "likely token's probability (0 = off).")
  double minP;

  @Option(names = "--typical-p", defaultValue = "1.0", description = "Locally typical sampling mass (1 = off).")
  double typicalP;

  @Option(names = "--seed", description = "Random seed (the same seed gives the same text).")
  Long seed;

  @Option(names = "--num-beams", defaultValue = "1", description = "Beam search width (1 = off).")
  int numBeams;

  @Option(names = "--repetition-penalty", defaultValue = "1.0", description = "HF repetition penalty (1 = off).")
  double repetitionPenalty;

  @Option(names = "--no-repeat-ngram-size", defaultValue = "0", description = "Ban repeated n-grams (0 = off).")
  int noRepeatNgramSize;

  @Option(names = "--stop", description = "Stop string (repeatable).")
  List<String> stop;

  @Option(names = "--logit-bias", paramLabel = "ID=BIAS", description = "Add BIAS (-100..100) to token ID's logit "
      + "(repeatable; -100 bans the token, 100 forces it).")
  java.util.Map<Integer, Double> logitBias;

  @Option(names = "--bad-word-ids", paramLabel = "ID[,ID...]", split = ";",
      description = "A token sequence never to generate, as comma-separated ids (repeatable; HF bad_words_ids).")
  List<String> badWordIds;

  private List<List<Integer>> badWords() {
    List<List<Integer>> out = new java.util.ArrayList<>();
    for (String word : badWordIds == null ? List.<String>of() : badWordIds) {
      List<Integer> ids = new java.util.ArrayList<>();
      for (String id : word.split(",")) {
        try {
          ids.add(Integer.parseInt(id.trim()));
        } catch (NumberFormatException e) {
          // a malformed value: a usage error (exit 2), as picocli's own conversions give
          throw new picocli.CommandLine.ParameterException(spec.commandLine(),
              "--bad-word-ids takes comma-separated token ids, got '" + word + "'");
        }
      }
      out.add(ids);
    }
    return out;
  }

  @Override
  public Integer call() {
    SamplingParams params;
    try {
      params = SamplingParams.builder().maxTokens(maxTokens).temperature(temperature).topK(topK)
          .topP(topP).minP(minP).typicalP(typicalP).seed(seed).numBeams(numBeams).repetitionPenalty(repetitionPenalty)
          .noRepeatNgramSize(noRepeatNgramSize).stop(stop == null ? List.of() : stop)
          .logitBias(logitBias == null ? java.util.Map.of() : logitBias).badWordsIds(badWords()).build();
    } catch (IllegalArgumentException e) {
      throw ParamNames.renamed(e, ParamNames::cli); // SamplingParams says topP, this command --top-p
    }
    if (!spec.commandLine().getParseResult().hasMatchedOption("--max-batch")) {
      // One prompt: its sequences (the beams) are the whole batch. The KV cache is sized for max batch × the
      // positions, so the shared default (16) would allocate 16 full-length sequences (2.4 GB of float32 cache
      // for opt-125m on the CPU) for this one request.
      engine.maxBatch = Math.max(1, numBeams);
    }
    java.util.Optional<Generator> opened = engine.open(model);
    if (opened.isEmpty()) {
      return 0; // a worker rank of a multi-process job: its part is served, rank 0 wrote the results
    }
    try (Generator gen = opened.get()) {
      Completion c;
      if (params.isBeamSearch()) {
        c = gen.generate(prompt, params); // beams are only known at the end
        parent.out.print(c.text());
      } else {
        try (io.github.optjava.api.TokenStream stream = gen.stream(prompt, params)) {
          for (io.github.optjava.api.TokenStream.Chunk chunk : stream) {
            parent.out.print(chunk.text());
            parent.out.flush();
            if (parent.out.checkError()) {
              stream.cancel(); // stdout closed (| head -c N): stop generating for nobody
            }
          }
          try {
            c = stream.completion().join();
          } catch (java.util.concurrent.CompletionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : e; // the generation's own error, as generate() gives it
          }
        }
      }
      parent.out.println();
      parent.out.flush();
      if (parent.out.checkError()) {
        parent.err.println("opt: error: standard output closed; generation stopped");
        return 1;
      }
      double seconds = c.totalMillis() / 1000;
      io.github.optjava.api.GeneratorStats s = gen.stats(); // published between steps: the last one may lag
      String drafts = s.draftTokens() > 0 ? ", " + s.acceptedDraftTokens() + " of " + s.draftTokens()
          + " draft tokens accepted" : "";
      parent.err.printf(java.util.Locale.ROOT, "[%d prompt tokens, %d new tokens in %.2f s: %.1f tokens/s, finish: "
          + "%s%s]%n", c.promptTokens(), c.completionTokens(), seconds, c.completionTokens() / Math.max(seconds, 1e-9),
          c.finishReason().jsonName(), drafts);
    }
    return 0;
  }
}
