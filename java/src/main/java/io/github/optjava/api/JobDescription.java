package io.github.optjava.api;

import io.github.optjava.model.JobLayout;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * What a process of a multi-process job will run, as {@code key=value;...} for
 * {@link io.github.optjava.parallel.Mesh#connect(io.github.optjava.parallel.Rendezvous.Placement,
 * java.time.Duration, String)}: every process must bring the same. The model is described by its content, not
 * its path (machines may keep it in different places): config.json's digest, and each weight file's name, size and
 * the digest of its first 64 KiB (a safetensors header, a zip's first entries). Hashing whole files would read
 * gigabytes before the job starts; two checkpoints with the same config, file sizes and first 64 KiB are not told
 * apart.
 */
final class JobDescription {
  private static final int HEAD_BYTES = 64 * 1024;

  private JobDescription() {}

  static String of(Path modelDir, GeneratorOptions options, JobLayout layout, Device device,
      java.time.Duration heartbeatSilence) {
    String version = Generator.class.getPackage().getImplementationVersion();
    List<String> weights = new ArrayList<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(modelDir,
        "{*.safetensors,*.bin,*.safetensors.index.json,*.bin.index.json}")) {
      for (Path f : files) {
        weights.add(f.getFileName() + ":" + Files.size(f) + ":" + digest(f, HEAD_BYTES));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("describing the model in " + modelDir + " for the other processes", e);
    }
    weights.sort(null);
    return "opt_java=" + (version == null ? "development" : version)
        + ";pipeline_stages=" + layout.stages() + ";tensor_parallel=" + layout.tp()
        + ";device=" + device + ";dtype=" + (options.dtype() == null ? "as stored" : options.dtype())
        + ";quantization=" + options.quantization() + ";kv_cache_dtype=" + (options.kvCacheDtype() == null ? "auto"
            : options.kvCacheDtype())
        + ";config.json=" + digest(modelDir.resolve("config.json"), Integer.MAX_VALUE)
        + ";weight_files=" + digestOf(String.join(",", weights))
        // Processes that wait for each other's heartbeats differently would give up on a healthy peer.
        + ";heartbeat_silence_ms=" + heartbeatSilence.toMillis();
  }

  private static String digest(Path file, int limit) {
    try (InputStream in = Files.newInputStream(file)) {
      return hex(sha256().digest(in.readNBytes(limit)));
    } catch (IOException e) {
      throw new UncheckedIOException("reading " + file + " to describe the model to the other processes", e);
    }
  }

  private static String digestOf(String text) {
    return hex(sha256().digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
  }

  private static String hex(byte[] digest) {
    return HexFormat.of().formatHex(digest, 0, 6); // 48 bits: enough to tell two checkpoints apart
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }
}
