package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The entries of a zip archive that holds only stored (uncompressed) entries, as torch.save writes, with the
 * absolute file offset of each entry's data.
 *
 * <p>Hand-written because memory-mapping tensor storages in place needs those offsets, which
 * {@link java.util.zip.ZipFile} does not expose. Everything is validated before an offset is trusted: the end
 * records, every central directory record, and each entry's local header (signature, name, method, and sizes
 * where the writer put them there), that every entry's data lies before the central directory, and that no
 * two entries overlap. Supports zip64 (multi-GB shards). Compressed, encrypted, multi-volume archives and
 * duplicate names are rejected.
 */
final class ZipDirectory {

  /** Central directories above this are refused (a checkpoint with 100k tensors needs about 10 MiB). */
  static final long MAX_CENTRAL_DIRECTORY_BYTES = 64L << 20;

  private static final int CEN_SIG = 0x02014b50;
  private static final int LOC_SIG = 0x04034b50;
  private static final int CEN_SIZE = 46;
  private static final int LOC_SIZE = 30;
  private static final int ZIP64_EXTRA_ID = 0x0001;
  private static final long U32_MAX = 0xffffffffL;
  private static final int U16_MAX = 0xffff;
  private static final int FLAG_ENCRYPTED = 0x0001;
  private static final int FLAG_DATA_DESCRIPTOR = 0x0008;
  private static final int FLAG_STRONG_ENCRYPTION = 0x0040;

  private final Map<String, ZipEntryRef> entries;

  private ZipDirectory(Map<String, ZipEntryRef> entries) {
    this.entries = entries;
  }

  /** The entry of that exact name, or null. */
  ZipEntryRef get(String name) {
    return entries.get(name);
  }

  /** Every entry, in central directory order. */
  Collection<ZipEntryRef> entries() {
    return Collections.unmodifiableCollection(entries.values());
  }

  /** Reads and validates the directory of a zip file. */
  static ZipDirectory read(FileChannel ch) throws IOException {
    ZipEndRecord end = ZipEndRecord.locate(ch, ch.size());
    if (end.cdSize() > MAX_CENTRAL_DIRECTORY_BYTES) {
      throw new CheckpointException("zip central directory of " + end.cdSize() + " bytes is larger than the "
          + MAX_CENTRAL_DIRECTORY_BYTES + " bytes accepted: not a checkpoint archive");
    }
    if (end.entryCount() > end.cdSize() / CEN_SIZE) {
      throw new CheckpointException("corrupt zip archive: " + end.entryCount() + " entries cannot fit in a "
          + end.cdSize() + "-byte central directory");
    }
    ByteBuffer cd = readAt(ch, end.cdOffset(), (int) end.cdSize());
    List<Central> centrals = new ArrayList<>((int) end.entryCount());
    int p = 0;
    for (long i = 0; i < end.entryCount(); i++) {
      Central c = parseCentral(cd, p);
      centrals.add(c);
      p = c.next;
    }
    if (p != cd.capacity()) {
      throw new CheckpointException("corrupt zip archive: the central directory has " + (cd.capacity() - p)
          + " bytes beyond its " + end.entryCount() + " entries");
    }
    Map<String, ZipEntryRef> byName = new LinkedHashMap<>();
    for (Central c : centrals) {
      ZipEntryRef ref = checkLocal(ch, c, end.cdOffset());
      if (byName.put(ref.name(), ref) != null) {
        throw new CheckpointException("zip archive has two entries named " + Untrusted.quote(ref.name())
            + ": ambiguous, refusing it");
      }
    }
    checkNoOverlap(centrals, byName);
    return new ZipDirectory(byName);
  }

  /** Reads exactly {@code len} bytes at {@code pos} as a little-endian buffer; end of file is an error. */
  static ByteBuffer readAt(FileChannel ch, long pos, int len) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(len).order(ByteOrder.LITTLE_ENDIAN);
    while (b.hasRemaining()) {
      int n = ch.read(b, pos + b.position());
      if (n < 0) {
        throw new CheckpointException("truncated file: needed " + len + " bytes at offset " + pos + " but the file has "
            + ch.size() + " bytes (download it again)");
      }
    }
    return b.flip();
  }

  /** One central directory record, sizes resolved through its zip64 extra field. */
  private record Central(String name, byte[] rawName, int method, int crc, long size, long localOffset, int next) {}

  private static Central parseCentral(ByteBuffer cd, int p) {
    if (cd.capacity() - p < CEN_SIZE || cd.getInt(p) != CEN_SIG) {
      throw new CheckpointException("corrupt zip archive: bad central directory record at directory offset " + p);
    }
    int flags = u16(cd, p + 8);
    int method = u16(cd, p + 10);
    int crc = cd.getInt(p + 16);
    long compressed = cd.getInt(p + 20) & U32_MAX;
    long size = cd.getInt(p + 24) & U32_MAX;
    int nameLen = u16(cd, p + 28);
    int extraLen = u16(cd, p + 30);
    int commentLen = u16(cd, p + 32);
    int disk = u16(cd, p + 34);
    long localOffset = cd.getInt(p + 42) & U32_MAX;
    int next = p + CEN_SIZE + nameLen + extraLen + commentLen;
    if (next > cd.capacity()) {
      throw new CheckpointException("corrupt zip archive: central directory record at directory offset " + p
          + " runs past the directory");
    }
    byte[] rawName = new byte[nameLen];
    cd.get(p + CEN_SIZE, rawName);
    String name = decodeName(rawName);
    if (compressed == U32_MAX || size == U32_MAX || localOffset == U32_MAX || disk == U16_MAX) {
      long[] z = zip64Fields(cd, p + CEN_SIZE + nameLen, extraLen, size == U32_MAX, compressed == U32_MAX,
          localOffset == U32_MAX, disk == U16_MAX, name);
      size = size == U32_MAX ? z[0] : size;
      compressed = compressed == U32_MAX ? z[1] : compressed;
      localOffset = localOffset == U32_MAX ? z[2] : localOffset;
      disk = disk == U16_MAX ? (int) z[3] : disk;
    }
    if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) != 0) {
      throw new CheckpointException("zip entry " + Untrusted.quote(name) + " is encrypted: not a torch.save archive");
    }
    if (method != 0) {
      throw new CheckpointException("zip entry " + Untrusted.quote(name) + " is compressed (method " + method
          + (method == 8 ? ", deflate" : "") + "); torch.save writes uncompressed (stored) entries, which can be "
          + "memory-mapped. Re-save the checkpoint with torch.save, or convert it to safetensors");
    }
    if (disk != 0) {
      throw new CheckpointException("multi-volume (split) zip archives are not supported");
    }
    if (compressed != size || size < 0 || localOffset < 0) {
      throw new CheckpointException("corrupt zip archive: entry " + Untrusted.quote(name) + " has inconsistent sizes ("
          + compressed + " stored, " + size + " uncompressed) or offset " + localOffset);
    }
    return new Central(name, rawName, method, crc, size, localOffset, next);
  }

  /**
   * The zip64 extended information field: only the values whose 32-bit field is saturated are present, in
   * the order size, compressed size, local header offset, disk. Returns them in that order.
   */
  private static long[] zip64Fields(ByteBuffer b, int start, int len, boolean size, boolean compressed,
      boolean offset, boolean disk, String name) {
    int end = start + len;
    for (int q = start; q + 4 <= end; ) {
      int id = u16(b, q);
      int dataLen = u16(b, q + 2);
      int dataStart = q + 4;
      if (dataStart + dataLen > end) {
        break;
      }
      if (id == ZIP64_EXTRA_ID) {
        long[] out = new long[4];
        int r = dataStart;
        int need = (size ? 8 : 0) + (compressed ? 8 : 0) + (offset ? 8 : 0) + (disk ? 4 : 0);
        if (need > dataLen) {
          break;
        }
        if (size) {
          out[0] = b.getLong(r);
          r += 8;
        }
        if (compressed) {
          out[1] = b.getLong(r);
          r += 8;
        }
        if (offset) {
          out[2] = b.getLong(r);
          r += 8;
        }
        if (disk) {
          out[3] = b.getInt(r) & U32_MAX;
        }
        return out;
      }
      q = dataStart + dataLen;
    }
    throw new CheckpointException("corrupt zip64 archive: entry " + Untrusted.quote(name)
        + " lacks the zip64 extra field its saturated sizes or offset need");
  }

  /** Checks an entry's local header against its central record; returns the entry with its data offset. */
  private static ZipEntryRef checkLocal(FileChannel ch, Central c, long cdOffset) throws IOException {
    if (c.localOffset > cdOffset - LOC_SIZE) {
      throw new CheckpointException("corrupt zip archive: local header of " + Untrusted.quote(c.name) + " at "
          + c.localOffset + " is not before the central directory");
    }
    ByteBuffer h = readAt(ch, c.localOffset, LOC_SIZE);
    int nameLen = u16(h, 26);
    int extraLen = u16(h, 28);
    ByteBuffer nameExtra = readAt(ch, c.localOffset + LOC_SIZE, nameLen + extraLen);
    byte[] localName = new byte[nameLen];
    nameExtra.get(0, localName);
    int flags = u16(h, 6);
    if (h.getInt(0) != LOC_SIG || !Arrays.equals(localName, c.rawName) || u16(h, 8) != c.method
        || (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) != 0) {
      throw new CheckpointException("corrupt zip archive: the local header at " + c.localOffset + " does not match"
          + " the central directory entry " + Untrusted.quote(c.name));
    }
    // With a data descriptor (torch.save sets that flag) the local CRC and sizes are zero placeholders and the
    // central directory is authoritative; otherwise they must agree.
    if ((flags & FLAG_DATA_DESCRIPTOR) == 0) {
      long compressed = h.getInt(18) & U32_MAX;
      long size = h.getInt(22) & U32_MAX;
      if (compressed == U32_MAX || size == U32_MAX) {
        // The local zip64 field always carries both sizes, size first.
        long[] z = zip64Fields(nameExtra, nameLen, extraLen, true, true, false, false, c.name);
        size = z[0];
        compressed = z[1];
      }
      if (h.getInt(14) != c.crc || size != c.size || compressed != c.size) {
        throw new CheckpointException("corrupt zip archive: the local header of " + Untrusted.quote(c.name)
            + " disagrees with the central directory on its size or CRC");
      }
    }
    long dataOffset = c.localOffset + LOC_SIZE + nameLen + extraLen;
    if (dataOffset > cdOffset || c.size > cdOffset - dataOffset) {
      throw new CheckpointException("corrupt zip archive: the data of " + Untrusted.quote(c.name) + " (" + c.size
          + " bytes at " + dataOffset + ") runs into the central directory at " + cdOffset);
    }
    return new ZipEntryRef(c.name, dataOffset, c.size, c.crc);
  }

  /** Overlapping entries are a crafted-archive trick; a plain writer never produces them. */
  private static void checkNoOverlap(List<Central> centrals, Map<String, ZipEntryRef> byName) {
    List<Central> sorted = new ArrayList<>(centrals);
    sorted.sort(Comparator.comparingLong(Central::localOffset));
    for (int i = 1; i < sorted.size(); i++) {
      ZipEntryRef prev = byName.get(sorted.get(i - 1).name);
      Central next = sorted.get(i);
      if (prev.dataEnd() > next.localOffset) {
        throw new CheckpointException("corrupt zip archive: entries " + Untrusted.quote(prev.name()) + " and "
            + Untrusted.quote(next.name) + " overlap");
      }
    }
  }

  private static String decodeName(byte[] raw) {
    try {
      CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(raw));
      return chars.toString();
    } catch (CharacterCodingException e) {
      throw new CheckpointException("corrupt zip archive: an entry name is not valid UTF-8", e);
    }
  }

  private static int u16(ByteBuffer b, int pos) {
    return b.getShort(pos) & 0xffff;
  }
}
