package io.github.optjava.model;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;

/**
 * The OPT decoder (Zhang et al. 2022, as Hugging Face's {@code OPTForCausalLM} computes it), written once
 * against {@link Ops} so that every backend runs the same model. Covers every released size:
 * <ul>
 *   <li>pre-LN (125m, 1.3b … 175b): {@code x + attn(LN1(x))}, {@code x + fc2(relu(fc1(LN2(x))))}, final LN;</li>
 *   <li>post-LN (350m): {@code LN1(x + attn(x))}, {@code LN2(x + fc2(relu(fc1(x))))}, no final LN;</li>
 *   <li>350m's narrower embeddings: project_in after the token embedding, project_out before lm_head;</li>
 *   <li>learned positions with fairseq's offset 2 (inside {@link Ops#addPositions});</li>
 *   <li>lm_head tied to the token embedding (the same matrix when the checkpoint does not store it).</li>
 * </ul>
 * Sequences are batched ragged (no padding): each brings its new tokens, their positions continue from
 * what the {@link KvCache} already holds, which is exactly what HF computes from a left-padded mask.
 */
public final class OptModel implements AutoCloseable {
  private static final float LN_EPS = 1e-5f;

  private final OptConfig config;
  private final Ops ops;
  private final Mat embedTokens;     // (vocab, wordEmbedProjDim)
  private final Mat embedPositions;  // (maxPositions + 2, hidden)
  private final Mat projectIn;       // (hidden, wordEmbedProjDim), or null
  private final Mat projectOut;      // (wordEmbedProjDim, hidden), or null
  private final Mat finalNormW;      // (1, hidden), or null (post-LN)
  private final Mat finalNormB;      // (1, hidden), or null
  private final Mat lmHead;          // (vocab, wordEmbedProjDim): embedTokens itself when tied
  private final Layer[] layers;

  /** Where the constructor reads tensors from (by canonical name). */
  private interface Weights {
    Tensor get(String canonicalName);
  }

  /** One decoder layer's weights; Linear weights are (out, in), biases and LN parameters (1, n). */
  private record Layer(Mat q, Mat qBias, Mat k, Mat kBias, Mat v, Mat vBias, Mat out, Mat outBias,
      Mat attnNormW, Mat attnNormB, Mat fc1, Mat fc1Bias, Mat fc2, Mat fc2Bias, Mat mlpNormW, Mat mlpNormB) {}

  /** One sequence's share of a step: its new tokens and whether logits of all of them are wanted. */
  public record SeqStep(long seqId, int[] newTokens, boolean allLogits) {}

  /** Uploads the (already validated) weights to the backend in their checkpoint dtype. */
  public OptModel(OptConfig config, OptWeights w, Ops ops) {
    this(config, w, ops, null);
  }

  /**
   * Uploads the (already validated) weights to the backend, converted to {@code weightDtype} (null: as
   * stored in the checkpoint).
   */
  public OptModel(OptConfig config, OptWeights checkpointWeights, Ops ops, DType weightDtype) {
    this.config = config;
    this.ops = ops;
    Weights w = name -> {
      Tensor t = checkpointWeights.get(name);
      return weightDtype == null ? t : t.to(weightDtype);
    };
    embedTokens = ops.weight(w.get(OptWeights.EMBED_TOKENS));
    embedPositions = ops.weight(w.get(OptWeights.EMBED_POSITIONS));
    projectIn = config.hasProjections() ? ops.weight(w.get(OptWeights.PROJECT_IN)) : null;
    projectOut = config.hasProjections() ? ops.weight(w.get(OptWeights.PROJECT_OUT)) : null;
    finalNormW = config.hasFinalLayerNorm() ? ops.weight(w.get(OptWeights.FINAL_LAYER_NORM_WEIGHT)) : null;
    finalNormB = config.hasFinalLayerNorm() ? ops.weight(w.get(OptWeights.FINAL_LAYER_NORM_BIAS)) : null;
    lmHead = checkpointWeights.lmHeadTied() ? embedTokens : ops.weight(w.get(OptWeights.LM_HEAD));
    layers = new Layer[config.numHiddenLayers()];
    for (int l = 0; l < layers.length; l++) {
      layers[l] = new Layer(
          ops.weight(w.get(OptWeights.layer(l, "self_attn.q_proj.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.q_proj.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.k_proj.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.k_proj.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.v_proj.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.v_proj.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.out_proj.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn.out_proj.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn_layer_norm.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "self_attn_layer_norm.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "fc1.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "fc1.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "fc2.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "fc2.bias"))),
          ops.weight(w.get(OptWeights.layer(l, "final_layer_norm.weight"))),
          ops.weight(w.get(OptWeights.layer(l, "final_layer_norm.bias"))));
    }
  }

  public OptConfig config() {
    return config;
  }

  public Ops ops() {
    return ops;
  }

  /**
   * Runs one step: appends every sequence's new tokens to the KV cache (growing its block table) and
   * returns, per sequence, the logits (vocab floats) after its last new token, or after each of its new
   * tokens ({@code n × vocab}, row-major) when {@code allLogits}.
   */
  public float[][] forward(List<SeqStep> seqs, KvCache cache) {
    int n = seqs.size();
    int hidden = config.hiddenSize();
    int[] queryStart = new int[n];
    int[] queryCount = new int[n];
    int[] contextLength = new int[n];
    int[][] tables = new int[n][];
    int total = 0;
    int outRows = 0;
    for (int s = 0; s < n; s++) {
      SeqStep q = seqs.get(s);
      int past = cache.length(q.seqId());
      queryStart[s] = total;
      queryCount[s] = q.newTokens().length;
      contextLength[s] = past + queryCount[s];
      if (contextLength[s] > config.maxPositionEmbeddings()) {
        throw new IllegalArgumentException("sequence of " + contextLength[s] + " tokens exceeds the model's "
            + config.maxPositionEmbeddings() + " positions");
      }
      tables[s] = cache.reserve(q.seqId(), contextLength[s]);
      total += queryCount[s];
      outRows += q.allLogits() ? queryCount[s] : 1;
    }
    AttentionBatch batch = new AttentionBatch(queryStart, queryCount, contextLength, tables);
    int[] ids = new int[total];
    int[] positions = new int[total];
    int[] slots = new int[total];
    int[] outputRows = new int[outRows];
    for (int s = 0, r = 0; s < n; s++) {
      SeqStep q = seqs.get(s);
      int past = contextLength[s] - queryCount[s];
      for (int i = 0; i < queryCount[s]; i++) {
        int t = queryStart[s] + i;
        ids[t] = q.newTokens()[i];
        positions[t] = past + i;
        slots[t] = batch.slot(s, past + i, cache.blockSize());
        if (q.allLogits() || i == queryCount[s] - 1) {
          outputRows[r++] = t;
        }
      }
    }

    try (Scratch m = new Scratch(ops)) {
      // Embeddings: tokens (projected up for 350m) plus learned positions.
      Mat x = m.alloc(total, hidden);
      if (projectIn != null) {
        Mat e = m.alloc(total, config.wordEmbedProjDim());
        ops.embedding(e, embedTokens, ids);
        ops.linear(x, e, projectIn, null, false);
      } else {
        ops.embedding(x, embedTokens, ids);
      }
      ops.addPositions(x, embedPositions, positions);

      boolean preLn = config.doLayerNormBefore();
      float scale = (float) (1.0 / Math.sqrt(config.headDim()));
      Mat h = m.alloc(total, hidden);
      Mat q = m.alloc(total, hidden);
      Mat k = m.alloc(total, hidden);
      Mat v = m.alloc(total, hidden);
      Mat a = m.alloc(total, hidden);
      Mat f = m.alloc(total, config.ffnDim());
      for (int l = 0; l < layers.length; l++) {
        Layer p = layers[l];
        // Self-attention block.
        Mat in = x;
        if (preLn) {
          ops.layerNorm(h, x, p.attnNormW, p.attnNormB, LN_EPS);
          in = h;
        }
        ops.linear(q, in, p.q, p.qBias, false);
        ops.linear(k, in, p.k, p.kBias, false);
        ops.linear(v, in, p.v, p.vBias, false);
        ops.kvAppend(cache.store(), l, k, v, slots);
        ops.attention(a, q, cache.store(), l, batch, config.numAttentionHeads(), scale);
        ops.linear(h, a, p.out, p.outBias, false);
        ops.addInPlace(x, h);
        if (!preLn) { // 350m applies layer norm AFTER the residual add
          ops.layerNorm(h, x, p.attnNormW, p.attnNormB, LN_EPS);
          Mat t = x; x = h; h = t;
        }
        // Feed-forward block.
        in = x;
        if (preLn) {
          ops.layerNorm(h, x, p.mlpNormW, p.mlpNormB, LN_EPS);
          in = h;
        }
        ops.linear(f, in, p.fc1, p.fc1Bias, true);
        ops.linear(h, f, p.fc2, p.fc2Bias, false);
        ops.addInPlace(x, h);
        if (!preLn) {
          ops.layerNorm(h, x, p.mlpNormW, p.mlpNormB, LN_EPS);
          Mat t = x; x = h; h = t;
        }
      }

      // Only the rows whose logits are wanted go through the final norm, project_out and lm_head.
      Mat last = m.alloc(outRows, hidden);
      ops.gatherRows(last, x, outputRows);
      if (finalNormW != null) {
        Mat normed = m.alloc(outRows, hidden);
        ops.layerNorm(normed, last, finalNormW, finalNormB, LN_EPS);
        last = normed;
      }
      if (projectOut != null) {
        Mat projected = m.alloc(outRows, config.wordEmbedProjDim());
        ops.linear(projected, last, projectOut, null, false);
        last = projected;
      }
      Mat logits = m.alloc(outRows, config.vocabSize());
      ops.linear(logits, last, lmHead, null, false);
      float[] flat = ops.read(logits);

      float[][] result = new float[n][];
      int vocab = config.vocabSize();
      for (int s = 0, r = 0; s < n; s++) {
        int rows = seqs.get(s).allLogits() ? queryCount[s] : 1;
        result[s] = java.util.Arrays.copyOfRange(flat, r * vocab, (r + rows) * vocab);
        r += rows;
      }
      return result;
    }
  }

  @Override
  public void close() {
    List<Mat> all = new ArrayList<>(List.of(embedTokens, embedPositions, lmHead));
    for (Mat m : new Mat[] {projectIn, projectOut, finalNormW, finalNormB}) {
      if (m != null) {
        all.add(m);
      }
    }
    for (Layer p : layers) {
      all.addAll(List.of(p.q, p.qBias, p.k, p.kBias, p.v, p.vBias, p.out, p.outBias, p.attnNormW,
          p.attnNormB, p.fc1, p.fc1Bias, p.fc2, p.fc2Bias, p.mlpNormW, p.mlpNormB));
    }
    all.forEach(Mat::close); // closing the tied lm_head twice is harmless
  }

  /** Activation buffers of one step, all closed at its end (device memory on GPU backends). */
  private static final class Scratch implements AutoCloseable {
    private final Ops ops;
    private final List<Mat> mats = new ArrayList<>();

    Scratch(Ops ops) {
      this.ops = ops;
    }

    Mat alloc(int rows, int cols) {
      Mat m = ops.alloc(rows, cols);
      mats.add(m);
      return m;
    }

    @Override
    public void close() {
      mats.forEach(Mat::close);
    }
  }
}
