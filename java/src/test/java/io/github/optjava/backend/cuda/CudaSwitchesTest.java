package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The text settings of the matrix-vector kernel ({@code -Dopt.cuda.gemv}, {@code -Dopt.cuda.gemvSplit}) and the
 * true/false switches as {@link CudaOps} reads them: no GPU needed (the parsers touch no native code), so a typo is
 * caught on any machine.
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

  /**
   * -Dopt.cuda.chained (session 25): true, false or auto; off by default; a default that turns it on must be auto, so
   * that a GPU before sm_90 runs without it instead of being refused.
   */
  @Test
  void chainedTakesTrueFalseOrAuto() {
    assertEquals(CudaSwitches.Chained.ON, CudaSwitches.chained("true"));
    assertEquals(CudaSwitches.Chained.OFF, CudaSwitches.chained(" FALSE "));
    assertEquals(CudaSwitches.Chained.AUTO, CudaSwitches.chained("auto"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.chained("yes"));
    assertTrue(e.getMessage().contains("opt.cuda.chained='yes'") && e.getMessage().contains("auto"), e.getMessage());
    assertTrue(CudaSwitches.chained(CudaSwitches.CHAINED_DEFAULT) != CudaSwitches.Chained.ON,
        "the default is off or auto, never a refusal of GPUs before sm_90");
    if (System.getProperty("opt.cuda.chained") == null) {
      assertEquals(CudaSwitches.CHAINED_DEFAULT, CudaSwitches.CHAINED);
    }
  }

  /** -Dopt.cuda.tcLinear (session 22): 0 (off, the default) to 32 rows; anything else says what it takes. */
  @Test
  void tcLinearRowsTakesZeroToThirtyTwo() {
    assertEquals(0, CudaSwitches.tcLinearRows("0"));
    assertEquals(32, CudaSwitches.tcLinearRows(" 32 "));
    for (String bad : new String[] {"33", "-1", "on"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.tcLinearRows(bad));
      assertTrue(e.getMessage().contains("opt.cuda.tcLinear=" + bad) && e.getMessage().contains("0 (off) to 32"),
          e.getMessage());
    }
    if (System.getProperty("opt.cuda.tcLinear") == null) {
      assertEquals("0", CudaSwitches.TC_LINEAR, "off unless asked for");
    }
  }

  /** -Dopt.cuda.tcSplit (session 22): 1, 2, 4, 8 or auto (0). */
  @Test
  void tcSplitTakesAPowerOfTwoUpToEightOrAuto() {
    assertEquals(0, CudaSwitches.tcSplit("auto"));
    assertEquals(8, CudaSwitches.tcSplit(" 8 "));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.tcSplit("16"));
    assertTrue(e.getMessage().contains("opt.cuda.tcSplit='16'") && e.getMessage().contains("1, 2, 4 or 8"),
        e.getMessage());
  }

  /** Session 17's defaults (H100, 2026-11-27): the grouped split-KV attention, the vector norm, split gemv auto. */
  @Test
  void sessionSeventeensKernelsAreTheDefaults() {
    org.junit.jupiter.api.Assumptions.assumeTrue(System.getProperty("opt.cuda.groupedSplit") == null
        && System.getProperty("opt.cuda.vecNorm") == null && System.getProperty("opt.cuda.gemvSplit") == null,
        "a -Dopt.cuda.* setting of this JVM decides instead");
    assertTrue(CudaSwitches.groupedSplit());
    assertTrue(CudaSwitches.vectorNorm());
    assertEquals(0, CudaSwitches.gemvSplit(CudaSwitches.GEMV_SPLIT), "auto");
  }

  /** Session 18's default (H100, 2026-11-27): steps of drafts replayed as CUDA graphs, 5.8 % faster there. */
  @Test
  void draftGraphsAreTheDefaultAndTurnOffWithFalse() {
    String p = "opt.cuda.draftGraphs";
    org.junit.jupiter.api.Assumptions.assumeTrue(System.getProperty(p) == null,
        "a -Dopt.cuda.draftGraphs setting of this JVM decides instead");
    try {
      assertTrue(CudaSwitches.draftGraphs());
      System.setProperty(p, "false");
      assertEquals(false, CudaSwitches.draftGraphs());
      System.setProperty(p, "off");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, CudaSwitches::draftGraphs);
      assertTrue(e.getMessage().contains("-D" + p + "='off'"), e.getMessage());
    } finally {
      System.clearProperty(p);
    }
  }

  @Test
  void onOffSwitchesTakeTrueOrFalseOnly() {
    String p = "opt.test.someSwitch";
    try {
      assertTrue(CudaSwitches.flag(p, true));
      System.setProperty(p, " FALSE ");
      assertEquals(false, CudaSwitches.flag(p, true));
      System.setProperty(p, "True");
      assertTrue(CudaSwitches.flag(p, false));
      for (String bad : new String[] {"0", "off", "no", ""}) {
        System.setProperty(p, bad);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaSwitches.flag(p, true));
        assertTrue(e.getMessage().contains("-D" + p + "='" + bad + "'") && e.getMessage().contains("true or false"),
            e.getMessage());
      }
    } finally {
      System.clearProperty(p);
    }
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
