package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * The torch.save zip layout around the pickle: what the file starts with, the archive's top folder, and the
 * small {@code version} and {@code byteorder} records.
 */
final class PytorchFormat {
  private PytorchFormat() {}

  private static final int MAX_SMALL_RECORD = 64;

  private static final String RESAVE = "re-save it with a recent torch (torch.save(model.state_dict(), path)) "
      + "or convert it to safetensors";

  /** Refuses files that are not zip archives, naming the legacy torch format and safetensors when seen. */
  static void checkIsZip(FileChannel ch) throws IOException {
    long size = ch.size();
    if (size == 0) {
      throw new CheckpointException("the file is empty");
    }
    ByteBuffer head = ZipDirectory.readAt(ch, 0, (int) Math.min(size, 512));
    int b0 = head.get(0) & 0xff;
    if (head.limit() >= 4 && head.getInt(0) == 0x04034b50) {
      return;
    }
    if (b0 == PickleOpcode.PROTO.code()) {
      throw new CheckpointException("the file is in the legacy (pre-1.6) torch.save format, a bare pickle "
          + "stream, which is not supported: " + RESAVE);
    }
    if (head.limit() >= 262 && "ustar".equals(new String(bytes(head, 257, 5), StandardCharsets.US_ASCII))) {
      throw new CheckpointException("the file is in the legacy tar-based torch.save format, which is not "
          + "supported: " + RESAVE);
    }
    if (head.limit() >= 9 && head.get(8) == '{') {
      throw new CheckpointException("the file is not a zip archive (torch.save's format); it looks like a "
          + "safetensors file: open it as one");
    }
    if (head.limit() >= 4 && head.getInt(0) == 0x06054b50) {
      throw new CheckpointException("the zip archive is empty: not a torch.save checkpoint");
    }
    throw new CheckpointException("the file is not a zip archive, so not a PyTorch checkpoint written by "
        + "torch.save 1.6 or later");
  }

  /**
   * The top folder, with its trailing slash: the one holding {@code data.pkl}. torch.save names it after the
   * file ({@code archive/} when saving to a stream, {@code pytorch_model/} in older HF files), so it is found,
   * not assumed.
   */
  static String topFolder(ZipDirectory zip) {
    List<String> tops = new ArrayList<>();
    for (ZipEntryRef e : zip.entries()) {
      String n = e.name();
      int slash = n.indexOf('/');
      if (slash > 0 && n.endsWith("/data.pkl") && slash == n.length() - "/data.pkl".length()) {
        tops.add(n.substring(0, slash + 1));
      }
    }
    if (tops.isEmpty()) {
      throw new CheckpointException("the zip archive has no <folder>/data.pkl record: not a torch.save checkpoint");
    }
    if (tops.size() > 1) {
      // Only two are shown: an archive can hold thousands of names of up to 64 KiB each.
      throw new CheckpointException("the zip archive has " + tops.size() + " data.pkl records, in "
          + Untrusted.quote(tops.get(0)) + " and " + Untrusted.quote(tops.get(1))
          + (tops.size() > 2 ? " and others" : "") + ": ambiguous");
    }
    return tops.get(0);
  }

  /** Checks the format version and byte order records, which torch itself reads before the pickle. */
  static void checkRecords(FileChannel ch, ZipDirectory zip, String top) throws IOException {
    ZipEntryRef version = zip.get(top + ".data/version");
    if (version == null) {
      version = zip.get(top + "version");
    }
    if (version == null) {
      throw new CheckpointException("the archive has no " + Untrusted.quote(top + "version")
          + " record: not a torch.save checkpoint");
    }
    String v = text(ch, version);
    if (!v.matches("[0-9]{1,9}") || Integer.parseInt(v) == 0) {
      throw new CheckpointException("the format version record " + Untrusted.quote(version.name()) + " holds "
          + Untrusted.quote(v) + ", not a positive number");
    }
    ZipEntryRef order = zip.get(top + "byteorder");
    if (order != null) {
      String o = text(ch, order);
      if (o.equals("big")) {
        throw new CheckpointException("the checkpoint was saved on a big-endian machine; its tensor bytes are "
            + "big-endian, which is not supported: re-save it on a little-endian machine or convert it to "
            + "safetensors");
      }
      if (!o.equals("little")) {
        throw new CheckpointException("the byteorder record holds " + Untrusted.quote(o) + ", not 'little' or 'big'");
      }
    }
  }

  /**
   * Reads a whole record of at most {@code max} bytes, checking the CRC-32 the zip directory recorded (0 means
   * the writer computed none: torch.save with {@code compute_crc32=False}).
   */
  static byte[] readRecord(FileChannel ch, ZipEntryRef e, int max) throws IOException {
    if (e.size() > max) {
      throw new CheckpointException("record " + Untrusted.quote(e.name()) + " has " + e.size()
          + " bytes, more than the " + max + " accepted");
    }
    byte[] out = new byte[(int) e.size()];
    ZipDirectory.readAt(ch, e.dataOffset(), out.length).get(out);
    CRC32 crc = new CRC32();
    crc.update(out);
    if (e.crc32() != 0 && (int) crc.getValue() != e.crc32()) {
      throw new CheckpointException("record " + Untrusted.quote(e.name())
          + " is corrupt (CRC-32 mismatch): download the file again");
    }
    return out;
  }

  private static String text(FileChannel ch, ZipEntryRef e) throws IOException {
    String s = new String(readRecord(ch, e, MAX_SMALL_RECORD), StandardCharsets.US_ASCII).strip();
    return s.replaceAll("\\p{Cntrl}", "?");
  }

  private static byte[] bytes(ByteBuffer b, int from, int len) {
    byte[] out = new byte[len];
    b.get(from, out);
    return out;
  }
}
