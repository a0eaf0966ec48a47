package io.github.optjava.model;

import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.Collections;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * A checkpoint of random weights for any {@link OptConfig}, in memory: benchmarks and parity runs of real
 * OPT shapes ({@link OptShapes}) without downloading anything.
 *
 * <p>Tensors have Hugging Face's names in the bare {@code decoder.*} style of opt-350m/6.7b (no
 * {@code lm_head.weight}: it is tied to the token embedding, as those checkpoints do) and the shapes of
 * {@link OptWeights#expectedShapes}. Values follow the "peaky" scheme of the test fixtures
 * (docs/fixtures.md), so greedy decisions are not knife-edge: N(0, 0.8) token embeddings with the pad row
 * zero, N(0, 0.5) positions, N(0, 0.02) biases, layer-norm weights U(0.9, 1.1) and biases N(0, 0.02); drawn
 * in float32, then rounded to the storage dtype. Linear and projection weights are N(0, 1/sqrt(fan_in)), as
 * {@code scripts/hf_peer.py make} draws them: the fixtures' N(0, 0.2) is fine at hidden 64, but at real widths
 * each Linear would multiply the activations' RMS by 0.2·sqrt(fan_in) and fp16 would overflow within a few
 * layers, leaving a benchmark that runs on inf and NaN.
 *
 * <p>Nothing is stored: {@link #tensor} draws a tensor when asked, from a generator seeded by the
 * checkpoint seed, the tensor name and the position in the tensor, so every call returns the same values
 * whatever the order of calls or the number of threads (chunks are drawn in parallel). Building an
 * opt-125m model from it takes about 2 s on the project's 2-core machine.
 */
public final class RandomCheckpoint implements Checkpoint {
  /** Elements per independently seeded chunk: the unit of parallel drawing. */
  private static final int CHUNK = 1 << 16;

  private final OptConfig config;
  private final DType dtype;
  private final long seed;
  private final Map<String, TensorInfo> infos = new TreeMap<>();
  private volatile boolean closed;

  /**
   * @param config the architecture
   * @param dtype  storage dtype of every tensor
   * @param seed   the same seed gives the same weights
   */
  public RandomCheckpoint(OptConfig config, DType dtype, long seed) {
    this.config = config;
    this.dtype = dtype;
    this.seed = seed;
    for (Map.Entry<String, long[]> e : OptWeights.expectedShapes(config).entrySet()) {
      if (!e.getKey().equals(OptWeights.LM_HEAD)) {
        infos.put(e.getKey(), new TensorInfo(e.getKey(), dtype, e.getValue()));
      }
    }
  }

  public OptConfig config() {
    return config;
  }

  @Override
  public String format() {
    return "random";
  }

  @Override
  public Collection<TensorInfo> tensors() {
    return Collections.unmodifiableCollection(infos.values());
  }

  @Override
  public boolean contains(String name) {
    return infos.containsKey(name);
  }

  @Override
  public Tensor tensor(String name) {
    if (closed) {
      throw new IllegalStateException(this + " used after close");
    }
    TensorInfo info = infos.get(name);
    if (info == null) {
      throw new CheckpointException(this + ": no tensor " + name);
    }
    long bytes = info.byteSize();
    if (bytes > Integer.MAX_VALUE - 8) {
      throw new CheckpointException(this + ": tensor " + info + " takes " + bytes
          + " bytes, more than one Java buffer holds; use a 16-bit dtype");
    }
    int n = (int) info.numel();
    Init named = initOf(name);
    Init init = named != null ? named : linearInit(info.shape());
    long nameSeed = seed ^ fnv64(name);
    ByteBuffer data = ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    int chunks = (n + CHUNK - 1) / CHUNK;
    IntStream.range(0, chunks).parallel().forEach(c -> {
      int from = c * CHUNK;
      int to = Math.min(n, from + CHUNK);
      fill(data, from, to, init, new SplittableRandom(mix64(nameSeed + c * 0xD1B54A32D192ED03L)));
    });
    if (name.equals(OptWeights.EMBED_TOKENS)) { // OPT's pad row is all zeros (HF's padding_idx)
      int cols = config.wordEmbedProjDim();
      int pad = config.padTokenId();
      for (int j = 0; j < cols; j++) {
        put(data, pad * cols + j, 0f);
      }
    }
    return new Tensor(info, data);
  }

  /** How a tensor's values are drawn: a normal distribution, or uniform when {@code uniform}. */
  private record Init(double center, double spread, boolean uniform) {}

  private static Init initOf(String name) {
    if (name.equals(OptWeights.EMBED_TOKENS)) {
      return new Init(0, 0.8, false);
    }
    if (name.equals(OptWeights.EMBED_POSITIONS)) {
      return new Init(0, 0.5, false);
    }
    boolean norm = name.contains("layer_norm");
    if (norm && name.endsWith(".weight")) {
      return new Init(1.0, 0.1, true); // U(0.9, 1.1)
    }
    if (name.endsWith(".bias")) {
      return new Init(0, 0.02, false);
    }
    return null; // a Linear weight: N(0, 1/sqrt(fan_in)), see linearInit
  }

  /** A Linear (out, in) weight: N(0, 1/sqrt(in)), so that each Linear keeps its input's RMS. */
  private static Init linearInit(long[] shape) {
    return new Init(0, 1.0 / Math.sqrt(shape[shape.length - 1]), false);
  }

  /** Elements {@code [from, to)}: Marsaglia's polar method gives two normals per accepted pair. */
  private void fill(ByteBuffer data, int from, int to, Init init, SplittableRandom random) {
    int i = from;
    while (i < to) {
      if (init.uniform()) {
        put(data, i++, (float) (init.center() + init.spread() * (2 * random.nextDouble() - 1)));
        continue;
      }
      double u;
      double v;
      double s;
      do {
        u = 2 * random.nextDouble() - 1;
        v = 2 * random.nextDouble() - 1;
        s = u * u + v * v;
      } while (s >= 1 || s == 0);
      double f = init.spread() * Math.sqrt(-2 * Math.log(s) / s);
      put(data, i++, (float) (init.center() + u * f));
      if (i < to) {
        put(data, i++, (float) (init.center() + v * f));
      }
    }
  }

  private void put(ByteBuffer data, int index, float value) {
    switch (dtype) {
      case F32 -> data.putFloat(4 * index, value);
      case F16 -> data.putShort(2 * index, Half.fromFloat(value));
      case BF16 -> data.putShort(2 * index, toBf16(value));
    }
  }

  /** float → bfloat16, rounding to nearest even (the values drawn here are finite). */
  static short toBf16(float value) {
    int bits = Float.floatToRawIntBits(value);
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }

  /**
   * Murmur3's finaliser. SplittableRandom walks seed, seed + γ, seed + 2γ, ...: chunk seeds that differ by
   * multiples of γ would give shifted copies of one stream, so each chunk's seed is scrambled first.
   */
  private static long mix64(long z) {
    z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
    z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
    return z ^ (z >>> 33);
  }

  /** FNV-1a: a stable 64-bit hash of the tensor name (String.hashCode is only 32 bits). */
  private static long fnv64(String s) {
    long h = 0xcbf29ce484222325L;
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      h = (h ^ (b & 0xff)) * 0x100000001b3L;
    }
    return h;
  }

  @Override
  public void close() {
    closed = true;
  }

  @Override
  public String toString() {
    return "random checkpoint (" + dtype + ", seed " + seed + ", " + config.numHiddenLayers() + " layers × "
        + config.hiddenSize() + ")";
  }
}
