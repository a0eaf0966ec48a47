package io.github.optjava.checkpoint;

import java.util.Arrays;

/**
 * A tensor as {@code torch._utils._rebuild_tensor_v2} describes it: a view of a storage. Only the argument
 * types are checked when the pickle is read; {@link #validate} checks the layout once the tensor's name is
 * known, so the error can name it.
 *
 * @param storage       the storage it views
 * @param storageOffset first element, in elements
 * @param shape         dimensions
 * @param stride        element strides per dimension
 */
record PytorchTensorRef(PytorchStorage storage, long storageOffset, long[] shape, long[] stride) {

  /** More dimensions than any real tensor has (PyTorch itself caps them at 64). */
  static final int MAX_DIMS = 64;

  /** Builds the reference from {@code _rebuild_tensor[_v2]} arguments, checking their types. */
  static PytorchTensorRef rebuild(PickleValue.Tuple args, PickleGlobal fn) {
    String what = fn.qualifiedName();
    if (!(args.get(0) instanceof PytorchStorage storage)) {
      throw new CheckpointException(what + ": the first argument is a " + PickleValue.describe(args.get(0))
          + ", not a storage: not a plain tensor checkpoint");
    }
    if (!(args.get(1) instanceof Long offset) || offset < 0) {
      throw new CheckpointException(what + ": storage_offset is " + describeInt(args.get(1))
          + ", not a non-negative int");
    }
    long[] shape = longs(args.get(2), "size", what);
    long[] stride = longs(args.get(3), "stride", what);
    if (shape.length != stride.length) {
      throw new CheckpointException(what + ": size has " + shape.length + " dimensions but stride has "
          + stride.length);
    }
    if (args.size() >= 6) {
      if (!(args.get(4) instanceof Boolean)) {
        throw new CheckpointException(what + ": requires_grad is " + PickleValue.describe(args.get(4))
            + ", not a bool");
      }
      // Hooks would be Python callables; torch.save of a state dict always writes an empty OrderedDict.
      if (!isEmptyDict(args.get(5))) {
        throw new CheckpointException(what + ": the tensor has backward hooks ("
            + PickleValue.describe(args.get(5)) + "): not a plain tensor checkpoint");
      }
    }
    // Metadata marks tensors whose values need extra interpretation (conjugate or negative bits).
    if (args.size() == 7 && args.get(6) != null && !isEmptyDict(args.get(6))) {
      throw new CheckpointException(what + ": the tensor carries metadata ("
          + PickleValue.describe(args.get(6)) + "), which is not supported");
    }
    return new PytorchTensorRef(storage, offset, shape, stride);
  }

  /** Whether {@code v} is a dict or OrderedDict with no items. */
  static boolean isEmptyDict(Object v) {
    return v instanceof PickleValue.Dict d && d.size() == 0;
  }

  /**
   * Checks that the tensor is row-major contiguous and lies within its storage, and that its bytes fit one
   * Java buffer; returns its description.
   */
  TensorInfo validate(String name) {
    try {
      long numel = 1;
      for (long d : shape) {
        numel = Math.multiplyExact(numel, d);
      }
      // Row-major contiguous, as torch's is_contiguous: dimensions of size 1 may have any stride.
      long expected = 1;
      for (int d = shape.length - 1; d >= 0 && numel != 0; d--) {
        if (shape[d] != 1 && stride[d] != expected) {
          throw new CheckpointException("tensor " + Untrusted.quote(name) + " has strides "
              + Arrays.toString(stride) + " for size " + Arrays.toString(shape) + ": not row-major contiguous, "
              + "which is not supported (save tensor.contiguous(), or convert the checkpoint to safetensors)");
        }
        expected = Math.multiplyExact(expected, shape[d]);
      }
      long end = Math.addExact(storageOffset, numel);
      if (end > storage.numel()) {
        throw new CheckpointException("tensor " + Untrusted.quote(name) + " covers elements " + storageOffset
            + " to " + end + " but its storage " + Untrusted.quote(storage.key()) + " holds only "
            + storage.numel() + " elements");
      }
      long bytes = Math.multiplyExact(numel, storage.dtype().bytes());
      if (bytes > Integer.MAX_VALUE) {
        throw new CheckpointException("tensor " + Untrusted.quote(name) + " has " + bytes
            + " bytes: more than one Java buffer can address (2 GiB)");
      }
      return new TensorInfo(name, storage.dtype(), shape);
    } catch (ArithmeticException e) {
      throw new CheckpointException("tensor " + Untrusted.quote(name) + ": size " + Arrays.toString(shape)
          + " or storage offset " + storageOffset + " overflows 64-bit arithmetic", e);
    }
  }

  /** Byte offset of the first element within the storage. */
  long byteOffset() {
    return storageOffset * storage.dtype().bytes();
  }

  private static long[] longs(Object v, String what, String fn) {
    if (!(v instanceof PickleValue.Tuple t) || t.size() > MAX_DIMS) {
      throw new CheckpointException(fn + ": " + what + " is " + PickleValue.describe(v) + ", not a tuple of at most "
          + MAX_DIMS + " ints");
    }
    long[] out = new long[t.size()];
    for (int i = 0; i < out.length; i++) {
      if (!(t.get(i) instanceof Long x) || x < 0) {
        throw new CheckpointException(fn + ": " + what + " holds " + describeInt(t.get(i))
            + ", not a non-negative int");
      }
      out[i] = x;
    }
    return out;
  }

  /**
   * An int with its value ("int -1"), anything else by its type: PickleValue.describe names only the type, so a
   * negative stride read "holds int, not a non-negative int".
   */
  private static String describeInt(Object v) {
    return v instanceof Long x ? "int " + x : PickleValue.describe(v);
  }
}
