package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.model.OptConfig;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Text and small files from a model directory, as the readers take them (session 26's reviews of its fuzz fixes). */
class UntrustedTest {
  @TempDir
  Path dir;

  /** Every character that can end a line is replaced: ASCII's controls, C1's (NEL, CSI), U+2028 and U+2029. */
  @Test
  void quoteReplacesEveryLineBreakingCharacter() {
    assertEquals("'a?b?c?d?e?f'", Untrusted.quote("a\nb\u0085c\u009bd\u2028e\u2029f"));
    assertEquals("'plain ü name'", Untrusted.quote("plain ü name"));
  }

  /** config.json and a weights index over the cap are refused unread (sparse files: no disk used). */
  @Test
  void configAndIndexOverTheCapAreRefusedUnread() throws IOException {
    grow(dir.resolve("config.json"));
    CheckpointException config = assertThrows(CheckpointException.class, () -> OptConfig.load(dir));
    assertTrue(config.getMessage().contains("config.json at") && config.getMessage().contains("more than the 64 MiB"),
        config.getMessage());
    Files.delete(dir.resolve("config.json"));
    grow(dir.resolve("model.safetensors.index.json"));
    CheckpointException index = assertThrows(CheckpointException.class, () -> Checkpoints.open(dir));
    assertTrue(index.getMessage().contains("more than the 64 MiB"), index.getMessage());
  }

  private static void grow(Path file) throws IOException {
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.setLength(Untrusted.MAX_SMALL_FILE_BYTES + 1);
    }
  }
}
