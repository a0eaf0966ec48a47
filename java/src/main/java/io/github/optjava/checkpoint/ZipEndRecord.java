package io.github.optjava.checkpoint;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * Where a zip file's central directory is, from its end-of-central-directory record and, when present,
 * the zip64 end record that torch.save always adds (its 32-bit fields overflow for multi-GB shards).
 *
 * @param cdOffset   file offset of the central directory
 * @param cdSize     its size in bytes
 * @param entryCount number of central directory entries
 * @param endStart   file offset of the first end record (zip64 end record if any, else the classic one):
 *                   no entry data and no central directory may extend past it
 */
record ZipEndRecord(long cdOffset, long cdSize, long entryCount, long endStart) {

  private static final int EOCD_SIG = 0x06054b50;
  private static final int ZIP64_LOCATOR_SIG = 0x07064b50;
  private static final int ZIP64_EOCD_SIG = 0x06064b50;
  private static final int EOCD_SIZE = 22;
  private static final int ZIP64_LOCATOR_SIZE = 20;
  private static final int ZIP64_EOCD_MIN_SIZE = 56;
  private static final int MAX_COMMENT = 0xffff;

  /** Finds and validates the end records of a file of {@code fileSize} bytes. */
  static ZipEndRecord locate(FileChannel ch, long fileSize) throws IOException {
    if (fileSize < EOCD_SIZE) {
      throw new CheckpointException("truncated zip archive: " + fileSize + " bytes is too short for a zip end record");
    }
    int tailLen = (int) Math.min(fileSize, EOCD_SIZE + MAX_COMMENT);
    long tailStart = fileSize - tailLen;
    ByteBuffer tail = ZipDirectory.readAt(ch, tailStart, tailLen);
    // Scan backwards; the comment length must reach exactly the end of the file, so a signature that merely
    // occurs inside a comment or trailing garbage is not taken for the record.
    int eocd = -1;
    for (int p = tailLen - EOCD_SIZE; p >= 0; p--) {
      if (tail.getInt(p) == EOCD_SIG && p + EOCD_SIZE + (tail.getShort(p + 20) & 0xffff) == tailLen) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0) {
      throw new CheckpointException("truncated or not a zip archive: no end of central directory record "
          + "at the end of the file (an interrupted download or copy leaves this; download the file again)");
    }
    long eocdPos = tailStart + eocd;
    int disk = tail.getShort(eocd + 4) & 0xffff;
    int cdDisk = tail.getShort(eocd + 6) & 0xffff;
    long count = tail.getShort(eocd + 10) & 0xffff;
    long cdSize = tail.getInt(eocd + 12) & 0xffffffffL;
    long cdOffset = tail.getInt(eocd + 16) & 0xffffffffL;

    long locatorPos = eocdPos - ZIP64_LOCATOR_SIZE;
    if (locatorPos >= 0 && ZipDirectory.readAt(ch, locatorPos, 4).getInt(0) == ZIP64_LOCATOR_SIG) {
      return readZip64(ch, locatorPos);
    }
    if (disk != 0 || cdDisk != 0) {
      throw new CheckpointException("multi-volume (split) zip archives are not supported");
    }
    return checked(cdOffset, cdSize, count, eocdPos);
  }

  private static ZipEndRecord readZip64(FileChannel ch, long locatorPos) throws IOException {
    ByteBuffer loc = ZipDirectory.readAt(ch, locatorPos, ZIP64_LOCATOR_SIZE);
    long recordPos = loc.getLong(8);
    // Total disks: 1 per the spec; some writers put 0.
    if (loc.getInt(4) != 0 || (loc.getInt(16) & 0xffffffffL) > 1) {
      throw new CheckpointException("multi-volume (split) zip64 archives are not supported");
    }
    if (recordPos < 0 || recordPos > locatorPos - ZIP64_EOCD_MIN_SIZE) {
      throw new CheckpointException("corrupt zip64 locator: end record offset " + recordPos
          + " is outside the file");
    }
    ByteBuffer rec = ZipDirectory.readAt(ch, recordPos, ZIP64_EOCD_MIN_SIZE);
    if (rec.getInt(0) != ZIP64_EOCD_SIG) {
      throw new CheckpointException("corrupt zip64 archive: no zip64 end record at offset " + recordPos);
    }
    if (rec.getInt(16) != 0 || rec.getInt(20) != 0) {
      throw new CheckpointException("multi-volume (split) zip64 archives are not supported");
    }
    long count = rec.getLong(32);
    long cdSize = rec.getLong(40);
    long cdOffset = rec.getLong(48);
    if (rec.getLong(24) != count) {
      throw new CheckpointException("corrupt zip64 end record: entry counts disagree");
    }
    return checked(cdOffset, cdSize, count, recordPos);
  }

  private static ZipEndRecord checked(long cdOffset, long cdSize, long count, long endStart) {
    // Values read as unsigned 64-bit may be negative here; the comparisons reject them too.
    if (cdOffset < 0 || cdSize < 0 || count < 0 || cdOffset > endStart || cdSize > endStart - cdOffset) {
      throw new CheckpointException("corrupt zip archive: the central directory (offset " + cdOffset + ", "
          + cdSize + " bytes) does not lie before the end record at " + endStart
          + " (a truncated or damaged file; download it again)");
    }
    return new ZipEndRecord(cdOffset, cdSize, count, endStart);
  }
}
