package io.github.optjava.backend;

import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import java.nio.ByteBuffer;
import java.nio.ShortBuffer;
import java.util.stream.IntStream;

/**
 * A Linear layer's (out, in) weight quantized to int8 per output row ("weight-only" int8, round to nearest): row
 * {@code r} is stored as {@code values[r, :]} in [-127, 127] and one float32 {@code scales[r]}, and stands for the
 * weights {@code values[r, c] × scales[r]}. A Linear over it computes
 * {@code out[t, r] = scales[r] × Σ_c values[r, c] × x[t, c] (+ bias[r])}: the sum over the integers in float32
 * (each is exact as a float), then one multiply by the scale, so the weights are read as one byte each instead of
 * two.
 *
 * <p>The scheme is the absmax ("symmetric", zero point 0) per-channel quantization of Dettmers et al., LLM.int8()
 * (2022, section 3.1, "vector-wise quantization" of the weights), without its mixed-precision activation part: the
 * activations stay float32, so the outlier features that paper is about (activations of OPT ≥ 6.7B) are not
 * quantized. {@code scales[r] = max_c |w[r, c]| / 127}, {@code values[r, c] = rint(w[r, c] / scales[r])} (ties to
 * even), so every weight is off by at most half a step, {@code scales[r] / 2}, from the weight it was given (after
 * any dtype conversion of {@code GeneratorOptions.dtype}). A row whose largest magnitude is below {@link #TINY_ROW}
 * (127 × the smallest normal float, 1.5e-36) becomes zeros with scale 0: its scale would be a subnormal float too
 * coarse to keep that bound.
 *
 * <p>A backend that quantizes does it through this class (the CPU backend and, on one GPU, the CUDA backend), so that
 * the same checkpoint gives the same integers on every backend that will.
 *
 * @param rows   output features
 * @param cols   input features
 * @param values {@code rows × cols} integers, row-major
 * @param scales one per row
 */
public record Int8Rows(int rows, int cols, byte[] values, float[] scales) {
  /** The largest magnitude stored: symmetric, so -128 is never used and negation is exact. */
  public static final int MAX = 127;
  /** Rows whose largest magnitude is below this become zeros (see the class comment). */
  public static final float TINY_ROW = MAX * Float.MIN_NORMAL;
  private static final int ROWS_PER_TASK = 64;
  /** Below this many weights one thread is quicker than handing out tasks. */
  private static final long PARALLEL_FROM = 1 << 20;

  public Int8Rows {
    if (values.length != (long) rows * cols || scales.length != rows) {
      throw new IllegalArgumentException(values.length + " values and " + scales.length + " scales for " + rows
          + " × " + cols);
    }
  }

  /**
   * Quantizes a checkpoint tensor (fp16, bf16 or fp32; 1-D is one row, as {@link Ops#weight} reads it), reading it
   * one row at a time.
   *
   * @throws IllegalArgumentException if it has another rank or holds an infinity or NaN (such a row has no scale)
   */
  public static Int8Rows quantize(Tensor tensor) {
    long[] shape = tensor.shape();
    if (shape.length < 1 || shape.length > 2) {
      throw new IllegalArgumentException("int8 quantization takes a Linear weight (out, in); " + tensor.name()
          + " has rank " + shape.length);
    }
    int rows = shape.length == 1 ? 1 : Math.toIntExact(shape[0]);
    int cols = Math.toIntExact(shape[shape.length - 1]);
    if ((long) rows * cols > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(tensor.name() + " (" + rows + " × " + cols
          + ") has too many elements for one int8 array; shard it (tensor parallelism)");
    }
    byte[] values = new byte[rows * cols];
    float[] scales = new float[rows];
    // Blocks of rows on the common pool: one thread of the build machine quantizes ≈ 5.3 ns per fp16 weight (6 s
    // for opt-1.3b's Linears), its two cores 2.9 ns. Each row is quantized alone: the result does not depend on the
    // threads.
    int blocks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    IntStream tasks = IntStream.range(0, blocks);
    if ((long) rows * cols >= PARALLEL_FROM) {
      tasks = tasks.parallel();
    }
    tasks.forEach(b -> {
      float[] row = new float[cols];
      short[] bits = tensor.dtype().bytes() == 2 ? new short[cols] : null;
      ByteBuffer data = tensor.data();
      for (int r = b * ROWS_PER_TASK; r < Math.min(rows, (b + 1) * ROWS_PER_TASK); r++) {
        readRow(tensor, data, bits, r, row);
        try {
          scales[r] = quantizeRow(row, values, r * cols);
        } catch (IllegalArgumentException e) {
          throw new IllegalArgumentException(tensor.name() + " row " + r + ": " + e.getMessage(), e);
        }
      }
    });
    return new Int8Rows(rows, cols, values, scales);
  }

  /**
   * Quantizes one row of float weights into {@code out[offset .. offset + row.length)} and returns its scale.
   *
   * @throws IllegalArgumentException if the row holds an infinity or NaN
   */
  public static float quantizeRow(float[] row, byte[] out, int offset) {
    float absMax = 0f;
    for (float v : row) {
      if (!Float.isFinite(v)) {
        throw new IllegalArgumentException("holds " + v + ", which int8 cannot represent; load this checkpoint"
            + " without quantization");
      }
      absMax = Math.max(absMax, Math.abs(v));
    }
    if (absMax < TINY_ROW) { // a zero row, or one too small for a normal scale: zeros
      java.util.Arrays.fill(out, offset, offset + row.length, (byte) 0);
      return 0f;
    }
    float scale = absMax / MAX;
    for (int c = 0; c < row.length; c++) {
      float q = (float) Math.rint(row[c] / scale);
      out[offset + c] = (byte) Math.max(-MAX, Math.min(MAX, q));
    }
    return scale;
  }

  /** The weight {@code values[i] × scales[i / cols]} that element {@code i} (row-major) stands for. */
  public float get(int i) {
    return values[i] * scales[i / cols];
  }

  private static void readRow(Tensor tensor, ByteBuffer data, short[] bits, int r, float[] row) {
    int cols = row.length;
    switch (tensor.dtype()) {
      case F32 -> data.asFloatBuffer().get(r * cols, row, 0, cols);
      case F16, BF16 -> {
        ShortBuffer shorts = data.asShortBuffer();
        shorts.get(r * cols, bits, 0, cols);
        Half.toFloats(bits, row, tensor.dtype() == io.github.optjava.checkpoint.DType.BF16);
      }
    }
  }
}
