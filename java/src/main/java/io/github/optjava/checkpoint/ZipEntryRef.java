package io.github.optjava.checkpoint;

/**
 * One stored (uncompressed) zip entry whose local header has been checked against the central directory.
 *
 * @param name       the entry name as stored (UTF-8), for example {@code archive/data/0}
 * @param dataOffset absolute file offset of the first data byte (after the local header)
 * @param size       number of data bytes
 * @param crc32      CRC-32 recorded in the central directory; 0 when the writer did not compute one
 *                   (torch.save with {@code compute_crc32=False})
 */
record ZipEntryRef(String name, long dataOffset, long size, int crc32) {

  /** Offset one past the last data byte. */
  long dataEnd() {
    return dataOffset + size;
  }
}
