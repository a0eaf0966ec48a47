package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ZipDirectoryTest {

  @TempDir
  Path tmp;

  private static ZipDirectory read(Path file) throws IOException {
    try (FileChannel ch = FileChannel.open(file)) {
      return ZipDirectory.read(ch);
    }
  }

  private static byte[] dataOf(Path file, ZipEntryRef e) throws IOException {
    try (FileChannel ch = FileChannel.open(file)) {
      byte[] out = new byte[(int) e.size()];
      ZipDirectory.readAt(ch, e.dataOffset(), out.length).get(out);
      return out;
    }
  }

  private static String refused(Path file) {
    return assertThrows(CheckpointException.class, () -> read(file)).getMessage();
  }

  /** Every entry's data, by the offsets ZipDirectory found, equals what java.util.zip extracts. */
  private static void assertOffsetsMatchJavaUtilZip(Path file) throws IOException {
    ZipDirectory dir = read(file);
    List<String> names = new ArrayList<>();
    try (ZipFile zf = new ZipFile(file.toFile())) {
      for (Enumeration<? extends ZipEntry> en = zf.entries(); en.hasMoreElements(); ) {
        ZipEntry ze = en.nextElement();
        names.add(ze.getName());
        ZipEntryRef ref = dir.get(ze.getName());
        assertEquals(ze.getSize(), ref.size(), ze.getName());
        assertArrayEquals(zf.getInputStream(ze).readAllBytes(), dataOf(file, ref), ze.getName());
      }
    }
    assertEquals(names, dir.entries().stream().map(ZipEntryRef::name).toList());
  }

  @Test
  void fixtureOffsetsMatchJavaUtilZip() throws IOException {
    Path bin = PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin");
    assertOffsetsMatchJavaUtilZip(bin);
    ZipDirectory dir = read(bin);
    assertEquals(38, dir.entries().size());
    for (ZipEntryRef e : dir.entries()) {
      assertEquals(0, e.dataOffset() % 64, "torch.save aligns data to 64 bytes: " + e.name());
    }
  }

  @Test
  void javaUtilZipArchiveOffsets() throws IOException {
    Map<String, byte[]> entries = new LinkedHashMap<>();
    entries.put("a/one", PytorchTestFiles.bytes(1000, 1));
    entries.put("a/empty", new byte[0]);
    entries.put("a/\u00fcnicode", PytorchTestFiles.bytes(77, 2));
    assertOffsetsMatchJavaUtilZip(PytorchTestFiles.zip(tmp.resolve("j.zip"), entries, Set.of()));
  }

  @Test
  void zip64ArchivesWithAndWithoutDataDescriptors() throws IOException {
    for (boolean descriptor : new boolean[] {false, true}) {
      byte[] zip = new ZipTestWriter().zip64(true).dataDescriptor(descriptor)
          .add("t/x", PytorchTestFiles.bytes(300, 1)).add("t/y", PytorchTestFiles.bytes(5, 2)).toBytes();
      Path file = Files.write(tmp.resolve("z64-" + descriptor + ".zip"), zip);
      // java.util.zip reading the same bytes shows that the hand-written archive is valid zip64.
      assertOffsetsMatchJavaUtilZip(file);
      for (ZipEntryRef e : read(file).entries()) {
        assertEquals(0, e.dataOffset() % 64);
      }
    }
  }

  @Test
  void aCommentThatContainsAnEndSignatureIsSkipped() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", PytorchTestFiles.bytes(10, 1))
        .comment("PK\u0005\u0006 not the real end record").toBytes();
    assertOffsetsMatchJavaUtilZip(Files.write(tmp.resolve("c.zip"), zip));
  }

  @Test
  void missingEntryIsNull() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", new byte[1]).toBytes();
    assertNull(read(Files.write(tmp.resolve("m.zip"), zip)).get("t/y"));
  }

  @Test
  void compressedEntriesAreRefused() throws IOException {
    Path file = PytorchTestFiles.zip(tmp.resolve("d.zip"), Map.of("t/x", new byte[100]), Set.of("t/x"));
    String m = refused(file);
    assertTrue(m.contains("'t/x' is compressed (method 8, deflate)"), m);
  }

  @Test
  void trailingBytesAfterTheEndRecordAreRefused() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", new byte[10]).toBytes();
    byte[] longer = Arrays.copyOf(zip, zip.length + 5);
    String m = refused(Files.write(tmp.resolve("t.zip"), longer));
    assertTrue(m.contains("no end of central directory record"), m);
  }

  @Test
  void duplicateNamesAreRefused() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", new byte[1]).add("t/x", new byte[2]).toBytes();
    String m = refused(Files.write(tmp.resolve("dup.zip"), zip));
    assertTrue(m.contains("two entries named 't/x'"), m);
  }

  // Found by fuzzing: entry names (up to 64 KiB, any characters) went into messages raw and whole.
  @Test
  void entryNamesAreQuotedAndCutInMessages() throws IOException {
    String name = "t/x\n[INFO] forged" + "y".repeat(60_000);
    byte[] zip = new ZipTestWriter().add(name, new byte[1]).add(name, new byte[2]).toBytes();
    String m = refused(Files.write(tmp.resolve("dup-long.zip"), zip));
    assertTrue(m.contains("two entries named 't/x?[INFO] forgedyyy"), m);
    assertFalse(m.contains("\n"), m);
    assertTrue(m.length() < 300, "a cut message, not " + m.length() + " characters");
  }

  @Test
  void aLocalHeaderThatDisagreesWithTheDirectoryIsRefused() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", new byte[10]).add("t/y", new byte[10]).toBytes();
    byte[] badName = zip.clone();
    badName[30 + 2] = 'z'; // first local header's name: t/x → t/z
    String m = refused(Files.write(tmp.resolve("n.zip"), badName));
    assertTrue(m.contains("local header at 0 does not match") && m.contains("'t/x'"), m);

    byte[] badCrc = zip.clone();
    badCrc[14] ^= 1; // first local header's CRC (no data descriptor: it must agree)
    m = refused(Files.write(tmp.resolve("crc.zip"), badCrc));
    assertTrue(m.contains("disagrees with the central directory"), m);
  }

  @Test
  void entriesMustNotOverlapOrRunIntoTheDirectory() throws IOException {
    byte[] zip = new ZipTestWriter().dataDescriptor(true).add("t/x", new byte[10]).add("t/y", new byte[10])
        .toBytes();
    ByteBuffer b = ByteBuffer.wrap(zip).order(ByteOrder.LITTLE_ENDIAN);
    int cd = b.getInt(zip.length - 6); // central directory offset in the end record
    // Grow the first entry's sizes in its central record so that its data cover the second local header.
    byte[] overlap = zip.clone();
    ByteBuffer.wrap(overlap).order(ByteOrder.LITTLE_ENDIAN).putInt(cd + 20, 40).putInt(cd + 24, 40);
    String m = refused(Files.write(tmp.resolve("o.zip"), overlap));
    assertTrue(m.contains("'t/x' and 't/y' overlap"), m);

    byte[] intoDirectory = zip.clone();
    ByteBuffer.wrap(intoDirectory).order(ByteOrder.LITTLE_ENDIAN).putInt(cd + 20, 100_000)
        .putInt(cd + 24, 100_000);
    m = refused(Files.write(tmp.resolve("i.zip"), intoDirectory));
    assertTrue(m.contains("runs into the central directory"), m);
  }

  @Test
  void endRecordPointingOutsideTheFileIsRefused() throws IOException {
    byte[] zip = new ZipTestWriter().add("t/x", new byte[10]).toBytes();
    ByteBuffer.wrap(zip).order(ByteOrder.LITTLE_ENDIAN).putInt(zip.length - 6, 1 << 30);
    String m = refused(Files.write(tmp.resolve("e.zip"), zip));
    assertTrue(m.contains("central directory"), m);
  }
}
