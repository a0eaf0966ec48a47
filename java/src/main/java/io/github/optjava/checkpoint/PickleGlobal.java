package io.github.optjava.checkpoint;

import java.util.Map;

/**
 * The allow-list of Python globals a state-dict pickle may name. A pickle's GLOBAL opcode can name any
 * importable callable (os.system, builtins.eval, ...) and REDUCE calls it; here every other name is refused
 * when it is read, before anything else happens, and the allowed ones are interpreted by Java code that builds
 * inert values and checks the argument shapes.
 */
enum PickleGlobal {
  ORDERED_DICT("collections", "OrderedDict", null),
  REBUILD_TENSOR_V2("torch._utils", "_rebuild_tensor_v2", null),
  REBUILD_TENSOR("torch._utils", "_rebuild_tensor", null),
  REBUILD_PARAMETER("torch._utils", "_rebuild_parameter", null),
  HALF_STORAGE("torch", "HalfStorage", DType.F16),
  BFLOAT16_STORAGE("torch", "BFloat16Storage", DType.BF16),
  FLOAT_STORAGE("torch", "FloatStorage", DType.F32);

  /** Storage classes of dtypes OPT weights never use: named in a clearer error than "not allowed". */
  private static final Map<String, String> OTHER_STORAGES = Map.ofEntries(
      Map.entry("DoubleStorage", "float64"), Map.entry("LongStorage", "int64"),
      Map.entry("IntStorage", "int32"), Map.entry("ShortStorage", "int16"),
      Map.entry("CharStorage", "int8"), Map.entry("ByteStorage", "uint8"),
      Map.entry("BoolStorage", "bool"), Map.entry("ComplexFloatStorage", "complex64"),
      Map.entry("ComplexDoubleStorage", "complex128"));

  private final String module;
  private final String name;
  private final DType storageDType;

  PickleGlobal(String module, String name, DType storageDType) {
    this.module = module;
    this.name = name;
    this.storageDType = storageDType;
  }

  /** {@code module.name}, as Python spells it. */
  String qualifiedName() {
    return module + "." + name;
  }

  /** The element type when this is a storage class, else null. */
  DType storageDType() {
    return storageDType;
  }

  /** The allowed global of that module and name; anything else is a {@link CheckpointException}. */
  static PickleGlobal resolve(String module, String name) {
    PickleGlobal g = find(module, name);
    if (g != null) {
      return g;
    }
    String dtype = "torch".equals(module) ? OTHER_STORAGES.get(name) : null;
    if (dtype != null) {
      throw new CheckpointException("a tensor has dtype " + dtype + " (torch." + name
          + "), which is not supported: OPT checkpoints are read as F16, BF16 or F32; convert the checkpoint");
    }
    throw new CheckpointException("the pickle references the Python global " + shorten(module + "." + name)
        + ", which is not allowed: the file is not a plain tensor checkpoint (a state dict of "
        + "tensors), and it was refused without running anything. Only collections.OrderedDict, "
        + "torch._utils._rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter and torch.HalfStorage, "
        + "BFloat16Storage, FloatStorage are accepted; convert trusted checkpoints to safetensors");
  }

  /** The allowed global of that module and name, or null. */
  static PickleGlobal find(String module, String name) {
    for (PickleGlobal g : values()) {
      if (g.module.equals(module) && g.name.equals(name)) {
        return g;
      }
    }
    return null;
  }

  /** Whether this is one of torch's {@code _rebuild_tensor} functions (its first argument is a storage). */
  boolean rebuildsTensor() {
    return this == REBUILD_TENSOR_V2 || this == REBUILD_TENSOR;
  }

  /** What REDUCE builds when it calls this global with {@code args}; the argument shapes are checked. */
  Object call(PickleValue.Tuple args) {
    switch (this) {
      case ORDERED_DICT -> {
        if (args.size() != 0) {
          throw badArgs(args, "torch.save writes OrderedDict() with no arguments");
        }
        return new PickleValue.Dict(true);
      }
      case REBUILD_TENSOR_V2 -> {
        if (args.size() != 6 && args.size() != 7) {
          throw badArgs(args, "expected (storage, storage_offset, size, stride, requires_grad, "
              + "backward_hooks[, metadata])");
        }
        return PytorchTensorRef.rebuild(args, this);
      }
      case REBUILD_TENSOR -> {
        if (args.size() != 4) {
          throw badArgs(args, "expected (storage, storage_offset, size, stride)");
        }
        return PytorchTensorRef.rebuild(args, this);
      }
      case REBUILD_PARAMETER -> {
        // nn.Parameter(data, requires_grad, backward_hooks): the parameter is just its tensor here.
        if (args.size() != 3 || !(args.get(0) instanceof PytorchTensorRef t) || !(args.get(1) instanceof Boolean)
            || !PytorchTensorRef.isEmptyDict(args.get(2))) {
          throw badArgs(args, "expected (tensor, requires_grad, empty backward_hooks)");
        }
        return t;
      }
      default -> throw new CheckpointException(qualifiedName() + " is called by the pickle; a storage class "
          + "may only appear inside a storage persistent id: not a plain tensor checkpoint");
    }
  }

  private CheckpointException badArgs(PickleValue.Tuple args, String expected) {
    return new CheckpointException(qualifiedName() + " is called with " + args.size() + " arguments of an "
        + "unexpected form (" + expected + "): not a plain tensor checkpoint");
  }

  /** Keeps hostile multi-kilobyte names and control characters out of messages. */
  private static String shorten(String s) {
    String q = Untrusted.quote(s);
    return q.substring(1, q.length() - 1);
  }
}
