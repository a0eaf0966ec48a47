package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CPU-side checks of our kernels' code that need no GPU, so that CI (which has nvcc and no GPU) keeps them true:
 * {@code native/dev/split_values_test.cu} compiles the split-KV attention file itself and runs its value loop on
 * the host against the loop it replaced, bit for bit ({@code argmax_scan_test.cu} does the same for the argmax
 * kernel's scans, {@code int8_widen_test.cu} for the int8 kernels' widening of every byte, {@code
 * topp_search_test.cu} and {@code draw_test.cu} for the sampler's top-p search and draw, {@code
 * tc_fragments_test.cu} for the tensor-core Linear's
 * fragments); {@code native/dev/emu_fa}, {@code emu_split},
 * {@code emu_grouped}, {@code emu_vecnorm}, {@code emu_gemv}, {@code emu_sample} and {@code emu_toplp} are
 * thread-by-thread emulations of the FlashAttention-2-style kernel, the split-KV decode kernel with its inline combine,
 * the grouped split-KV decode kernel (a thread group per key row), the vector layer norm, the matrix-vector Linear
 * with split rows, the sampler and the top log-probs / beam candidates kernels (copies of their code, with race,
 * bounds and visibility checks); {@code emu_tc} is a warp-level one of the
 * tensor-core Linear. Run by failsafe ({@code mvn verify}); skipped where nvcc
 * or g++ is missing.
 */
class NativeHostChecksIT {

  @TempDir
  Path work;

  @Test
  void splitAttentionValueLoopEqualsTheOneKeyLoop() throws Exception {
    // attention_grouped.cu: the launcher of attention_split.cu calls the grouped kernel's launch functions
    hostCheckPasses("split_values_test", false, "native/src/attention_grouped.cu");
  }

  /** sampling.cu's argmax and log-sum-exp scans (loads in rounds, session 18) against the one-at-a-time loops. */
  @Test
  void argmaxScansEqualTheOneAtATimeLoops() throws Exception {
    hostCheckPasses("argmax_scan_test", true);
  }

  /**
   * sample.cu's draw (session 22: one range per warp): a crossing warp always finds its token, the token follows the
   * rule in the kernel's sums, and it equals the plain cumulative rule except within 1e-12 of a boundary.
   */
  @Test
  void drawFindsTheFirstTokenPastTheTarget() throws Exception {
    hostCheckPasses("draw_test", true);
  }

  /** sample.cu's top-p search, two bits per pass (session 22), against the one-bit search: the same cut, bits. */
  @Test
  void topPSearchEqualsTheOneBitSearch() throws Exception {
    hostCheckPasses("topp_search_test", true);
  }

  /**
   * linear_tc.cu's fragments (session 22): each lane's contiguous weight and x values as mma.sync A and B, through the
   * PTX ISA's fragment layout, give the tile's dot products; the int8 bytes become fp16 exactly.
   */
  @Test
  void tensorCoreLinearFragmentsGiveTheDotProducts() throws Exception {
    hostCheckPasses("tc_fragments_test", true);
  }

  /** linear_int8.cu's widen_int8 (the float bits of 2^23 + byte, session 18) against a plain cast, every byte. */
  @Test
  void int8WideningEqualsThePlainCast() throws Exception {
    hostCheckPasses("int8_widen_test", false);
  }

  /**
   * Builds native/dev/NAME.cu (which includes a kernel file) with nvcc for the host, with launch.cu and
   * {@code sources}, and runs it: exit 0 and "PASS" expected. The project's warning flags (cmake/OptCuda.cmake):
   * host-side code of the kernel file must pass them too. {@code optimize}: -O2, for a check of many cases.
   */
  private void hostCheckPasses(String name, boolean optimize, String... sources) throws Exception {
    String nvcc = find("nvcc", "/usr/local/cuda/bin/nvcc");
    assumeTrue(nvcc != null, "no nvcc here");
    Path exe = work.resolve(name);
    // -arch=sm_90: the kernel files' device code must compile too, and linear_tc.cu's mma.sync needs sm_80 or later
    List<String> command = new ArrayList<>(List.of(nvcc, "-std=c++17", "-arch=sm_90", "-Xcompiler=-Wall,-Wextra",
        "--Werror=all-warnings", "-I", "native/include", "-I", "native/src"));
    if (optimize) {
      command.add("-O2");
    }
    command.addAll(List.of("native/dev/" + name + ".cu", "native/src/launch.cu"));
    command.addAll(List.of(sources));
    command.addAll(List.of("-o", exe.toString()));
    Result build = run(600, command.toArray(String[]::new));
    assertEquals(0, build.exit, build.output);
    Result r = run(120, exe.toString());
    assertEquals(0, r.exit, r.output);
    assertTrue(r.output.contains("PASS"), r.output);
  }

  @Test
  void flashAttentionEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_fa", false, "150", "5");
  }

  @Test
  void splitAttentionEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_split", true, "60", "3");
  }

  @Test
  void groupedSplitAttentionEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_grouped", true, "200", "3"); // fixed cases + 200 random (about 20 s on 2 cores)
  }

  @Test
  void vectorLayerNormEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_vecnorm", true, "600", "3"); // fixed cases + 600 random (about 10 s on 2 cores)
  }

  @Test
  void splitRowLinearEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_gemv", true, "60", "3"); // fixed cases + 60 random (about 15 s on 2 cores)
  }

  /** linear_tc.cu's kernel and launcher, warp by warp (session 22): outputs once, tails, splits, refusals. */
  @Test
  void tensorCoreLinearEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_tc", false, "150", "3"); // fixed cases + 150 random (about 2 s)
  }

  /**
   * sample.cu's sampler on an emulated GPU (session 23): its tokens, log-probs and alternatives as ref_sample's (the
   * twin RowSampling), with and without the scratch row, top-k / top-p / min-p / typical, no race or divergent shuffle.
   */
  @Test
  void samplerEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_sample", true, "40", "3"); // fixed cases + 40 random (about 10 s on 2 cores)
  }

  /**
   * top_logprobs.cu's three kernels on an emulated GPU (session 23): a greedy request's alternatives (RowMath.topK's
   * ids and rules), beam candidates in both modes (RowMath.beamTopK's, bit-equal to each other), log-softmax rows.
   */
  @Test
  void topLogprobsEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_toplp", true, "60", "3"); // fixed cases + 60 random (about 4 s)
  }

  @Test
  void int8LinearEmulationPassesItsCases() throws Exception {
    emulationPasses("emu_gemv", "emu_int8", true, "60", "3"); // fixed cases + 60 random (about 15 s on 2 cores)
  }

  /**
   * Builds native/dev/NAME/NAME.cpp with g++ and runs it with {@code args}: exit 0 and "PASS: 0 of" expected.
   * {@code noContract}: -ffp-contract=off, for the emulations whose bit-for-bit comparisons assume the host fuses no
   * multiply-adds of its own.
   */
  private void emulationPasses(String name, boolean noContract, String... args) throws Exception {
    emulationPasses(name, name, noContract, args);
  }

  /** As above, for native/dev/DIR/NAME.cpp (a second emulation beside another in its folder). */
  private void emulationPasses(String dir, String name, boolean noContract, String... args) throws Exception {
    String gpp = find("g++", "/usr/bin/g++");
    assumeTrue(gpp != null, "no g++ here");
    Path exe = work.resolve(name);
    List<String> build = new ArrayList<>(List.of(gpp, "-O2", "-std=c++17"));
    if (noContract) {
      build.add("-ffp-contract=off");
    }
    build.addAll(List.of("native/dev/" + dir + "/" + name + ".cpp", "-o", exe.toString()));
    Result built = run(600, build.toArray(String[]::new));
    assertEquals(0, built.exit, built.output);
    List<String> command = new ArrayList<>(List.of(exe.toString()));
    command.addAll(List.of(args));
    Result r = run(300, command.toArray(String[]::new));
    assertEquals(0, r.exit, r.output);
    assertTrue(r.output.contains("PASS: 0 of"), r.output);
  }

  /** The program on the PATH, else the fallback path if it is executable, else null. */
  private static String find(String name, String fallback) {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
      if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, name))) {
        return Path.of(dir, name).toString();
      }
    }
    return Files.isExecutable(Path.of(fallback)) ? fallback : null;
  }

  private record Result(int exit, String output) {}

  private Result run(long timeoutSeconds, String... command) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of(command));
    Path log = Files.createTempFile(work, "out", ".txt"); // a file, so that a hung program cannot block a read
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      return new Result(-1, "timed out after " + timeoutSeconds + " s: " + String.join(" ", cmd));
    }
    return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
  }
}
