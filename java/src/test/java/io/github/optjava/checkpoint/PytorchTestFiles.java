package io.github.optjava.checkpoint;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/** Test helper: fixture paths and small torch.save-like archives written with java.util.zip. */
final class PytorchTestFiles {
  private PytorchTestFiles() {}

  /** A file of a fixture model directory, e.g. {@code fixture("tiny-opt", "pytorch_model.bin")}. */
  static Path fixture(String model, String file) {
    URL url = PytorchTestFiles.class.getResource("/fixtures/models/" + model + "/" + file);
    if (url == null) {
      throw new IllegalStateException("missing test fixture " + model + "/" + file);
    }
    try {
      return Path.of(url.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Writes a zip with the entries in order, stored (size and CRC set up front) unless named in deflated. */
  static Path zip(Path file, Map<String, byte[]> entries, Set<String> deflated) throws IOException {
    try (OutputStream os = Files.newOutputStream(file); ZipOutputStream zos = new ZipOutputStream(os)) {
      for (Map.Entry<String, byte[]> e : entries.entrySet()) {
        ZipEntry ze = new ZipEntry(e.getKey());
        if (deflated.contains(e.getKey())) {
          ze.setMethod(ZipEntry.DEFLATED);
        } else {
          CRC32 crc = new CRC32();
          crc.update(e.getValue());
          ze.setMethod(ZipEntry.STORED);
          ze.setSize(e.getValue().length);
          ze.setCompressedSize(e.getValue().length);
          ze.setCrc(crc.getValue());
        }
        zos.putNextEntry(ze);
        zos.write(e.getValue());
        zos.closeEntry();
      }
    }
    return file;
  }

  /** The entries of a torch.save archive under {@code archive/}: data.pkl, data/&lt;key&gt;, version. */
  static Map<String, byte[]> torchEntries(byte[] pickle, Map<String, byte[]> storages) {
    Map<String, byte[]> entries = new LinkedHashMap<>();
    entries.put("archive/data.pkl", pickle);
    entries.put("archive/byteorder", "little".getBytes());
    for (Map.Entry<String, byte[]> s : storages.entrySet()) {
      entries.put("archive/data/" + s.getKey(), s.getValue());
    }
    entries.put("archive/version", "3\n".getBytes());
    return entries;
  }

  /** Writes a stored torch.save-like archive. */
  static Path torch(Path file, byte[] pickle, Map<String, byte[]> storages) throws IOException {
    return zip(file, torchEntries(pickle, storages), Set.of());
  }

  /** {@code n} deterministic bytes. */
  static byte[] bytes(int n, int seed) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) {
      b[i] = (byte) (i * 31 + seed * 7 + (i >> 8));
    }
    return b;
  }
}
