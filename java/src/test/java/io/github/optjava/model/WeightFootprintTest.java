package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.SafetensorsTestFiles;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The weights a model part declares before loading ({@code Ops.requireRoomForWeights}) are exactly what it then
 * uploads, for the whole model, tensor-parallel ranks and pipeline stages; and the CPU backend refuses a part
 * that cannot fit in the heap with a message that names the heap to ask for, before loading anything.
 */
class WeightFootprintTest {

  /** CPU ops that count what they are asked to hold and what they are given. */
  private static final class CountingOps extends CpuOps {
    long declaredLinear = -1;
    long declaredOther = -1;
    int declaredBytes;
    long uploadedLinear;
    long uploadedOther;
    private boolean inLinear;

    @Override
    public void requireRoomForWeights(String what, long linearElements, long otherElements, int elementBytes) {
      declaredLinear = linearElements;
      declaredOther = otherElements;
      declaredBytes = elementBytes;
      super.requireRoomForWeights(what, linearElements, otherElements, elementBytes);
    }

    @Override
    public Mat linearWeight(Tensor tensor) {
      uploadedLinear += elements(tensor);
      inLinear = true;
      try {
        return super.linearWeight(tensor);
      } finally {
        inLinear = false;
      }
    }

    @Override
    public Mat weight(Tensor tensor) {
      if (!inLinear) {
        uploadedOther += elements(tensor);
      }
      return super.weight(tensor);
    }

    void assertDeclaredWhatItGot(String where) {
      assertEquals(uploadedLinear, declaredLinear, where + ": Linear weights");
      assertEquals(uploadedOther, declaredOther, where + ": other weights");
      assertTrue(uploadedLinear > 0 && uploadedOther > 0, where);
    }
  }

  private static long elements(Tensor t) {
    return Arrays.stream(t.shape()).reduce(1, (a, b) -> a * b);
  }

  @ParameterizedTest
  @CsvSource({"tiny-opt, 1, 1", "tiny-opt-postln, 1, 1", "tiny-opt, 1, 2", "tiny-opt-postln, 2, 1",
      "tiny-opt, 2, 2", "tiny-opt-postln, 2, 4"})
  void eachPartDeclaresExactlyTheWeightsItLoads(String name, int stages, int tp) {
    Path dir = SafetensorsTestFiles.fixtureModel(name);
    OptConfig config = OptConfig.load(dir);
    List<CountingOps> parts = new ArrayList<>();
    try (Checkpoint ck = Checkpoints.open(dir);
        PipelineOptModel model = PipelineOptModel.local(config, new OptWeights(config, ck), (s, r) -> {
          CountingOps ops = new CountingOps();
          synchronized (parts) {
            parts.add(ops);
          }
          return ops;
        }, null, stages, tp)) {
      assertEquals(stages * tp, parts.size());
      for (int i = 0; i < parts.size(); i++) {
        parts.get(i).assertDeclaredWhatItGot(name + " part " + i + " of " + stages + " stages × " + tp);
        assertEquals(ck.tensors().iterator().next().dtype().bytes(), parts.get(i).declaredBytes, "as stored");
      }
    }
  }

  @Test
  void aConversionDeclaresTheTargetDtype() {
    Path dir = SafetensorsTestFiles.fixtureModel("tiny-opt");
    OptConfig config = OptConfig.load(dir);
    CountingOps ops = new CountingOps();
    try (Checkpoint ck = Checkpoints.open(dir); OptModel model = new OptModel(config, new OptWeights(config, ck), ops,
        DType.F32)) {
      assertEquals(DType.F16, ck.tensors().iterator().next().dtype(), "the fixture is stored in fp16");
      ops.assertDeclaredWhatItGot("tiny-opt as float32");
      assertEquals(4, ops.declaredBytes);
    }
  }

  /** opt-175b on the CPU needs ≈ 350 GB: refused at once, before any tensor is made or uploaded. */
  @Test
  void aModelLargerThanTheHeapIsRefusedBeforeLoading() {
    OptConfig config = OptShapes.of("175b");
    for (boolean int8 : new boolean[] {false, true}) {
      CountingOps ops = int8 ? null : new CountingOps();
      CpuOps cpu = int8 ? new CpuOps(true) : ops;
      try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 1)) {
        IllegalStateException e = assertThrows(IllegalStateException.class,
            () -> new OptModel(config, new OptWeights(config, ck), cpu));
        String m = e.getMessage();
        assertTrue(m.startsWith("not enough Java heap for the weights of an OPT of 96 layers, hidden 12288: they need "
            + "about " + (int8 ? "16" : "32")), m); // 162 / 324 GiB
        assertTrue(m.contains("Start Java with a larger heap, e.g. -Xmx"), m);
        assertEquals(!int8, m.contains("--quantize int8"), m);
        if (ops != null) {
          assertEquals(0, ops.uploadedLinear + ops.uploadedOther, "nothing may be uploaded before the check");
        }
      }
    }
  }

  /** Parts on one heap are checked together: the sum of every part's own declaration, before any part loads. */
  @Test
  void allPartsTogetherAreTheSumOfTheParts() {
    Path dir = SafetensorsTestFiles.fixtureModel("tiny-opt-postln");
    OptConfig config = OptConfig.load(dir);
    List<CountingOps> parts = new ArrayList<>();
    CountingOps all = new CountingOps();
    try (Checkpoint ck = Checkpoints.open(dir)) {
      OptWeights weights = new OptWeights(config, ck);
      WeightFootprint.requireRoomForAllParts(config, weights, all, null, 2, 2);
      try (PipelineOptModel model = PipelineOptModel.local(config, weights, (s, r) -> {
        CountingOps ops = new CountingOps();
        synchronized (parts) {
          parts.add(ops);
        }
        return ops;
      }, null, 2, 2)) {
        assertEquals(parts.stream().mapToLong(p -> p.declaredLinear).sum(), all.declaredLinear);
        assertEquals(parts.stream().mapToLong(p -> p.declaredOther).sum(), all.declaredOther);
      }
    }
    OptConfig big = OptShapes.of("66b");
    try (RandomCheckpoint ck = new RandomCheckpoint(big, DType.F16, 1)) {
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> WeightFootprint
          .requireRoomForAllParts(big, new OptWeights(big, ck), new CpuOps(), null, 2, 2));
      assertTrue(e.getMessage().contains("(2 pipeline stage(s) × 2 tensor-parallel rank(s), one heap): they need about "
          + "12"), e.getMessage()); // ≈ 122 GiB in fp16: the whole model, not one part
    }
  }

  @Test
  void thePartIsNamedInTheMessage() {
    OptConfig config = OptShapes.of("66b");
    try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 1)) {
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> PipelineOptModel.local(config, new OptWeights(config, ck), (s, r) -> new CpuOps(), null, 2, 2));
      assertTrue(e.getMessage().startsWith("not enough Java heap for the weights of layers 0-31 of an OPT of 64 "
          + "layers, hidden 9216 (tensor-parallel rank 0 of 2)"), e.getMessage());
    }
  }
}
