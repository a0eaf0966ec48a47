package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes one safetensors file tensor by tensor, so no tensor (let alone the file) has to be in memory: the
 * header is computed up front from the tensors' descriptions, then each tensor's bytes are streamed in header
 * order through {@link #write} (values converted to the tensor's dtype on the way, in small chunks) and
 * closed with {@link #endTensor}, which checks that exactly the right number of bytes arrived.
 *
 * <p>Layout as safetensors specifies: 8-byte little-endian header length, the JSON header (with
 * {@code __metadata__ {"format": "pt"}}, space-padded to a multiple of 8 so data stays aligned), then the data
 * in header order without gaps.
 */
final class SafetensorsWriter implements AutoCloseable {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int CHUNK = 1 << 22;

  private final Path file;
  private final List<TensorInfo> tensors;
  private final OutputStream out;
  private final ByteBuffer chunk = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
  private int current;
  private long writtenInTensor;
  private boolean finished;

  private SafetensorsWriter(Path file, List<TensorInfo> tensors, OutputStream out) {
    this.file = file;
    this.tensors = List.copyOf(tensors);
    this.out = out;
  }

  /** Creates (or replaces) {@code file} and writes its header; tensor data follows in the given order. */
  static SafetensorsWriter create(Path file, List<TensorInfo> tensors) throws IOException {
    byte[] header = header(tensors);
    OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16);
    try {
      ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
      out.write(len.array());
      out.write(header);
    } catch (IOException | RuntimeException e) {
      out.close();
      throw e;
    }
    return new SafetensorsWriter(file, tensors, out);
  }

  /** Bytes the file will have: header plus data. */
  static long fileSize(List<TensorInfo> tensors) {
    long data = 0;
    for (TensorInfo t : tensors) {
      data += t.byteSize();
    }
    return 8 + header(tensors).length + data;
  }

  /**
   * Appends values of the current tensor: {@code src} (position to limit, little-endian) holds elements of
   * {@code from}, converted to the tensor's dtype. {@code src}'s position is not changed.
   */
  void write(ByteBuffer src, DType from) throws IOException {
    TensorInfo t = currentTensor();
    DType to = t.dtype();
    long elements = src.remaining() / from.bytes();
    if (src.remaining() % from.bytes() != 0
        || writtenInTensor + elements * to.bytes() > t.byteSize()) {
      throw new IllegalStateException(file + ": " + src.remaining() + " more bytes of " + from + " overflow "
          + t + " (" + writtenInTensor + " of " + t.byteSize() + " bytes written)");
    }
    ByteBuffer in = src.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    if (from == to) {
      // Same dtype: the bytes unchanged (no float round trip, so NaN payloads survive), in bulk.
      while (in.hasRemaining()) {
        if (!chunk.hasRemaining()) {
          flushChunk();
        }
        int n = Math.min(in.remaining(), chunk.remaining());
        chunk.put(in.slice(in.position(), n));
        in.position(in.position() + n);
      }
    } else {
      int base = in.position();
      for (long i = 0; i < elements; i++) {
        if (chunk.remaining() < to.bytes()) {
          flushChunk();
        }
        put(read(in, (int) (base + i * from.bytes()), from), to);
      }
    }
    writtenInTensor += elements * to.bytes();
  }

  /** Ends the current tensor, checking that all its bytes were written. */
  void endTensor(String name) throws IOException {
    TensorInfo t = currentTensor();
    if (!t.name().equals(name) || writtenInTensor != t.byteSize()) {
      throw new IllegalStateException(file + ": ending " + name + " after " + writtenInTensor + " bytes, but "
          + "the header expects " + t + " with " + t.byteSize() + " bytes next");
    }
    current++;
    writtenInTensor = 0;
  }

  /** Flushes and closes the file; an error if a tensor was not written completely. */
  @Override
  public void close() throws IOException {
    if (finished) {
      return;
    }
    finished = true;
    try (OutputStream o = out) {
      flushChunk();
      if (current != tensors.size()) {
        throw new IllegalStateException(file + ": closed after " + current + " of " + tensors.size() + " tensors");
      }
    }
  }

  private TensorInfo currentTensor() {
    if (current >= tensors.size()) {
      throw new IllegalStateException(file + ": all " + tensors.size() + " tensors are already written");
    }
    return tensors.get(current);
  }

  private void flushChunk() throws IOException {
    out.write(chunk.array(), 0, chunk.position());
    chunk.clear();
  }

  private static float read(ByteBuffer in, int at, DType dtype) {
    return switch (dtype) {
      case F32 -> in.getFloat(at);
      case F16 -> Half.toFloat(in.getShort(at));
      case BF16 -> Float.intBitsToFloat((in.getShort(at) & 0xffff) << 16);
    };
  }

  private void put(float v, DType dtype) {
    switch (dtype) {
      case F32 -> chunk.putFloat(v);
      case F16 -> chunk.putShort(Half.fromFloat(v));
      case BF16 -> chunk.putShort(Half.bfloat16FromFloat(v));
    }
  }

  private static byte[] header(List<TensorInfo> tensors) {
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("__metadata__", Map.of("format", "pt"));
    long offset = 0;
    for (TensorInfo t : tensors) {
      Map<String, Object> entry = new LinkedHashMap<>();
      entry.put("dtype", t.dtype().name());
      entry.put("shape", t.shape());
      entry.put("data_offsets", new long[] {offset, offset + t.byteSize()});
      offset += t.byteSize();
      if (header.put(t.name(), entry) != null) {
        throw new IllegalArgumentException("tensor " + t.name() + " is listed twice");
      }
    }
    try {
      StringBuilder json = new StringBuilder(JSON.writeValueAsString(header));
      int len = json.toString().getBytes(StandardCharsets.UTF_8).length;
      json.append(" ".repeat((8 - len % 8) % 8));
      return json.toString().getBytes(StandardCharsets.UTF_8);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
