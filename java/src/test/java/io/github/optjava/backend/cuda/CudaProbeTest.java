package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The probe's short summary: which library a load error says is missing (the messages as seen on real hosts). */
class CudaProbeTest {

  @Test
  void findsTheLibraryTheLinkerOrJavaCppCouldNotFind() {
    // A machine without a GPU: the bundled runtime's JNI library loads, its dependency libcuda.so.1 does not.
    assertEquals("libcuda.so.1", CudaProbe.missingLibrary(new UnsatisfiedLinkError("javacpp-cache/opt-java-cli.jar/org/"
        + "bytedeco/cuda/linux-x86_64/libjnicudart.so: libcuda.so.1: cannot open shared object file: No such file or "
        + "directory")));
    // Wrapped: the innermost cause counts.
    assertEquals("libcublasLt.so.13", CudaProbe.missingLibrary(new RuntimeException("load failed",
        new UnsatisfiedLinkError("libcublasLt.so.13: cannot open shared object file: No such file or directory"))));
    // A build without our natives (-DskipNative).
    assertEquals("jniOptKernels", CudaProbe.missingLibrary(new UnsatisfiedLinkError(
        "Could not find jniOptKernels in class, module, and library paths.")));
    assertNull(CudaProbe.missingLibrary(new UnsatisfiedLinkError("undefined symbol: cudaGraphLaunch")));
  }

  @Test
  void anUnusableResultHasAShortSummaryBesideItsReason() {
    CudaProbe.Result r = CudaProbe.probe();
    if (r.usable()) {
      assertEquals("", r.summary());
    } else {
      assertTrue(!r.summary().isEmpty() && r.summary().length() <= 80, r.summary());
      assertTrue(r.toString().contains(r.reason()), "toString keeps every detail: " + r);
    }
  }
}
