package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Hostile and malformed files: each is refused with a CheckpointException that says what is wrong. */
class PytorchHostileTest {

  @TempDir
  Path tmp;

  private static final long[] V4 = {4};

  /** Opens an archive with that pickle and storages, expecting a refusal; returns its message. */
  private String refused(byte[] pickle, Map<String, byte[]> storages) throws IOException {
    Path file = PytorchTestFiles.torch(Files.createTempFile(tmp, "bad", ".bin"), pickle, storages);
    return refused(file);
  }

  private static String refused(Path file) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> PytorchCheckpoint.open(file).close());
    assertTrue(e.getMessage().startsWith(file.toString()), "message names the file: " + e.getMessage());
    return e.getMessage();
  }

  private static void assertContains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), "expected '" + p + "' in: " + message);
    }
  }

  // --- code execution attempts -------------------------------------------------------------------------

  @ParameterizedTest
  @CsvSource({"os,system", "posix,system", "nt,system", "subprocess,Popen", "builtins,exec", "torch,load",
      "torch.storage,_load_from_bytes", "__builtin__,eval"})
  void globalsThatRunCodeAreRefusedBeforeAnythingRuns(String module, String name) throws IOException {
    Path marker = tmp.resolve("pwned-" + name);
    byte[] pickle = new PickleBuilder().proto(2).global(module, name).str("touch " + marker).tuple1().reduce()
        .stop().bytes();
    assertContains(refused(pickle, Map.of()), module + "." + name, "not a plain tensor checkpoint");
    assertFalse(Files.exists(marker), "nothing ran");
  }

  @Test
  void evalPayloadHiddenAfterValidTensorsIsRefused() throws IOException {
    Path marker = tmp.resolve("pwned-eval");
    PickleBuilder p = new PickleBuilder().proto(2).orderedDict().mark();
    p.str("w").tensor("HalfStorage", "0", 4, 0, V4, new long[] {1});
    p.str("x").global("builtins", "eval").str("open(r'" + marker + "', 'w')").tuple1().reduce();
    byte[] pickle = p.setitems().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[8])), "builtins.eval", "not a plain tensor checkpoint");
    assertFalse(Files.exists(marker), "nothing ran");
  }

  @Test
  void stackGlobalIsCheckedToo() throws IOException {
    Path marker = tmp.resolve("pwned-popen");
    byte[] pickle = new PickleBuilder().proto(4).raw(0x8c, 10).raw("subprocess".getBytes()).raw(0x8c, 5)
        .raw("Popen".getBytes()).raw(0x93).mark().str("touch").str(marker.toString()).tuple().tuple1().reduce()
        .stop().bytes();
    assertContains(refused(pickle, Map.of()), "subprocess.Popen", "not a plain tensor checkpoint");
    assertFalse(Files.exists(marker), "nothing ran");
  }

  @Test
  void controlCharactersInNamesCannotForgeLogLines() throws IOException {
    byte[] module = "os\n[INFO] all good".getBytes();
    byte[] pickle = new PickleBuilder().proto(4).raw(0x8c, module.length).raw(module).raw(0x8c, 6)
        .raw("system".getBytes()).raw(0x93).stop().bytes();
    String m = refused(pickle, Map.of());
    assertContains(m, "os?[INFO] all good.system");
    assertFalse(m.contains("\n"), m);
  }

  @Test
  void unsupportedStorageDtypeIsNamed() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).orderedDict().str("ids")
        .tensor("LongStorage", "0", 4, 0, V4, new long[] {1}).setitem().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[32])), "int64", "F16, BF16 or F32");
  }

  // --- containers used the wrong way (CVE-2025-32434 style) ---------------------------------------------

  @Test
  void setitemOnTheOrderedDictClassIsRefused() throws IOException {
    // Setting items on the class object itself, the trick used against torch's weights_only unpickler.
    byte[] pickle = new PickleBuilder().proto(2).global("collections", "OrderedDict").str("k").str("v")
        .setitem().stop().bytes();
    assertContains(refused(pickle, Map.of()), "SETITEM", "collections.OrderedDict", "not a dict");
  }

  @Test
  void setitemOnAListTupleOrTensorIsRefused() throws IOException {
    byte[] onList = new PickleBuilder().proto(2).emptyList().str("k").str("v").setitem().stop().bytes();
    assertContains(refused(onList, Map.of()), "SETITEM on a list", "not a dict");
    byte[] onTuple = new PickleBuilder().proto(2).emptyTuple().mark().str("k").str("v").setitems().stop().bytes();
    assertContains(refused(onTuple, Map.of()), "SETITEMS on a tuple", "not a dict");
    byte[] onTensor = new PickleBuilder().proto(2).tensor("HalfStorage", "0", 4, 0, V4, new long[] {1})
        .str("_data").str("x").setitem().stop().bytes();
    assertContains(refused(onTensor, Map.of("0", new byte[8])), "SETITEM on a tensor", "not a dict");
  }

  @Test
  void appendAndBuildOnTheWrongTypesAreRefused() throws IOException {
    byte[] appendOnDict = new PickleBuilder().proto(2).emptyDict().str("x").append().stop().bytes();
    assertContains(refused(appendOnDict, Map.of()), "APPEND on a dict", "not a list");
    byte[] buildOnTensor = new PickleBuilder().proto(2).tensor("HalfStorage", "0", 4, 0, V4, new long[] {1})
        .emptyDict().build().stop().bytes();
    assertContains(refused(buildOnTensor, Map.of("0", new byte[8])), "BUILD", "tensor");
    byte[] buildOnDict = new PickleBuilder().proto(2).emptyDict().emptyDict().build().stop().bytes();
    assertContains(refused(buildOnDict, Map.of()), "BUILD", "dict");
  }

  @Test
  void reduceOnlyCallsAllowedFunctionsWithTheRightArguments() throws IOException {
    byte[] strCall = new PickleBuilder().proto(2).str("os.system").emptyTuple().reduce().stop().bytes();
    assertContains(refused(strCall, Map.of()), "REDUCE applied to str 'os.system'", "not an allowed function");
    byte[] storageCall = new PickleBuilder().proto(2).global("torch", "HalfStorage").emptyTuple().reduce()
        .stop().bytes();
    assertContains(refused(storageCall, Map.of()), "torch.HalfStorage", "persistent id");
    byte[] dictWithItems = new PickleBuilder().proto(2).global("collections", "OrderedDict").mark().str("k")
        .tuple().tuple1().reduce().stop().bytes();
    assertContains(refused(dictWithItems, Map.of()), "collections.OrderedDict", "1 arguments");
    byte[] rebuildShort = new PickleBuilder().proto(2).global("torch._utils", "_rebuild_tensor_v2").mark()
        .storage("HalfStorage", "0", 4).integer(0).tuple().reduce().stop().bytes();
    assertContains(refused(rebuildShort, Map.of("0", new byte[8])), "_rebuild_tensor_v2", "2 arguments");
  }

  @Test
  void backwardHooksAreRefused() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).global("torch._utils", "_rebuild_tensor_v2").mark()
        .storage("HalfStorage", "0", 4).integer(0).integer(4).tuple1().integer(1).tuple1().newFalse()
        .orderedDict().integer(0).str("hook").setitem().tuple().reduce().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[8])), "backward hooks");
  }

  @Test
  void unknownAndUnsupportedOpcodesAreNamed() throws IOException {
    byte[] unknown = new PickleBuilder().proto(2).raw(0xff).stop().bytes();
    assertContains(refused(unknown, Map.of()), "unknown pickle opcode 0xff");
    byte[] newobj = new PickleBuilder().proto(2).global("collections", "OrderedDict").emptyTuple().raw(0x81)
        .stop().bytes();
    assertContains(refused(newobj, Map.of()), "NEWOBJ (0x81)", "not supported");
    byte[] inst = new PickleBuilder().proto(2).mark().raw('i').raw("os\nsystem\n".getBytes()).stop().bytes();
    assertContains(refused(inst, Map.of()), "INST (0x69)");
  }

  // --- storages and tensor layouts ----------------------------------------------------------------------

  // Found by fuzzing: these read "stride holds int, not a non-negative int", without the value.
  @Test
  void aNegativeStrideOrOffsetIsShown() throws IOException {
    byte[] stride = new PickleBuilder().proto(2).orderedDict().str("w")
        .tensor("HalfStorage", "0", 4, 0, V4, new long[] {-3}).setitem().stop().bytes();
    assertContains(refused(stride, Map.of("0", new byte[8])), "stride holds int -3, not a non-negative int");
    byte[] offset = new PickleBuilder().proto(2).orderedDict().str("w")
        .tensor("HalfStorage", "0", 4, -70000, V4, new long[] {1}).setitem().stop().bytes();
    assertContains(refused(offset, Map.of("0", new byte[8])), "storage_offset is int -70000, not a non-negative int");
  }

  @Test
  void storageShorterOrLongerThanItsElementsIsRefused() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).orderedDict().str("w")
        .tensor("HalfStorage", "0", 8, 0, V4, new long[] {1}).setitem().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[10])), "storage '0'", "10 bytes", "shorter", "16 bytes");
    assertContains(refused(pickle, Map.of("0", new byte[18])), "storage '0'", "longer");
    assertContains(refused(pickle, Map.of("1", new byte[16])), "no zip entry 'archive/data/0'");
  }

  @Test
  void storageDeclaredTwiceWithDifferentSizesIsRefused() throws IOException {
    PickleBuilder p = new PickleBuilder().proto(2).orderedDict().mark();
    p.str("a").tensor("HalfStorage", "0", 4, 0, V4, new long[] {1});
    p.str("b").tensor("HalfStorage", "0", 400, 0, new long[] {400}, new long[] {1});
    assertContains(refused(p.setitems().stop().bytes(), Map.of("0", new byte[8])), "storage '0'",
        "declared twice");
  }

  @Test
  void tensorBeyondItsStorageIsRefused() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).orderedDict().str("w")
        .tensor("HalfStorage", "0", 8, 6, V4, new long[] {1}).setitem().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[16])), "tensor 'w'", "6 to 10", "only 8 elements");
  }

  @Test
  void nonContiguousStridesAreRefused() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).orderedDict().str("w.T")
        .tensor("HalfStorage", "0", 6, 0, new long[] {2, 3}, new long[] {1, 2}).setitem().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[12])), "tensor 'w.T'", "[1, 2]", "not row-major contiguous");
  }

  @Test
  void sizeOverflowIsRefused() throws IOException {
    long big = 1L << 40;
    byte[] pickle = new PickleBuilder().proto(2).orderedDict().str("w")
        .tensor("HalfStorage", "0", 4, 0, new long[] {big, big}, new long[] {big, 1}).setitem().stop().bytes();
    assertContains(refused(pickle, Map.of("0", new byte[8])), "tensor 'w'", "overflows");
  }

  // --- what the pickle holds ----------------------------------------------------------------------------

  @Test
  void topLevelMustBeADictOfTensors() throws IOException {
    byte[] list = new PickleBuilder().proto(2).emptyList().stop().bytes();
    assertContains(refused(list, Map.of()), "holds a list", "not a dict of tensors");
    byte[] nested = new PickleBuilder().proto(2).emptyDict().str("model").emptyDict().setitem().stop().bytes();
    assertContains(refused(nested, Map.of()), "entry 'model' is a dict, not a tensor");
    byte[] intKey = new PickleBuilder().proto(2).emptyDict().integer(3)
        .tensor("HalfStorage", "0", 4, 0, V4, new long[] {1}).setitem().stop().bytes();
    assertContains(refused(intKey, Map.of("0", new byte[8])), "key of type int");
  }

  // --- the container ------------------------------------------------------------------------------------

  @Test
  void filesThatAreNotTorchZipArchivesAreRefused() throws IOException {
    assertContains(refused(Files.write(tmp.resolve("empty.bin"), new byte[0])), "empty");
    assertContains(refused(Files.writeString(tmp.resolve("text.bin"), "hello, this is not a checkpoint")),
        "not a zip archive");
    // The legacy format starts with a pickled magic number: PROTO 2, LONG1 0x1950a86a20f9469cfc6c.
    byte[] legacy = new PickleBuilder().proto(2).raw(0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8,
        0x50, 0x19).raw('.').bytes();
    assertContains(refused(Files.write(tmp.resolve("legacy.bin"), legacy)), "legacy", "re-save",
        "safetensors");
    byte[] safetensors = "\u0010\0\0\0\0\0\0\0{\"a\":1}         ".getBytes();
    assertContains(refused(Files.write(tmp.resolve("st.bin"), safetensors)), "safetensors");
    Path otherZip = PytorchTestFiles.zip(tmp.resolve("other.zip"), Map.of("readme.txt", "hi".getBytes()),
        Set.of());
    assertContains(refused(otherZip), "no <folder>/data.pkl");
  }

  @Test
  void compressedEntriesAreRefused() throws IOException {
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w"}, new long[][] {V4});
    Map<String, byte[]> entries = PytorchTestFiles.torchEntries(pickle, Map.of("0", new byte[8]));
    Path file = PytorchTestFiles.zip(tmp.resolve("deflated.bin"), entries, Set.of("archive/data/0"));
    assertContains(refused(file), "archive/data/0", "compressed", "deflate", "safetensors");
  }

  @Test
  void bigEndianAndMissingVersionAreRefused() throws IOException {
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w"}, new long[][] {V4});
    Map<String, byte[]> big = PytorchTestFiles.torchEntries(pickle, Map.of("0", new byte[8]));
    big.put("archive/byteorder", "big".getBytes());
    assertContains(refused(PytorchTestFiles.zip(tmp.resolve("big.bin"), big, Set.of())), "big-endian");
    Map<String, byte[]> noVersion = PytorchTestFiles.torchEntries(pickle, Map.of("0", new byte[8]));
    noVersion.remove("archive/version");
    assertContains(refused(PytorchTestFiles.zip(tmp.resolve("nov.bin"), noVersion, Set.of())), "version");
  }

  // Found by fuzzing: the list of every data.pkl folder (thousands of names of up to 64 KiB) went into the
  // message raw; now the first two are shown, quoted and cut.
  @Test
  void severalDataPklRecordsAreNamedQuotedAndCut() throws IOException {
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w"}, new long[][] {V4});
    Map<String, byte[]> entries = new java.util.LinkedHashMap<>();
    for (int i = 0; i < 3; i++) {
      entries.put("a\n[INFO] forged" + i + "x".repeat(30_000) + "/data.pkl", pickle);
    }
    String m = refused(PytorchTestFiles.zip(tmp.resolve("several.bin"), entries, Set.of()));
    assertContains(m, "3 data.pkl records", "'a?[INFO] forged0xxx", "and others", "ambiguous");
    assertFalse(m.contains("\n"), m);
    assertTrue(m.length() < 500, "a cut message, not " + m.length() + " characters");
  }

  @Test
  void theTopFolderNameIsNotAssumed() throws IOException {
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w"}, new long[][] {V4});
    Path file = PytorchTestFiles.zip(tmp.resolve("named.bin"), Map.of("my model_v2/data.pkl", pickle,
        "my model_v2/data/0", new byte[8], "my model_v2/version", "3".getBytes()), Set.of());
    try (Checkpoint c = PytorchCheckpoint.open(file)) {
      assertEquals(8, c.tensor("w").data().remaining());
    }
  }
}
