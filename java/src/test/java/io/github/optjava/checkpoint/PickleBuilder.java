package io.github.optjava.checkpoint;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Test helper: writes pickle opcodes by hand, including ones a well-behaved torch.save never emits. */
final class PickleBuilder {
  private final ByteArrayOutputStream out = new ByteArrayOutputStream();

  byte[] bytes() {
    return out.toByteArray();
  }

  PickleBuilder raw(int... bytes) {
    for (int b : bytes) {
      out.write(b);
    }
    return this;
  }

  PickleBuilder raw(byte[] bytes) {
    out.writeBytes(bytes);
    return this;
  }

  PickleBuilder proto(int v) {
    return raw(0x80, v);
  }

  PickleBuilder global(String module, String name) {
    raw('c');
    out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8));
    return this;
  }

  PickleBuilder mark() {
    return raw('(');
  }

  PickleBuilder emptyDict() {
    return raw('}');
  }

  PickleBuilder emptyList() {
    return raw(']');
  }

  PickleBuilder emptyTuple() {
    return raw(')');
  }

  PickleBuilder tuple() {
    return raw('t');
  }

  PickleBuilder tuple1() {
    return raw(0x85);
  }

  PickleBuilder tuple2() {
    return raw(0x86);
  }

  PickleBuilder tuple3() {
    return raw(0x87);
  }

  PickleBuilder reduce() {
    return raw('R');
  }

  PickleBuilder build() {
    return raw('b');
  }

  PickleBuilder setitem() {
    return raw('s');
  }

  PickleBuilder setitems() {
    return raw('u');
  }

  PickleBuilder append() {
    return raw('a');
  }

  PickleBuilder appends() {
    return raw('e');
  }

  PickleBuilder binpersid() {
    return raw('Q');
  }

  PickleBuilder binput(int i) {
    return raw('q', i);
  }

  PickleBuilder binget(int i) {
    return raw('h', i);
  }

  PickleBuilder newTrue() {
    return raw(0x88);
  }

  PickleBuilder newFalse() {
    return raw(0x89);
  }

  PickleBuilder none() {
    return raw('N');
  }

  PickleBuilder stop() {
    return raw('.');
  }

  /** BINUNICODE. */
  PickleBuilder str(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    raw('X');
    le(b.length, 4);
    out.writeBytes(b);
    return this;
  }

  /** The smallest of BININT1, BININT2, BININT that holds {@code v}; LONG1 beyond 32 bits. */
  PickleBuilder integer(long v) {
    if (v >= 0 && v < 0x100) {
      return raw('K', (int) v);
    }
    if (v >= 0 && v < 0x10000) {
      raw('M');
      return le(v, 2);
    }
    if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
      raw('J');
      return le(v, 4);
    }
    raw(0x8a, 8);
    return le(v, 8);
  }

  PickleBuilder le(long v, int n) {
    for (int i = 0; i < n; i++) {
      out.write((int) (v >>> (8 * i)) & 0xff);
    }
    return this;
  }

  /** {@code ('storage', torch.<cls>, key, 'cpu', numel)} then BINPERSID. */
  PickleBuilder storage(String cls, String key, long numel) {
    return mark().str("storage").global("torch", cls).str(key).str("cpu").integer(numel).tuple().binpersid();
  }

  /** {@code collections.OrderedDict()}. */
  PickleBuilder orderedDict() {
    return global("collections", "OrderedDict").emptyTuple().reduce();
  }

  /** {@code _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())}. */
  PickleBuilder tensor(String cls, String key, long numel, long offset, long[] shape, long[] stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark().storage(cls, key, numel).integer(offset);
    mark();
    for (long d : shape) {
      integer(d);
    }
    tuple().mark();
    for (long s : stride) {
      integer(s);
    }
    return tuple().newFalse().orderedDict().tuple().reduce();
  }

  /** Row-major strides of a shape. */
  static long[] contiguous(long... shape) {
    long[] stride = new long[shape.length];
    long s = 1;
    for (int d = shape.length - 1; d >= 0; d--) {
      stride[d] = s;
      s *= shape[d];
    }
    return stride;
  }

  /**
   * A state dict {@code OrderedDict(name → F16 tensor)} with every tensor on its own storage key "0", "1", ...
   * of exactly its size.
   */
  static byte[] stateDict(String[] names, long[][] shapes) {
    PickleBuilder p = new PickleBuilder().proto(2).orderedDict().mark();
    for (int i = 0; i < names.length; i++) {
      long numel = 1;
      for (long d : shapes[i]) {
        numel *= d;
      }
      p.str(names[i]).tensor("HalfStorage", Integer.toString(i), numel, 0, shapes[i], contiguous(shapes[i]));
    }
    return p.setitems().stop().bytes();
  }
}
