package io.github.optjava.api;

import java.util.Map;

/**
 * The log-probability of one token and, when asked for, the most likely alternatives at that step.
 *
 * @param tokenId the token
 * @param text    its text (byte-level pieces that are not whole UTF-8 characters show as U+FFFD)
 * @param logprob natural-log probability; {@code null} for the first prompt token, which has no context
 * @param top     the {@code logprobs} most likely tokens at that step, text → log-prob, most likely
 *                first; empty when not asked for. Keyed by text, as OpenAI's {@code top_logprobs}: two tokens that
 *                decode to the same text (two U+FFFD pieces, say) show as one, the likelier
 *                ({@link SamplingParams#logprobs} says which distribution these are of)
 */
public record TokenLogprob(int tokenId, String text, Double logprob, Map<String, Double> top) {}
