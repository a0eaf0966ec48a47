package io.github.optjava.checkpoint;

/**
 * Pickle opcodes (names as in Python's {@code pickletools}). Only those marked supported are interpreted:
 * the ones torch.save's protocol-2 pickles use, plus the protocol-4 framing and memo forms. The others are
 * listed so that an error can name what the file contains.
 */
enum PickleOpcode {
  MARK('(', true),
  STOP('.', true),
  POP('0', false),
  POP_MARK('1', false),
  DUP('2', false),
  FLOAT('F', false),
  INT('I', false),
  BININT('J', true),
  BININT1('K', true),
  LONG('L', false),
  BININT2('M', true),
  NONE('N', true),
  PERSID('P', false),
  BINPERSID('Q', true),
  REDUCE('R', true),
  STRING('S', false),
  BINSTRING('T', false),
  SHORT_BINSTRING('U', false),
  UNICODE('V', false),
  BINUNICODE('X', true),
  APPEND('a', true),
  BUILD('b', true),
  GLOBAL('c', true),
  DICT('d', false),
  EMPTY_DICT('}', true),
  APPENDS('e', true),
  GET('g', false),
  BINGET('h', true),
  INST('i', false),
  LONG_BINGET('j', true),
  LIST('l', false),
  EMPTY_LIST(']', true),
  OBJ('o', false),
  PUT('p', false),
  BINPUT('q', true),
  LONG_BINPUT('r', true),
  SETITEM('s', true),
  TUPLE('t', true),
  EMPTY_TUPLE(')', true),
  SETITEMS('u', true),
  BINFLOAT('G', true),
  PROTO(0x80, true),
  NEWOBJ(0x81, false),
  EXT1(0x82, false),
  EXT2(0x83, false),
  EXT4(0x84, false),
  TUPLE1(0x85, true),
  TUPLE2(0x86, true),
  TUPLE3(0x87, true),
  NEWTRUE(0x88, true),
  NEWFALSE(0x89, true),
  LONG1(0x8a, true),
  LONG4(0x8b, false),
  BINBYTES('B', false),
  SHORT_BINBYTES('C', false),
  SHORT_BINUNICODE(0x8c, true),
  BINUNICODE8(0x8d, true),
  BINBYTES8(0x8e, false),
  EMPTY_SET(0x8f, false),
  ADDITEMS(0x90, false),
  FROZENSET(0x91, false),
  NEWOBJ_EX(0x92, false),
  STACK_GLOBAL(0x93, true),
  MEMOIZE(0x94, true),
  FRAME(0x95, true),
  BYTEARRAY8(0x96, false),
  NEXT_BUFFER(0x97, false),
  READONLY_BUFFER(0x98, false);

  private static final PickleOpcode[] BY_CODE = new PickleOpcode[256];

  static {
    for (PickleOpcode op : values()) {
      BY_CODE[op.code] = op;
    }
  }

  private final int code;
  private final boolean supported;

  PickleOpcode(int code, boolean supported) {
    this.code = code;
    this.supported = supported;
  }

  /** The opcode of that byte value (0–255), or null when pickle defines none. */
  static PickleOpcode of(int code) {
    return BY_CODE[code];
  }

  /** Whether the restricted reader interprets it. */
  boolean supported() {
    return supported;
  }

  /** Its byte value. */
  int code() {
    return code;
  }
}
