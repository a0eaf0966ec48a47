package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The restricted interpreter on its own: opcode semantics and the limits that keep hostile input bounded. */
class PickleReaderTest {

  private static final PickleReader.PersistentLoader NO_STORAGES = pid -> {
    throw new CheckpointException("no storages here");
  };

  private static Object read(PickleBuilder p) {
    return PickleReader.read(p.bytes(), NO_STORAGES);
  }

  private static String fails(byte[] pickle) {
    return assertThrows(CheckpointException.class, () -> PickleReader.read(pickle, NO_STORAGES)).getMessage();
  }

  private static void assertContains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), "expected '" + p + "' in: " + message);
    }
  }

  @Test
  void scalarsDecodeAsPythonWould() {
    PickleBuilder p = new PickleBuilder().proto(2).mark()
        .raw(0x8a, 2, 0x00, 0xff) // LONG1 -256
        .raw(0x8a, 0) // LONG1 0
        .integer(-5) // BININT
        .integer(40000) // BININT2
        .integer(200) // BININT1
        .raw('G', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0) // BINFLOAT 1.5 (big-endian)
        .newTrue().none().str("h\u00e9llo")
        .raw(0x8c, 2, 'a', 'b') // SHORT_BINUNICODE
        .raw(0x8d, 1, 0, 0, 0, 0, 0, 0, 0, 'z') // BINUNICODE8
        .tuple().stop();
    PickleValue.Tuple t = assertInstanceOf(PickleValue.Tuple.class, read(p));
    assertEquals(11, t.size());
    assertEquals(-256L, t.get(0));
    assertEquals(0L, t.get(1));
    assertEquals(-5L, t.get(2));
    assertEquals(40000L, t.get(3));
    assertEquals(200L, t.get(4));
    assertEquals(1.5, t.get(5));
    assertEquals(Boolean.TRUE, t.get(6));
    assertNull(t.get(7));
    assertEquals("h\u00e9llo", t.get(8));
    assertEquals("ab", t.get(9));
    assertEquals("z", t.get(10));
  }

  @Test
  void memoAndProtocol4Framing() {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    byte[] inner = new PickleBuilder().mark().raw(0x8c, 11).raw("collections".getBytes(StandardCharsets.US_ASCII))
        .raw(0x8c, 11).raw("OrderedDict".getBytes(StandardCharsets.US_ASCII)).raw(0x93, 0x94) // STACK_GLOBAL MEMOIZE
        .emptyTuple().reduce().raw(0x94) // MEMOIZE as index 1
        .raw('r', 7, 0, 0, 0) // LONG_BINPUT 7
        .raw('j', 7, 0, 0, 0).binget(1).tuple() // (dict, memo[7], memo[1]): one dict three times
        .stop().bytes();
    body.writeBytes(new byte[] {(byte) 0x80, 4, (byte) 0x95});
    body.writeBytes(new PickleBuilder().le(inner.length, 8).bytes());
    body.writeBytes(inner);
    Object v = PickleReader.read(body.toByteArray(), NO_STORAGES);
    PickleValue.Tuple t = assertInstanceOf(PickleValue.Tuple.class, v);
    PickleValue.Dict d = assertInstanceOf(PickleValue.Dict.class, t.get(0));
    assertTrue(d.ordered());
    assertEquals(3, t.size());
    assertSame(t.get(0), t.get(1));
    assertSame(t.get(0), t.get(2));
  }

  @Test
  void structuralErrorsAreCheckpointExceptions() {
    assertContains(fails(new PickleBuilder().proto(2).none().bytes()), "without a STOP");
    assertContains(fails(new PickleBuilder().proto(2).none().stop().raw(0).bytes()), "follow the pickle's STOP");
    assertContains(fails(new PickleBuilder().proto(2).none().none().stop().bytes()), "leaves 1 values");
    assertContains(fails(new PickleBuilder().proto(2).stop().bytes()), "stack underflow");
    // A MARK fences the stack: SETITEM may not reach the dict below it.
    assertContains(fails(new PickleBuilder().proto(2).emptyDict().mark().str("k").setitem().stop().bytes()),
        "stack underflow");
    assertContains(fails(new PickleBuilder().proto(2).binget(3).stop().bytes()), "memo entry 3");
    assertContains(fails(new PickleBuilder().proto(2).tuple().stop().bytes()), "no MARK");
    assertContains(fails(new PickleBuilder().proto(1).none().stop().bytes()), "protocol 1");
    assertContains(fails(new PickleBuilder().proto(2).raw('X', 5, 0, 0, 0, 'a').bytes()), "truncated");
    assertContains(fails(new PickleBuilder().proto(2).raw('X', 2, 0, 0, 0, 0xc3, 0x28).stop().bytes()),
        "not valid UTF-8");
    assertContains(fails(new PickleBuilder().proto(2).raw(0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9).stop().bytes()),
        "does not fit 64 bits");
    assertContains(fails(new PickleBuilder().proto(2).emptyDict().mark().str("k").setitems().stop().bytes()),
        "odd number");
    assertContains(fails(new PickleBuilder().proto(2).global("collections", "OrderedDict").none().reduce()
        .stop().bytes()), "with None as arguments");
    assertContains(fails(new PickleBuilder().proto(2).emptyDict().emptyTuple().none().setitem().stop().bytes()),
        "dict key is a tuple");
    assertContains(fails(new PickleBuilder().proto(2).raw('c').raw("os\nsys".getBytes()).bytes()),
        "unterminated");
    assertContains(fails(new PickleBuilder().proto(4).raw(0x95).le(1000, 8).none().stop().bytes()),
        "frame of 1000 bytes");
  }

  @Test
  void aHugeStringLengthIsRefusedWithoutAllocating() {
    // BINUNICODE8 claiming 2^62 bytes, and BINUNICODE claiming 4 GiB - 1.
    assertContains(fails(new PickleBuilder().proto(2).raw(0x8d).le(1L << 62, 8).stop().bytes()),
        "4611686018427387904 bytes is longer");
    assertContains(fails(new PickleBuilder().proto(2).raw('X').le(0xffffffffL, 4).stop().bytes()),
        "4294967295 bytes is longer");
  }

  @Test
  void markNestingIsBounded() {
    PickleBuilder p = new PickleBuilder().proto(2);
    for (int i = 0; i <= PickleReader.MAX_MARK_DEPTH; i++) {
      p.mark();
    }
    assertContains(fails(p.stop().bytes()), "MARKs nest deeper");
  }

  @Test
  void stackDepthIsBounded() {
    byte[] pickle = new byte[PickleReader.MAX_STACK + 4];
    pickle[0] = (byte) 0x80;
    pickle[1] = 2;
    Arrays.fill(pickle, 2, pickle.length - 1, (byte) 'N');
    pickle[pickle.length - 1] = '.';
    assertContains(fails(pickle), "stack grows beyond");
  }

  @Test
  void memoSizeIsBounded() {
    byte[] pickle = new byte[PickleReader.MAX_MEMO + 6];
    pickle[0] = (byte) 0x80;
    pickle[1] = 4;
    pickle[2] = 'N';
    Arrays.fill(pickle, 3, pickle.length - 1, (byte) 0x94); // MEMOIZE
    pickle[pickle.length - 1] = '.';
    assertContains(fails(pickle), "memo grows beyond");
  }

  @Test
  void theNumberOfValuesIsBounded() {
    // [] then (BINGET 0, APPEND) forever: the stack stays small but the list would grow without end.
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(new byte[] {(byte) 0x80, 2, ']', 'q', 0});
    byte[] step = {'h', 0, 'a'};
    for (int i = 0; i <= PickleReader.MAX_VALUES; i++) {
      out.write(step, 0, 3);
    }
    out.write('.');
    assertContains(fails(out.toByteArray()), "more than " + PickleReader.MAX_VALUES + " values");
  }

  @Test
  void deeplyNestedValuesDoNotOverflowTheJavaStack() {
    // A million nested 1-tuples: nothing walks the structure recursively.
    PickleBuilder p = new PickleBuilder().proto(2).none();
    for (int i = 0; i < 1_000_000; i++) {
      p.tuple1();
    }
    PickleValue.Tuple t = assertInstanceOf(PickleValue.Tuple.class, read(p.stop()));
    assertEquals("tuple of 1", PickleValue.describe(t));
  }

  @Test
  void aListCanHoldItselfWithoutHarm() {
    // l = []; l.append(l): cyclic, which is fine as long as nothing recurses.
    Object v = read(new PickleBuilder().proto(2).emptyList().binput(0).binget(0).append().stop());
    assertEquals(1, assertInstanceOf(PickleValue.PyList.class, v).size());
  }
}
