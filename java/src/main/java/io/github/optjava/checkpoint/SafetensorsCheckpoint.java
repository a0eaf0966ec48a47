package io.github.optjava.checkpoint;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped {@code .safetensors} file: an 8-byte little-endian header length N, N bytes of UTF-8
 * JSON describing every tensor, then the raw data.
 *
 * <p>{@link #open} reads and validates the whole header before any data is used (see
 * {@link SafetensorsHeader}), then maps the data section read-only in windows of at most 2 GiB, each
 * holding whole tensors, so a tensor is always one contiguous {@link ByteBuffer}. A single tensor over
 * 2 GiB cannot be a Java buffer and is rejected when the file is opened. Nothing is copied: the operating
 * system pages data in when a tensor is first read.
 *
 * <p>Instances are immutable and safe to share between threads until {@link #close()}.
 */
public final class SafetensorsCheckpoint implements Checkpoint {

  /** FileChannel.map and ByteBuffer indexing are limited to int sizes. */
  static final long MAX_WINDOW_BYTES = Integer.MAX_VALUE;

  private final Path file;
  private final Map<String, String> metadata;
  private final List<TensorInfo> tensors;
  private final Map<String, TensorInfo> infos;
  private final Map<String, ByteBuffer> data;
  private volatile boolean closed;

  private SafetensorsCheckpoint(Path file, SafetensorsHeader header, Map<String, ByteBuffer> data) {
    this.file = file;
    this.metadata = header.metadata();
    this.data = data;
    this.infos = new HashMap<>();
    List<TensorInfo> list = new ArrayList<>();
    for (SafetensorsHeader.Entry e : header.entries()) {
      infos.put(e.info().name(), e.info());
      list.add(e.info());
    }
    list.sort(Comparator.comparing(TensorInfo::name));
    this.tensors = List.copyOf(list);
  }

  /**
   * Opens a safetensors file, validating its header.
   *
   * @throws CheckpointException naming the file (and tensor) if the file is missing, unreadable, truncated
   *     or malformed, or holds a dtype other than F16, BF16 or F32
   */
  public static SafetensorsCheckpoint open(Path file) {
    return open(file, MAX_WINDOW_BYTES);
  }

  /** {@link #open(Path)} with a smaller mapping window, so tests can exercise several windows. */
  static SafetensorsCheckpoint open(Path file, long maxWindowBytes) {
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = channel.size();
      if (size < 8) {
        throw new CheckpointException(file + ": " + size
            + " bytes, too short for a safetensors file (8-byte header length first): truncated or not safetensors");
      }
      long headerLength = readFully(channel, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
      checkHeaderLength(file, headerLength, size);
      byte[] json = new byte[(int) headerLength];
      readFully(channel, 8, json.length).get(json);
      long dataStart = 8 + headerLength;
      SafetensorsHeader header = SafetensorsHeader.parse(file.toString(), json, size - dataStart);
      // Mappings stay valid after the channel is closed, so no file handle is held while the model runs.
      return new SafetensorsCheckpoint(file, header, map(file, channel, dataStart, header.entries(), maxWindowBytes));
    } catch (NoSuchFileException e) {
      throw new CheckpointException(file + ": file does not exist", e);
    } catch (IOException e) {
      throw new CheckpointException(file + ": cannot read: " + e, e);
    }
  }

  private static void checkHeaderLength(Path file, long n, long size) {
    // n is an unsigned 64-bit value: as a Java long, huge values show up as negative.
    String shown = Long.toUnsignedString(n);
    if (n == 0) {
      throw new CheckpointException(file + ": header length is 0: not a safetensors file");
    }
    if (n < 0 || n > size - 8) {
      throw new CheckpointException(file + ": header length " + shown + " (first 8 bytes) reaches past the end of the "
          + size + "-byte file: the file is truncated or not a safetensors file");
    }
    if (n > SafetensorsHeader.MAX_HEADER_BYTES) {
      throw new CheckpointException(file + ": header length " + shown + " exceeds the "
          + SafetensorsHeader.MAX_HEADER_BYTES + "-byte limit: not a safetensors file, or a corrupted one");
    }
  }

  private static ByteBuffer readFully(FileChannel channel, long position, int length) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(length);
    while (buf.hasRemaining()) {
      if (channel.read(buf, position + buf.position()) < 0) {
        throw new EOFException("file ended while reading its header");
      }
    }
    return buf.flip();
  }

  /**
   * Maps the data section in windows of whole tensors. Entries come sorted by offset and do not overlap,
   * so a window grows greedily until the next tensor would push it past the limit.
   */
  private static Map<String, ByteBuffer> map(Path file, FileChannel channel, long dataStart,
      List<SafetensorsHeader.Entry> entries, long maxWindowBytes) throws IOException {
    Map<String, ByteBuffer> out = new HashMap<>();
    List<SafetensorsHeader.Entry> window = new ArrayList<>();
    for (SafetensorsHeader.Entry e : entries) {
      if (e.length() == 0) {
        out.put(e.info().name(), ByteBuffer.allocate(0));
        continue;
      }
      if (e.length() > maxWindowBytes) {
        throw new CheckpointException(file + ": tensor " + Untrusted.quote(e.info().name()) + " is " + e.length()
            + " bytes; tensors over " + maxWindowBytes + " bytes cannot be mapped as one Java buffer");
      }
      if (!window.isEmpty() && e.end() - window.get(0).begin() > maxWindowBytes) {
        mapWindow(channel, dataStart, window, out);
        window.clear();
      }
      window.add(e);
    }
    if (!window.isEmpty()) {
      mapWindow(channel, dataStart, window, out);
    }
    return out;
  }

  private static void mapWindow(FileChannel channel, long dataStart, List<SafetensorsHeader.Entry> window,
      Map<String, ByteBuffer> out) throws IOException {
    long begin = window.get(0).begin();
    long end = window.get(window.size() - 1).end();
    MappedByteBuffer mapped = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + begin, end - begin);
    for (SafetensorsHeader.Entry e : window) {
      out.put(e.info().name(), mapped.slice((int) (e.begin() - begin), (int) e.length()));
    }
  }

  /** The file this checkpoint was opened from. */
  public Path file() {
    return file;
  }

  /** The header's {@code __metadata__} entries (for example {@code format=pt}); empty if none. */
  public Map<String, String> metadata() {
    return metadata;
  }

  @Override
  public String format() {
    return "safetensors";
  }

  @Override
  public Collection<TensorInfo> tensors() {
    return tensors;
  }

  @Override
  public boolean contains(String name) {
    return infos.containsKey(name);
  }

  @Override
  public Tensor tensor(String name) {
    if (closed) {
      throw new IllegalStateException(file + " is closed");
    }
    TensorInfo info = infos.get(name);
    if (info == null) {
      throw new CheckpointException(file + ": no tensor named " + Untrusted.quote(name));
    }
    return new Tensor(info, data.get(name));
  }

  /**
   * Marks the checkpoint closed: {@link #tensor} refuses from now on. The file handle was already
   * released at open; the mappings are freed by the garbage collector once neither this object nor any
   * tensor refers to them (Java 17 has no safe explicit unmap, and unmapping under a live buffer would
   * crash the JVM).
   */
  @Override
  public void close() {
    closed = true;
  }

  @Override
  public String toString() {
    return "safetensors " + file + " (" + tensors.size() + " tensors)";
  }
}
