package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.model.JobLayout;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** What processes compare at the rendezvous: the same job gives the same text, and each setting shows in it. */
class JobDescriptionTest {

  @Test
  void theSameJobDescribesAlikeAndTheHeartbeatSilenceIsPartOfIt() {
    Path model = Path.of(MultiProcessGeneratorTest.fixture("tiny-opt"));
    GeneratorOptions options = GeneratorOptions.defaults().withDevice(Device.CPU);
    JobLayout layout = new JobLayout(2, 1);
    String a = JobDescription.of(model, options, layout, Device.CPU, Duration.ofSeconds(60));
    assertEquals(a, JobDescription.of(model, options, layout, Device.CPU, Duration.ofSeconds(60)));
    String b = JobDescription.of(model, options, layout, Device.CPU, Duration.ZERO);
    assertNotEquals(a, b);
    // Mesh.connect refuses a rank whose description differs, naming the first differing key (package-private there:
    // checked through the text it compares).
    assertTrue(a.contains(";heartbeat_silence_ms=60000") && b.contains(";heartbeat_silence_ms=0"), a + " / " + b);
    assertNotEquals(a, JobDescription.of(model, options, new JobLayout(1, 2), Device.CPU, Duration.ofSeconds(60)));
  }
}
