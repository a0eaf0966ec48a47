package io.github.optjava.engine;

/**
 * HF {@code TopKLogitsWarper}: every score strictly below the k-th largest score becomes -inf.
 *
 * <p>HF computes {@code scores < torch.topk(scores, k)[0][..., -1, None]}, so ties with the k-th largest
 * value all survive (more than k tokens can remain) and a vocabulary of at most k tokens is left
 * unchanged. The k-th largest value is found with a size-k min-heap (O(V log k), no allocation per
 * step); it counts duplicates, as {@code torch.topk} does. NaN scores are ignored.
 */
public final class TopKProcessor implements LogitsProcessor {

  private final int k;
  /** Min-heap of the k largest scores seen so far; the root is the current k-th largest. */
  private final float[] heap;

  /** @param k tokens to keep, {@code >= 1} (HF's {@code min_tokens_to_keep} is 1 outside beam sampling) */
  public TopKProcessor(int k) {
    if (k < 1) {
      throw new IllegalArgumentException("top-k must be >= 1 (got " + k + ")");
    }
    this.k = k;
    this.heap = new float[k];
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    if (k >= logits.length) {
      return;
    }
    int size = 0;
    for (float v : logits) {
      if (size < k) {
        if (v == v) {
          siftUp(size++, v);
        }
      } else if (v > heap[0]) {
        siftDown(v);
      }
    }
    if (size < k) {
      return; // fewer than k comparable scores: nothing is below the k-th
    }
    float kth = heap[0];
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] < kth) {
        logits[i] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  private void siftUp(int pos, float v) {
    while (pos > 0) {
      int parent = (pos - 1) >>> 1;
      if (heap[parent] <= v) {
        break;
      }
      heap[pos] = heap[parent];
      pos = parent;
    }
    heap[pos] = v;
  }

  /** Replaces the root with {@code v} and restores the heap. */
  private void siftDown(float v) {
    int pos = 0;
    while (true) {
      int child = 2 * pos + 1;
      if (child >= k) {
        break;
      }
      if (child + 1 < k && heap[child + 1] < heap[child]) {
        child++;
      }
      if (heap[child] >= v) {
        break;
      }
      heap[pos] = heap[child];
      pos = child;
    }
    heap[pos] = v;
  }

  @Override
  public String toString() {
    return "TopK(" + k + ")";
  }
}
