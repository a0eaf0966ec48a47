package io.github.optjava.model;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.GraphStepFailedException;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Shard;
import io.github.optjava.parallel.ShardedLinear;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

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
 *
 * <p>Tensor parallelism (Megatron style, see {@link ShardedLinear}): with a {@link TpGroup} of world size
 * {@code w}, each rank holds q/k/v and fc1 column-parallel (its {@code heads / w} heads, its
 * {@code ffn / w} hidden units) and out_proj and fc2 row-parallel (all-reduced); its KV cache is
 * {@code hidden / w} wide ({@link #kvWidth}). Embeddings, positions, layer norms, project_in/out and
 * lm_head are replicated: a vocab-parallel lm_head would need an all-gather of the logits, and
 * replicated, every rank computes the same logits. Every rank runs {@link #forward} with the same
 * sequences, each from its own thread, in the same order.
 *
 * <p>The decoder layers' Linear weights (q/k/v, out_proj, fc1, fc2) are stored through {@link Ops#linearWeight},
 * which quantizes them to int8 on a backend made to (the CPU ops' {@code int8Linears}); embeddings, lm_head,
 * project_in/out, layer norms and biases stay in their dtype.
 */
public final class OptModel implements CausalLm {
  private static final float LN_EPS = 1e-5f;
  /**
   * The most tokens per sequence a step of drafts may have to be declared a graph step: prompt lookup's K + 1 at
   * the sizes it is used with; each count is a graph of its own.
   */
  static final int MAX_GRAPH_TOKENS = 16;

  private final OptConfig config;
  private final Ops ops;
  private final Mat embedTokens;     // (vocab, wordEmbedProjDim)
  private final Mat embedPositions;  // (maxPositions + 2, hidden)
  private final Mat projectIn;       // (hidden, wordEmbedProjDim), or null
  private final Mat projectOut;      // (wordEmbedProjDim, hidden), or null
  private final Mat finalNormW;      // (1, hidden), or null (post-LN)
  private final Mat finalNormB;      // (1, hidden), or null
  private final Mat lmHead;          // (vocab, wordEmbedProjDim): embedTokens itself when tied
  private final Layer[] layers;      // this stage's layers: global index stage.firstLayer() + i
  private final Stage stage;
  private final TpGroup tp;
  private final int heads;           // attention heads of this rank: numAttentionHeads / world
  private final int width;           // q/k/v/attention columns of this rank: hidden / world
  private final int ffn;             // fc1 columns of this rank: ffnDim / world

  /**
   * One decoder layer's weights on this rank. qkv (3 × hidden/w, hidden: this rank's q, k and v rows
   * stacked, one GEMM) and fc1 (ffn/w, hidden) are column-parallel; out (hidden, hidden/w) and fc2
   * (hidden, ffn/w) row-parallel; LN parameters (1, hidden).
   */
  private record Layer(ShardedLinear qkv, ShardedLinear out, Mat attnNormW, Mat attnNormB, ShardedLinear fc1,
      ShardedLinear fc2, Mat mlpNormW, Mat mlpNormB) {}

  /** One sequence's share of a step: its new tokens and whether logits of all of them are wanted. */
  public record SeqStep(long seqId, int[] newTokens, boolean allLogits) {}

  /**
   * Which layers this model holds, for pipeline parallelism ({@link PipelineOptModel}): stage {@code index}
   * of {@code count} holds layers {@code [firstLayer, endLayer)}; the first stage also the embeddings, the
   * last the final layer norm and lm_head. {@link #all} is the whole model.
   */
  public record Stage(int index, int count, int firstLayer, int endLayer) {
    public static Stage all(OptConfig config) {
      return new Stage(0, 1, 0, config.numHiddenLayers());
    }

    /** Stage {@code index} of {@code count}, layers split as evenly as they go (earlier stages take the rest). */
    public static Stage of(int index, int count, OptConfig config) {
      int layers = config.numHiddenLayers();
      if (count < 1 || count > layers) {
        throw new IllegalArgumentException("a pipeline of " + count + " stages for a model of " + layers
            + " layers: use 1 to " + layers + " stages");
      }
      if (index < 0 || index >= count) {
        throw new IllegalArgumentException("stage " + index + " of a pipeline of " + count + " stages");
      }
      int base = layers / count;
      int extra = layers % count;
      int first = index * base + Math.min(index, extra);
      return new Stage(index, count, first, first + base + (index < extra ? 1 : 0));
    }

    boolean isFirst() {
      return index == 0;
    }

    boolean isLast() {
      return index == count - 1;
    }
  }

  /** What a pipeline stage hands on: the hidden states (total tokens × hidden), or on the last stage the logits. */
  public record StageOutput(float[] hidden, float[][] logits) {}

  /** Uploads the (already validated) weights to the backend in their checkpoint dtype. */
  public OptModel(OptConfig config, OptWeights w, Ops ops) {
    this(config, w, ops, null, TpGroup.single());
  }

  /**
   * Uploads the (already validated) weights to the backend, converted to {@code weightDtype} (null: as
   * stored in the checkpoint).
   */
  public OptModel(OptConfig config, OptWeights checkpointWeights, Ops ops, DType weightDtype) {
    this(config, checkpointWeights, ops, weightDtype, TpGroup.single());
  }

  /**
   * This rank's part of the model, for tensor parallelism over {@code tp} (see the class comment): the
   * sharded weights are sliced from the checkpoint before upload (a rank never reads the other ranks'
   * slices), then converted to {@code weightDtype} (null: as stored). The caller owns {@code tp}.
   *
   * @throws IllegalArgumentException if the world size does not divide the heads and the FFN width
   */
  public OptModel(OptConfig config, OptWeights checkpointWeights, Ops ops, DType weightDtype, TpGroup tp) {
    this(config, checkpointWeights, ops, weightDtype, tp, Stage.all(config));
  }

  /**
   * This rank's part of pipeline stage {@code stage} ({@link Stage}): only that stage's weights are read
   * from the checkpoint and uploaded.
   */
  public OptModel(OptConfig config, OptWeights checkpointWeights, Ops ops, DType weightDtype, TpGroup tp,
      Stage stage) {
    int world = tp.worldSize();
    Shard.requireDegree(world, config.numAttentionHeads(), config.ffnDim());
    this.config = config;
    this.ops = ops;
    this.tp = tp;
    this.stage = stage;
    this.heads = config.numAttentionHeads() / world;
    this.width = config.hiddenSize() / world;
    this.ffn = config.ffnDim() / world;
    Function<String, Tensor> w = checkpointWeights::get; // memory-mapped: nothing read until sliced or uploaded
    WeightFootprint.requireRoom(config, checkpointWeights, ops, weightDtype, tp, stage);
    Function<Tensor, Mat> upload = t -> ops.weight(weightDtype == null ? t : t.to(weightDtype));
    // The decoder layers' Linears go through linearWeight: a backend made to quantize stores them as int8.
    Function<Tensor, Mat> uploadLinear = t -> ops.linearWeight(weightDtype == null ? t : t.to(weightDtype));
    Function<String, Mat> replicated = name -> upload.apply(w.apply(name));
    boolean first = stage.isFirst();
    boolean last = stage.isLast();
    boolean tied = checkpointWeights.lmHeadTied();
    // The first stage embeds; the last projects to the vocabulary (with the token embedding when tied).
    embedTokens = first || (last && tied) ? replicated.apply(OptWeights.EMBED_TOKENS) : null;
    embedPositions = first ? replicated.apply(OptWeights.EMBED_POSITIONS) : null;
    projectIn = first && config.hasProjections() ? replicated.apply(OptWeights.PROJECT_IN) : null;
    projectOut = last && config.hasProjections() ? replicated.apply(OptWeights.PROJECT_OUT) : null;
    finalNormW = last && config.hasFinalLayerNorm() ? replicated.apply(OptWeights.FINAL_LAYER_NORM_WEIGHT) : null;
    finalNormB = last && config.hasFinalLayerNorm() ? replicated.apply(OptWeights.FINAL_LAYER_NORM_BIAS) : null;
    lmHead = !last ? null : tied ? embedTokens : replicated.apply(OptWeights.LM_HEAD);
    layers = new Layer[stage.endLayer() - stage.firstLayer()];
    for (int l = 0; l < layers.length; l++) {
      int layer = stage.firstLayer() + l;
      Function<String, Tensor> p = suffix -> w.apply(OptWeights.layer(layer, suffix));
      layers[l] = new Layer(
          ShardedLinear.columnStacked(tp,
              List.of(p.apply("self_attn.q_proj.weight"), p.apply("self_attn.k_proj.weight"),
                  p.apply("self_attn.v_proj.weight")),
              List.of(p.apply("self_attn.q_proj.bias"), p.apply("self_attn.k_proj.bias"),
                  p.apply("self_attn.v_proj.bias")),
              uploadLinear, upload),
          ShardedLinear.row(tp, p.apply("self_attn.out_proj.weight"), p.apply("self_attn.out_proj.bias"),
              uploadLinear, upload),
          upload.apply(p.apply("self_attn_layer_norm.weight")),
          upload.apply(p.apply("self_attn_layer_norm.bias")),
          ShardedLinear.column(tp, p.apply("fc1.weight"), p.apply("fc1.bias"), uploadLinear, upload),
          ShardedLinear.row(tp, p.apply("fc2.weight"), p.apply("fc2.bias"), uploadLinear, upload),
          upload.apply(p.apply("final_layer_norm.weight")),
          upload.apply(p.apply("final_layer_norm.bias")));
    }
  }

  @Override
  public OptConfig config() {
    return config;
  }

  public Ops ops() {
    return ops;
  }

  /** The tensor-parallel group this rank belongs to ({@link TpGroup#single()} when not sharded). */
  public TpGroup tp() {
    return tp;
  }

  /** The width of this rank's KV cache ({@link Ops#kvStore}): hidden / world, the keys of its own heads. */
  public int kvWidth() {
    return width;
  }

  /** {@link Ops#kvCopyBlocks} on the cache's store. */
  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    ops.kvCopyBlocks(cache.store(), src, dst);
  }

  /** A cache over {@link Ops#kvStore} of this rank's width ({@link #kvWidth}) and this stage's layers. */
  @Override
  public KvCache newCache(int blocks, int blockSize) {
    return new KvCache(ops.kvStore(layers.length, blocks, blockSize, width));
  }

  /** The layers this model holds (all of them unless it is a pipeline stage). */
  public Stage stage() {
    return stage;
  }

  /**
   * Runs one step: appends every sequence's new tokens to the KV cache (growing its block table) and
   * returns, per sequence, the logits (vocab floats) after its last new token, or after each of its new
   * tokens ({@code n × vocab}, row-major) when {@code allLogits}.
   */
  @Override
  public float[][] forward(List<SeqStep> seqs, KvCache cache) {
    requireWholeModel();
    return step(seqs, cache, null, null, null, null).logits;
  }

  /**
   * {@link CausalLm#forwardScored}: the scored sequences' log-probs (and their alternatives) come from
   * {@link Ops#tokenLogprobs} where the logits are, and only their last rows are read back (on a GPU, 8 bytes per
   * prompt row, and 8 per alternative, instead of a vocabulary).
   */
  @Override
  public Scored forwardScored(List<SeqStep> seqs, KvCache cache, int[][] scoreTokens, int top) {
    requireWholeModel();
    StepResult r = step(seqs, cache, null, null, null, scoreTokens, top);
    return new Scored(r.logits, r.scores, r.topIds, r.topLogprobs);
  }

  /**
   * One pipeline stage's part of a step ({@link PipelineOptModel}): {@code hiddenIn} is the previous stage's
   * output (null on the first stage, which embeds the tokens); returns the hidden states for the next stage,
   * or on the last stage the logits as {@link #forward} returns them.
   */
  public StageOutput stageForward(List<SeqStep> seqs, KvCache cache, float[] hiddenIn) {
    float[][] out = new float[1][];
    StageIo host = new StageIo() {
      @Override
      public void receive(Ops o, Mat x) {
        if (hiddenIn.length != (long) x.rows() * x.cols()) {
          throw new IllegalArgumentException("stage " + stage.index() + " got " + hiddenIn.length
              + " hidden values for " + x.rows() + " tokens × " + x.cols());
        }
        o.write(x, hiddenIn);
      }

      @Override
      public void send(Ops o, Mat x) {
        out[0] = o.read(x);
      }
    };
    if (stage.isFirst() != (hiddenIn == null)) {
      throw new IllegalArgumentException(stage.isFirst() ? "the first stage embeds the tokens: pass no hidden states"
          : "stage " + stage.index() + " needs the previous stage's hidden states");
    }
    float[][] logits = stageForward(seqs, cache, host);
    return new StageOutput(out[0], logits);
  }

  /**
   * Where a pipeline stage's input comes from and where its output goes: host arrays ({@link #stageForward(List,
   * KvCache, float[])}), or another process over TCP or NCCL ({@link MultiProcessOptModel}).
   */
  public interface StageIo {
    /** Fills {@code x} (the step's tokens × hidden, on this stage's backend) with the previous stage's output. */
    void receive(Ops ops, Mat x);

    /** Hands on {@code x} (this stage's output, the same shape). */
    void send(Ops ops, Mat x);
  }

  /**
   * One pipeline stage's part of a step with its input and output through {@code io} (the first stage embeds
   * the tokens instead of receiving; the last computes the logits instead of sending): the logits as
   * {@link #forward} returns them on the last stage, else null.
   */
  public float[][] stageForward(List<SeqStep> seqs, KvCache cache, StageIo io) {
    return step(seqs, cache, null, stage.isFirst() ? null : io, stage.isLast() ? null : io, null).logits;
  }

  private void requireWholeModel() {
    if (stage.count() != 1) {
      throw new IllegalStateException("pipeline stage " + stage.index() + " of " + stage.count()
          + " holds layers " + stage.firstLayer() + ".." + (stage.endLayer() - 1) + ": run it through PipelineOptModel");
    }
  }

  /**
   * As {@link #forward} for steps without {@code allLogits}, returning only each sequence's greedy next token
   * (the first index of the maximum logit), computed where the logits are (a GPU copies back 4 bytes per
   * sequence instead of a row of the vocabulary).
   */
  @Override
  public int[] greedy(List<SeqStep> seqs, KvCache cache, double[] logprobs) {
    for (SeqStep q : seqs) {
      if (q.allLogits()) {
        throw new IllegalArgumentException("greedy(): sequence " + q.seqId() + " asks for the logits of all its tokens");
      }
    }
    return greedyRows(seqs, cache, logprobs);
  }

  /** As {@link #greedy}, one token per output row (every row of an {@code allLogits} sequence), on the device. */
  @Override
  public int[] greedyRows(List<SeqStep> seqs, KvCache cache, double[] logprobs) {
    return greedyRows(seqs, cache, logprobs, LogitEdits.NONE);
  }

  /** As {@link #greedyRows(List, KvCache, double[])}, the ops editing the rows where they are. */
  @Override
  public int[] greedyRows(List<SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits) {
    requireWholeModel();
    return step(seqs, cache, logits -> pickRows(logits.rows(), logprobs, lp -> ops.argmaxRows(logits, lp, edits)),
        null, null, null).argmax;
  }

  /** As {@link CausalLm#greedyRows(List, KvCache, double[], LogitEdits, int, int[], double[])}, where the logits are. */
  @Override
  public int[] greedyRows(List<SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits, int k,
      int[] topIds, double[] topLogprobs) {
    if (k == 0) {
      return greedyRows(seqs, cache, logprobs, edits);
    }
    requireWholeModel();
    return step(seqs, cache, logits -> {
      int rows = logits.rows(); // a padded decode step has more rows than the caller's arrays
      double[] lp = new double[rows];
      int[] ids = rows * k <= topIds.length ? topIds : new int[rows * k];
      double[] tops = rows * k <= topLogprobs.length ? topLogprobs : new double[rows * k];
      int[] tokens = ops.argmaxRows(logits, lp, edits, k, ids, tops);
      if (logprobs != null) {
        System.arraycopy(lp, 0, logprobs, 0, Math.min(rows, logprobs.length));
      }
      if (ids != topIds) {
        System.arraycopy(ids, 0, topIds, 0, topIds.length);
      }
      if (tops != topLogprobs) {
        System.arraycopy(tops, 0, topLogprobs, 0, topLogprobs.length);
      }
      return tokens;
    }, null, null, null).argmax;
  }

  /**
   * As {@link #greedy}, drawing each sequence's token instead ({@link Ops#sampleRows}: temperature, top-k, top-p,
   * min-p and typical sampling with the given uniform numbers), where the logits are: a GPU copies back a token and a
   * log-prob per sequence.
   */
  @Override
  public int[] sample(List<SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs) {
    return sample(seqs, cache, spec, logprobs, LogitEdits.NONE);
  }

  /** As {@link #sample(List, KvCache, SamplingRows, double[])}, the ops editing the rows where they are. */
  @Override
  public int[] sample(List<SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs, LogitEdits edits) {
    for (SeqStep q : seqs) {
      if (q.allLogits()) {
        throw new IllegalArgumentException("sample(): sequence " + q.seqId() + " asks for the logits of all its tokens");
      }
    }
    requireWholeModel();
    return step(seqs, cache, logits -> pickRows(logits.rows(), logprobs, lp -> {
      return ops.sampleRows(logits, spec.paddedTo(logits.rows()), lp, edits);
    }), null, null, null).argmax;
  }

  /** As {@link CausalLm#beamTopK}, where the logits are ({@link Ops#beamTopK}). */
  @Override
  public void beamTopK(List<SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores) {
    beamTopK(seqs, cache, rows, base, k, ids, scores, LogitEdits.NONE);
  }

  /** As {@link CausalLm#beamTopK} with the beams' processors as edits, where the logits are. */
  @Override
  public void beamTopK(List<SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores, LogitEdits edits) {
    for (SeqStep q : seqs) {
      if (q.allLogits()) {
        throw new IllegalArgumentException("beamTopK(): sequence " + q.seqId() + " asks for the logits of all its "
            + "tokens");
      }
    }
    io.github.optjava.backend.RowMath.requireBeamLists(rows, base, k, ids, scores, seqs.size());
    requireWholeModel();
    step(seqs, cache, logits -> { // a padded decode step has more rows than sequences: rows[] names the real ones
      ops.beamTopK(logits, rows, base, k, ids, scores, edits);
      return new int[0];
    }, null, null, null);
  }

  /** As {@link CausalLm#sample(List, KvCache, SamplingRows, double[], LogitEdits, int, int[], double[])}, on the ops. */
  @Override
  public int[] sample(List<SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs, LogitEdits edits, int k,
      int[] topIds, double[] topLogprobs) {
    if (k == 0) {
      return sample(seqs, cache, spec, logprobs, edits);
    }
    for (SeqStep q : seqs) {
      if (q.allLogits()) {
        throw new IllegalArgumentException("sample(): sequence " + q.seqId() + " asks for the logits of all its tokens");
      }
    }
    requireWholeModel();
    return step(seqs, cache, logits -> {
      int rows = logits.rows(); // a padded decode step has more rows than the caller's arrays
      double[] lp = new double[rows];
      int[] ids = new int[rows * k];
      double[] tops = new double[rows * k];
      int[] tokens = ops.sampleRows(logits, spec.paddedTo(rows), lp, edits, k, ids, tops);
      if (logprobs != null) {
        System.arraycopy(lp, 0, logprobs, 0, Math.min(rows, logprobs.length));
      }
      System.arraycopy(ids, 0, topIds, 0, Math.min(ids.length, topIds.length));
      System.arraycopy(tops, 0, topLogprobs, 0, Math.min(tops.length, topLogprobs.length));
      return tokens;
    }, null, null, null).argmax;
  }

  /**
   * As {@link CausalLm#pickSome}, where the logits are: {@link Ops#sampleRows} over every output row (a picked
   * sequence's every row; the rows that go to the host, a scored sequence's rows and a padded step's padding rows as
   * greedy rows: the cheapest pick, dropped; with extra picks, over the step's rows and the extra picks' rows gathered
   * after the step), a scored sequence's scores by {@link Ops#tokenLogprobs} before that, then the host rows gathered
   * and read (a scored sequence's last only: a GPU copies back the picks, the scores and only those rows). Where the
   * ops cannot pick greedy rows among drawn ones on the device ({@link Ops#picksMixedRowsOnDevice}),
   * {@link CausalLm}'s default: every row read once.
   */
  @Override
  public Picks pickSome(List<SeqStep> seqs, KvCache cache, Picking p) {
    if (!ops.picksMixedRowsOnDevice()) { // its sampleRows would read every row: read them once, pick on the host
      return CausalLm.super.pickSome(seqs, cache, p);
    }
    requireWholeModel();
    CausalLm.requirePickable(seqs, p);
    boolean[] toHost = p.toHost();
    int[][] scoreTokens = p.scoreTokens();
    int scoreTop = p.scoreTop();
    int extra = p.extra();
    int k = p.k();
    int n = seqs.size();
    int vocab = config.vocabSize();
    int[] first = new int[n];
    List<Integer> hostRows = new ArrayList<>();
    int outRows = 0;
    for (int s = 0; s < n; s++) {
      SeqStep q = seqs.get(s);
      int rows = q.allLogits() ? q.newTokens().length : 1;
      first[s] = outRows;
      if (scoreTokens != null && scoreTokens[s] != null) {
        if (scoreTokens[s].length > rows) {
          throw new IllegalArgumentException("sequence " + s + ": " + scoreTokens[s].length + " score tokens for "
              + rows + " rows");
        }
        hostRows.add(outRows + rows - 1); // a scored sequence: its last row
      } else if (toHost[s]) {
        for (int i = 0; i < rows; i++) {
          hostRows.add(outRows + i);
        }
      }
      outRows += rows;
    }
    int stepRows = outRows;
    int total = stepRows + extra;
    int[] scoredRows = scoreTokens != null ? new int[outRows] : null; // each row's scored token; -1: none
    if (scoredRows != null) {
      java.util.Arrays.fill(scoredRows, -1);
      for (int s = 0; s < n; s++) {
        if (scoreTokens[s] != null) {
          System.arraycopy(scoreTokens[s], 0, scoredRows, first[s], scoreTokens[s].length);
        }
      }
    }
    float[][] logits = new float[n][];
    double[][] scores = scoreTokens != null ? new double[n][] : null;
    int[][] scoreIds = scoreTokens != null && scoreTop > 0 ? new int[n][] : null;
    double[][] scoreLps = scoreIds != null ? new double[n][] : null;
    double[] logprobs = new double[total];
    int[] topIds = k > 0 ? new int[total * k] : null;
    double[] topLogprobs = k > 0 ? new double[total * k] : null;
    int[] tokens = new int[total]; // (not step()'s result: a padded step cuts that to the sequences, extra picks too)
    step(seqs, cache, out -> {
      if (scoredRows != null) { // before the picks: their edits may change the logits in place
        // (a scored step is never padded: one entry per row)
        int[] ids = scoreIds != null ? new int[stepRows * scoreTop] : null;
        double[] lps = scoreIds != null ? new double[stepRows * scoreTop] : null;
        double[] lp = ops.tokenLogprobs(out, scoredRows, scoreIds != null ? scoreTop : 0, ids, lps);
        for (int s = 0; s < n; s++) {
          if (scoreTokens[s] != null) {
            scores[s] = java.util.Arrays.copyOfRange(lp, first[s], first[s] + scoreTokens[s].length);
            if (ids != null) {
              scoreIds[s] = java.util.Arrays.copyOfRange(ids, first[s] * scoreTop,
                  (first[s] + scoreTokens[s].length) * scoreTop);
              scoreLps[s] = java.util.Arrays.copyOfRange(lps, first[s] * scoreTop,
                  (first[s] + scoreTokens[s].length) * scoreTop);
            }
          }
        }
      }
      // a padded decode step has more rows than the sequences; with extra picks, the step's rows and then the rows
      // the extra picks read, gathered (the padding dropped)
      int rows = extra > 0 ? total : out.rows();
      SamplingRows picks = SamplingRows.greedy(rows); // greedy: the host rows and the padding
      for (int s = 0; s < n; s++) {
        int count = seqs.get(s).allLogits() ? seqs.get(s).newTokens().length : 1;
        for (int r = first[s]; r < first[s] + count && !toHost[s]; r++) { // a picked one's every row (its drafts)
          picks.set(r, p.spec(), r);
        }
      }
      for (int r = stepRows; r < total; r++) {
        picks.set(r, p.spec(), r);
      }
      double[] lp = new double[rows];
      int[] ids = new int[rows * k];
      double[] tops = new double[rows * k];
      int[] picked;
      if (extra > 0) {
        int[] from = new int[rows];
        for (int r = 0; r < rows; r++) {
          from[r] = r < stepRows ? r : p.extraRows()[r - stepRows];
        }
        ops.finishStep(); // the gather is not part of the step (a graph step's capture or replay ends here)
        try (Mat all = ops.alloc(rows, vocab)) {
          ops.gatherRows(all, out, from);
          picked = ops.sampleRows(all, picks, lp, p.edits(), k, ids, tops);
        }
      } else {
        picked = ops.sampleRows(out, picks, lp, p.edits(), k, ids, tops);
      }
      float[] flat = readRows(out, hostRows);
      int[] perRow = new int[total];
      for (int s = 0, h = 0; s < n; s++) {
        int count = seqs.get(s).allLogits() ? seqs.get(s).newTokens().length : 1;
        if (toHost[s]) {
          boolean scored = scoreTokens != null && scoreTokens[s] != null; // its last row only
          int brought = scored ? 1 : count;
          logits[s] = java.util.Arrays.copyOfRange(flat, h * vocab, (h + brought) * vocab);
          h += brought;
          java.util.Arrays.fill(perRow, first[s], first[s] + count, -1);
          continue;
        }
        copyPicks(picked, lp, ids, tops, k, first[s], count, perRow, logprobs, topIds, topLogprobs);
      }
      copyPicks(picked, lp, ids, tops, k, stepRows, extra, perRow, logprobs, topIds, topLogprobs);
      System.arraycopy(perRow, 0, tokens, 0, total);
      return perRow;
    }, null, null, scoreTokens, scoreTop);
    return new Picks(tokens, logprobs, topIds, topLogprobs, logits, scores, scoreIds, scoreLps);
  }

  /** Picks {@code from .. from + count} of a sampleRows call (its tokens, log-probs and k alternatives each). */
  private static void copyPicks(int[] picked, double[] lp, int[] ids, double[] tops, int k, int from, int count,
      int[] tokens, double[] logprobs, int[] topIds, double[] topLogprobs) {
    System.arraycopy(picked, from, tokens, from, count);
    System.arraycopy(lp, from, logprobs, from, count);
    if (k > 0) {
      System.arraycopy(ids, from * k, topIds, from * k, count * k);
      System.arraycopy(tops, from * k, topLogprobs, from * k, count * k);
    }
  }

  /** Rows {@code rows} of {@code m} read to the host in order (gathered first unless they are all of them). */
  private float[] readRows(Mat m, List<Integer> rows) {
    if (rows.isEmpty()) {
      return new float[0];
    }
    int[] r = rows.stream().mapToInt(Integer::intValue).toArray();
    if (isEveryRow(r, m.rows())) {
      return ops.read(m);
    }
    try (Mat kept = ops.alloc(r.length, m.cols())) {
      ops.gatherRows(kept, m, r);
      return ops.read(kept);
    }
  }

  /**
   * {@code pick} over every row of a step's logits, which a padded decode step has more of than its caller's
   * {@code logprobs}: then the pick fills a longer array and the caller's gets its first rows.
   */
  private static int[] pickRows(int rows, double[] logprobs, java.util.function.Function<double[], int[]> pick) {
    if (logprobs == null || logprobs.length >= rows) {
      return pick.apply(logprobs);
    }
    double[] all = new double[rows];
    int[] tokens = pick.apply(all);
    System.arraycopy(all, 0, logprobs, 0, logprobs.length);
    return tokens;
  }

  @Override
  public boolean samplesOnDevice() {
    return ops.samplesOnDevice();
  }

  @Override
  public boolean samplesTypicalOnDevice() {
    return ops.samplesTypicalOnDevice();
  }

  /** What a step returns: the logits per sequence, or the argmax per sequence (mid-pipeline: nothing). */
  private record StepResult(float[][] logits, int[] argmax, double[][] scores, int[][] topIds,
      double[][] topLogprobs) {
    StepResult(float[][] logits, int[] argmax, double[][] scores) {
      this(logits, argmax, scores, null, null);
    }

    StepResult(float[][] logits, int[] argmax) {
      this(logits, argmax, null);
    }
  }

  /**
   * One step: lays it out ({@link StepLayout}: rows, slots, block tables, graph step or not, padding rows), then runs
   * the ops. {@code input}: where a later stage's hidden states come from (null: embed the tokens); {@code output}:
   * where a stage before the last sends its own (null: compute the logits).
   */
  private StepResult step(List<SeqStep> seqs, KvCache cache, java.util.function.Function<Mat, int[]> picker,
      StageIo input, StageIo output, int[][] scoreTokens) {
    return step(seqs, cache, picker, input, output, scoreTokens, 0);
  }

  /** As {@link #step(List, KvCache, java.util.function.Function, StageIo, StageIo, int[][])}, with {@code scoreTop}
   * alternatives per scored row ({@link #forwardScored}). */
  private StepResult step(List<SeqStep> seqs, KvCache cache, java.util.function.Function<Mat, int[]> picker,
      StageIo input, StageIo output, int[][] scoreTokens, int scoreTop) {
    if (cache.store().width() != width) {
      throw new IllegalArgumentException("KV cache of width " + cache.store().width() + " for a model whose rank "
          + tp.rank() + " of " + tp.worldSize() + " keeps " + width + " (hidden / world): size it with kvWidth()");
    }
    boolean graphable = !tp.communicates() && stage.count() == 1;
    StepLayout layout = StepLayout.plan(seqs, cache, config, ops, graphable, scoreTokens != null);
    StepInputs in = new StepInputs(seqs, layout, input, output, scoreTokens, scoreTop);
    if (!layout.graphStep()) {
      return runOps(in, cache, picker);
    }
    ops.graphStep(cache.store(), layout.rows(), layout.tokensPerSequence(), layout.tableWidth());
    StepResult r;
    try {
      r = runOps(in, cache, picker);
    } catch (GraphStepFailedException e) { // nothing of the step ran: run it again, op by op
      r = runOps(in, cache, picker);
    }
    // the padding rows' tokens are dropped (their logits: runOps returns the first n sequences' only)
    return layout.padded() && r.argmax != null
        ? new StepResult(r.logits, java.util.Arrays.copyOf(r.argmax, seqs.size())) : r;
  }

  /**
   * The end of a {@link #forwardScored} step: each scored sequence's rows' log-probs at its score tokens, and the rows
   * the engine still needs (a scored sequence's last, the others' all). Where the ops score on the device, the
   * scores come from {@link Ops#tokenLogprobs} and only the needed rows are gathered and read; else the rows are
   * read once and scored on the host.
   */
  private StepResult scored(Mat logits, List<SeqStep> seqs, int[] queryCount, int[][] scoreTokens, int top,
      Scratch m) {
    int n = seqs.size();
    int vocab = config.vocabSize();
    int[] rowTokens = new int[logits.rows()];
    java.util.Arrays.fill(rowTokens, -1); // rows nobody scores
    List<Integer> keep = new ArrayList<>();
    int[] first = new int[n];
    for (int s = 0, r = 0; s < n; s++) {
      int rows = seqs.get(s).allLogits() ? queryCount[s] : 1;
      first[s] = r;
      int[] t = scoreTokens[s];
      if (t != null) {
        if (!seqs.get(s).allLogits() || t.length > rows) {
          throw new IllegalArgumentException("sequence " + s + ": " + t.length + " score tokens for " + rows
              + " rows (scoring needs allLogits)");
        }
        System.arraycopy(t, 0, rowTokens, r, t.length);
        keep.add(r + rows - 1);
      } else {
        for (int i = 0; i < rows; i++) {
          keep.add(r + i);
        }
      }
      r += rows;
    }
    float[][] result = new float[n][];
    double[][] scores = new double[n][];
    int[][] topIds = top > 0 ? new int[n][] : null;
    double[][] topLogprobs = top > 0 ? new double[n][] : null;
    int[] ids = top > 0 ? new int[logits.rows() * top] : null;
    double[] lps = top > 0 ? new double[logits.rows() * top] : null;
    if (!ops.scoresOnDevice()) { // one read of every row, then the host
      float[] flat = ops.read(logits);
      double[] lp = io.github.optjava.backend.RowMath.tokenLogprobs(flat, vocab, rowTokens);
      for (int r = 0; r < logits.rows() && top > 0; r++) { // every row, as Ops.tokenLogprobs lists them
        io.github.optjava.backend.RowMath.pickRow(flat, r * vocab, vocab, null, 0, top, ids, lps, r * top);
      }
      for (int s = 0; s < n; s++) {
        int rows = seqs.get(s).allLogits() ? queryCount[s] : 1;
        int from = scoreTokens[s] != null ? first[s] + rows - 1 : first[s];
        int count = scoreTokens[s] != null ? 1 : rows;
        result[s] = java.util.Arrays.copyOfRange(flat, from * vocab, (from + count) * vocab);
        scoresOf(s, scoreTokens, first, top, lp, ids, lps, scores, topIds, topLogprobs);
      }
      return new StepResult(result, null, scores, topIds, topLogprobs);
    }
    double[] lp = ops.tokenLogprobs(logits, rowTokens, top, ids, lps);
    int[] keepRows = keep.stream().mapToInt(Integer::intValue).toArray();
    Mat kept = logits;
    if (!isEveryRow(keepRows, logits.rows())) {
      kept = m.alloc(keepRows.length, vocab);
      ops.gatherRows(kept, logits, keepRows);
    }
    float[] flat = ops.read(kept);
    for (int s = 0, k = 0; s < n; s++) {
      int rows = scoreTokens[s] != null ? 1 : seqs.get(s).allLogits() ? queryCount[s] : 1;
      result[s] = java.util.Arrays.copyOfRange(flat, k * vocab, (k + rows) * vocab);
      k += rows;
      scoresOf(s, scoreTokens, first, top, lp, ids, lps, scores, topIds, topLogprobs);
    }
    return new StepResult(result, null, scores, topIds, topLogprobs);
  }

  /** Sequence {@code s}'s share of a step's row scores and alternatives (nothing when it is not scored). */
  private static void scoresOf(int s, int[][] scoreTokens, int[] first, int top, double[] lp, int[] ids, double[] lps,
      double[][] scores, int[][] topIds, double[][] topLogprobs) {
    if (scoreTokens[s] == null) {
      return;
    }
    int end = first[s] + scoreTokens[s].length;
    scores[s] = java.util.Arrays.copyOfRange(lp, first[s], end);
    if (top > 0) {
      topIds[s] = java.util.Arrays.copyOfRange(ids, first[s] * top, end * top);
      topLogprobs[s] = java.util.Arrays.copyOfRange(lps, first[s] * top, end * top);
    }
  }

  /** Whether {@code rows} is 0, 1, …, total - 1: every row, in order. */
  private static boolean isEveryRow(int[] rows, int total) {
    if (rows.length != total) {
      return false;
    }
    for (int i = 0; i < total; i++) {
      if (rows[i] != i) {
        return false;
      }
    }
    return true;
  }

  /** What the ops of one step read, prepared by {@link #step}. */
  private record StepInputs(List<SeqStep> seqs, StepLayout layout, StageIo input, StageIo output,
      int[][] scoreTokens, int scoreTop) {}

  /**
   * The ops of one step: embeddings, every layer, final norm, lm_head; then the logits or their argmax.
   * {@code picker}: how the tokens are picked where the logits are (argmax, sampling), or null for the logits.
   */
  private StepResult runOps(StepInputs in, KvCache cache, java.util.function.Function<Mat, int[]> picker) {
    List<SeqStep> seqs = in.seqs;
    AttentionBatch batch = in.layout.batch();
    int[] ids = in.layout.ids();
    int[] positions = in.layout.positions();
    int[] slots = in.layout.slots();
    int[] outputRows = in.layout.outputRows();
    int total = in.layout.total();
    int outRows = in.layout.outRows();
    int n = seqs.size();
    int hidden = config.hiddenSize();
    int[] queryCount = batch.queryCount();
    try (Scratch m = new Scratch(ops)) {
      // Embeddings: tokens (projected up for 350m) plus learned positions; or a later pipeline stage's input.
      Mat x = m.alloc(total, hidden);
      if (in.input != null) {
        in.input.receive(ops, x);
      } else if (projectIn != null) {
        Mat e = m.alloc(total, config.wordEmbedProjDim());
        ops.embedding(e, embedTokens, ids);
        ops.linear(x, e, projectIn, null, false);
      } else {
        ops.embedding(x, embedTokens, ids);
      }
      if (in.input == null) {
        ops.addPositions(x, embedPositions, positions);
      }

      // Each Linear that feeds a residual add leaves its bias out of the GEMM; one fused op then adds the
      // bias and the residual and applies the layer norm that comes next (Ops.addBiasLayerNorm), and q/k/v
      // are one GEMM whose epilogue appends k and v to the cache (Ops.qkvProjectAppend): 7 ops per layer.
      boolean preLn = config.doLayerNormBefore();
      float scale = (float) (1.0 / Math.sqrt(config.headDim()));
      Mat h = m.alloc(total, hidden); // pre-LN: the layer norm of x that the next block reads
      Mat y = m.alloc(total, hidden); // a row-parallel Linear's output, before its bias and the residual add
      Mat qkv = m.alloc(total, 3 * width); // this rank's heads only
      Mat q = m.alloc(total, width);
      Mat a = m.alloc(total, width);
      Mat f = m.alloc(total, ffn);
      if (preLn) {
        ops.layerNorm(h, x, layers[0].attnNormW, layers[0].attnNormB, LN_EPS);
      }
      for (int l = 0; l < layers.length; l++) {
        Layer p = layers[l];
        // Self-attention block.
        // column-parallel: this rank's heads; q out, k and v into the cache
        p.qkv.projectAppend(ops, q, cache.store(), l, qkv, preLn ? h : x, slots);
        ops.attention(a, q, cache.store(), l, batch, heads, scale);
        p.out.project(ops, y, a); // row-parallel: all-reduced across ranks
        if (preLn) { // x += attn; h = LN2(x)
          ops.addBiasLayerNorm(x, y, p.out.bias(), h, p.mlpNormW, p.mlpNormB, LN_EPS);
        } else { // 350m applies layer norm AFTER the residual add: x = LN1(x + attn)
          ops.addBiasLayerNorm(x, y, p.out.bias(), h, p.attnNormW, p.attnNormB, LN_EPS);
          Mat t = x; x = h; h = t;
        }
        // Feed-forward block.
        p.fc1.forward(ops, f, preLn ? h : x, true); // column-parallel: this rank's ffn / world units
        if (!preLn) { // x = LN2(x + mlp)
          p.fc2.project(ops, y, f);
          ops.addBiasLayerNorm(x, y, p.fc2.bias(), h, p.mlpNormW, p.mlpNormB, LN_EPS);
          Mat t = x; x = h; h = t;
        } else if (l + 1 < layers.length || finalNormW != null) { // x += mlp; h = the next layer norm
          p.fc2.project(ops, y, f);
          boolean last = l + 1 == layers.length;
          ops.addBiasLayerNorm(x, y, p.fc2.bias(), h, last ? finalNormW : layers[l + 1].attnNormW,
              last ? finalNormB : layers[l + 1].attnNormB, LN_EPS);
        } else { // the last layer of a pipeline stage before the last, or of a model without a final norm
          p.fc2.forward(ops, y, f, false);
          ops.addInPlace(x, y);
        }
      }
      if (!stage.isLast()) { // the residual stream goes on to the next stage
        in.output.send(ops, x);
        return new StepResult(null, null);
      }
      // The final hidden states: after the final layer norm (in h, pre-LN) or x.
      Mat finalHidden = preLn && finalNormW != null ? h : x;

      // Only the rows whose logits are wanted go through project_out and lm_head (a decode step wants every row:
      // no gather then).
      Mat last = finalHidden;
      if (!isEveryRow(outputRows, total)) {
        last = m.alloc(outRows, hidden);
        ops.gatherRows(last, finalHidden, outputRows);
      }
      if (projectOut != null) {
        Mat projected = m.alloc(outRows, config.wordEmbedProjDim());
        ops.linear(projected, last, projectOut, null, false);
        last = projected;
      }
      Mat logits = m.alloc(outRows, config.vocabSize());
      ops.linear(logits, last, lmHead, null, false);
      if (picker != null) {
        return new StepResult(null, picker.apply(logits));
      }
      if (in.scoreTokens != null) {
        return scored(logits, seqs, queryCount, in.scoreTokens, in.scoreTop, m);
      }
      float[] flat = ops.read(logits);

      float[][] result = new float[n][];
      int vocab = config.vocabSize();
      for (int s = 0, r = 0; s < n; s++) {
        int rows = seqs.get(s).allLogits() ? queryCount[s] : 1;
        result[s] = java.util.Arrays.copyOfRange(flat, r * vocab, (r + rows) * vocab);
        r += rows;
      }
      return new StepResult(result, null);
    } catch (RuntimeException | Error e) {
      ops.graphAbort(); // a step that failed half way must not leave the backend capturing
      throw e;
    }
  }

  @Override
  public void close() {
    List<Mat> all = new ArrayList<>();
    for (Mat m : new Mat[] {embedTokens, embedPositions, lmHead, projectIn, projectOut, finalNormW, finalNormB}) {
      if (m != null) {
        all.add(m);
      }
    }
    for (Layer p : layers) {
      all.addAll(List.of(p.attnNormW, p.attnNormB, p.mlpNormW, p.mlpNormB));
      for (ShardedLinear s : new ShardedLinear[] {p.qkv, p.out, p.fc1, p.fc2}) {
        s.close();
      }
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
