package io.github.optjava.checkpoint;

/**
 * One storage a torch.save pickle refers to through a persistent id
 * {@code ('storage', torch.HalfStorage, '<key>', '<location>', numel)}, checked against its zip entry
 * {@code <top>/data/<key>}, whose size is exactly {@code numel × dtype.bytes()}.
 *
 * @param key   the storage key (the entry name under {@code data/})
 * @param dtype element type, from the storage class
 * @param numel number of elements
 * @param entry the zip entry holding the bytes
 */
record PytorchStorage(String key, DType dtype, long numel, ZipEntryRef entry) {}
