package io.github.optjava.api;

import java.util.List;

/**
 * One completion of a prompt.
 *
 * @param index        0-based index among the prompt's {@code n} completions (or beams), best first for beams
 * @param text         the generated text (with {@code echo}, the prompt's text first); never contains a stop string
 * @param tokenIds     the generated token ids (with {@code echo}, the prompt's ids first, BOS included)
 * @param finishReason why it ended
 * @param logprobs     per token of {@code tokenIds}, when {@code logprobs} or {@code echo} was asked for; else empty
 *                     (a prompt token's log-prob is null where there is none: the first token, or every token of an
 *                     echo prompt that was never read because its request was cancelled while it waited)
 * @param score        beam search: HF's length-normalised beam score (of the hypothesis as searched: where a stop
 *                     string cut it, the search ran on past the cut, as Hugging Face's does); otherwise the sum of
 *                     the generated tokens' log-probs under the distribution they were drawn from
 */
public record Choice(int index, String text, List<Integer> tokenIds, FinishReason finishReason,
    List<TokenLogprob> logprobs, double score) {}
