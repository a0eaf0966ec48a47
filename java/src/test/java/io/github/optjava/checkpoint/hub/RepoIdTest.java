package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RepoIdTest {

  @ParameterizedTest
  @ValueSource(strings = {
    "facebook/opt-125m", "facebook/opt-6.7b", "EleutherAI/gpt_neo", "a/b", "org_1/Model.v2-x"
  })
  void validIdsParse(String id) {
    Optional<RepoId> repo = RepoId.parse(id);

    assertTrue(repo.isPresent(), id);
    assertEquals(id, repo.get().toString());
  }

  @ParameterizedTest
  @ValueSource(strings = {
    "gpt2", "", "/", "a/b/c", "../b", "a/..", "a/b..c", "a--b/c", "a/b--c", "-a/b", "a/b.",
    "a/b.git", "a b/c", "a/b c", "a/b\n", "a/%62", "a/b:c"
  })
  void invalidIdsDoNot(String id) {
    assertTrue(RepoId.parse(id).isEmpty(), id);
  }

  @Test
  void theNameIsAtMost96Characters() {
    assertTrue(RepoId.parse("org/" + "x".repeat(96)).isPresent());
    assertTrue(RepoId.parse("org/" + "x".repeat(97)).isEmpty());
  }

  @Test
  void cacheFolderNameMatchesHuggingfaceHub() {
    assertEquals("models--facebook--opt-125m", RepoId.parse("facebook/opt-125m").orElseThrow().cacheFolderName());
  }

  @Test
  void theConstructorValidatesToo() {
    assertThrows(IllegalArgumentException.class, () -> new RepoId("..", "x"));
  }
}
