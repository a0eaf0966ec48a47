package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.tokenizer.TokenizerFixtures.Case;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** Every case of fixtures/tokenizer/cases.jsonl, produced by Hugging Face's GPT2Tokenizer for OPT. */
class OptTokenizerReferenceTest {

  @Test
  void allCasesArePresent() {
    assertEquals(325, TokenizerFixtures.cases().size());
  }

  @TestFactory
  Stream<DynamicTest> encodeMatchesHuggingFace() {
    OptTokenizer tok = TokenizerFixtures.tokenizer();
    return TokenizerFixtures.cases().stream().map(c -> DynamicTest.dynamicTest(c.toString(), () -> {
      assertArrayEquals(c.ids(), tok.encode(c.text()), "ids");
      assertArrayEquals(c.idsWithBos(), tok.encodeWithBos(c.text()), "ids_with_bos");
      List<String> tokens = new ArrayList<>();
      for (int id : c.ids()) {
        tokens.add(tok.token(id));
      }
      assertEquals(c.tokens(), tokens, "tokens");
    }));
  }

  @TestFactory
  Stream<DynamicTest> decodeMatchesHuggingFace() {
    OptTokenizer tok = TokenizerFixtures.tokenizer();
    return TokenizerFixtures.cases().stream().map(c -> DynamicTest.dynamicTest(c.toString(), () -> {
      assertEquals(c.decoded(), tok.decode(c.ids()), "decoded (clean-up)");
      assertEquals(c.decoded(), tok.decode(c.ids(), false, true), "decoded (clean-up, explicit)");
      assertEquals(c.decodedNoCleanup(), tok.decode(c.ids(), false, false), "decoded_no_cleanup");
    }));
  }

  /** The model directory's tokenizer_config.json (OPT's) and config.json change nothing for OPT. */
  @Test
  void modelDirectoryGivesTheSameResults() {
    OptTokenizer fromDir = OptTokenizer.load(TokenizerFixtures.modelDir());
    for (Case c : TokenizerFixtures.cases()) {
      assertArrayEquals(c.ids(), fromDir.encode(c.text()), c.toString());
      assertArrayEquals(c.idsWithBos(), fromDir.encodeWithBos(c.text()), c.toString());
      assertEquals(c.decoded(), fromDir.decode(c.ids()), c.toString());
    }
    assertEquals(50272, fromDir.idLimit());
  }

  @Test
  void optConstants() {
    OptTokenizer tok = TokenizerFixtures.tokenizer();
    assertEquals(50265, tok.vocabSize());
    assertEquals(50272, tok.idLimit());
    assertEquals(2, tok.bosId());
    assertEquals(2, tok.eosId());
    assertEquals(1, tok.padId());
    assertEquals("</s>", tok.token(2));
    assertEquals("<pad>", tok.token(1));
    assertEquals("Ġthe", tok.token(5));
    assertEquals("<mask>", tok.token(50264));
  }

  /** Examples written in transformers' own tests (test_tokenization_gpt2.py, test_modeling_opt.py). */
  @Test
  void transformersTestExpectations() {
    OptTokenizer tok = TokenizerFixtures.tokenizer();
    assertArrayEquals(new int[] {2, 250, 1345, 9, 10, 4758}, tok.encodeWithBos("A photo of a cat"));
    assertArrayEquals(new int[] {31414, 232, 328}, tok.encode("Hello world!"));
  }
}
