package io.github.optjava.model;

import io.github.optjava.parallel.Mesh;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The driver's commands to the workers of a multi-process model, on the {@link Mesh.Channel#CONTROL} links,
 * and the workers' answers. Big-endian {@code DataOutput}; a command is an int code and its fields:
 * <ul>
 *   <li>{@code NEW_CACHE blocks blockSize}</li>
 *   <li>{@code STEP n (seqId past tableLength table[] tokenCount tokens[] allLogits)×n groups size[]}: the
 *       sequences in order, cut into micro-batches of the given sizes</li>
 *   <li>{@code COPY_BLOCKS n src[] dst[]}</li>
 *   <li>{@code CLOSE}</li>
 * </ul>
 * A worker answers every command but CLOSE with {@code 0 value} (a long: its free memory after a load or a
 * new cache, else 0) or {@code 1 message}.
 */
final class StepWire {
  static final int READY = 0; // the workers' first answer, after loading their part
  static final int NEW_CACHE = 1;
  static final int STEP = 2;
  static final int COPY_BLOCKS = 3;
  static final int CLOSE = 4;

  private StepWire() {}

  /**
   * One step as the workers need it: each sequence's new tokens, its cached length before, its block table, and
   * the micro-batches (consecutive sequences) it goes through the stages in.
   */
  record Step(List<OptModel.SeqStep> seqs, Map<Long, Integer> past, Map<Long, int[]> tables, int[] microBatches) {

    /** Micro-batch {@code g}'s sequences. */
    List<OptModel.SeqStep> microBatch(int g) {
      int first = 0;
      for (int i = 0; i < g; i++) {
        first += microBatches[i];
      }
      return seqs.subList(first, first + microBatches[g]);
    }

    /** Up to {@code stages} micro-batches of consecutive sequences, as even as they go. */
    static int[] cut(int sequences, int stages) {
      int groups = Math.max(1, Math.min(stages, sequences));
      int[] sizes = new int[groups];
      for (int g = 0; g < groups; g++) {
        sizes[g] = (g + 1) * sequences / groups - g * sequences / groups;
      }
      return sizes;
    }
  }

  static void writeStep(Mesh.Link link, Step step) {
    DataOutputStream out = link.out();
    try {
      out.writeInt(STEP);
      out.writeInt(step.seqs().size());
      for (OptModel.SeqStep q : step.seqs()) {
        out.writeLong(q.seqId());
        out.writeInt(step.past().get(q.seqId()));
        writeInts(out, step.tables().get(q.seqId()));
        writeInts(out, q.newTokens());
        out.writeBoolean(q.allLogits());
      }
      writeInts(out, step.microBatches());
    } catch (IOException e) {
      throw link.failure("send to", e);
    }
    link.flush();
  }

  /** Reads a STEP's body (its code already read). */
  static Step readStep(Mesh.Link link) throws IOException {
    DataInputStream in = link.in();
    int n = in.readInt();
    List<OptModel.SeqStep> seqs = new ArrayList<>(n);
    Map<Long, Integer> past = new HashMap<>();
    Map<Long, int[]> tables = new HashMap<>();
    for (int i = 0; i < n; i++) {
      long id = in.readLong();
      past.put(id, in.readInt());
      tables.put(id, readInts(in));
      seqs.add(new OptModel.SeqStep(id, readInts(in), in.readBoolean()));
    }
    int[] micro = readInts(in);
    if (java.util.Arrays.stream(micro).anyMatch(m -> m < 0) || java.util.Arrays.stream(micro).sum() != n) {
      throw new IOException("micro-batches " + java.util.Arrays.toString(micro) + " for " + n + " sequences");
    }
    return new Step(seqs, past, tables, micro);
  }

  static void writeInts(DataOutputStream out, int[] v) throws IOException {
    out.writeInt(v.length);
    for (int x : v) {
      out.writeInt(x);
    }
  }

  static int[] readInts(DataInputStream in) throws IOException {
    int n = in.readInt();
    if (n < 0 || n > 1 << 26) {
      throw new IOException("an int array of " + n + " elements: the driver and this worker disagree on the protocol");
    }
    int[] v = new int[n];
    for (int i = 0; i < n; i++) {
      v[i] = in.readInt();
    }
    return v;
  }

  /** A worker's answer: OK with a value, or the failure's message. */
  static void answer(Mesh.Link link, long value, String error) {
    try {
      if (error == null) {
        link.out().writeInt(0);
        link.out().writeLong(value);
      } else {
        link.out().writeInt(1);
        link.writeUtf(error);
      }
    } catch (IOException e) {
      throw link.failure("answer", e);
    }
    link.flush();
  }

  /** Reads a worker's answer: its value, or throws its failure. */
  static long readAnswer(Mesh.Link link, int worker) {
    try {
      int status = link.in().readInt();
      if (status == 0) {
        return link.in().readLong();
      }
      throw new WorkerFailedException("rank " + worker + " failed: " + link.readUtf());
    } catch (IOException e) {
      throw link.failure("hear from", e);
    }
  }

  /** A worker reported a failure: the job cannot go on. */
  static final class WorkerFailedException extends IllegalStateException {
    WorkerFailedException(String message) {
      super(message);
    }
  }
}
