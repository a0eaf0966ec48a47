package io.github.optjava.checkpoint;

import java.util.Set;

/**
 * The extra Python globals a metaseq checkpoint may name ({@link PickleReader.Mode#METASEQ}). Beside its
 * tensors a metaseq {@code reshard*.pt} file pickles the training run: {@code cfg} (omegaconf containers,
 * argparse namespaces, metaseq enums and dataclasses), {@code optimizer_history}, {@code extra_state}
 * (meters, numpy scalars, tensors of other dtypes). None of it is needed to convert the weights, and none of
 * it is ever called: every global listed here becomes a {@link PickleValue.Opaque} that only keeps its name.
 *
 * <p>So why a list at all? Nothing runs either way, but a file naming {@code os.system},
 * {@code builtins.eval}, {@code subprocess.Popen} or {@code torch.load} was made to attack an unpickler, and
 * is refused rather than converted. The list holds the names a metaseq training checkpoint can contain:
 * containers and markers of the libraries that write them, and the constructors Python's pickler itself
 * emits for sets, bytes (protocol 2 writes {@code _codecs.encode}) and plain objects.
 */
final class MetaseqGlobals {
  private MetaseqGlobals() {}

  /** Whole packages: the configuration and enum classes of these libraries. */
  private static final Set<String> PACKAGES = Set.of("omegaconf", "metaseq", "fairseq");

  /** Single names, {@code module.name}. */
  private static final Set<String> NAMES = Set.of(
      "argparse.Namespace",
      "typing.Any", "typing.Union", "typing.Optional", "typing.List", "typing.Dict", "typing.Tuple",
      "collections.defaultdict", "collections.deque",
      "_codecs.encode", "copyreg._reconstructor", "copy_reg._reconstructor",
      "pathlib.Path", "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.WindowsPath",
      "numpy.dtype", "numpy.ndarray",
      "numpy.core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
      "numpy._core.multiarray.scalar", "numpy._core.multiarray._reconstruct",
      "torch.Size", "torch.device");

  /** Inert value types: the type objects of the builtins, as {@code builtins} (Python 3) or {@code __builtin__}. */
  private static final Set<String> BUILTINS = Set.of("object", "set", "frozenset", "slice", "complex", "int",
      "float", "str", "bool", "list", "dict", "tuple", "bytes", "bytearray", "range", "NoneType");

  /** Element types of tensors that live outside the model weights (step counters, RNG states). */
  private static final Set<String> TORCH_TYPES = Set.of("float16", "float32", "float64", "bfloat16", "int8",
      "int16", "int32", "int64", "uint8", "bool", "half", "float", "double", "long", "int");

  /** Whether a metaseq checkpoint may name {@code module.name}. */
  static boolean allows(String module, String name) {
    int dot = module.indexOf('.');
    String root = dot < 0 ? module : module.substring(0, dot);
    if (PACKAGES.contains(root)) {
      return true;
    }
    if (module.equals("builtins") || module.equals("__builtin__")) {
      return BUILTINS.contains(name);
    }
    if (module.equals("torch")) {
      // Storage classes of any dtype (a LongStorage holds a step counter, not weights) and dtype objects.
      return (name.endsWith("Storage") && name.matches("[A-Za-z0-9]+")) || TORCH_TYPES.contains(name);
    }
    return NAMES.contains(module + "." + name);
  }

  /** The refusal for a global outside both allow-lists: nothing was run. */
  static CheckpointException refusal(String module, String name) {
    String q = Untrusted.quote(module + "." + name);
    return new CheckpointException("the pickle references the Python global " + q.substring(1, q.length() - 1)
        + ", which is not allowed even for a metaseq checkpoint: a training checkpoint names only torch's "
        + "tensor globals and inert configuration classes (omegaconf.*, metaseq.*, fairseq.*, "
        + "argparse.Namespace, typing, builtin containers). The file was refused without running anything; "
        + "it is not a plain tensor checkpoint and may have been crafted to run code when loaded with Python");
  }
}
