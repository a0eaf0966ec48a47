package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Damaged files (truncated, bytes flipped) fail with a CheckpointException, never another throwable. */
class PytorchRobustnessTest {

  @TempDir
  Path tmp;

  private static final String PKL = "pytorch_model/data.pkl";

  @Test
  void truncatedFilesAreRefusedCleanly() throws IOException {
    byte[] bin = Files.readAllBytes(PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin"));
    int n = bin.length;
    int[] lengths = {0, 1, 3, 4, 21, 22, 30, 64, 100, 4021, 4100, n / 2, n - 4096, n - 2600, n - 100, n - 98,
        n - 42, n - 23, n - 22, n - 21, n - 1};
    for (int len : lengths) {
      Path cut = Files.write(tmp.resolve("cut-" + len + ".bin"), Arrays.copyOf(bin, len));
      CheckpointException e = assertThrows(CheckpointException.class, () -> PytorchCheckpoint.open(cut).close(),
          "cut at " + len);
      assertTrue(e.getMessage().startsWith(cut.toString()) && e.getMessage().length() > cut.toString().length() + 10,
          e.getMessage());
    }
  }

  @Test
  void flippedBytesInThePickleGiveACheckpointExceptionOrAValidCheckpoint() throws IOException {
    byte[] bin = Files.readAllBytes(PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin"));
    Central pkl = findCentral(bin, PKL);
    byte[] original = Arrays.copyOfRange(bin, pkl.dataOffset, pkl.dataOffset + pkl.size);
    Path file = Files.write(tmp.resolve("fuzz.bin"), bin);
    Random random = new Random(20240611L);
    int opened = 0;
    int refused = 0;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      for (int iter = 0; iter < 400; iter++) {
        byte[] pickle = original.clone();
        for (int k = 1 + random.nextInt(4); k > 0; k--) {
          int at = random.nextInt(pickle.length);
          // Either a random byte or one flipped bit.
          pickle[at] = (byte) (random.nextBoolean() ? random.nextInt(256) : pickle[at] ^ (1 << random.nextInt(8)));
        }
        ch.write(ByteBuffer.wrap(pickle), pkl.dataOffset);
        // Keep the recorded CRC right, so that the pickle reader (not the CRC check) sees the damage.
        CRC32 crc = new CRC32();
        crc.update(pickle);
        ch.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, (int) crc.getValue()),
            pkl.crcOffset);
        if (openAndUse(file, "pickle fuzz iteration " + iter)) {
          opened++;
        } else {
          refused++;
        }
      }
    }
    assertEquals(400, opened + refused);
    assertTrue(refused > 100, "most damaged pickles are refused: " + refused);
  }

  @Test
  void flippedBytesInTheZipStructuresGiveACheckpointExceptionOrAValidCheckpoint() throws IOException {
    byte[] bin = Files.readAllBytes(PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin"));
    Path file = Files.write(tmp.resolve("fuzz-zip.bin"), bin);
    int tailStart = bin.length - 2600; // central directory, zip64 end record, locator, end record
    int headLen = 128; // the first local header
    Random random = new Random(7L);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      for (int iter = 0; iter < 300; iter++) {
        byte[] head = Arrays.copyOf(bin, headLen);
        byte[] tail = Arrays.copyOfRange(bin, tailStart, bin.length);
        for (int k = 1 + random.nextInt(3); k > 0; k--) {
          int at = random.nextInt(headLen + tail.length);
          byte b = (byte) random.nextInt(256);
          if (at < headLen) {
            head[at] = b;
          } else {
            tail[at - headLen] = b;
          }
        }
        ch.write(ByteBuffer.wrap(head), 0);
        ch.write(ByteBuffer.wrap(tail), tailStart);
        openAndUse(file, "zip fuzz iteration " + iter);
      }
    }
  }

  /** Opens and reads everything; true if it opened, false on a CheckpointException; anything else fails. */
  private static boolean openAndUse(Path file, String what) {
    try (Checkpoint c = PytorchCheckpoint.open(file)) {
      for (TensorInfo t : c.tensors()) {
        c.tensor(t.name()).data().get(0);
      }
      c.validateData();
      return true;
    } catch (CheckpointException e) {
      return false;
    } catch (Throwable t) {
      return fail(what + ": " + t, t);
    }
  }

  private record Central(int crcOffset, int dataOffset, int size) {}

  /** Finds an entry's central record by scanning for its signature and name (independent of ZipDirectory). */
  private static Central findCentral(byte[] zip, String name) {
    byte[] want = name.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.wrap(zip).order(ByteOrder.LITTLE_ENDIAN);
    for (int p = zip.length - 46; p >= 0; p--) {
      if (b.getInt(p) == 0x02014b50 && (b.getShort(p + 28) & 0xffff) == want.length
          && Arrays.equals(zip, p + 46, p + 46 + want.length, want, 0, want.length)) {
        int local = b.getInt(p + 42);
        int dataOffset = local + 30 + (b.getShort(local + 26) & 0xffff) + (b.getShort(local + 28) & 0xffff);
        return new Central(p + 16, dataOffset, b.getInt(p + 24));
      }
    }
    throw new IllegalStateException("no central record for " + name);
  }
}
