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
 * The proxy the environment names, read as Python's requests (so huggingface_hub) reads it: {@code HTTPS_PROXY} for
 * https URLs, {@code HTTP_PROXY} for http ones (the lowercase name first), except hosts in {@code NO_PROXY} ({@code *},
 * names and their subdomains, {@code name:port}, IPv4 networks such as {@code 10.0.0.0/8}, IP addresses). Java reads only its own properties ({@code -Dhttps.proxyHost}); those win when
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
        .map(h -> h.trim().toLowerCase(Locale.ROOT).replaceFirst("^\\*?\\.", "").replace("[", "").replace("]", ""))
        .filter(h -> !h.isEmpty()).toList();
    return new HubProxy(https, http, hosts);
  }

  @Override
  public List<Proxy> select(URI uri) {
    String host = String.valueOf(uri.getHost()).toLowerCase(Locale.ROOT).replace("[", "").replace("]", "");
    int port = uri.getPort() >= 0 ? uri.getPort() : "https".equalsIgnoreCase(uri.getScheme()) ? 443 : 80;
    boolean bypass = noProxy.stream().anyMatch(n -> bypasses(n, host, port));
    Address p = "https".equalsIgnoreCase(uri.getScheme()) ? https : http;
    return List.of(bypass || p == null ? Proxy.NO_PROXY : p.proxy());
  }

  /**
   * Whether a NO_PROXY entry covers a host: {@code *}; an IPv4 network ({@code 10.0.0.0/8}); a host with a port
   * (that port only); else the name and its subdomains, or the same IP address.
   */
  static boolean bypasses(String entry, String host, int port) {
    if (entry.equals("*") || entry.equals(host)) {
      return true;
    }
    if (entry.contains("/")) {
      return inIpv4Network(entry, host);
    }
    int colon = entry.lastIndexOf(':');
    if (colon > 0 && entry.indexOf(':') == colon && entry.substring(colon + 1).matches("\\d{1,5}")) { // name:port
      return port == Integer.parseInt(entry.substring(colon + 1)) && bypasses(entry.substring(0, colon), host, -1);
    }
    return host.endsWith("." + entry);
  }

  private static boolean inIpv4Network(String cidr, String host) {
    String[] parts = cidr.split("/", 2);
    long network = ipv4(parts[0]);
    long address = ipv4(host);
    if (network < 0 || address < 0 || !parts[1].matches("\\d{1,2}") || Integer.parseInt(parts[1]) > 32) {
      return false;
    }
    int bits = Integer.parseInt(parts[1]);
    long mask = bits == 0 ? 0 : (0xffffffffL << (32 - bits)) & 0xffffffffL;
    return (network & mask) == (address & mask);
  }

  /** An IPv4 literal as a number, or -1. */
  private static long ipv4(String text) {
    if (!text.matches("\\d{1,3}(\\.\\d{1,3}){3}")) {
      return -1;
    }
    long value = 0;
    for (String octet : text.split("\\.")) {
      int o = Integer.parseInt(octet);
      if (o > 255) {
        return -1;
      }
      value = value << 8 | o;
    }
    return value;
  }

  @Override
  public void connectFailed(URI uri, SocketAddress address, IOException e) {
    // The request fails with its own message (which names the proxies to check).
  }

  /** The lowercase variable first, as Python's urllib prefers it when both are set. */
  private static String variable(Map<String, String> env, String name) {
    String v = env.get(name.toLowerCase(Locale.ROOT));
    if (v == null || v.isBlank()) {
      v = env.get(name);
    }
    return v == null || v.isBlank() ? null : v.trim();
  }

  private static Address parse(Map<String, String> env, String name) {
    String text = variable(env, name);
    if (text == null) {
      return null;
    }
    // By hand rather than java.net.URI, whose getHost() is null for names with '_' (a Docker Compose service).
    int scheme = text.indexOf("://");
    if (scheme >= 0 && !text.substring(0, scheme).equalsIgnoreCase("http")) {
      throw new CheckpointException(name + " must be an http:// proxy URL such as http://proxy.example:3128, got "
          + Untrusted.quote(text));
    }
    String authority = text.substring(scheme < 0 ? 0 : scheme + 3).replaceFirst("/.*$", "");
    if (authority.contains("@")) {
      // Not shown: it holds a password.
      throw new CheckpointException(name + " holds a user name or password, which Java does not send to a proxy of "
          + "https connections: use a proxy without authentication, or -Dhttps.proxyHost and an Authenticator");
    }
    String host = authority;
    int port = 80;
    int colon = authority.lastIndexOf(':');
    if (colon > authority.lastIndexOf(']')) { // a port (an IPv6 literal's colons are inside its brackets)
      host = authority.substring(0, colon);
      String digits = authority.substring(colon + 1);
      if (!digits.matches("\\d{1,5}") || Integer.parseInt(digits) > 65535) {
        throw new CheckpointException(name + " has no valid port: " + Untrusted.quote(text));
      }
      port = Integer.parseInt(digits);
    }
    host = host.replace("[", "").replace("]", "");
    if (host.isEmpty()) {
      throw new CheckpointException(name + " must be an http:// proxy URL such as http://proxy.example:3128, got "
          + Untrusted.quote(text));
    }
    return new Address(host, port);
  }
}
