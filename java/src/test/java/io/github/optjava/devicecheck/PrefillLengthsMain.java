package io.github.optjava.devicecheck;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptShapes;
import io.github.optjava.model.OptWeights;
import io.github.optjava.model.RandomCheckpoint;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * What a prompt of a length the process has not prefilled before costs, against the same length prefilled again
 * (scripts/device-check.sh; runs on the CPU too). Session 18's H100 run showed it in both engines: CompareMain's
 * prefill of an 11-token prompt took 13.4 ms the first time and 2.8 ms the second; HF's 32.0 and 12.9. A server meets
 * new lengths for a long time after it starts, so this is time to first token. The likely cause is the first launch
 * of each GEMM kernel that the new row count selects (CUDA loads modules lazily by default since 12.2); running this
 * once as it is and once under {@code CUDA_MODULE_LOADING=EAGER} says whether that is it.
 *
 * <p>After a few untimed prefills of one length (the JIT), each length from {@code --from} to {@code --to} is
 * prefilled twice in a row, one random prompt of that length per run, each timed to its greedy token: the first run
 * meets the length for the first time, the second does not. One tab-separated row (name, info, detail) goes to
 * {@code --rows}: the medians of both, how many first runs took more than 2 ms longer than their second, and the
 * time from the start of this program to a loaded model (what eager loading adds).
 *
 * <pre>
 * java -cp ... io.github.optjava.devicecheck.PrefillLengthsMain --shape 1.3b --rows FILE [--device cuda|cpu]
 *     [--from 9] [--to 40] [--label default]
 * </pre>
 */
public final class PrefillLengthsMain {
  private static final int BLOCK_SIZE = 16;
  private static final int WARM_UP_LENGTH = 8;
  private static final int WARM_UPS = 5;
  /** A first run more than this much slower than the second counts as paying for the new length. */
  static final double SLOWER_MS = 2.0;

  private record Options(String shape, Path rows, String device, int from, int to, String label) {}

  private PrefillLengthsMain() {}

  public static void main(String[] args) throws IOException {
    System.exit(run(args, System.out));
  }

  static int run(String[] args, PrintStream out) throws IOException {
    long start = System.nanoTime();
    Options o = parse(args);
    OptConfig config = config(o.shape);
    if (o.to > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("--to " + o.to + " is more than the model's " + config.maxPositionEmbeddings()
          + " positions");
    }
    int blocks = (Math.max(o.to, WARM_UP_LENGTH) + BLOCK_SIZE - 1) / BLOCK_SIZE;
    SplittableRandom random = new SplittableRandom(1);
    int lengths = o.to - o.from + 1;
    double[] first = new double[lengths];
    double[] second = new double[lengths];
    double loadedMs;
    try (Ops ops = o.device.equals("cuda") ? new io.github.optjava.backend.cuda.CudaOps(0, DType.F16)
        : new FastCpuOps()) {
      OptModel model;
      try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 0)) {
        model = new OptModel(config, new OptWeights(config, ck), ops);
      }
      loadedMs = (System.nanoTime() - start) / 1e6;
      try (model; KvCache cache = new KvCache(ops.kvStore(config.numHiddenLayers(), blocks, BLOCK_SIZE,
          config.hiddenSize()))) {
        for (int i = 0; i < WARM_UPS; i++) {
          prefillMs(model, cache, random, WARM_UP_LENGTH);
        }
        for (int len = o.from; len <= o.to; len++) {
          first[len - o.from] = prefillMs(model, cache, random, len);
          second[len - o.from] = prefillMs(model, cache, random, len);
        }
      }
    }
    int slower = 0;
    double[] excess = new double[lengths];
    for (int i = 0; i < lengths; i++) {
      excess[i] = first[i] - second[i];
      slower += excess[i] > SLOWER_MS ? 1 : 0;
    }
    String detail = String.format(Locale.ROOT, "%s: lengths %d-%d, prefill ms first time %.2f, again %.2f "
        + "(medians; first minus again %.2f); %d of %d first runs > %.0f ms slower; model loaded %.1f s after start",
        o.label, o.from, o.to, median(first), median(second), median(excess), slower, lengths, SLOWER_MS,
        loadedMs / 1e3);
    out.println("PrefillLengthsMain: " + detail);
    out.println("PrefillLengthsMain: first " + Arrays.toString(round(first)));
    out.println("PrefillLengthsMain: again " + Arrays.toString(round(second)));
    Files.write(o.rows, List.of("prefill of new lengths (" + o.label + ")\tinfo\t" + detail));
    return 0;
  }

  /** One prompt of {@code len} random tokens prefilled to its greedy token; its cache blocks released after. */
  private static double prefillMs(OptModel model, KvCache cache, SplittableRandom random, int len) {
    int[] ids = random.ints(len, 4, 50_000).toArray();
    try {
      long t0 = System.nanoTime();
      model.greedy(List.of(new OptModel.SeqStep(0, ids, false)), cache);
      return (System.nanoTime() - t0) / 1e6;
    } finally {
      cache.release(0);
    }
  }

  static double median(double[] values) {
    double[] v = values.clone();
    Arrays.sort(v);
    int n = v.length;
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  private static double[] round(double[] ms) {
    return Arrays.stream(ms).map(v -> Math.round(v * 100) / 100.0).toArray();
  }

  /** An OPT size (OptShapes) or a config.json file. */
  private static OptConfig config(String shape) throws IOException {
    Path file = Path.of(shape);
    return Files.isRegularFile(file) ? OptConfig.fromJson(Files.readString(file)) : OptShapes.of(shape);
  }

  private static Options parse(String[] args) {
    String shape = null;
    Path rows = null;
    String device = "cuda";
    int from = 9;
    int to = 40;
    String label = "default";
    for (int i = 0; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      if (value == null) {
        throw new IllegalArgumentException(args[i] + " needs a value");
      }
      switch (args[i++]) {
        case "--shape" -> shape = value;
        case "--rows" -> rows = Path.of(value);
        case "--device" -> device = value;
        case "--from" -> from = Integer.parseInt(value);
        case "--to" -> to = Integer.parseInt(value);
        case "--label" -> label = value;
        default -> throw new IllegalArgumentException("unknown option " + args[i - 1]
            + " (--shape, --rows, --device, --from, --to, --label)");
      }
    }
    if (shape == null || rows == null) {
      throw new IllegalArgumentException("give --shape SIZE|CONFIG and --rows FILE");
    }
    if (!device.equals("cuda") && !device.equals("cpu")) {
      throw new IllegalArgumentException("--device must be cuda or cpu, not " + device);
    }
    if (from <= WARM_UP_LENGTH || to < from) {
      throw new IllegalArgumentException("need " + WARM_UP_LENGTH + " < --from <= --to (lengths the warm-up did not "
          + "prefill), not " + from + ".." + to);
    }
    return new Options(shape, rows, device, from, to, label);
  }
}
