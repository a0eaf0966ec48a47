package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.Console;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where and how models are fetched from the Hugging Face Hub. {@link #fromEnvironment()} reads the
 * same environment variables as Python's {@code huggingface_hub}, so both share one cache and one
 * login:
 *
 * <ul>
 *   <li>cache: {@code HF_HUB_CACHE}, else {@code $HF_HOME/hub}, else {@code
 *       $XDG_CACHE_HOME/huggingface/hub}, else {@code ~/.cache/huggingface/hub};
 *   <li>endpoint: {@code HF_ENDPOINT}, else {@code https://huggingface.co};
 *   <li>token: {@code HF_TOKEN}, else the file {@code HF_TOKEN_PATH} or {@code $HF_HOME/token}
 *       (written by {@code huggingface-cli login}); sent as {@code Authorization: Bearer};
 *   <li>offline: {@code HF_HUB_OFFLINE} is one of 1, ON, YES, TRUE (any case): never use the network;
 *   <li>read timeout: {@code HF_HUB_DOWNLOAD_TIMEOUT} seconds (default 30);
 *   <li>progress bar on stderr: only on a terminal, and not when {@code HF_HUB_DISABLE_PROGRESS_BARS}
 *       is true.
 * </ul>
 *
 * @param cacheDir the hub cache root (the folder holding {@code models--org--name} folders)
 * @param endpoint the hub's base URL, without a trailing slash
 * @param token an access token, or {@code null} for anonymous access
 * @param offline whether to resolve from the cache only, without any network request
 * @param connectTimeout how long to wait for a TCP/TLS connection
 * @param readTimeout how long to wait for a response, and for each chunk of a download
 * @param progressBar whether to draw a download progress bar on stderr
 */
public record HubSettings(
    Path cacheDir,
    URI endpoint,
    String token,
    boolean offline,
    Duration connectTimeout,
    Duration readTimeout,
    boolean progressBar) {

  /** The public Hugging Face Hub. */
  public static final URI DEFAULT_ENDPOINT = URI.create("https://huggingface.co");

  static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(10);
  // huggingface_hub uses 10 s; large-file CDNs sometimes pause longer, and a spurious timeout costs
  // a whole restart of a multi-GB download.
  static final Duration DEFAULT_READ_TIMEOUT = Duration.ofSeconds(30);

  private static final Logger LOG = LoggerFactory.getLogger(HubSettings.class);
  private static final Set<String> TRUE_VALUES = Set.of("1", "ON", "YES", "TRUE");

  /** Validates and normalises (absolute cache dir, endpoint without trailing slash, blank token = none). */
  public HubSettings {
    Objects.requireNonNull(cacheDir, "cacheDir");
    Objects.requireNonNull(endpoint, "endpoint");
    Objects.requireNonNull(connectTimeout, "connectTimeout");
    Objects.requireNonNull(readTimeout, "readTimeout");
    cacheDir = cacheDir.toAbsolutePath().normalize();
    endpoint = normaliseEndpoint(endpoint.toString(), "endpoint");
    token = cleanToken(token);
    if (connectTimeout.isNegative() || connectTimeout.isZero()) {
      throw new IllegalArgumentException("connectTimeout must be positive: " + connectTimeout);
    }
    if (readTimeout.isNegative() || readTimeout.isZero()) {
      throw new IllegalArgumentException("readTimeout must be positive: " + readTimeout);
    }
  }

  /** Online, anonymous, default timeouts, no progress bar: a starting point for code and tests. */
  public static HubSettings of(Path cacheDir, URI endpoint) {
    return new HubSettings(
        cacheDir, endpoint, null, false, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, false);
  }

  /** Settings from this process's environment, as huggingface_hub would read them. */
  public static HubSettings fromEnvironment() {
    return fromEnvironment(System.getenv(), Path.of(System.getProperty("user.home")), isTerminal());
  }

  /** {@link #fromEnvironment()} with the environment, home directory and terminal check injected. */
  static HubSettings fromEnvironment(Map<String, String> env, Path userHome, boolean onTerminal) {
    String xdgCache = nonBlank(env.get("XDG_CACHE_HOME"));
    Path defaultHome =
        (xdgCache != null ? expandUser(xdgCache, userHome) : userHome.resolve(".cache"))
            .resolve("huggingface");
    String hfHomeVar = nonBlank(env.get("HF_HOME"));
    Path hfHome = hfHomeVar != null ? expandUser(hfHomeVar, userHome) : defaultHome;

    String cacheVar = firstNonBlank(env.get("HF_HUB_CACHE"), env.get("HUGGINGFACE_HUB_CACHE"));
    Path cacheDir = cacheVar != null ? expandUser(cacheVar, userHome) : hfHome.resolve("hub");

    String endpointVar = nonBlank(env.get("HF_ENDPOINT"));
    URI endpoint =
        endpointVar != null ? normaliseEndpoint(endpointVar, "HF_ENDPOINT") : DEFAULT_ENDPOINT;

    String token = cleanToken(firstNonBlank(env.get("HF_TOKEN"), env.get("HUGGING_FACE_HUB_TOKEN")));
    if (token == null) {
      String tokenPathVar = nonBlank(env.get("HF_TOKEN_PATH"));
      token =
          readTokenFile(
              tokenPathVar != null ? expandUser(tokenPathVar, userHome) : hfHome.resolve("token"));
    }

    boolean offline = isTrue(env.get("HF_HUB_OFFLINE")) || isTrue(env.get("TRANSFORMERS_OFFLINE"));
    Duration readTimeout =
        parseSeconds(env.get("HF_HUB_DOWNLOAD_TIMEOUT"), "HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_READ_TIMEOUT);
    boolean progressBar = onTerminal && !isTrue(env.get("HF_HUB_DISABLE_PROGRESS_BARS"));
    return new HubSettings(
        cacheDir, endpoint, token, offline, DEFAULT_CONNECT_TIMEOUT, readTimeout, progressBar);
  }

  /** A copy with this access token ({@code null} for anonymous access). */
  public HubSettings withToken(String newToken) {
    return new HubSettings(
        cacheDir, endpoint, newToken, offline, connectTimeout, readTimeout, progressBar);
  }

  /** A copy with offline mode on or off. */
  public HubSettings withOffline(boolean newOffline) {
    return new HubSettings(
        cacheDir, endpoint, token, newOffline, connectTimeout, readTimeout, progressBar);
  }

  /** A copy with these timeouts. */
  public HubSettings withTimeouts(Duration newConnectTimeout, Duration newReadTimeout) {
    return new HubSettings(
        cacheDir, endpoint, token, offline, newConnectTimeout, newReadTimeout, progressBar);
  }

  /** A copy with the progress bar on or off. */
  public HubSettings withProgressBar(boolean newProgressBar) {
    return new HubSettings(
        cacheDir, endpoint, token, offline, connectTimeout, readTimeout, newProgressBar);
  }

  /** Like the record's default, but never prints the token (settings end up in logs). */
  @Override
  public String toString() {
    return "HubSettings[cacheDir=" + cacheDir + ", endpoint=" + endpoint
        + ", token=" + (token == null ? "none" : "***") + ", offline=" + offline
        + ", connectTimeout=" + connectTimeout + ", readTimeout=" + readTimeout
        + ", progressBar=" + progressBar + "]";
  }

  static boolean isTrue(String value) {
    return value != null && TRUE_VALUES.contains(value.trim().toUpperCase(Locale.ROOT));
  }

  // A rejected value is shown quoted and cut: an environment variable may hold a newline or kilobytes.
  private static URI normaliseEndpoint(String text, String what) {
    String trimmed = text.trim();
    while (trimmed.endsWith("/")) {
      trimmed = trimmed.substring(0, trimmed.length() - 1);
    }
    URI uri;
    try {
      uri = new URI(trimmed);
    } catch (java.net.URISyntaxException e) {
      throw new CheckpointException(what + " is not a valid URL: " + Untrusted.quote(text), e);
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!(scheme.equals("http") || scheme.equals("https")) || uri.getHost() == null
        || uri.getRawQuery() != null || uri.getRawFragment() != null) {
      throw new CheckpointException(
          what + " must be an http(s) base URL such as https://huggingface.co, got " + Untrusted.quote(text));
    }
    if (uri.getRawUserInfo() != null) {
      // Not shown: it may hold a password. It would not be sent (requests carry HF_TOKEN), and messages show the URL.
      throw new CheckpointException(what + " must not hold a user name or password (" + scheme + "://" + uri.getHost()
          + (uri.getPort() < 0 ? "" : ":" + uri.getPort()) + " has one): give the access token in HF_TOKEN instead");
    }
    return uri;
  }

  // Same cleaning as huggingface_hub's _clean_token: a token file often ends with a newline.
  private static String cleanToken(String token) {
    if (token == null) {
      return null;
    }
    String cleaned = token.replace("\r", "").replace("\n", "").trim();
    for (int i = 0; i < cleaned.length(); i++) {
      char ch = cleaned.charAt(i);
      if (ch < 0x20 || ch == 0x7f || ch > 0x7e) {
        // The token itself is never shown: it is a secret, and its characters could drive a terminal.
        throw new CheckpointException("The Hugging Face access token (HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the token "
            + "file) has a character that cannot be sent in an HTTP header at position " + (i + 1) + " of "
            + cleaned.length() + " (code " + (int) ch + "); copy the token again from "
            + "https://huggingface.co/settings/tokens");
      }
    }
    return cleaned.isEmpty() ? null : cleaned;
  }

  private static String readTokenFile(Path file) {
    if (!Files.isRegularFile(file)) {
      return null;
    }
    try {
      return cleanToken(Files.readString(file, StandardCharsets.UTF_8));
    } catch (IOException | RuntimeException e) {
      // A broken token file must not stop anonymous downloads of public models.
      LOG.warn("Could not read the Hugging Face token file {}: {}", file, e.toString());
      return null;
    }
  }

  private static Duration parseSeconds(String value, String variable, Duration fallback) {
    String text = nonBlank(value);
    if (text == null) {
      return fallback;
    }
    double seconds;
    try {
      seconds = Double.parseDouble(text);
    } catch (NumberFormatException e) {
      throw new CheckpointException(variable + " must be a number of seconds, got " + Untrusted.quote(value));
    }
    if (!(seconds > 0) || Double.isInfinite(seconds)) {
      throw new CheckpointException(
          variable + " must be a positive number of seconds, got " + Untrusted.quote(value));
    }
    return Duration.ofMillis(Math.max(1, Math.round(seconds * 1000)));
  }

  private static Path expandUser(String path, Path userHome) {
    if (path.equals("~")) {
      return userHome;
    }
    if (path.startsWith("~/")) {
      return userHome.resolve(path.substring(2));
    }
    return Path.of(path);
  }

  private static String nonBlank(String value) {
    return value == null || value.isBlank() ? null : value;
  }

  private static String firstNonBlank(String first, String second) {
    String a = nonBlank(first);
    return a != null ? a : nonBlank(second);
  }

  // Java 22+ returns a Console even when redirected; there, Console.isTerminal() tells the truth.
  private static boolean isTerminal() {
    Console console = System.console();
    if (console == null) {
      return false;
    }
    try {
      return (Boolean) Console.class.getMethod("isTerminal").invoke(console);
    } catch (ReflectiveOperationException e) {
      return true; // Java 17-21: a non-null console means stdin and stdout are a terminal
    }
  }
}
