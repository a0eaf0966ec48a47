package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaMalloc;
import static org.bytedeco.cuda.global.cudart.cudaMemcpy;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;
import static org.bytedeco.cuda.global.cudart.cudaMemset;
import static org.bytedeco.cuda.global.cudart.cudaDeviceSynchronize;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Half;
import java.util.Random;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The embedding kernel against its CPU twin on a real GPU, every storage dtype, odd sizes, output
 * poisoned first (0xFF bytes = NaN in every dtype) so an unwritten element fails the test. A row copy is
 * exact, so the comparison is bit-exact in every dtype.
 */
@GpuTest
class GpuEmbeddingTest {

  @ParameterizedTest(name = "{0} tokens={1} dim={2} vocab={3}")
  @CsvSource({"f32, 7, 83, 50", "f16, 7, 83, 50", "bf16, 7, 83, 50", "f32, 33, 128, 1000",
      "f16, 1, 80, 3", "bf16, 130, 2048, 64"})
  void matchesCpu(String dtype, int n, int dim, int vocab) {
    Random rnd = new Random(n * 31L + dim);
    float[] table = new float[vocab * dim];
    for (int i = 0; i < table.length; i++) {
      table[i] = (float) rnd.nextGaussian();
    }
    int[] ids = new int[n];
    for (int t = 0; t < n; t++) {
      ids[t] = rnd.nextInt(vocab);
    }
    ids[n - 1] = vocab + 5; // out of range: a zero row, never an out-of-bounds read
    CpuOps cpu = new CpuOps();
    Mat cpuTable = cpu.alloc(vocab, dim);
    cpu.write(cpuTable, roundTo(dtype, table));
    Mat cpuOut = cpu.alloc(n, dim);
    cpu.embedding(cpuOut, cpuTable, ids);
    float[] expected = cpu.read(cpuOut);

    int elem = dtype.equals("f32") ? 4 : 2;
    Pointer dTable = new Pointer();
    Pointer dOut = new Pointer();
    Pointer dIds = new Pointer();
    try {
      check(cudaMalloc(dTable, (long) table.length * elem));
      check(cudaMalloc(dOut, (long) n * dim * elem));
      check(cudaMalloc(dIds, 4L * n));
      check(cudaMemset(dOut, 0xFF, (long) n * dim * elem));
      check(cudaMemcpy(dIds, new IntPointer(ids), 4L * n, cudaMemcpyHostToDevice));
      float[] got = new float[n * dim];
      if (elem == 4) {
        check(cudaMemcpy(dTable, new FloatPointer(table), 4L * table.length, cudaMemcpyHostToDevice));
        check(OptKernels.opt_embedding_f32(new FloatPointer(dOut), new FloatPointer(dTable),
            new IntPointer(dIds), n, dim, vocab, null));
        check(cudaDeviceSynchronize());
        FloatPointer host = new FloatPointer(got.length);
        check(cudaMemcpy(host, dOut, 4L * got.length, cudaMemcpyDeviceToHost));
        host.get(got);
      } else {
        short[] bits = toBits(dtype, table);
        check(cudaMemcpy(dTable, new ShortPointer(bits), 2L * bits.length, cudaMemcpyHostToDevice));
        int status = dtype.equals("f16")
            ? OptKernels.opt_embedding_f16(new ShortPointer(dOut), new ShortPointer(dTable),
                new IntPointer(dIds), n, dim, vocab, null)
            : OptKernels.opt_embedding_bf16(new ShortPointer(dOut), new ShortPointer(dTable),
                new IntPointer(dIds), n, dim, vocab, null);
        check(status);
        check(cudaDeviceSynchronize());
        ShortPointer host = new ShortPointer(got.length);
        check(cudaMemcpy(host, dOut, 2L * got.length, cudaMemcpyDeviceToHost));
        short[] out = new short[got.length];
        host.get(out);
        for (int i = 0; i < out.length; i++) {
          got[i] = fromBits(dtype, out[i]);
        }
      }
      assertArrayEquals(expected, got, 0f);
    } finally {
      cudaFree(dTable);
      cudaFree(dOut);
      cudaFree(dIds);
    }
  }

  private static void check(int status) {
    assertEquals(0, status, "CUDA status");
  }

  private static float[] roundTo(String dtype, float[] v) {
    float[] r = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      r[i] = dtype.equals("f32") ? v[i] : fromBits(dtype, toBits(dtype, new float[] {v[i]})[0]);
    }
    return r;
  }

  private static short[] toBits(String dtype, float[] v) {
    short[] b = new short[v.length];
    for (int i = 0; i < v.length; i++) {
      // bf16: truncation is fine here, the test only needs the same value on both sides.
      b[i] = dtype.equals("f16") ? Half.fromFloat(v[i]) : (short) (Float.floatToRawIntBits(v[i]) >>> 16);
    }
    return b;
  }

  private static float fromBits(String dtype, short b) {
    return dtype.equals("f16") ? Half.toFloat(b) : Float.intBitsToFloat((b & 0xffff) << 16);
  }
}
