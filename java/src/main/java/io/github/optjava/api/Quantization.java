package io.github.optjava.api;

/**
 * How a {@link Generator} stores the weights of the decoder layers' Linears (q/k/v, out_proj, fc1, fc2: almost all
 * of a model's parameters). Embeddings, the LM head, layer norms and biases keep their dtype either way.
 */
public enum Quantization {
  /** The weights as loaded (the checkpoint's dtype, or {@link GeneratorOptions#dtype()}). */
  NONE,
  /**
   * int8 per output row ("weight-only" int8, absmax scaling, round to nearest): those weights take half the memory
   * of fp16, and a decode step reads half their bytes, for a small change in the logits (each weight moves by at
   * most half of its row's step, {@code max|row| / 254}); activations, sums and the KV cache stay float32. CPU
   * backend only so far: {@link Device#AUTO} then picks the CPU, and {@link Device#CUDA} is refused with a
   * message.
   */
  INT8
}
