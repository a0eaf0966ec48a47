package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class LoadProgressTest {

  @Test
  void wrapsOnlyOnATerminalAndDelegatesEverything() throws Exception {
    Path st = Path.of(getClass().getResource("/fixtures/models/tiny-opt/model.safetensors").toURI());
    try (Checkpoint plain = SafetensorsCheckpoint.open(st)) {
      assertSame(plain, LoadProgress.wrap(plain, "loading", 1, false));
    }
    Checkpoint inner = SafetensorsCheckpoint.open(st);
    try (Checkpoint shown = LoadProgress.wrap(inner, "loading tiny-opt", 1, true)) {
      assertEquals(inner.tensors(), shown.tensors());
      assertEquals("safetensors", shown.format());
      String name = "model.decoder.layers.0.fc1.weight";
      assertArrayEquals(inner.tensor(name).toFloatArray(), shown.tensor(name).toFloatArray());
    }
    // closing the wrapper closed the checkpoint it wraps
    assertThrows(IllegalStateException.class, () -> inner.tensor("lm_head.weight"));
  }
}
