package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** NCCL tensor-parallel groups: world size 1 on any GPU host, a real all-reduce where two GPUs exist. */
@GpuTest
class GpuNcclTest {

  @Test
  void worldSizeOneIsANoOp() {
    try (CudaOps ops = new CudaOps(0, DType.F32); NcclTpGroup g = NcclTpGroup.create(0).get(0)) {
      Mat m = ops.alloc(2, 3);
      ops.write(m, new float[] {1, 2, 3, 4, 5, 6});
      g.allReduce(m);
      assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, ops.read(m));
      m.close();
    }
  }

  /** The multi-process path (rendezvous + ncclCommInitRank) at world size 1: a real one-rank communicator. */
  @Test
  void processGroupOfOneRunsARealAllReduce() {
    try (CudaOps ops = new CudaOps(0, DType.F16);
        NcclTpGroup g = NcclTpGroup.forProcess(io.github.optjava.parallel.Rendezvous.Placement.single(), 0,
            java.time.Duration.ofSeconds(10))) {
      Mat m = ops.alloc(2, 3);
      ops.write(m, new float[] {1, 2, 3, 4, 5, 6});
      g.allReduce(m);
      assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, ops.read(m));
      m.close();
    }
  }

  @Test
  void allReduceSumsAcrossTwoGpus() throws Exception {
    int[] count = new int[1];
    org.bytedeco.cuda.global.cudart.cudaGetDeviceCount(count);
    assumeTrue(count[0] >= 2, "needs two GPUs");
    List<NcclTpGroup> groups = NcclTpGroup.create(0, 1);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<float[]>> results = new ArrayList<>();
      for (NcclTpGroup g : groups) {
        results.add(pool.submit(() -> {
          try (CudaOps ops = new CudaOps(g.rank(), DType.F32)) {
            Mat m = ops.alloc(1, 2);
            ops.write(m, new float[] {g.rank() + 1, 10 * (g.rank() + 1)});
            g.allReduce(m);
            float[] out = ops.read(m);
            m.close();
            return out;
          }
        }));
      }
      for (Future<float[]> f : results) {
        assertArrayEquals(new float[] {3, 30}, f.get());
      }
    } finally {
      pool.shutdown();
      groups.forEach(NcclTpGroup::close);
    }
  }
}
