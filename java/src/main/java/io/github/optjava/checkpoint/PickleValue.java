package io.github.optjava.checkpoint;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The inert Java values {@link PickleReader} builds for Python containers. Scalars are plain Java values:
 * {@code str} → {@link String}, {@code int} → {@link Long}, {@code bool} → {@link Boolean}, {@code float} →
 * {@link Double}, {@code None} → {@code null}.
 *
 * <p>These classes use identity equality and never recurse into their elements (no structural
 * {@code equals}, {@code hashCode} or {@code toString}): a hostile pickle can build cyclic or very deeply
 * nested structures, and walking them would overflow the stack.
 */
final class PickleValue {
  private PickleValue() {}

  /** A Python tuple: immutable. */
  static final class Tuple {
    static final Tuple EMPTY = new Tuple(List.of());

    private final List<Object> items;

    Tuple(List<Object> items) {
      this.items = items;
    }

    int size() {
      return items.size();
    }

    Object get(int i) {
      return items.get(i);
    }
  }

  /** A Python list: only APPEND and APPENDS modify it. */
  static final class PyList {
    private final List<Object> items = new ArrayList<>();

    void add(Object item) {
      items.add(item);
    }

    int size() {
      return items.size();
    }
  }

  /** A Python dict or collections.OrderedDict (both keep insertion order here). */
  static final class Dict {
    private final boolean ordered;
    private final Map<Object, Object> map = new LinkedHashMap<>();

    Dict(boolean ordered) {
      this.ordered = ordered;
    }

    boolean ordered() {
      return ordered;
    }

    /**
     * Sets one item. Keys are limited to scalars, whose hashing cannot recurse; state dicts only use strings.
     */
    void put(Object key, Object value) {
      if (key != null && !(key instanceof String) && !(key instanceof Long) && !(key instanceof Boolean)
          && !(key instanceof Double)) {
        throw new CheckpointException("a dict key is a " + describe(key)
            + "; only str, int, float, bool or None keys are accepted");
      }
      map.put(key, value);
    }

    int size() {
      return map.size();
    }

    /** The items in insertion order (read-only). */
    Map<Object, Object> items() {
      return Collections.unmodifiableMap(map);
    }
  }

  /**
   * A Python object that only {@link PickleReader.Mode#METASEQ} builds: a reference to an allow-listed class or
   * function ({@link MetaseqGlobals}), or what REDUCE/NEWOBJ "made" from one. Nothing is called and no state
   * is kept (BUILD, SETITEM and APPEND on it are dropped): the value is just a name for messages, so a
   * checkpoint's training configuration (omegaconf, argparse) can sit beside its tensors without being
   * interpreted.
   */
  static final class Opaque {
    private final String name;
    private final boolean callable;

    private Opaque(String name, boolean callable) {
      this.name = name;
      this.callable = callable;
    }

    /** The allow-listed global {@code module.name} itself (a class or function reference). */
    static Opaque global(String qualifiedName) {
      return new Opaque(qualifiedName, true);
    }

    /** An inert stand-in for an object built from {@code what}. */
    static Opaque object(String what) {
      return new Opaque(what, false);
    }

    /** The stand-in for calling this global (REDUCE or NEWOBJ); the arguments are not looked at. */
    Opaque called() {
      if (!callable) {
        throw new CheckpointException("the pickle calls " + name + ", which is an object, not a class or "
            + "function: a corrupt or crafted file");
      }
      return object(name + "(...)");
    }

    boolean callable() {
      return callable;
    }

    String name() {
      return name;
    }
  }

  /** A short, non-recursive description of a value's type for error messages. */
  static String describe(Object v) {
    if (v == null) {
      return "None";
    } else if (v instanceof String s) {
      return "str " + Untrusted.quote(s);
    } else if (v instanceof Long) {
      return "int";
    } else if (v instanceof Boolean) {
      return "bool";
    } else if (v instanceof Double) {
      return "float";
    } else if (v instanceof Tuple t) {
      return "tuple of " + t.size();
    } else if (v instanceof PyList) {
      return "list";
    } else if (v instanceof Dict d) {
      return d.ordered() ? "OrderedDict" : "dict";
    } else if (v instanceof PickleGlobal g) {
      return g.qualifiedName();
    } else if (v instanceof PytorchStorage s) {
      return "storage " + Untrusted.quote(s.key());
    } else if (v instanceof PytorchTensorRef) {
      return "tensor";
    } else if (v instanceof Opaque o) {
      return (o.callable() ? "" : "object ") + o.name();
    }
    return v.getClass().getSimpleName();
  }
}
