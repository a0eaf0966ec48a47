package io.github.optjava.model;

import io.github.optjava.backend.BatchBuckets;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.cpu.CpuOps;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * CpuOps that pads decode steps to bucket sizes as CudaOps does with {@code -Dopt.cuda.batchBuckets} on, recording
 * the batch size of every declared graph step and how many steps asked to be padded (the engine's loop thread
 * calls it: both are thread-safe).
 */
public final class BucketedCpuOps extends CpuOps {
  /** The batch sizes graph steps were declared at, in order. */
  public final List<Integer> graphBatches = Collections.synchronizedList(new ArrayList<>());
  /** Decode steps whose bucket was larger than their batch (padded unless the cache had no block to spare). */
  public final AtomicInteger paddedSteps = new AtomicInteger();

  @Override
  public int decodeBatchBucket(int n) {
    int bucket = BatchBuckets.of(n);
    if (bucket > n) {
      paddedSteps.incrementAndGet();
    }
    return bucket;
  }

  @Override
  public void graphStep(KvStore kv, int batch, int tokensPerSequence, int variant) {
    graphBatches.add(batch);
  }
}
