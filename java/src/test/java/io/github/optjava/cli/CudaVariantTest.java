package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class CudaVariantTest {

  @Test
  void defaultLeavesEveryChoiceToTheProcess() {
    assertEquals(new CudaVariant("default", null, null, null, null, null, null, null, null, null, null, null, null), CudaVariant.parse("default"));
    assertEquals(new CudaVariant("DEFAULT", null, null, null, null, null, null, null, null, null, null, null, null).attention(), CudaVariant.parse("DEFAULT").attention());
  }

  @Test
  void settingsOverrideOnlyWhatTheyName() {
    assertEquals(new CudaVariant("attention=tc,gemv=on", "tc", 8, null, null, null, null, null, null, null, null, null, null), CudaVariant.parse("attention=tc,gemv=on"));
    assertEquals(new CudaVariant("gemm=cublas, gemv=off", null, 0, false, null, null, null, null, null, null, null, null, null),
        CudaVariant.parse("gemm=cublas, gemv=off"));
    assertEquals(new CudaVariant("GEMM=LT", null, null, true, null, null, null, null, null, null, null, null, null), CudaVariant.parse("GEMM=LT"));
    assertEquals(new CudaVariant("gemv=on,chained=on", null, 8, null, true, null, null, null, null, null, null, null, null), CudaVariant.parse("gemv=on,chained=on"));
    assertEquals(new CudaVariant("gemv=2", null, 2, null, null, null, null, null, null, null, null, null, null), CudaVariant.parse("gemv=2"));
    assertEquals(new CudaVariant("gemv=0", null, 0, null, null, null, null, null, null, null, null, null, null), CudaVariant.parse("gemv=0"));
    assertEquals(new CudaVariant("combine=inline", null, null, null, null, true, null, null, null, null, null, null, null), CudaVariant.parse("combine=inline"));
    assertEquals(new CudaVariant("combine=kernel,chained=on", null, null, null, true, false, null, null, null, null, null, null, null),
        CudaVariant.parse("combine=kernel,chained=on"));
    assertEquals(new CudaVariant("gemvsplit=auto", null, null, null, null, null, 0, null, null, null, null, null, null),
        CudaVariant.parse("gemvsplit=auto"));
    assertEquals(new CudaVariant("gemvsplit=4,gemv=1", null, 1, null, null, null, 4, null, null, null, null, null, null),
        CudaVariant.parse("gemvsplit=4,gemv=1"));
    assertEquals(new CudaVariant("splitkernel=grouped", null, null, null, null, null, null, true, null, null, null, null, null),
        CudaVariant.parse("splitkernel=grouped"));
    assertEquals(new CudaVariant("splitkernel=perkey,combine=inline", null, null, null, null, true, null, false, null, null, null, null, null),
        CudaVariant.parse("splitkernel=perkey,combine=inline"));
    assertEquals(new CudaVariant("lnvec=on", null, null, null, null, null, null, null, true, null, null, null, null),
        CudaVariant.parse("lnvec=on"));
    assertEquals(new CudaVariant("lttune=on", null, null, null, null, null, null, null, null, true, null, null, null),
        CudaVariant.parse("lttune=on"));
    assertEquals(false, CudaVariant.parse("gemm=lt,lttune=off").ltTune());
    assertEquals(32, CudaVariant.parse("tclinear=32").tcRows());
    assertEquals(0, CudaVariant.parse("tclinear=off,gemv=1").tcRows());
    assertEquals(8, CudaVariant.parse("tclinear=32,tcsplit=8").tcSplit());
    assertEquals(0, CudaVariant.parse("tcsplit=auto").tcSplit());
    assertEquals(true, CudaVariant.parse("tclinear=32,tconerow=on").tcOneRow());
  }

  /** The help text's list of settings and the parser must not drift apart: every listed value parses. */
  @Test
  void everySettingTheHelpListsParses() {
    int values = 0;
    for (String setting : CudaVariant.SETTINGS.split(", ")) {
      String[] kv = setting.split("=", 2);
      for (String value : kv[1].split("\\|")) {
        String v = value.equals("N rows") ? "3" : value;
        CudaVariant parsed = CudaVariant.parse(kv[0] + "=" + v);
        CudaVariant unchanged = new CudaVariant(parsed.spec(), null, null, null, null, null, null, null, null, null, null, null, null);
        assertTrue(!parsed.equals(unchanged), setting + ": " + v + " changed nothing");
        values++;
      }
    }
    assertEquals(33, values, "settings listed in CudaVariant.SETTINGS");
    // and every setting the record holds is listed: one key per component besides spec
    assertEquals(CudaVariant.class.getRecordComponents().length - 1, CudaVariant.SETTINGS.split(", ").length);
  }

  @Test
  void aListKeepsItsOrder() {
    List<CudaVariant> list = CudaVariant.parseList("default; attention=split ;gemm=lt");
    assertEquals(List.of("default", "attention=split", "gemm=lt"), list.stream().map(CudaVariant::spec).toList());
  }

  @Test
  void mistakesAreClearErrors() {
    assertMessage("attention=fast", "attention must be one of first, split, tiled, tc");
    assertMessage("gemv=yes", "gemv must be on, off or the most rows (0 to 8), not 'yes'");
    assertMessage("gemv=9", "gemv must be on, off or the most rows (0 to 8), not '9'");
    assertMessage("tclinear=33", "tclinear must be off or the most rows (0 to 32), not '33'");
    assertMessage("tclinear=on", "tclinear must be off or the most rows (0 to 32), not 'on'");
    assertMessage("tcsplit=3", "tcsplit must be 1, 2, 4, 8 or auto, not '3'");
    assertMessage("gemm=cutlass", "gemm must be lt or cublas");
    assertMessage("graphs=off", "unknown setting(s) [graphs]");
    assertMessage("chained=yes", "chained must be on or off");
    assertMessage("combine=fused", "combine must be inline or kernel, not 'fused'");
    assertMessage("norm=fold", "unknown setting(s) [norm]"); // the folded layer norm, removed
    assertMessage("gemvsplit=3", "gemvsplit must be 1, 2, 4 or auto, not '3'");
    assertMessage("splitkernel=warp", "splitkernel must be grouped or perkey, not 'warp'");
    assertMessage("lnvec=yes", "lnvec must be on or off, not 'yes'");
    assertMessage("lttune=yes", "lttune must be on or off, not 'yes'");
    assertMessage("attention", "'attention' is not KEY=VALUE");
    assertMessage("gemv=on,gemv=off", "gemv is given twice");
    assertMessage("", "'' is not KEY=VALUE");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> CudaVariant.parseList("default;;gemv=on"));
    assertTrue(e.getMessage().contains("separate variants with ';'"), e.getMessage());
  }

  private static void assertMessage(String spec, String expected) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaVariant.parse(spec));
    assertTrue(e.getMessage().contains(expected), e.getMessage());
  }
}
