package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The restricted unpickler's metaseq mode: configuration objects become inert names; code is still refused. */
class MetaseqPickleTest {

  @TempDir
  Path tmp;

  private static final PickleReader.PersistentLoader NO_STORAGES = pid -> {
    throw new AssertionError("no storages in these pickles");
  };

  private static Object metaseq(PickleBuilder p) {
    return PickleReader.read(p.bytes(), NO_STORAGES, PickleReader.Mode.METASEQ);
  }

  private static String refused(PickleBuilder p, PickleReader.Mode mode) {
    return assertThrows(CheckpointException.class, () -> PickleReader.read(p.bytes(), NO_STORAGES, mode))
        .getMessage();
  }

  private static void assertContains(String message, String... parts) {
    for (String s : parts) {
      assertTrue(message.contains(s), "expected '" + s + "' in: " + message);
    }
  }

  /** cfg = DictConfig() with state {"_content": {"x": AnyNode(...)}}, as protocol 2 writes it. */
  private static PickleBuilder dictConfig() {
    return new PickleBuilder().proto(2)
        .global("omegaconf.dictconfig", "DictConfig").emptyTuple().raw(0x81)
        .emptyDict().mark().str("_content").emptyDict().mark()
        .str("x").global("copyreg", "_reconstructor").global("omegaconf.nodes", "AnyNode")
        .global("builtins", "object").none().tuple3().reduce()
        .emptyDict().mark().str("_val").integer(5).setitems().build()
        .setitems().setitems().build();
  }

  @Test
  void configurationObjectsBecomeOpaqueNames() {
    Object v = metaseq(dictConfig().stop());
    PickleValue.Opaque o = assertInstanceOf(PickleValue.Opaque.class, v);
    assertFalse(o.callable());
    assertEquals("omegaconf.dictconfig.DictConfig(...)", o.name());
  }

  @Test
  void itemsAndStateOfOpaqueObjectsAreDropped() {
    // d = {"ns": Namespace(a=1), "meters": defaultdict(dict, loss=1), "bytes": _codecs.encode("x", "latin1"),
    //      "list": ListConfig() + APPEND, ("tuple", "key"): 1}
    PickleBuilder p = new PickleBuilder().proto(2).emptyDict().mark()
        .str("ns").global("argparse", "Namespace").emptyTuple().raw(0x81)
        .emptyDict().mark().str("a").integer(1).setitems().build()
        .str("meters").global("collections", "defaultdict").global("builtins", "dict").tuple1().reduce()
        .mark().str("loss").integer(1).setitems()
        .str("bytes").global("_codecs", "encode").str("x").str("latin1").tuple2().reduce()
        .str("list").global("omegaconf.listconfig", "ListConfig").emptyTuple().raw(0x81).integer(1).append()
        .mark().integer(2).appends()
        .str("tuple").str("key").tuple2().integer(1)
        .setitems().stop();
    PickleValue.Dict d = assertInstanceOf(PickleValue.Dict.class, metaseq(p));
    assertEquals(4, d.size(), "the tuple-keyed item is dropped");
    assertEquals("argparse.Namespace(...)", ((PickleValue.Opaque) d.items().get("ns")).name());
    assertInstanceOf(PickleValue.Opaque.class, d.items().get("list"));
  }

  @Test
  void popAndPopMarkWorkAsInPython() {
    PickleBuilder p = new PickleBuilder().proto(2).integer(1).integer(2).raw('0') // POP
        .mark().integer(3).integer(4).raw('1') // POP_MARK
        .stop();
    assertEquals(1L, metaseq(p));
  }

  @Test
  void theStateDictModeStillRefusesConfigurationObjects() {
    assertContains(refused(dictConfig().stop(), PickleReader.Mode.STATE_DICT),
        "omegaconf.dictconfig.DictConfig", "not allowed");
  }

  @ParameterizedTest
  @CsvSource({"os,system", "posix,system", "nt,system", "builtins,eval", "builtins,exec", "builtins,getattr",
      "builtins,__import__", "builtins,open", "subprocess,Popen", "subprocess,check_output", "torch,load",
      "torch.storage,_load_from_bytes", "importlib,import_module", "pickle,loads", "runpy,run_path",
      "typing,get_type_hints", "numpy,load", "os.path,join", "metaseq_evil,run", "omegaconfx.y,z",
      "__builtin__,eval", "copyreg,add_extension", "shutil,rmtree", "webbrowser,open"})
  void globalsThatCanRunCodeAreStillRefused(String module, String name) {
    Path marker = tmp.resolve("pwned");
    PickleBuilder viaGlobal = new PickleBuilder().proto(2).global(module, name).str("touch " + marker).tuple1()
        .reduce().stop();
    assertContains(refused(viaGlobal, PickleReader.Mode.METASEQ), module + "." + name,
        "not allowed even for a metaseq checkpoint", "without running anything");
    byte[] m = module.getBytes(StandardCharsets.UTF_8);
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    PickleBuilder viaStackGlobal = new PickleBuilder().proto(4).raw(0x8c, m.length).raw(m).raw(0x8c, n.length)
        .raw(n).raw(0x93).str("touch " + marker).tuple1().reduce().stop();
    assertContains(refused(viaStackGlobal, PickleReader.Mode.METASEQ), module + "." + name, "not allowed");
    assertFalse(Files.exists(marker), "nothing ran");
  }

  @Test
  void hostileGlobalHiddenInsideAnAllowedObjectIsRefused() {
    PickleBuilder p = new PickleBuilder().proto(2).global("omegaconf.dictconfig", "DictConfig").emptyTuple()
        .raw(0x81).emptyDict().mark().str("_content").global("os", "system").str("id").tuple1().reduce()
        .setitems().build().stop();
    assertContains(refused(p, PickleReader.Mode.METASEQ), "os.system");
  }

  @Test
  void opaqueValuesCannotBeMisused() {
    // Calling an object (not a class), NEWOBJ of a non-opaque global, BUILD on a class reference.
    assertContains(refused(new PickleBuilder().proto(2).global("argparse", "Namespace").emptyTuple().raw(0x81)
        .emptyTuple().reduce().stop(), PickleReader.Mode.METASEQ), "is an object, not a class or function");
    assertContains(refused(new PickleBuilder().proto(2).global("collections", "OrderedDict").emptyTuple()
        .raw(0x81).stop(), PickleReader.Mode.METASEQ), "NEWOBJ of collections.OrderedDict");
    assertContains(refused(new PickleBuilder().proto(2).global("argparse", "Namespace").emptyDict().build()
        .stop(), PickleReader.Mode.METASEQ), "BUILD sets the state");
  }

  @Test
  void aWeightOfAnotherDtypeIsNamedWhenTheModelDictHoldsIt() throws IOException {
    byte[] pickle = new PickleBuilder().proto(2).emptyDict().mark().str("model").orderedDict().mark()
        .str("decoder.embed_tokens.weight").tensor("LongStorage", "0", 4, 0, new long[] {4}, new long[] {1})
        .setitems().setitems().stop().bytes();
    Path file = PytorchTestFiles.torch(tmp.resolve("reshard.pt"), pickle, Map.of("0", new byte[32]));
    CheckpointException e = assertThrows(CheckpointException.class, () -> MetaseqParts.open(file));
    assertContains(e.getMessage(), file.toString(), "'decoder.embed_tokens.weight'", "torch.LongStorage",
        "F16, BF16 or F32");
  }

  @Test
  void aPlainStateDictIsNotAMetaseqCheckpoint() throws IOException {
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w"}, new long[][] {{2}});
    Path file = PytorchTestFiles.torch(tmp.resolve("reshard.pt"), pickle, Map.of("0", new byte[4]));
    CheckpointException e = assertThrows(CheckpointException.class, () -> MetaseqParts.open(file));
    assertContains(e.getMessage(), "no 'model' entry");
  }
}
