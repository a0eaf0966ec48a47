package io.github.optjava.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.engine.KvCache;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/** The Hugging Face golden data of one fixture model (see docs/fixtures.md) and a way to run the model on it. */
final class HfReference {
  static final ObjectMapper JSON = new ObjectMapper();

  final String name;
  final Path modelDir;
  final JsonNode json;

  HfReference(String name) {
    this.name = name;
    try {
      this.modelDir = Path.of(HfReference.class.getResource("/fixtures/models/" + name).toURI());
      try (InputStream in = resource("reference.json")) {
        this.json = JSON.readTree(in);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  private InputStream resource(String file) {
    InputStream in = HfReference.class.getResourceAsStream("/fixtures/reference/" + name + "/" + file);
    if (in == null) {
      throw new IllegalStateException("missing fixture reference/" + name + "/" + file);
    }
    return in;
  }

  /** A float32 array file of this reference, as rows of {@code cols}. */
  float[][] rows(String file, int cols) {
    try (InputStream in = resource(file)) {
      ByteBuffer b = ByteBuffer.wrap(in.readAllBytes()).order(ByteOrder.LITTLE_ENDIAN);
      float[] all = new float[b.remaining() / 4];
      b.asFloatBuffer().get(all);
      float[][] out = new float[all.length / cols][];
      for (int r = 0; r < out.length; r++) {
        out[r] = java.util.Arrays.copyOfRange(all, r * cols, (r + 1) * cols);
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).asInt();
    }
    return out;
  }

  /** The model loaded from the safetensors file (or from {@code weightsDir} when given) onto {@code ops}. */
  OptModel load(Ops ops, Path weightsDir) {
    Path dir = weightsDir == null ? modelDir : weightsDir;
    OptConfig config = OptConfig.load(dir);
    try (Checkpoint ck = Checkpoints.open(dir)) {
      return new OptModel(config, new OptWeights(config, ck), ops);
    }
  }

  static KvCache cache(Ops ops, OptConfig c) {
    return new KvCache(ops.kvStore(c.numHiddenLayers(), 64, 16, c.hiddenSize()));
  }

  static float maxAbsDiff(float[] a, float[] b) {
    if (a.length != b.length) {
      throw new AssertionError("lengths " + a.length + " vs " + b.length);
    }
    float m = 0;
    for (int i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs(a[i] - b[i]));
    }
    return m;
  }

  static int argmax(float[] v, int from, int len) {
    int best = 0;
    for (int i = 1; i < len; i++) {
      if (v[from + i] > v[from + best]) {
        best = i;
      }
    }
    return best;
  }

  /** log_softmax(row)[id], in double. */
  static double logProb(float[] logits, int from, int len, int id) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < len; i++) {
      max = Math.max(max, logits[from + i]);
    }
    double sum = 0;
    for (int i = 0; i < len; i++) {
      sum += Math.exp(logits[from + i] - max);
    }
    return logits[from + id] - max - Math.log(sum);
  }
}
