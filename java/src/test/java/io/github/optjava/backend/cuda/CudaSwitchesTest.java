package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The text settings of the matrix-vector kernel ({@code -Dopt.cuda.gemv}, {@code -Dopt.cuda.gemvSplit}) as
 * {@link CudaOps} reads them: no GPU needed (the parsers touch no native code), so a typo is caught on any machine.
 */
class CudaSwitchesTest {

  @Test
  void gemvRowsTakesANumberOrOnOff() {
    assertEquals(0, CudaSwitches.gemvRows("0"));
    assertEquals(1, CudaSwitches.gemvRows(" 1 "));
    assertEquals(8, CudaSwitches.gemvRows("on"));
    assertEquals(0, CudaSwitches.gemvRows("OFF"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.gemvRows("9"));
    assertTrue(e.getMessage().contains("opt.cuda.gemv='9'") && e.getMessage().contains("0 to 8"), e.getMessage());
  }

  @Test
  void gemvSplitTakesOneTwoFourOrAuto() {
    assertEquals(1, CudaSwitches.gemvSplit("1"));
    assertEquals(2, CudaSwitches.gemvSplit("2"));
    assertEquals(4, CudaSwitches.gemvSplit(" 4"));
    assertEquals(0, CudaSwitches.gemvSplit("AUTO"));
    assertEquals(0, CudaSwitches.gemvSplit("0"));
    for (String bad : new String[] {"3", "8", "-1", "yes", ""}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.gemvSplit(bad));
      assertTrue(e.getMessage().contains("opt.cuda.gemvSplit='" + bad + "'") && e.getMessage().contains("1, 2 or 4"),
          e.getMessage());
    }
  }
}
