package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

/**
 * Draft proposals: the tokens after an earlier occurrence of the last 2 (else 1) tokens, the most recent one with
 * enough tokens after it, else the earliest.
 */
class PromptLookupTest {

  @Test
  void proposesWhatFollowedTheMostRecentOccurrenceOfTheLongestMatch() {
    int[] t = {2, 5, 6, 7, 8, 5, 6, 9, 1, 5, 6, 0, 0}; // capacity past the length, as a sequence's array
    // last 2 tokens (5, 6) occur at 1 and 5: the most recent (5) is followed by 9, 1, 5, 6
    assertArrayEquals(new int[] {9, 1, 5}, PromptLookup.propose(t, 11, 3));
    assertArrayEquals(new int[] {7, 8, 5, 6, 9, 1, 5, 6}, PromptLookup.propose(t, 11, 10),
        "not 4 tokens after the most recent: the 8 after the earliest, no further than the length");
    assertArrayEquals(new int[] {}, PromptLookup.propose(t, 11, 0));
  }

  @Test
  void fallsBackToOneTokenAndToNothing() {
    int[] t = {2, 4, 8, 3, 8};
    // (3, 8) never occurred before; 8 did, at 2, followed by 3, 8
    assertArrayEquals(new int[] {3, 8}, PromptLookup.propose(t, 5, 4));
    assertArrayEquals(new int[] {}, PromptLookup.propose(new int[] {2, 4, 8, 3}, 4, 4), "3 never occurred before");
    assertArrayEquals(new int[] {}, PromptLookup.propose(new int[] {2}, 1, 4));
    assertArrayEquals(new int[] {7}, PromptLookup.propose(new int[] {7, 7}, 2, 4), "a repeated token repeats");
    assertArrayEquals(new int[] {9, 9, 9}, PromptLookup.propose(new int[] {2, 9, 9, 9, 9, 9}, 6, 3),
        "in a loop, an occurrence with a whole draft after it");
  }
}
