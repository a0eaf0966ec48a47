package io.github.optjava.checkpoint;

import java.util.HashMap;
import java.util.Map;

/**
 * Resolves torch.save's persistent ids {@code ('storage', <storage class>, '<key>', '<location>', numel)} to
 * {@link PytorchStorage}s: the storage class must be an allowed one, the zip entry {@code <top>/data/<key>}
 * must exist and hold exactly {@code numel} elements, and a key seen again must repeat the same class and size
 * (tied weights share one storage record; a second, different declaration of it is a crafted file).
 */
final class PytorchStorageResolver implements PickleReader.PersistentLoader {

  private final ZipDirectory zip;
  private final String dataPrefix;
  private final Map<String, PytorchStorage> byKey = new HashMap<>();

  /**
   * @param zip        the archive
   * @param dataPrefix the folder storages live in, {@code <top>/data/}
   */
  PytorchStorageResolver(ZipDirectory zip, String dataPrefix) {
    this.zip = zip;
    this.dataPrefix = dataPrefix;
  }

  @Override
  public Object load(Object pid) {
    if (!(pid instanceof PickleValue.Tuple t) || t.size() != 5 || !"storage".equals(t.get(0))) {
      throw new CheckpointException("a persistent id is a " + PickleValue.describe(pid) + " rather than "
          + "('storage', class, key, location, numel): not a plain tensor checkpoint");
    }
    if (t.get(1) instanceof PickleValue.Opaque o && o.callable() && o.name().startsWith("torch.")
        && o.name().endsWith("Storage")) {
      // Metaseq mode only: a storage of a dtype weights never use (step counters, RNG state). It stands for
      // nothing; a tensor on it is an error only if a weight needs it.
      return PickleValue.Opaque.object("storage " + o.name());
    }
    if (!(t.get(1) instanceof PickleGlobal cls) || cls.storageDType() == null) {
      throw new CheckpointException("a storage persistent id names " + PickleValue.describe(t.get(1))
          + " where a storage class such as torch.HalfStorage belongs");
    }
    if (!(t.get(2) instanceof String key) || key.isEmpty() || key.indexOf('/') >= 0
        || !(t.get(3) instanceof String) || !(t.get(4) instanceof Long numel) || numel < 0) {
      throw new CheckpointException("a storage persistent id has a malformed key, location or size ("
          + PickleValue.describe(t.get(2)) + ", " + PickleValue.describe(t.get(3)) + ", "
          + PickleValue.describe(t.get(4)) + ")");
    }
    DType dtype = cls.storageDType();
    PytorchStorage seen = byKey.get(key);
    if (seen != null) {
      if (seen.dtype() != dtype || seen.numel() != numel) {
        throw new CheckpointException("storage " + Untrusted.quote(key) + " is declared twice, as "
            + seen.numel() + " × " + seen.dtype() + " and as " + numel + " × " + dtype
            + ": a crafted or corrupt file");
      }
      return seen;
    }
    String entryName = dataPrefix + key;
    ZipEntryRef entry = zip.get(entryName);
    if (entry == null) {
      throw new CheckpointException("storage " + Untrusted.quote(key) + " has no zip entry "
          + Untrusted.quote(entryName));
    }
    long expected;
    try {
      expected = Math.multiplyExact(numel, dtype.bytes());
    } catch (ArithmeticException e) {
      throw new CheckpointException("storage " + Untrusted.quote(key) + " claims " + numel
          + " elements: too many", e);
    }
    if (entry.size() != expected) {
      throw new CheckpointException("storage " + Untrusted.quote(key) + " holds " + entry.size() + " bytes, "
          + (entry.size() < expected ? "shorter" : "longer") + " than the " + expected + " bytes (" + numel
          + " × " + dtype + ") the tensors claim: a truncated, corrupt or crafted file");
    }
    PytorchStorage storage = new PytorchStorage(key, dtype, numel, entry);
    byKey.put(key, storage);
    return storage;
  }
}
