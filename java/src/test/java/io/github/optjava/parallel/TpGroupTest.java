package io.github.optjava.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.cpu.CpuOps;
import org.junit.jupiter.api.Test;

class TpGroupTest {

  @Test
  void singleRankCollectivesLeaveDataAlone() {
    CpuOps ops = new CpuOps();
    Mat m = ops.alloc(1, 3);
    ops.write(m, new float[] {1, 2, 3});
    try (TpGroup g = TpGroup.single()) {
      assertEquals(1, g.worldSize());
      g.allReduce(m);
      g.allGather(m, m);
      assertArrayEquals(new float[] {1, 2, 3}, ops.read(m));
      assertThrows(IllegalArgumentException.class, () -> g.allGather(ops.alloc(1, 3), m));
    }
  }
}
