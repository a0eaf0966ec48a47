package io.github.optjava.checkpoint.hub;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One download of a blob at a time, across the threads of this JVM and across opt-java processes (each rank of a
 * multi-process job resolves the model): the others wait, then find the blob complete. Without it every process
 * fetched every file at once, each into its own temporary file (session 27's review). A file lock is per process, so
 * threads of this JVM first take a lock of their own per lock file. The lock file is huggingface_hub's, but Java's
 * lock (fcntl) and Python's filelock (flock) do not exclude each other on Linux: a Python download of the same file at
 * the same time is not kept out (each writes its own temporary file; both results are whole).
 */
final class BlobLock implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(BlobLock.class);
  private static final ConcurrentHashMap<Path, ReentrantLock> IN_THIS_JVM = new ConcurrentHashMap<>();

  private final ReentrantLock local;
  private final FileChannel channel;
  private final FileLock lock;

  private BlobLock(ReentrantLock local, FileChannel channel, FileLock lock) {
    this.local = local;
    this.channel = channel;
    this.lock = lock;
  }

  /** Takes the lock, waiting (with one log line) while another thread or process holds it. */
  static BlobLock acquire(Path lockFile, String what) throws IOException {
    ReentrantLock local = IN_THIS_JVM.computeIfAbsent(lockFile.toAbsolutePath().normalize(), k -> new ReentrantLock());
    if (!local.tryLock()) {
      LOG.info("Waiting for another download of {} in this process to end.", what);
      try {
        local.lockInterruptibly();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while waiting for another download of " + what);
      }
    }
    FileChannel channel = null;
    try {
      Files.createDirectories(lockFile.getParent());
      channel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
      FileLock lock = channel.tryLock();
      if (lock == null) {
        LOG.info("Waiting for another process that downloads {} (lock {}).", what, lockFile);
        lock = channel.lock();
      }
      return new BlobLock(local, channel, lock);
    } catch (IOException | RuntimeException e) {
      if (channel != null) {
        channel.close();
      }
      local.unlock();
      throw e;
    }
  }

  @Override
  public void close() throws IOException {
    try {
      lock.release();
      channel.close();
    } finally {
      local.unlock();
    }
  }
}
