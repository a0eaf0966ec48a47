package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointsTest {

  @TempDir
  Path tmp;

  @Test
  void prefersSafetensorsOverPytorchInTheFixtures() {
    for (String model : new String[] {"tiny-opt-postln"}) { // the fixture with both formats (session 21: size)
      Path dir = SafetensorsTestFiles.fixtureModel(model);
      assertTrue(Files.exists(dir.resolve("pytorch_model.bin")), "fixture has both formats");
      assertEquals(dir.resolve("model.safetensors"), Checkpoints.weightsFile(dir));
      try (Checkpoint c = Checkpoints.open(dir)) {
        assertInstanceOf(SafetensorsCheckpoint.class, c);
        assertEquals("safetensors", c.format());
      }
    }
  }

  @Test
  void opensAShardedSafetensorsDirectory() throws IOException {
    try (Checkpoint single = SafetensorsCheckpoint.open(
        SafetensorsTestFiles.fixtureModel("tiny-opt-postln").resolve("model.safetensors"))) {
      SafetensorsTestFiles.writeSharded(tmp, single, 2);
      Files.writeString(tmp.resolve("pytorch_model.bin"), "ignored: a safetensors index comes first");
      assertEquals(tmp.resolve("model.safetensors.index.json"), Checkpoints.weightsFile(tmp));
      try (Checkpoint c = Checkpoints.open(tmp)) {
        assertInstanceOf(ShardedCheckpoint.class, c);
        assertEquals(single.tensors().size(), c.tensors().size());
      }
    }
  }

  @Test
  void singleFileComesBeforeAnIndex() throws IOException {
    Files.copy(SafetensorsTestFiles.fixtureModel("tiny-opt-postln").resolve("model.safetensors"),
        tmp.resolve("model.safetensors"));
    Files.writeString(tmp.resolve("model.safetensors.index.json"), "not even JSON: never read");
    try (Checkpoint c = Checkpoints.open(tmp)) {
      assertInstanceOf(SafetensorsCheckpoint.class, c);
    }
  }

  @Test
  void missingDirectorySaysWhatToPass() {
    Path dir = tmp.resolve("no-such-model");
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.open(dir));
    assertTrue(e.getMessage().contains("model directory " + dir + " does not exist"), e.getMessage());
    assertTrue(e.getMessage().contains("facebook/opt-125m"), e.getMessage());
  }

  @Test
  void fileInsteadOfDirectoryIsRejected() throws IOException {
    Path file = Files.writeString(tmp.resolve("config.json"), "{}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.open(file));
    assertTrue(e.getMessage().contains("is not a directory"), e.getMessage());
  }

  @Test
  void directoryWithoutWeightsListsWhatWasLookedFor() throws IOException {
    Files.writeString(tmp.resolve("config.json"), "{}");
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.open(tmp));
    for (String name : new String[] {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
        "pytorch_model.bin.index.json"}) {
      assertTrue(e.getMessage().contains(name), e.getMessage());
    }
    assertTrue(e.getMessage().contains("has no weights"), e.getMessage());
    Files.writeString(tmp.resolve("tf_model.h5"), "");
    e = assertThrows(CheckpointException.class, () -> Checkpoints.weightsFile(tmp));
    assertTrue(e.getMessage().contains("TensorFlow"), e.getMessage());
  }

  @Test
  void malformedWeightsFailWithTheFileName() throws IOException {
    Files.write(tmp.resolve("model.safetensors"), new byte[4]);
    CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoints.open(tmp));
    assertTrue(e.getMessage().contains(tmp.resolve("model.safetensors").toString()), e.getMessage());
  }
}
