package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The text settings of the matrix-vector kernel ({@code -Dopt.cuda.gemv}, {@code -Dopt.cuda.gemvSplit}) as
 * {@link CudaOps} reads them: no GPU needed (the parsers touch no native code), so a typo is caught on any machine.
 */
class CudaOpsSettingsTest {

  @Test
  void gemvRowsTakesANumberOrOnOff() {
    assertEquals(0, CudaOps.gemvRows("0"));
    assertEquals(1, CudaOps.gemvRows(" 1 "));
    assertEquals(8, CudaOps.gemvRows("on"));
    assertEquals(0, CudaOps.gemvRows("OFF"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.gemvRows("9"));
    assertTrue(e.getMessage().contains("opt.cuda.gemv='9'") && e.getMessage().contains("0 to 8"), e.getMessage());
  }

  @Test
  void gemvSplitTakesOneTwoFourOrAuto() {
    assertEquals(1, CudaOps.gemvSplit("1"));
    assertEquals(2, CudaOps.gemvSplit("2"));
    assertEquals(4, CudaOps.gemvSplit(" 4"));
    assertEquals(0, CudaOps.gemvSplit("AUTO"));
    assertEquals(0, CudaOps.gemvSplit("0"));
    for (String bad : new String[] {"3", "8", "-1", "yes", ""}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.gemvSplit(bad));
      assertTrue(e.getMessage().contains("opt.cuda.gemvSplit='" + bad + "'") && e.getMessage().contains("1, 2 or 4"),
          e.getMessage());
    }
  }

  @Test
  void prefetchTakesOffLoadOrHint() {
    assertEquals("off", CudaOps.prefetchMode("off"));
    assertEquals("load", CudaOps.prefetchMode(" LOAD "));
    assertEquals("hint", CudaOps.prefetchMode("hint"));
    for (String bad : new String[] {"on", "true", ""}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.prefetchMode(bad));
      assertTrue(e.getMessage().contains("opt.cuda.prefetch='" + bad + "'") && e.getMessage().contains("off, load"),
          e.getMessage());
    }
  }
}
