package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Test helper: writes metaseq-layout checkpoints ({@code reshard-model_part-K.pt}) from a reference set of
 * Hugging Face OPT tensors, doing what Megatron's model parallelism does to them, independently of the
 * converter: column-parallel rows and row-parallel columns split evenly over the parts, each part's q/k/v
 * fused as its own [K; V; Q], the vocabulary split by rows, everything else replicated. The pickle around the
 * tensors carries a training run's objects the way Python pickles them (an omegaconf DictConfig through
 * NEWOBJ + BUILD, nodes through copyreg._reconstructor + BUILD, an argparse.Namespace, an enum, bytes through
 * _codecs.encode, an int64 step tensor, a tied output projection).
 */
final class MetaseqTestFiles {
  private MetaseqTestFiles() {}

  /** A reference tensor: Hugging Face name without {@code model.}, dtype, shape, little-endian bytes. */
  record Ref(String name, DType dtype, long[] shape, byte[] data) {
    int rows() {
      return (int) shape[0];
    }
  }

  /** Sizes of a reference model; {@code proj} != {@code hidden} adds project_in/out. */
  record Sizes(int hidden, int layers, int ffn, int vocab, int positions, int proj, boolean finalNorm) {}

  static final Sizes TINY = new Sizes(16, 2, 32, 64, 32, 16, true);
  static final Sizes TINY_PROJ = new Sizes(16, 2, 32, 64, 32, 8, true);

  /** Random fp16 reference weights of a model of these sizes, by Hugging Face name (no {@code model.}). */
  static Map<String, Ref> reference(Sizes s, long seed) {
    Random rnd = new Random(seed);
    Map<String, Ref> m = new TreeMap<>();
    add(m, rnd, "decoder.embed_tokens.weight", s.vocab(), s.proj());
    add(m, rnd, "decoder.embed_positions.weight", s.positions() + 2, s.hidden());
    if (s.proj() != s.hidden()) {
      add(m, rnd, "decoder.project_in.weight", s.hidden(), s.proj());
      add(m, rnd, "decoder.project_out.weight", s.proj(), s.hidden());
    }
    for (int l = 0; l < s.layers(); l++) {
      String p = "decoder.layers." + l + ".";
      for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        add(m, rnd, p + "self_attn." + proj + ".weight", s.hidden(), s.hidden());
        add(m, rnd, p + "self_attn." + proj + ".bias", s.hidden());
      }
      add(m, rnd, p + "fc1.weight", s.ffn(), s.hidden());
      add(m, rnd, p + "fc1.bias", s.ffn());
      add(m, rnd, p + "fc2.weight", s.hidden(), s.ffn());
      add(m, rnd, p + "fc2.bias", s.hidden());
      for (String ln : new String[] {"self_attn_layer_norm", "final_layer_norm"}) {
        add(m, rnd, p + ln + ".weight", s.hidden());
        add(m, rnd, p + ln + ".bias", s.hidden());
      }
    }
    if (s.finalNorm()) {
      add(m, rnd, "decoder.final_layer_norm.weight", s.hidden());
      add(m, rnd, "decoder.final_layer_norm.bias", s.hidden());
    }
    return m;
  }

  /** Reference tensors from a checkpoint ({@code model.} prefix and {@code lm_head.weight} dropped). */
  static Map<String, Ref> reference(Checkpoint c) {
    Map<String, Ref> m = new TreeMap<>();
    for (TensorInfo t : c.tensors()) {
      String name = t.name().startsWith("model.") ? t.name().substring(6) : t.name();
      if (name.equals("lm_head.weight")) {
        continue;
      }
      ByteBuffer b = c.tensor(t.name()).data();
      byte[] data = new byte[b.remaining()];
      b.get(data);
      m.put(name, new Ref(name, t.dtype(), t.shape(), data));
    }
    return m;
  }

  private static void add(Map<String, Ref> m, Random rnd, String name, long... shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    ByteBuffer b = ByteBuffer.allocate((int) n * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < n; i++) {
      b.putShort(Half.fromFloat((float) rnd.nextGaussian()));
    }
    m.put(name, new Ref(name, DType.F16, shape, b.array()));
  }

  /** One metaseq weight of one part. */
  record Stored(String name, DType dtype, long[] shape, byte[] data) {}

  /** The metaseq state dict of part {@code part} of {@code parts}, in metaseq's names. */
  static List<Stored> part(Map<String, Ref> ref, int part, int parts, boolean layerNormsAsF32) {
    List<Stored> out = new ArrayList<>();
    for (Ref r : ref.values()) {
      String n = r.name();
      if (n.contains(".k_proj.") || n.contains(".v_proj.")) {
        continue; // fused below, with q_proj
      }
      if (n.contains(".q_proj.")) {
        Ref k = ref.get(n.replace(".q_proj.", ".k_proj."));
        Ref v = ref.get(n.replace(".q_proj.", ".v_proj."));
        byte[] fused = concat(rows(k, part, parts), rows(v, part, parts), rows(r, part, parts));
        long[] shape = r.shape().clone();
        shape[0] = shape[0] / parts * 3;
        out.add(new Stored(n.replace(".q_proj.", ".qkv_proj."), r.dtype(), shape, fused));
      } else if (n.endsWith("fc1.weight") || n.endsWith("fc1.bias") || n.equals("decoder.embed_tokens.weight")) {
        long[] shape = r.shape().clone();
        shape[0] /= parts;
        out.add(new Stored(n, r.dtype(), shape, rows(r, part, parts)));
      } else if (n.endsWith("out_proj.weight") || n.endsWith("fc2.weight")) {
        long[] shape = r.shape().clone();
        shape[1] /= parts;
        out.add(new Stored(n, r.dtype(), shape, columns(r, part, parts)));
      } else {
        String stored = n.replace("project_in.", "project_in_dim.").replace("project_out.", "project_out_dim.")
            .replace("decoder.final_layer_norm.", "decoder.layer_norm.");
        boolean norm = n.contains("layer_norm");
        out.add(norm && layerNormsAsF32 ? new Stored(stored, DType.F32, r.shape(), widen(r.data()))
            : new Stored(stored, r.dtype(), r.shape(), r.data()));
      }
    }
    return out;
  }

  /** Writes the parts of {@code ref} as {@code dir/reshard-model_part-K.pt}. */
  static void write(Path dir, Map<String, Ref> ref, int parts, boolean layerNormsAsF32) throws IOException {
    for (int k = 0; k < parts; k++) {
      writePart(dir.resolve("reshard-model_part-" + k + ".pt"), part(ref, k, parts, layerNormsAsF32), new Extra());
    }
  }

  /** Variations of the pickle around the weights. */
  static final class Extra {
    /** The file the hostile payload would create if anything ran it. */
    String hostileMarker = "pwned-by-pickle";
    boolean tiedOutputProjection = true;
    /** A global named inside cfg, e.g. {"os", "system"}; null for none. */
    String[] hostileGlobal;
    /** Extra weights to add to the model dict (name → shape, fp16 zeros). */
    Map<String, long[]> extraWeights = new LinkedHashMap<>();
  }

  /** Writes one part file: {"model": OrderedDict(weights), "cfg": ..., "args": ..., ...}. */
  static void writePart(Path file, List<Stored> weights, Extra extra) throws IOException {
    Map<String, byte[]> storages = new LinkedHashMap<>();
    PickleBuilder p = new PickleBuilder().proto(2).emptyDict().mark();
    p.str("model").orderedDict().mark();
    String embedKey = null;
    long[] embedShape = null;
    for (Stored w : weights) {
      String key = Integer.toString(storages.size());
      storages.put(key, w.data());
      p.str(w.name()).tensor(storageClass(w.dtype()), key, numel(w.shape()), 0, w.shape(),
          PickleBuilder.contiguous(w.shape()));
      if (w.name().equals("decoder.embed_tokens.weight")) {
        embedKey = key;
        embedShape = w.shape();
      }
    }
    for (Map.Entry<String, long[]> e : extra.extraWeights.entrySet()) {
      String key = Integer.toString(storages.size());
      storages.put(key, new byte[(int) numel(e.getValue()) * 2]);
      p.str(e.getKey()).tensor("HalfStorage", key, numel(e.getValue()), 0, e.getValue(),
          PickleBuilder.contiguous(e.getValue()));
    }
    if (extra.tiedOutputProjection && embedKey != null) {
      // Tied: a second view of the embedding's storage, as torch.save writes shared parameters.
      p.str("decoder.output_projection.weight").tensor("HalfStorage", embedKey, numel(embedShape), 0, embedShape,
          PickleBuilder.contiguous(embedShape));
    }
    String versionKey = Integer.toString(storages.size());
    storages.put(versionKey, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(3f).array());
    p.str("decoder.version").tensor("FloatStorage", versionKey, 1, 0, new long[] {1}, new long[] {1});
    p.setitems();

    p.str("cfg");
    dictConfig(p, extra);
    p.str("args");
    namespace(p);
    p.str("optimizer_history").emptyList().mark();
    String stepKey = Integer.toString(storages.size());
    storages.put(stepKey, new byte[8]);
    p.emptyDict().mark().str("criterion_name").str("VocabParallelCrossEntropyCriterion")
        .str("num_updates").tensor("LongStorage", stepKey, 1, 0, new long[0], new long[0])
        .setitems().appends();
    p.str("extra_state").emptyDict().mark()
        .str("rng").global("_codecs", "encode").str("\u0001\u0002").str("latin1").tuple2().reduce()
        .str("ddp_backend").global("metaseq.dataclass.constants", "DDP_BACKEND_CHOICES").str("fully_sharded")
        .tuple1().reduce()
        .str("meters").global("collections", "defaultdict").global("builtins", "dict").tuple1().reduce()
        .mark().str("loss").integer(1).setitems()
        .setitems();
    p.str("shard_metadata").emptyDict();
    p.setitems().stop();
    PytorchTestFiles.torch(file, p.bytes(), storages);
  }

  /** An omegaconf DictConfig as protocol 2 pickles it: NEWOBJ, then BUILD with its state. */
  private static void dictConfig(PickleBuilder p, Extra extra) {
    p.global("omegaconf.dictconfig", "DictConfig").emptyTuple().raw(0x81); // NEWOBJ
    p.emptyDict().mark()
        .str("_metadata").global("omegaconf.base", "ContainerMetadata").emptyTuple().raw(0x81)
        .emptyDict().mark().str("ref_type").global("typing", "Any").str("object_type").global("builtins", "dict")
        .str("key_type").global("typing", "Any").setitems().build()
        .str("_parent").none()
        .str("_content").emptyDict().mark()
        // A node through copyreg._reconstructor(cls, object, None) + BUILD, as protocols 0/1 write objects.
        .str("decoder_attention_heads").global("copyreg", "_reconstructor").global("omegaconf.nodes", "AnyNode")
        .global("builtins", "object").none().tuple3().reduce().emptyDict().mark().str("_val").integer(4)
        .setitems().build();
    if (extra.hostileGlobal != null) {
      p.str("payload").global(extra.hostileGlobal[0], extra.hostileGlobal[1]).str("touch " + extra.hostileMarker).tuple1()
          .reduce();
    }
    p.setitems().setitems().build();
  }

  /** argparse.Namespace(arch=..., model_parallel_size=...): NEWOBJ + BUILD with its __dict__. */
  private static void namespace(PickleBuilder p) {
    p.global("argparse", "Namespace").emptyTuple().raw(0x81).emptyDict().mark().str("arch")
        .str("transformer_lm_megatron").str("model_parallel_size").integer(2).setitems().build();
  }

  private static String storageClass(DType d) {
    return switch (d) {
      case F16 -> "HalfStorage";
      case BF16 -> "BFloat16Storage";
      case F32 -> "FloatStorage";
    };
  }

  static long numel(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  private static byte[] rows(Ref r, int part, int parts) {
    int rowBytes = r.data().length / r.rows();
    int chunk = r.rows() / parts * rowBytes;
    byte[] out = new byte[chunk];
    System.arraycopy(r.data(), part * chunk, out, 0, chunk);
    return out;
  }

  private static byte[] columns(Ref r, int part, int parts) {
    int rows = r.rows();
    int rowBytes = r.data().length / rows;
    int piece = rowBytes / parts;
    byte[] out = new byte[piece * rows];
    for (int i = 0; i < rows; i++) {
      System.arraycopy(r.data(), i * rowBytes + part * piece, out, i * piece, piece);
    }
    return out;
  }

  private static byte[] concat(byte[]... arrays) {
    int n = 0;
    for (byte[] a : arrays) {
      n += a.length;
    }
    ByteBuffer b = ByteBuffer.allocate(n);
    for (byte[] a : arrays) {
      b.put(a);
    }
    return b.array();
  }

  /** fp16 bytes as the same values in fp32 (exact). */
  private static byte[] widen(byte[] f16) {
    ByteBuffer in = ByteBuffer.wrap(f16).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer out = ByteBuffer.allocate(f16.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    while (in.hasRemaining()) {
      out.putFloat(Half.toFloat(in.getShort()));
    }
    return out.array();
  }
}
