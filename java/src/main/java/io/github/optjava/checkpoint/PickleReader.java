package io.github.optjava.checkpoint;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A restricted pickle interpreter for torch.save state dicts. Python's own unpickler can call any importable
 * function a file names (the reason a {@code .bin} from an untrusted source can run code); this one interprets
 * only the opcodes torch.save emits, resolves globals against {@link PickleGlobal}'s allow-list when they are
 * read, applies SETITEM/APPEND/BUILD only to the containers they are valid for, and builds inert Java values
 * ({@link PickleValue}). Memo size, stack depth, mark nesting, string lengths and the number of values are
 * bounded, so a hostile file cannot exhaust memory; the running time is linear in the pickle's size.
 *
 * <p>{@link Mode#METASEQ} widens this for metaseq training checkpoints, whose tensors sit beside pickled
 * configuration objects: globals from {@link MetaseqGlobals}' list become {@link PickleValue.Opaque} names,
 * REDUCE and NEWOBJ on them make more opaque names, and BUILD/SETITEM/APPEND on those are dropped. Still
 * nothing is ever called, and any other global is refused when it is read.
 */
final class PickleReader {

  /** Which globals a pickle may name. */
  enum Mode {
    /** A plain state dict: only {@link PickleGlobal}'s tensor globals. */
    STATE_DICT,
    /** A metaseq checkpoint: also {@link MetaseqGlobals}, as inert opaque values. */
    METASEQ
  }

  /** Opcodes only METASEQ mode interprets: Python's pickler emits them for plain objects (NEWOBJ). */
  private static final Set<PickleOpcode> METASEQ_OPCODES =
      EnumSet.of(PickleOpcode.NEWOBJ, PickleOpcode.POP, PickleOpcode.POP_MARK);

  /** Resolves a BINPERSID persistent id to the object it stands for. */
  interface PersistentLoader {
    Object load(Object pid);
  }

  static final int MAX_STACK = 1 << 20;
  static final int MAX_MARK_DEPTH = 256;
  static final int MAX_MEMO = 1 << 20;
  /** Every push counts, memo fetches included; a state dict needs a few dozen per tensor. */
  static final int MAX_VALUES = 1 << 22;
  static final int MAX_STRING_BYTES = 1 << 16;
  private static final int MAX_GLOBAL_LINE = 256;

  private final PickleInput in;
  private final PersistentLoader loader;
  private final Mode mode;
  private final List<Object> stack = new ArrayList<>();
  private int[] marks = new int[16];
  private int markDepth;
  private final Map<Integer, Object> memo = new HashMap<>();
  private int values;
  private int opStart;
  private PickleOpcode op;

  private PickleReader(byte[] data, PersistentLoader loader, Mode mode) {
    this.in = new PickleInput(data);
    this.loader = loader;
    this.mode = mode;
  }

  /** Interprets a whole state-dict pickle (which must end at its STOP) and returns the object it builds. */
  static Object read(byte[] pickle, PersistentLoader loader) {
    return read(pickle, loader, Mode.STATE_DICT);
  }

  /** {@link #read(byte[], PersistentLoader)} with the given allow-list mode. */
  static Object read(byte[] pickle, PersistentLoader loader, Mode mode) {
    return new PickleReader(pickle, loader, mode).run();
  }

  private Object run() {
    while (true) {
      if (in.remaining() == 0) {
        throw new CheckpointException("data.pkl ends at byte " + in.position() + " without a STOP opcode "
            + "(truncated)");
      }
      opStart = in.position();
      int code = in.u8();
      op = PickleOpcode.of(code);
      try {
        if (op == null) {
          throw new CheckpointException(String.format("unknown pickle opcode 0x%02x: not a valid pickle", code));
        }
        if (!op.supported() && !(mode == Mode.METASEQ && METASEQ_OPCODES.contains(op))) {
          throw new CheckpointException("pickle opcode " + op + String.format(" (0x%02x)", code)
              + " is not supported: torch.save state dicts do not use it, so the file is not a plain tensor "
              + "checkpoint");
        }
        if (op == PickleOpcode.STOP) {
          return stop();
        }
        step();
      } catch (CheckpointException e) {
        // Errors inside an opcode (here, in PickleInput, the allow-list or the storage resolver) say what is
        // wrong; this one place adds which opcode at which offset.
        throw new CheckpointException(where() + e.getMessage(), e.getCause());
      }
    }
  }

  private void step() {
    switch (op) {
      case PROTO -> {
        int version = in.u8();
        if (version < 2 || version > 5) {
          throw new CheckpointException("pickle protocol " + version + " is not supported (torch.save writes 2)");
        }
      }
      case FRAME -> {
        // Protocol 4 framing is only a read-ahead hint; the opcodes inside are read as usual.
        long len = in.i64();
        if (len < 0 || len > in.remaining()) {
          throw new CheckpointException("frame of " + len + " bytes runs past the end of the pickle");
        }
      }
      case EMPTY_DICT -> push(new PickleValue.Dict(false));
      case EMPTY_LIST -> push(new PickleValue.PyList());
      case EMPTY_TUPLE -> push(PickleValue.Tuple.EMPTY);
      case MARK -> {
        if (markDepth == MAX_MARK_DEPTH) {
          throw new CheckpointException("MARKs nest deeper than " + MAX_MARK_DEPTH);
        }
        if (markDepth == marks.length) {
          marks = Arrays.copyOf(marks, marks.length * 2);
        }
        marks[markDepth++] = stack.size();
      }
      case BINPUT -> memoPut(in.u8());
      case LONG_BINPUT -> memoPut(in.i32());
      case MEMOIZE -> memoPut(memo.size());
      case BINGET -> memoGet(in.u8());
      case LONG_BINGET -> memoGet(in.i32());
      case SHORT_BINUNICODE -> push(in.utf8(in.u8(), MAX_STRING_BYTES));
      case BINUNICODE -> push(in.utf8(in.i32() & 0xffffffffL, MAX_STRING_BYTES));
      case BINUNICODE8 -> push(in.utf8(in.i64(), MAX_STRING_BYTES));
      case GLOBAL -> push(global(in.line(MAX_GLOBAL_LINE), in.line(MAX_GLOBAL_LINE)));
      case STACK_GLOBAL -> {
        Object name = pop();
        Object module = pop();
        if (!(module instanceof String m) || !(name instanceof String n)) {
          throw new CheckpointException("STACK_GLOBAL needs two strings, got " + PickleValue.describe(module) + " and "
              + PickleValue.describe(name));
        }
        push(global(m, n));
      }
      case BINPERSID -> {
        Object pid = pop();
        push(loader.load(pid));
      }
      case TUPLE -> push(new PickleValue.Tuple(popMark()));
      case TUPLE1 -> push(tuple(1));
      case TUPLE2 -> push(tuple(2));
      case TUPLE3 -> push(tuple(3));
      case BININT -> push((long) in.i32());
      case BININT1 -> push((long) in.u8());
      case BININT2 -> push((long) in.u16());
      case LONG1 -> push(in.long1());
      case NEWTRUE -> push(Boolean.TRUE);
      case NEWFALSE -> push(Boolean.FALSE);
      case NONE -> push(null);
      case BINFLOAT -> push(in.float64BigEndian());
      case REDUCE -> reduce();
      case NEWOBJ -> {
        pop(); // the arguments: never looked at, nothing is constructed
        Object cls = pop();
        if (!(cls instanceof PickleValue.Opaque o)) {
          throw new CheckpointException("NEWOBJ of " + PickleValue.describe(cls) + ", which is not an allowed "
              + "class: not a plain tensor checkpoint");
        }
        push(o.called());
      }
      case POP -> {
        // As CPython: at a MARK with nothing above it, POP discards the mark.
        if (stack.size() == fence() && markDepth > 0) {
          popMark();
        } else {
          pop();
        }
      }
      case POP_MARK -> popMark();
      case BUILD -> build();
      case SETITEM -> {
        Object value = pop();
        Object key = pop();
        PickleValue.Dict d = dictTarget();
        if (d != null) {
          putItem(d, key, value);
        }
      }
      case SETITEMS -> {
        List<Object> items = popMark();
        if (items.size() % 2 != 0) {
          throw new CheckpointException("SETITEMS with an odd number (" + items.size() + ") of keys and values");
        }
        PickleValue.Dict d = dictTarget();
        for (int i = 0; d != null && i < items.size(); i += 2) {
          putItem(d, items.get(i), items.get(i + 1));
        }
      }
      case APPEND -> {
        Object item = pop();
        PickleValue.PyList list = listTarget();
        if (list != null) {
          list.add(item);
        }
      }
      case APPENDS -> {
        List<Object> items = popMark();
        PickleValue.PyList list = listTarget();
        for (int i = 0; list != null && i < items.size(); i++) {
          list.add(items.get(i));
        }
      }
      default -> throw new IllegalStateException("supported opcode without a case: " + op);
    }
  }

  private Object stop() {
    Object result = pop();
    if (!stack.isEmpty() || markDepth != 0) {
      throw new CheckpointException("the pickle leaves " + stack.size() + " values and " + markDepth
          + " marks behind at STOP");
    }
    if (in.remaining() != 0) {
      throw new CheckpointException(in.remaining() + " bytes follow the pickle's STOP");
    }
    return result;
  }

  /** Resolves a GLOBAL / STACK_GLOBAL name against the allow-list of this mode, refusing anything else. */
  private Object global(String module, String name) {
    if (mode == Mode.STATE_DICT) {
      return PickleGlobal.resolve(module, name);
    }
    PickleGlobal g = PickleGlobal.find(module, name);
    if (g != null) {
      return g;
    }
    if (MetaseqGlobals.allows(module, name)) {
      String q = Untrusted.quote(module + "." + name);
      return PickleValue.Opaque.global(q.substring(1, q.length() - 1));
    }
    throw MetaseqGlobals.refusal(module, name);
  }

  private void reduce() {
    Object args = pop();
    Object callable = pop();
    if (mode == Mode.METASEQ && callable instanceof PickleValue.Opaque o) {
      push(o.called());
      return;
    }
    if (mode == Mode.METASEQ && callable instanceof PickleGlobal g
        && (g.rebuildsTensor() || g == PickleGlobal.REBUILD_PARAMETER) && args instanceof PickleValue.Tuple t
        && t.size() > 0 && t.get(0) instanceof PickleValue.Opaque storage) {
      // A tensor (or parameter) on a storage of a dtype weights never use: kept as a name; only an error if
      // the converter needs it.
      push(PickleValue.Opaque.object("tensor on " + storage.name() + " (" + g.qualifiedName() + ")"));
      return;
    }
    if (!(callable instanceof PickleGlobal g)) {
      throw new CheckpointException("REDUCE applied to " + PickleValue.describe(callable)
          + ", which is not an allowed function: not a plain tensor checkpoint");
    }
    if (!(args instanceof PickleValue.Tuple t)) {
      throw new CheckpointException("REDUCE of " + g.qualifiedName() + " with " + PickleValue.describe(args)
          + " as arguments");
    }
    push(g.call(t));
  }

  private void build() {
    Object state = pop();
    Object target = peek();
    // state_dict() is an OrderedDict carrying a `_metadata` attribute (module versions), pickled as BUILD
    // with a dict of attributes. It does not affect the tensors, so it is accepted and dropped.
    if (target instanceof PickleValue.Dict d && d.ordered() && state instanceof PickleValue.Dict) {
      return;
    }
    // An opaque object's state (an omegaconf node's content, a Namespace's attributes) is not kept.
    if (mode == Mode.METASEQ && target instanceof PickleValue.Opaque o && !o.callable()) {
      return;
    }
    throw new CheckpointException("BUILD sets the state of a " + PickleValue.describe(target) + " from a "
        + PickleValue.describe(state) + "; only an OrderedDict's attributes may be set: not a plain tensor "
        + "checkpoint");
  }

  /** The dict SETITEM(S) fill, or null when the items go to an opaque object and are dropped. */
  private PickleValue.Dict dictTarget() {
    Object target = peek();
    if (target instanceof PickleValue.Dict d) {
      return d;
    }
    if (mode == Mode.METASEQ && target instanceof PickleValue.Opaque o && !o.callable()) {
      return null;
    }
    throw new CheckpointException(op + " on a " + PickleValue.describe(target)
        + ", which is not a dict: a corrupt or crafted file");
  }

  /** The list APPEND(S) fill, or null when the items go to an opaque object and are dropped. */
  private PickleValue.PyList listTarget() {
    Object target = peek();
    if (target instanceof PickleValue.PyList l) {
      return l;
    }
    if (mode == Mode.METASEQ && target instanceof PickleValue.Opaque o && !o.callable()) {
      return null;
    }
    throw new CheckpointException(op + " on a " + PickleValue.describe(target)
        + ", which is not a list: a corrupt or crafted file");
  }

  /**
   * Sets a dict item. A metaseq checkpoint's configuration may key a dict by an object (an enum, a tuple);
   * such items cannot be weights, so in METASEQ mode they are dropped rather than refused.
   */
  private void putItem(PickleValue.Dict d, Object key, Object value) {
    boolean scalar = key == null || key instanceof String || key instanceof Long || key instanceof Boolean
        || key instanceof Double;
    if (!scalar && mode == Mode.METASEQ) {
      return;
    }
    d.put(key, value);
  }

  private PickleValue.Tuple tuple(int n) {
    Object[] items = new Object[n];
    for (int i = n - 1; i >= 0; i--) {
      items[i] = pop();
    }
    return new PickleValue.Tuple(Arrays.asList(items));
  }

  private void memoPut(int index) {
    Object top = peek();
    if (!memo.containsKey(index) && memo.size() >= MAX_MEMO) {
      throw new CheckpointException("the pickle memo grows beyond " + MAX_MEMO + " entries");
    }
    memo.put(index, top);
  }

  private void memoGet(int index) {
    if (!memo.containsKey(index)) {
      throw new CheckpointException("memo entry " + Integer.toUnsignedString(index) + " is read before it is stored");
    }
    push(memo.get(index));
  }

  private void push(Object v) {
    if (stack.size() >= MAX_STACK) {
      throw new CheckpointException("the pickle stack grows beyond " + MAX_STACK + " values");
    }
    if (++values > MAX_VALUES) {
      throw new CheckpointException("the pickle builds more than " + MAX_VALUES
          + " values: not a plain tensor checkpoint");
    }
    stack.add(v);
  }

  /** The stack only reaches down to the innermost MARK, as in CPython's unpickler. */
  private int fence() {
    return markDepth == 0 ? 0 : marks[markDepth - 1];
  }

  private Object pop() {
    if (stack.size() <= fence()) {
      throw new CheckpointException("stack underflow: a corrupt pickle");
    }
    return stack.remove(stack.size() - 1);
  }

  private Object peek() {
    if (stack.size() <= fence()) {
      throw new CheckpointException("stack underflow: a corrupt pickle");
    }
    return stack.get(stack.size() - 1);
  }

  private List<Object> popMark() {
    if (markDepth == 0) {
      throw new CheckpointException("no MARK to pop to: a corrupt pickle");
    }
    int from = marks[--markDepth];
    List<Object> top = stack.subList(from, stack.size());
    List<Object> items = new ArrayList<>(top);
    top.clear();
    return items;
  }

  private String where() {
    return "data.pkl, " + (op == null ? "opcode" : op) + " at byte " + opStart + ": ";
  }
}
