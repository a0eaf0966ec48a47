package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shaded jars, run the way a user runs them: {@code java -jar} in an empty directory, a fresh
 * JavaCPP cache, nothing from the build on the class path. Run by failsafe after {@code package}.
 */
class PackagedJarIT {

  @TempDir
  Path work;

  @Test
  void platformJarLoadsItsBundledKernelLibrary() throws Exception {
    Result r = run(jar("opt.test.jar"), "", "info");
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.stdout.contains("opt_kernels 0.1.0 for sm "), r.toString());
    // The library was extracted from the jar into the fresh cache, not found in the build tree.
    try (var files = Files.walk(work.resolve("cache"))) {
      assertTrue(files.anyMatch(p -> p.getFileName().toString().equals("libopt_kernels.so")), r.toString());
    }
  }

  @Test
  void cliJarTokenizesAndInspectsAFixtureModel() throws Exception {
    Path model = copyFixture("tiny-opt");
    Result tok = run(jar("opt.test.clijar"), "{\"text\": \"A photo of a cat\"}\n", "tokenize", "--model", model.toString());
    assertEquals(0, tok.exit, tok.toString());
    assertEquals("{\"ids\":[250,1345,9,10,4758]}", tok.stdout.strip());

    Result inspect = run(jar("opt.test.clijar"), "", "inspect", "--model", model.toString());
    assertEquals(0, inspect.exit, inspect.toString());
    assertTrue(inspect.stdout.contains("\"format\" : \"safetensors\""), inspect.stdout);
    assertTrue(inspect.stdout.contains("\"name\" : \"model.decoder.layers.1.fc2.weight\""), inspect.stdout);
  }

  private Path copyFixture(String name) throws IOException {
    Path src = Paths.get("target", "test-classes", "fixtures", "models", name).toAbsolutePath();
    Path dst = work.resolve(name);
    Files.createDirectories(dst);
    try (var files = Files.list(src)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Files.copy(f, dst.resolve(f.getFileName().toString())); // follows links: plain files in the copy
      }
    }
    return dst;
  }

  private static Path jar(String property) {
    String p = System.getProperty(property);
    assertTrue(p != null && Files.isRegularFile(Path.of(p)), property + " = " + p + " is not a built jar");
    return Path.of(p);
  }

  private record Result(int exit, String stdout, String stderr) {}

  private Result run(Path jar, String stdin, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.add("-Dorg.bytedeco.javacpp.cachedir=" + work.resolve("cache"));
    cmd.add("-jar");
    cmd.add(jar.toString());
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(work.toFile())
        .redirectOutput(work.resolve("out.txt").toFile()).redirectError(work.resolve("err.txt").toFile()).start();
    p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timed out: " + cmd);
    return new Result(p.exitValue(), Files.readString(work.resolve("out.txt")), Files.readString(work.resolve("err.txt")));
  }
}
