package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.zip.CRC32;

/**
 * A PyTorch {@code pytorch_model.bin} (the zip format torch.save has written since torch 1.6), read without
 * running Python code and without copying tensor data.
 *
 * <p>Opening parses and checks everything but the tensor bytes: the zip directory and local headers, the
 * {@code version} and {@code byteorder} records, the whole {@code data.pkl} pickle through a restricted
 * interpreter ({@link PickleReader}: only the globals that rebuild tensors are accepted, anything else such
 * as {@code os.system} is refused before data is used), every storage's entry and size, and every tensor's
 * layout (row-major contiguous and inside its storage). Tensors are read-only slices of memory-mapped storage
 * entries; tensors sharing a storage (tied weights) are views of the same mapping. The legacy pre-1.6 format,
 * compressed archives, big-endian files and pickles holding anything but a dict of name → tensor are refused
 * with a message saying what to do. Sharded checkpoints are handled a level above, one file per instance.
 *
 * <p>Thread-safe: tensors may be fetched from several threads.
 */
public final class PytorchCheckpoint implements Checkpoint {

  /** data.pkl sizes above this are refused; a state dict needs about 150 bytes per tensor. */
  static final int MAX_PICKLE_BYTES = 32 << 20;
  /** Chunk size for checksumming storages too large for one mapping. */
  private static final int CRC_CHUNK = 1 << 30;

  private final Path file;
  private final FileChannel channel;
  private final Map<String, PytorchTensorRef> refs;
  private final List<TensorInfo> infos;
  private final Map<String, TensorInfo> infoByName;
  private final Map<PytorchStorage, ByteBuffer> mapped = new ConcurrentHashMap<>();
  private volatile boolean closed;

  private PytorchCheckpoint(Path file, FileChannel channel, Map<String, PytorchTensorRef> refs,
      Map<String, TensorInfo> infoByName) {
    this.file = file;
    this.channel = channel;
    this.refs = refs;
    this.infoByName = infoByName;
    this.infos = Collections.unmodifiableList(new ArrayList<>(infoByName.values()));
  }

  /**
   * Opens and fully validates one {@code .bin} file (tensor bytes are only mapped, not read).
   *
   * @throws CheckpointException naming the file and what is wrong with it
   */
  public static Checkpoint open(Path file) {
    return open(file, PickleReader.Mode.STATE_DICT, PytorchCheckpoint::rootIsStateDict);
  }

  /**
   * Opens a file whose state dict sits somewhere inside the pickled object (a metaseq checkpoint's
   * {@code "model"} entry): {@code stateDictOf} picks it out of the root, or throws a CheckpointException
   * saying why it cannot. Everything else in the pickle is interpreted under {@code mode} and then dropped.
   */
  static PytorchCheckpoint open(Path file, PickleReader.Mode mode, Function<Object, PickleValue.Dict> stateDictOf) {
    FileChannel ch;
    try {
      ch = FileChannel.open(file, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": no such file", e);
    } catch (IOException e) {
      throw new CheckpointException(file + ": cannot open: " + e.getMessage(), e);
    }
    try {
      return read(file, ch, mode, stateDictOf);
    } catch (CheckpointException e) {
      closeQuietly(ch);
      throw new CheckpointException(file + ": " + e.getMessage(), e);
    } catch (IOException e) {
      closeQuietly(ch);
      throw new CheckpointException(file + ": I/O error while reading: " + e.getMessage(), e);
    } catch (RuntimeException | Error e) {
      closeQuietly(ch);
      throw e;
    }
  }

  private static PickleValue.Dict rootIsStateDict(Object root) {
    if (!(root instanceof PickleValue.Dict dict)) {
      throw new CheckpointException("the pickle holds a " + PickleValue.describe(root) + ", not a dict of "
          + "tensors: not a state dict (torch.save(model.state_dict()) writes one)");
    }
    return dict;
  }

  private static PytorchCheckpoint read(Path file, FileChannel ch, PickleReader.Mode mode,
      Function<Object, PickleValue.Dict> stateDictOf) throws IOException {
    PytorchFormat.checkIsZip(ch);
    ZipDirectory zip = ZipDirectory.read(ch);
    String top = PytorchFormat.topFolder(zip);
    PytorchFormat.checkRecords(ch, zip, top);
    byte[] pickle = PytorchFormat.readRecord(ch, zip.get(top + "data.pkl"), MAX_PICKLE_BYTES);
    Object root = PickleReader.read(pickle, new PytorchStorageResolver(zip, top + "data/"), mode);
    PickleValue.Dict dict = stateDictOf.apply(root);
    Map<String, PytorchTensorRef> refs = new TreeMap<>();
    Map<String, TensorInfo> infos = new TreeMap<>();
    for (Map.Entry<Object, Object> e : dict.items().entrySet()) {
      if (!(e.getKey() instanceof String name)) {
        throw new CheckpointException("the state dict has a key of type " + PickleValue.describe(e.getKey())
            + "; tensor names are strings");
      }
      if (!(e.getValue() instanceof PytorchTensorRef ref)) {
        throw new CheckpointException("state dict entry " + Untrusted.quote(name) + " is a "
            + PickleValue.describe(e.getValue()) + ", not a tensor: this is not a plain state dict (a training "
            + "checkpoint?); save the model's state_dict() alone, or convert it to safetensors");
      }
      infos.put(name, ref.validate(name));
      refs.put(name, ref);
    }
    return new PytorchCheckpoint(file, ch, refs, infos);
  }

  @Override
  public String format() {
    return "pytorch";
  }

  @Override
  public Collection<TensorInfo> tensors() {
    return infos;
  }

  @Override
  public boolean contains(String name) {
    return refs.containsKey(name);
  }

  @Override
  public Tensor tensor(String name) {
    PytorchTensorRef ref = refs.get(name);
    if (ref == null) {
      throw new CheckpointException(file + ": no tensor named " + Untrusted.quote(name));
    }
    TensorInfo info = infoByName.get(name);
    int bytes = (int) info.byteSize(); // validate() checked it fits an int
    PytorchStorage s = ref.storage();
    if (s.entry().size() <= Integer.MAX_VALUE) {
      return new Tensor(info, storageBuffer(s).slice((int) ref.byteOffset(), bytes));
    }
    // A storage above 2 GiB cannot be one buffer: map just this tensor's span.
    return new Tensor(info, map(s.entry().dataOffset() + ref.byteOffset(), bytes));
  }

  /**
   * Reads every storage the tensors use once and checks it against the CRC-32 recorded in the zip directory
   * (when the writer recorded one), catching truncation, I/O errors and corruption now rather than during use.
   */
  @Override
  public void validateData() {
    Set<PytorchStorage> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    for (PytorchTensorRef ref : refs.values()) {
      PytorchStorage s = ref.storage();
      if (!seen.add(s)) {
        continue;
      }
      CRC32 crc = new CRC32();
      ZipEntryRef e = s.entry();
      try {
        if (e.size() <= Integer.MAX_VALUE) {
          crc.update(storageBuffer(s).duplicate());
        } else {
          for (long done = 0; done < e.size(); done += CRC_CHUNK) {
            crc.update(map(e.dataOffset() + done, (int) Math.min(CRC_CHUNK, e.size() - done)));
          }
        }
      } catch (InternalError err) {
        // What the JVM throws when a mapped page cannot be read (the file shrank, or an I/O error).
        throw new CheckpointException(file + ": cannot read storage " + Untrusted.quote(e.name()) + " ("
            + err.getMessage() + "); was the file truncated or changed while open?", err);
      }
      if (e.crc32() != 0 && (int) crc.getValue() != e.crc32()) {
        throw new CheckpointException(String.format("%s: storage %s is corrupt: its CRC-32 is %08x but the zip "
            + "directory records %08x; download the file again", file, Untrusted.quote(e.name()), crc.getValue(),
            e.crc32()));
      }
    }
  }

  /** Releases the file; tensors obtained earlier must not be used afterwards. Idempotent. */
  @Override
  public void close() {
    closed = true;
    mapped.clear();
    closeQuietly(channel);
  }

  @Override
  public String toString() {
    return "PytorchCheckpoint[" + file + ", " + infos.size() + " tensors]";
  }

  /** The storage a tensor views (tests check that tied weights share one). */
  PytorchStorage storageOf(String name) {
    PytorchTensorRef ref = refs.get(name);
    return ref == null ? null : ref.storage();
  }

  /** Whether two tensors are views of the same bytes (tied weights: same storage, offset and shape). */
  boolean sameView(String a, String b) {
    PytorchTensorRef x = refs.get(a);
    PytorchTensorRef y = refs.get(b);
    return x != null && y != null && x.storage() == y.storage() && x.storageOffset() == y.storageOffset()
        && Arrays.equals(x.shape(), y.shape());
  }

  /** How many storages are mapped so far. */
  int mappedStorageCount() {
    return mapped.size();
  }

  /** The whole storage entry, mapped once and shared by every tensor on it. */
  private ByteBuffer storageBuffer(PytorchStorage s) {
    return mapped.computeIfAbsent(s, k -> map(k.entry().dataOffset(), (int) k.entry().size()));
  }

  private ByteBuffer map(long offset, int size) {
    if (closed) {
      throw new CheckpointException(file + ": the checkpoint is closed");
    }
    try {
      return channel.map(FileChannel.MapMode.READ_ONLY, offset, size);
    } catch (IOException e) {
      throw new CheckpointException(file + ": cannot map " + size + " bytes at offset " + offset + ": "
          + e.getMessage(), e);
    }
  }

  private static void closeQuietly(FileChannel ch) {
    try {
      ch.close();
    } catch (IOException ignored) {
      // Read-only: nothing is lost when close fails.
    }
  }
}
