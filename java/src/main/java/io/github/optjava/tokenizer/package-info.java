/**
 * The OPT tokenizer: GPT-2 byte-level BPE with OPT's special tokens, equal to Hugging Face's.
 *
 * <p>{@link io.github.optjava.tokenizer.OptTokenizer} encodes and decodes,
 * {@link io.github.optjava.tokenizer.IncrementalDecoder} decodes a stream of generated ids, and
 * {@link io.github.optjava.tokenizer.TokenizerBenchmark} measures throughput.
 */
package io.github.optjava.tokenizer;
