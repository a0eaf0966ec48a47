package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** URL building, ETag normalisation and the rule for where the token goes. */
class HubClientTest {

  private final HubSettings settings =
      HubSettings.of(Path.of("unused-cache"), URI.create("https://hub.example:8443/mirror/")).withToken("t");
  private final HubClient client = new HubClient(settings);

  @Test
  void resolveUrlsQuoteTheRevisionAsOneSegmentAndKeepFileSlashes() {
    RepoId repo = RepoId.parse("facebook/opt-125m").orElseThrow();

    assertEquals(
        URI.create("https://hub.example:8443/mirror/facebook/opt-125m/resolve/refs%2Fpr%2F1/sub/a%20b.json"),
        client.resolveUri(repo, "refs/pr/1", "sub/a b.json"));
  }

  @Test
  void encodeKeepsOnlyUnreservedCharacters() {
    assertEquals("a-b_c.d~e%2Ff", HubClient.encode("a-b_c.d~e/f", false));
    assertEquals("%C3%A9/x", HubClient.encode("é/x", true));
  }

  @Test
  void etagsLoseQuotesAndTheWeakPrefix() {
    assertEquals("abc", HubClient.normaliseEtag("\"abc\""));
    assertEquals("abc", HubClient.normaliseEtag("W/\"abc\""));
    assertEquals("abc", HubClient.normaliseEtag(" abc "));
    assertNull(HubClient.normaliseEtag("\"\""));
    assertNull(HubClient.normaliseEtag(null));
  }

  @Test
  void theTokenGoesOnlyToTheEndpointsSchemeHostAndPort() {
    assertTrue(client.sendsTokenTo(URI.create("https://hub.example:8443/api/x")));
    assertTrue(client.sendsTokenTo(URI.create("https://HUB.example:8443/other")));
    assertFalse(client.sendsTokenTo(URI.create("https://cdn.example:8443/x")));
    assertFalse(client.sendsTokenTo(URI.create("https://hub.example/x")));
    assertFalse(client.sendsTokenTo(URI.create("http://hub.example:8443/x")));
    assertFalse(new HubClient(settings.withToken(null)).sendsTokenTo(URI.create("https://hub.example:8443/x")));
  }

  @Test
  void defaultPortsCompareEqualToExplicitOnes() {
    HubClient defaultPort = new HubClient(
        HubSettings.of(Path.of("unused-cache"), URI.create("https://huggingface.co")).withToken("t"));

    assertTrue(defaultPort.sendsTokenTo(URI.create("https://huggingface.co:443/api")));
    assertFalse(defaultPort.sendsTokenTo(URI.create("https://cdn-lfs.huggingface.co/x")));
  }
}
