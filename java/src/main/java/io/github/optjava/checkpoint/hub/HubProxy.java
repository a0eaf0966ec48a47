package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.SocketAddress;
import java.net.URI;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The proxy the environment names, read as curl and Python's requests (so huggingface_hub) read it: {@code
 * HTTPS_PROXY} for https URLs, {@code HTTP_PROXY} for http ones (either case), except hosts in {@code NO_PROXY} (names
 * and their subdomains, or {@code *}). Java reads only its own properties ({@code -Dhttps.proxyHost}); those win when
 * set. Proxy credentials in the URL are refused: Java does not send them to an https proxy.
 */
final class HubProxy extends ProxySelector {

  /** A proxy's address, resolved at each request (a name that moves is followed, as curl does). */
  private record Address(String host, int port) {
    Proxy proxy() {
      return new Proxy(Proxy.Type.HTTP, new InetSocketAddress(host, port));
    }
  }

  private final Address https;
  private final Address http;
  private final List<String> noProxy;

  private HubProxy(Address https, Address http, List<String> noProxy) {
    this.https = https;
    this.http = http;
    this.noProxy = noProxy;
  }

  /** The selector for this environment: Java's default when its properties name a proxy or none is set. */
  static ProxySelector selector(Map<String, String> env) {
    boolean javaProperties = System.getProperty("https.proxyHost") != null
        || System.getProperty("http.proxyHost") != null || Boolean.getBoolean("java.net.useSystemProxies");
    Address https = parse(env, "HTTPS_PROXY");
    Address http = parse(env, "HTTP_PROXY");
    if (javaProperties || (https == null && http == null)) {
      return java.util.Objects.requireNonNullElse(ProxySelector.getDefault(), ProxySelector.of(null));
    }
    String no = variable(env, "NO_PROXY");
    List<String> hosts = no == null ? List.of() : Arrays.stream(no.split(","))
        .map(h -> h.trim().toLowerCase(Locale.ROOT).replaceFirst(":\\d+$", "").replaceFirst("^\\*?\\.", ""))
        .filter(h -> !h.isEmpty()).toList();
    return new HubProxy(https, http, hosts);
  }

  @Override
  public List<Proxy> select(URI uri) {
    String host = String.valueOf(uri.getHost()).toLowerCase(Locale.ROOT);
    boolean bypass = noProxy.stream().anyMatch(n -> n.equals("*") || host.equals(n) || host.endsWith("." + n));
    Address p = "https".equalsIgnoreCase(uri.getScheme()) ? https : http;
    return List.of(bypass || p == null ? Proxy.NO_PROXY : p.proxy());
  }

  @Override
  public void connectFailed(URI uri, SocketAddress address, IOException e) {
    // The request fails with its own message (which names the proxies to check).
  }

  private static String variable(Map<String, String> env, String name) {
    String v = env.get(name);
    if (v == null || v.isBlank()) {
      v = env.get(name.toLowerCase(Locale.ROOT));
    }
    return v == null || v.isBlank() ? null : v.trim();
  }

  private static Address parse(Map<String, String> env, String name) {
    String text = variable(env, name);
    if (text == null) {
      return null;
    }
    URI uri;
    try {
      uri = new URI(text.contains("://") ? text : "http://" + text);
    } catch (java.net.URISyntaxException e) {
      throw new CheckpointException(name + " is not a proxy URL such as http://proxy.example:3128", e);
    }
    if (uri.getRawUserInfo() != null) {
      // Not shown: it holds a password.
      throw new CheckpointException(name + " holds a user name or password, which Java does not send to a proxy of "
          + "https connections: use a proxy without authentication, or -Dhttps.proxyHost and an Authenticator");
    }
    if (uri.getHost() == null || !"http".equalsIgnoreCase(uri.getScheme())) {
      throw new CheckpointException(name + " must be an http:// proxy URL such as http://proxy.example:3128, got "
          + Untrusted.quote(text));
    }
    return new Address(uri.getHost(), uri.getPort() < 0 ? 80 : uri.getPort());
  }
}
