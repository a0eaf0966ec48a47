package io.github.optjava.engine;

import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;

/**
 * A test model around an {@link OptModel}: its config, KV caches, block copies and close are the model's;
 * {@code samplesOnDevice} says whether it claims to draw where the logits are. A subclass defines the steps: what it
 * does not override ({@code forward} aside) is {@link CausalLm}'s default over its {@code forward}, so that whatever
 * it does to the rows reaches every pick.
 */
abstract class WrappedModel implements CausalLm {
  final OptModel model;
  final boolean samplesOnDevice;

  WrappedModel(OptModel model, boolean samplesOnDevice) {
    this.model = model;
    this.samplesOnDevice = samplesOnDevice;
  }

  /** Each sequence's KV-cache length before the step: the position of its first new token. */
  static int[] pastLengths(java.util.List<OptModel.SeqStep> seqs, KvCache cache) {
    int[] past = new int[seqs.size()];
    for (int s = 0; s < seqs.size(); s++) {
      past[s] = cache.length(seqs.get(s).seqId());
    }
    return past;
  }

  @Override
  public OptConfig config() {
    return model.config();
  }

  @Override
  public boolean samplesOnDevice() {
    return samplesOnDevice;
  }

  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    model.copyBlocks(cache, src, dst);
  }

  @Override
  public KvCache newCache(int blocks, int blockSize) {
    return model.newCache(blocks, blockSize);
  }

  @Override
  public void close() {
    model.close();
  }
}
