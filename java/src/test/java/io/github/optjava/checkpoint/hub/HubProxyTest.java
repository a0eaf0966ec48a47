package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.URI;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * HTTPS_PROXY, HTTP_PROXY and NO_PROXY as Python's requests reads them (session 27's review: they were ignored, so a
 * user behind a proxy could not download while huggingface_hub could).
 */
class HubProxyTest extends FakeHubTestBase {

  private static Proxy only(ProxySelector s, String url) {
    return s.select(URI.create(url)).get(0);
  }

  @Test
  void theVariablesChooseTheProxyPerSchemeExceptForNoProxyHosts() {
    ProxySelector s = HubProxy.selector(Map.of("HTTPS_PROXY", "http://secure.proxy:3128", "http_proxy",
        "plain.proxy:8080", "NO_PROXY", "localhost, .internal.example,cdn.example:443"));
    assertEquals(new InetSocketAddress("secure.proxy", 3128), only(s, "https://huggingface.co/api").address());
    assertEquals(new InetSocketAddress("plain.proxy", 8080), only(s, "http://mirror.example/x").address());
    for (String direct : new String[] {"http://localhost:8765/x", "https://hub.internal.example/x",
        "https://internal.example/x", "https://cdn.example/blob"}) {
      assertEquals(Proxy.NO_PROXY, only(s, direct), direct);
    }
    assertEquals(Proxy.NO_PROXY, only(HubProxy.selector(Map.of("HTTPS_PROXY", "http://p:1", "NO_PROXY", "*")),
        "https://huggingface.co/"));
    assertEquals(Proxy.NO_PROXY, only(HubProxy.selector(Map.of()), "https://huggingface.co/"));
  }

  /** Session 27's review of the first version: each of these was read otherwise than by requests. */
  @Test
  void namesWithUnderscoresNetworksPortsIpv6AndLowercaseFirst() {
    ProxySelector s = HubProxy.selector(Map.of("HTTPS_PROXY", "http://UPPER:1", "https_proxy", "http://squid_proxy:3128",
        "NO_PROXY", "10.0.0.0/8,::1,hub.local:8443"));
    assertEquals(new InetSocketAddress("squid_proxy", 3128), only(s, "https://huggingface.co/").address());
    assertEquals(Proxy.NO_PROXY, only(s, "https://10.1.2.3/x"));
    assertEquals(Proxy.NO_PROXY, only(s, "https://[::1]:8080/x"));
    assertEquals(Proxy.NO_PROXY, only(s, "https://hub.local:8443/x"));
    assertEquals(new InetSocketAddress("squid_proxy", 3128), only(s, "https://hub.local/x").address(), "another port");
    assertEquals(new InetSocketAddress("squid_proxy", 3128), only(s, "https://11.1.2.3/x").address());
    assertFalse(HubProxy.bypasses("example.com", "badexample.com", 443), "a suffix only at a dot");
  }

  @Test
  void aProxyWithAPasswordOrAnotherSchemeIsRefusedWithoutShowingThePassword() {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> HubProxy.selector(Map.of("HTTPS_PROXY", "http://me:s3cret@proxy:3128")));
    assertTrue(e.getMessage().startsWith("HTTPS_PROXY holds a user name or password"), e.getMessage());
    assertFalse(e.getMessage().contains("s3cret"), e.getMessage());
    assertThrows(CheckpointException.class, () -> HubProxy.selector(Map.of("HTTPS_PROXY", "socks5://proxy:1080")));
  }

  /** The fake hub as the proxy of an endpoint that does not resolve: every request goes through it. */
  @Test
  void requestsGoThroughTheProxy() {
    HubSettings settings = HubSettings.of(cache, URI.create("http://hub.example.invalid"));
    HubClient client = new HubClient(settings, HubProxy.selector(Map.of("HTTP_PROXY", hub.endpoint().toString())));
    HubClient.RepoInfo info = client.repoInfo(new RepoId("facebook", "opt-tiny"), "main");
    assertEquals(FakeHub.SHA, info.sha());
    assertEquals("hub.example.invalid", hub.requests().get(0).host());
  }
}
