package io.github.optjava.checkpoint.hub;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandler;
import java.net.http.HttpResponse.BodyHandlers;
import java.net.http.HttpResponse.BodySubscriber;
import java.net.http.HttpResponse.BodySubscribers;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * The few hub HTTP calls a download needs: the repository listing, a file's metadata, and the file
 * itself. Mirrors huggingface_hub's requests:
 *
 * <ul>
 *   <li>{@code GET {endpoint}/api/models/{repo}/revision/{revision}}: commit sha and file list;
 *   <li>{@code HEAD {endpoint}/{repo}/resolve/{revision}/{file}} without following redirects
 *       (except relative ones, which mean a renamed repository): {@code X-Repo-Commit}, the ETag
 *       ({@code X-Linked-Etag}, the sha256, for LFS files), the size ({@code X-Linked-Size} or
 *       {@code Content-Length}), and for LFS files the CDN location in {@code Location};
 *   <li>{@code GET} of that location, following redirects.
 * </ul>
 *
 * The access token is sent only to the endpoint's own host: a CDN gets signed URLs instead, and must
 * never see the user's token.
 */
final class HubClient {

  /** A revision's commit and the names of all its files. */
  record RepoInfo(String sha, Set<String> files) {}

  /** What a HEAD on a file's resolve URL tells: enough to name, fetch and verify its blob. */
  record FileMetadata(String commit, String etag, long size, URI location) {
    /** Whether the ETag is a sha256 (an LFS file), so the content can be verified against it. */
    boolean etagIsSha256() {
      return etag.matches("[0-9a-f]{64}");
    }

    /** Whether the ETag is a git blob sha1 (a regular file: config, tokenizer), so the content can be verified. */
    boolean etagIsGitSha1() {
      return etag.matches("[0-9a-f]{40}");
    }
  }

  private static final int MAX_REDIRECTS = 10;

  /**
   * How many read timeouts a request for metadata (the listing, a file's HEAD) may take in all, after the connect
   * timeout (2 min 10 s by default): a server that trickles its answer a byte at a time never trips the read timeout,
   * and held the caller for hours (session 27's review).
   */
  static final int METADATA_DEADLINE_READ_TIMEOUTS = 4;

  /** The largest listing accepted; read whole. OPT's has a few dozen files (the cap of a model's small files). */
  static final long MAX_LISTING_BYTES = Untrusted.MAX_SMALL_FILE_BYTES;
  private static final String USER_AGENT =
      "opt-java; java/" + Runtime.version().feature();

  private final HubSettings settings;
  private final HttpClient http;

  HubClient(HubSettings settings) {
    this(settings, HubProxy.selector(System.getenv()));
  }

  /** With the proxies that {@code proxies} chooses (tests: an environment of their own). */
  HubClient(HubSettings settings, java.net.ProxySelector proxies) {
    this.settings = settings;
    // Redirects are followed by hand: HttpClient would forward the Authorization header to a CDN.
    this.http =
        HttpClient.newBuilder()
            .connectTimeout(settings.connectTimeout())
            .followRedirects(HttpClient.Redirect.NEVER)
            .proxy(proxies)
            .build();
  }

  /** The commit a revision points to and its file list. */
  RepoInfo repoInfo(RepoId repo, String revision) {
    URI uri = endpointUri("api/models/" + repo + "/revision/" + encode(revision, false));
    HubHttpErrors.Context context = context(repo, revision, null);
    HttpResponse<byte[]> response =
        send(uri, "GET", info -> new BoundedBody(MAX_LISTING_BYTES), true, context, metadataDeadline());
    requireSuccess(response, context);
    JsonNode root;
    try {
      root = Untrusted.JSON.readTree(response.body());
    } catch (IOException e) {
      // The parser's message quotes the server's text (a duplicate key whole): cut and cleaned.
      throw notAHub(uri, "its answer is not valid JSON"
          + (e instanceof JsonProcessingException j ? " (" + Untrusted.parserMessage(j) + ")" : ""), e);
    }
    JsonNode sha = root == null ? null : root.get("sha");
    JsonNode siblings = root == null ? null : root.get("siblings");
    if (sha == null || !sha.isTextual() || siblings == null || !siblings.isArray()) {
      throw notAHub(uri, "its answer lacks 'sha' or 'siblings'", null);
    }
    Set<String> files = new LinkedHashSet<>();
    for (JsonNode sibling : siblings) {
      JsonNode name = sibling.get("rfilename");
      if (name != null && name.isTextual()) {
        files.add(name.asText());
      }
    }
    return new RepoInfo(sha.asText(), files);
  }

  /** Metadata of one file at one commit (a HEAD request). */
  FileMetadata fileMetadata(RepoId repo, String commit, String file) {
    URI uri = resolveUri(repo, commit, file);
    HubHttpErrors.Context context = context(repo, commit, file);
    HttpResponse<Void> response =
        send(uri, "HEAD", BodyHandlers.discarding(), false, context, metadataDeadline());
    int status = response.statusCode();
    Optional<String> location = response.headers().firstValue("Location");
    boolean redirect = isRedirect(status) && location.isPresent();
    if (!redirect) {
      requireSuccess(response, context);
    }
    String commitHeader = header(response, "X-Repo-Commit");
    String etag = normaliseEtag(
        Optional.ofNullable(header(response, "X-Linked-Etag")).orElse(header(response, "ETag")));
    String sizeText = Optional.ofNullable(header(response, "X-Linked-Size"))
        .orElse(header(response, "Content-Length"));
    if (commitHeader == null || etag == null || sizeText == null) {
      // A proxy or captive portal answers 200 without these; huggingface_hub fails the same way.
      throw notAHub(uri, "the answer lacks X-Repo-Commit, ETag or size headers", null);
    }
    long size;
    try {
      size = Long.parseLong(sizeText.trim());
    } catch (NumberFormatException e) {
      throw notAHub(uri, "its size header is not a number: " + Untrusted.quote(sizeText), e);
    }
    if (size < 0) {
      throw notAHub(uri, "its size header is negative: " + size, null);
    }
    URI downloadFrom = redirect ? resolveLocation(response.uri(), location.get()) : response.uri();
    return new FileMetadata(commitHeader.trim(), etag, size, downloadFrom);
  }

  /**
   * GETs a file's content from the location given by {@link #fileMetadata}, feeding a 200 answer's
   * body to {@code sink}; returns once the body is complete.
   */
  HttpResponse<Long> download(
      RepoId repo, String commit, String file, URI location, BodySubscriber<Long> sink) {
    HubHttpErrors.Context context = context(repo, commit, file);
    // The bytes as stored were asked for (Accept-Encoding: identity); a body encoded anyway (a proxy's gzip) is not
    // fed to the file, and is named below rather than failing as a connection that "closed early".
    java.util.concurrent.atomic.AtomicReference<String> encoded = new java.util.concurrent.atomic.AtomicReference<>();
    BodyHandler<Long> onlyOk = info -> {
      String encoding = info.headers().firstValue("Content-Encoding").orElse("identity").trim();
      if (info.statusCode() == 200 && !encoding.equalsIgnoreCase("identity")) {
        encoded.set(encoding);
        return BodySubscribers.replacing(null);
      }
      return info.statusCode() == 200 ? sink : BodySubscribers.replacing(null);
    };
    HttpResponse<Long> response = send(location, "GET", onlyOk, true, context, null);
    if (encoded.get() != null) {
      throw new CheckpointException("The download of '" + file + "' from " + HubHttpErrors.withoutQuery(response.uri())
          + " came encoded (Content-Encoding: " + Untrusted.shown(encoded.get()) + ") though asked for as stored: "
          + "a proxy may be rewriting downloads. Nothing was stored.");
    }
    if (response.statusCode() / 100 == 2 && response.statusCode() != 200) {
      // 206 or 204 would need handling we do not do; say so rather than store a wrong file.
      throw new CheckpointException("Unexpected HTTP " + response.statusCode() + " while "
          + "downloading '" + file + "' from " + HubHttpErrors.withoutQuery(response.uri()));
    }
    if (response.statusCode() / 100 != 2 && !sameOrigin(settings.endpoint(), response.uri())) {
      // The hub granted access and sent us to its file server: a refusal there is not about the repository.
      throw HubHttpErrors.forFileServer(response, context);
    }
    requireSuccess(response, context);
    return response;
  }

  private Duration metadataDeadline() {
    // Counted from before the connection: the connect timeout on top (a slow proxy's connect is not the answer's).
    return settings.readTimeout().multipliedBy(METADATA_DEADLINE_READ_TIMEOUTS).plus(settings.connectTimeout());
  }

  /** Whether a request to this URI carries the token: only the endpoint's own scheme, host and port. */
  boolean sendsTokenTo(URI uri) {
    return settings.token() != null && sameOrigin(settings.endpoint(), uri);
  }

  /** Whether {@code uri} has the endpoint's scheme, host and port. */
  private static boolean sameOrigin(URI endpoint, URI uri) {
    return endpoint.getScheme().equalsIgnoreCase(uri.getScheme())
        && endpoint.getHost().equalsIgnoreCase(Objects.toString(uri.getHost(), ""))
        && effectivePort(endpoint) == effectivePort(uri);
  }

  URI resolveUri(RepoId repo, String revision, String file) {
    return endpointUri(repo + "/resolve/" + encode(revision, false) + "/" + encode(file, true));
  }

  /**
   * Sends a request, following redirects by hand: all of them when {@code followAll}, else only
   * relative ones (a renamed repository), leaving an absolute one (a CDN) for the caller. Bodies of
   * non-2xx answers are discarded, so the handler only sees successful content.
   */
  private <T> HttpResponse<T> send(URI uri, String method, BodyHandler<T> handler, boolean followAll,
      HubHttpErrors.Context c, Duration deadline) {
    BodyHandler<T> onlySuccess =
        info -> info.statusCode() / 100 == 2 ? handler.apply(info) : BodySubscribers.replacing(null);
    URI current = uri;
    for (int hop = 0; ; hop++) {
      HttpRequest.Builder request =
          HttpRequest.newBuilder(current)
              .header("User-Agent", USER_AGENT)
              // The size check needs the bytes as stored, not a compressed stream.
              .header("Accept-Encoding", "identity")
              .method(method, HttpRequest.BodyPublishers.noBody());
      if (sendsTokenTo(current)) {
        request.header("Authorization", "Bearer " + settings.token());
      }
      HttpResponse<T> response = sendOnce(request.build(), onlySuccess, c, deadline);
      Optional<String> location = response.headers().firstValue("Location");
      if (!isRedirect(response.statusCode()) || location.isEmpty()) {
        return response;
      }
      // Python follows only location headers without a host here; an absolute one to the same
      // host is still treated as the download location, which is equivalent.
      if (!followAll && parseLocation(current, location.get()).isAbsolute()) {
        return response;
      }
      URI target = resolveLocation(current, location.get());
      if (hop >= MAX_REDIRECTS) {
        throw new CheckpointException("Too many redirects from " + HubHttpErrors.withoutQuery(uri));
      }
      current = target;
    }
  }

  private <T> HttpResponse<T> sendOnce(
      HttpRequest request, BodyHandler<T> handler, HubHttpErrors.Context c, Duration deadline) {
    ExchangeWatch watch = new ExchangeWatch(settings.connectTimeout(), settings.readTimeout(), deadline);
    String url = HubHttpErrors.withoutQuery(request.uri());
    try {
      return watch.await(http.sendAsync(request, watch.track(handler)));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CheckpointException("Interrupted while " + (watch.answered() ? "receiving " : "requesting ")
          + url + ".", e);
    } catch (BoundedBody.TooLargeException e) {
      throw notAHub(request.uri(), e.getMessage(), e);
    } catch (IOException e) {
      // The JDK's message may hold the server's own text (an invalid status line, whole): quoted.
      if (watch.answered()) {
        throw new HubUnavailableException(e instanceof HttpTimeoutException
            ? "The connection stalled while receiving " + url + ": " + e.getMessage() + "."
            : "The connection broke while receiving " + url + " ("
                + Untrusted.quote(String.valueOf(e.getMessage())) + ").", e);
      }
      throw new HubUnavailableException(
          "Cannot reach " + origin(request.uri()) + " for " + c.repo() + " ("
              + Untrusted.quote(e.toString()) + "). Check the network connection (and HF_ENDPOINT, "
              + "proxies), or set HF_HUB_OFFLINE=1 to use models already in the cache.", e);
    }
  }

  private void requireSuccess(HttpResponse<?> response, HubHttpErrors.Context context) {
    if (response.statusCode() / 100 != 2) {
      throw HubHttpErrors.forStatus(response, context);
    }
  }

  private HubHttpErrors.Context context(RepoId repo, String revision, String file) {
    return new HubHttpErrors.Context(
        settings.endpoint(), repo, revision, file, settings.token() != null);
  }

  private HubUnavailableException notAHub(URI uri, String problem, Throwable cause) {
    return new HubUnavailableException(
        "Unexpected answer from " + HubHttpErrors.withoutQuery(uri) + ": " + problem + ". Is HF_ENDPOINT ("
            + settings.endpoint() + ") a Hugging Face Hub, and is no proxy or firewall rewriting "
            + "the traffic?", cause);
  }

  private URI endpointUri(String path) {
    return URI.create(settings.endpoint() + "/" + path);
  }

  private URI resolveLocation(URI base, String location) {
    URI target = base.resolve(parseLocation(base, location));
    String scheme = Objects.toString(target.getScheme(), "").toLowerCase(Locale.ROOT);
    if (!(scheme.equals("http") || scheme.equals("https")) || target.getHost() == null) {
      throw notAHub(base, "it redirects to " + Untrusted.quote(location) + ", which is not an http(s) URL", null);
    }
    return target;
  }

  private URI parseLocation(URI base, String location) {
    try {
      return new URI(location.trim());
    } catch (URISyntaxException e) {
      throw notAHub(base, "it redirects to a malformed location " + Untrusted.quote(location), e);
    }
  }

  private static boolean isRedirect(int status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
  }

  private static String header(HttpResponse<?> response, String name) {
    return response.headers().firstValue(name).filter(v -> !v.isBlank()).orElse(null);
  }

  /** {@code W/"abc"} or {@code "abc"} to {@code abc}, as huggingface_hub's _normalize_etag. */
  static String normaliseEtag(String etag) {
    if (etag == null) {
      return null;
    }
    String value = etag.trim();
    if (value.startsWith("W/")) {
      value = value.substring(2);
    }
    value = value.replace("\"", "");
    return value.isEmpty() ? null : value;
  }

  /**
   * Percent-encodes like Python's {@code urllib.parse.quote}: unreserved characters stay, and
   * {@code /} stays only in file paths (revisions such as {@code refs/pr/1} are one path segment).
   */
  static String encode(String text, boolean keepSlash) {
    StringBuilder out = new StringBuilder();
    for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
      char ch = (char) (b & 0xff);
      if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
          || ch == '-' || ch == '.' || ch == '_' || ch == '~' || (keepSlash && ch == '/')) {
        out.append(ch);
      } else {
        out.append('%').append(String.format(Locale.ROOT, "%02X", b & 0xff));
      }
    }
    return out.toString();
  }

  private static String origin(URI uri) {
    return uri.getScheme() + "://" + uri.getRawAuthority();
  }

  private static int effectivePort(URI uri) {
    if (uri.getPort() != -1) {
      return uri.getPort();
    }
    return "https".equalsIgnoreCase(uri.getScheme()) ? 443 : 80;
  }
}
