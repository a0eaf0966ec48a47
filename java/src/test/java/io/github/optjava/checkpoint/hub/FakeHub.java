package io.github.optjava.checkpoint.hub;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * A Hugging Face Hub stand-in on 127.0.0.1 serving one model repository, answering like the real
 * hub: the {@code /api/models/...} listing, HEAD and GET on {@code /{repo}/resolve/{rev}/{file}}
 * with ETag and X-Repo-Commit, and for LFS files ({@code .safetensors}, {@code .bin}) X-Linked-Etag
 * (sha256) and X-Linked-Size plus a 302 to a "CDN" path addressed as {@code localhost}, a different
 * host for the client, so tests can check the token is not forwarded there. Faults can be injected
 * per file. Every request is recorded.
 */
final class FakeHub implements AutoCloseable {

  static final String REPO = "facebook/opt-tiny";
  static final String SHA = "4a5b6c7d8e9f00112233445566778899aabbccdd";

  /** One request as the server saw it. */
  record Request(String method, String path, String host, String authorization) {}

  private enum Fault { TRUNCATE, WRONG_SHA256, STALL, CORRUPT, SLOW, GZIP }

  private final HttpServer server;
  private final ExecutorService executor;
  private final CountDownLatch closing = new CountDownLatch(1);
  private final Map<String, byte[]> files = new ConcurrentHashMap<>();
  private final Set<String> listing = ConcurrentHashMap.newKeySet();
  private final Map<String, Fault> faults = new ConcurrentHashMap<>();
  private final Map<String, Integer> statusOverrides = new ConcurrentHashMap<>();
  private final Map<String, String> errorCodes = new ConcurrentHashMap<>();
  private final Set<String> hanging = ConcurrentHashMap.newKeySet();
  private final List<Request> requests = new CopyOnWriteArrayList<>();
  private volatile String requiredToken;
  private volatile String commit = SHA;
  private volatile long listingPadding;
  private volatile long trickleMillis;

  /**
   * Serves the files of {@code modelDir} (read through symlinks), all listed, and a {@code pytorch_model.bin} where it
   * has none, as the Hub's OPT repositories have both formats: tiny-opt-postln's (tiny-opt's own left the repository
   * in session 21 to keep the device transfer under its limit; these tests fetch it, none loads it with tiny-opt's
   * config).
   */
  FakeHub(Path modelDir) throws IOException {
    try (var entries = Files.list(modelDir)) {
      for (Path file : (Iterable<Path>) entries::iterator) {
        serve(file.getFileName().toString(), Files.readAllBytes(file));
      }
    }
    if (!files.containsKey("pytorch_model.bin")) {
      serve("pytorch_model.bin", Files.readAllBytes(modelDir.resolveSibling("tiny-opt-postln")
          .resolve("pytorch_model.bin")));
    }
    executor = Executors.newFixedThreadPool(4, r -> {
      Thread t = new Thread(r, "fake-hub");
      t.setDaemon(true);
      return t;
    });
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
    server.setExecutor(executor);
    server.createContext("/", this::handle);
    server.start();
  }

  /** The tiny-opt test fixture: config, tokenizer and model.safetensors. */
  static Path tinyOptFixture() {
    try {
      return Path.of(FakeHub.class.getResource("/fixtures/models/tiny-opt/config.json").toURI()).getParent();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  URI endpoint() {
    return URI.create("http://127.0.0.1:" + server.getAddress().getPort());
  }

  /** Adds or replaces a file, and lists it. */
  void serve(String name, byte[] content) {
    files.put(name, content.clone());
    listing.add(name);
  }

  /** Lists exactly these names (they need not all be served: a listed, unserved file gets 404). */
  void setListing(Collection<String> names) {
    listing.clear();
    listing.addAll(names);
  }

  /** Removes a file from the listing (it stays downloadable by URL). */
  void unlist(String name) {
    listing.remove(name);
  }

  /** The bytes served for a file, or null if none. */
  byte[] content(String name) {
    byte[] content = files.get(name);
    return content == null ? null : content.clone();
  }

  Set<String> listing() {
    return Set.copyOf(listing);
  }

  /** Answers every request for that file with Content-Length in full but only half the bytes. */
  void truncate(String file) {
    faults.put(file, Fault.TRUNCATE);
  }

  /** Announces a sha256 (X-Linked-Etag) that does not match the bytes served. */
  void announceWrongSha256(String file) {
    faults.put(file, Fault.WRONG_SHA256);
  }

  /** Serves that file with its last byte changed: the right size and headers, the wrong content. */
  void corrupt(String file) {
    faults.put(file, Fault.CORRUPT);
  }

  /** Sends that file gzip-compressed with Content-Encoding: gzip, although asked for it as stored (a proxy's doing). */
  void gzip(String file) {
    faults.put(file, Fault.GZIP);
  }

  /** Waits 300 ms before sending that file's bytes, so that concurrent downloads of it overlap. */
  void slow(String file) {
    faults.put(file, Fault.SLOW);
  }

  /** Clears the fault of a file. */
  void heal(String file) {
    faults.remove(file);
  }

  /** The commit the revisions point to from now on (a new commit pushed). */
  void setCommit(String sha) {
    commit = sha;
  }

  /** Pads the listing's JSON with this many bytes of spaces (a huge answer). */
  void padListing(long bytes) {
    listingPadding = bytes;
  }

  /** Sends the listing one byte every this many milliseconds (a server that trickles its answer). */
  void trickleListing(long millis) {
    trickleMillis = millis;
  }

  /** Sends headers and a few bytes of that file, then nothing until closed. */
  void stall(String file) {
    faults.put(file, Fault.STALL);
  }

  /** Accepts requests whose path ends with {@code pathSuffix} but never answers them. */
  void hang(String pathSuffix) {
    hanging.add(pathSuffix);
  }

  /**
   * Answers requests whose path ends with {@code pathSuffix} with this status and, unless null, an
   * X-Error-Code header, like the hub's RepoNotFound, GatedRepo or EntryNotFound.
   */
  void failWith(String pathSuffix, int status, String errorCode) {
    statusOverrides.put(pathSuffix, status);
    if (errorCode != null) {
      errorCodes.put(pathSuffix, errorCode);
    }
  }

  /** Rejects hub requests (not CDN ones) without {@code Authorization: Bearer token} with a 401. */
  void requireToken(String token) {
    requiredToken = token;
  }

  List<Request> requests() {
    return List.copyOf(requests);
  }

  void clearRequests() {
    requests.clear();
  }

  static String sha256(byte[] content) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(content));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The hub's ETag of a regular (non-LFS) file: its git blob sha1. */
  static String gitBlobSha1(byte[] content) {
    try {
      MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
      sha1.update(("blob " + content.length + "\0").getBytes(StandardCharsets.US_ASCII));
      return HexFormat.of().formatHex(sha1.digest(content));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static boolean isLfs(String file) {
    return file.endsWith(".safetensors") || file.endsWith(".bin");
  }

  /** Stops the server (idempotent): later requests to its port are refused. */
  @Override
  public void close() {
    if (closing.getCount() == 0) {
      return;
    }
    closing.countDown();
    server.stop(0);
    executor.shutdownNow();
    try {
      executor.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      String path = exchange.getRequestURI().getRawPath();
      Headers in = exchange.getRequestHeaders();
      requests.add(new Request(exchange.getRequestMethod(), path, in.getFirst("Host"), in.getFirst("Authorization")));
      if (hanging.stream().anyMatch(path::endsWith)) {
        awaitClose();
        return;
      }
      for (Map.Entry<String, Integer> override : statusOverrides.entrySet()) {
        if (path.endsWith(override.getKey())) {
          String code = errorCodes.get(override.getKey());
          if (code != null) {
            exchange.getResponseHeaders().set("X-Error-Code", code);
          }
          exchange.sendResponseHeaders(override.getValue(), -1);
          return;
        }
      }
      if (path.startsWith("/cdn/")) {
        serveCdn(exchange, path.substring("/cdn/".length()));
        return;
      }
      if (requiredToken != null && !("Bearer " + requiredToken).equals(in.getFirst("Authorization"))) {
        exchange.getResponseHeaders().set("X-Error-Code", "RepoNotFound");
        exchange.sendResponseHeaders(401, -1);
        return;
      }
      String apiPrefix = "/api/models/" + REPO + "/revision/";
      String resolvePrefix = "/" + REPO + "/resolve/";
      if (path.startsWith(apiPrefix)) {
        serveListing(exchange, path.substring(apiPrefix.length()));
      } else if (path.startsWith(resolvePrefix)) {
        String rest = path.substring(resolvePrefix.length());
        int slash = rest.indexOf('/');
        serveResolve(exchange, rest.substring(0, slash), rest.substring(slash + 1));
      } else {
        exchange.getResponseHeaders().set("X-Error-Code", "RepoNotFound");
        exchange.sendResponseHeaders(404, -1);
      }
    } catch (IOException | RuntimeException e) {
      // A client that gave up (e.g. on a truncated body) makes writes fail; nothing to report.
    }
  }

  private void serveListing(HttpExchange exchange, String revision) throws IOException {
    if (!isKnownRevision(revision)) {
      exchange.getResponseHeaders().set("X-Error-Code", "RevisionNotFound");
      exchange.sendResponseHeaders(404, -1);
      return;
    }
    StringBuilder json = new StringBuilder("{\"id\":\"" + REPO + "\",\"sha\":\"" + commit + "\",\"siblings\":[");
    List<String> names = new ArrayList<>(new LinkedHashSet<>(listing));
    for (int i = 0; i < names.size(); i++) {
      json.append(i == 0 ? "" : ",").append("{\"rfilename\":\"").append(names.get(i)).append("\"}");
    }
    json.append("]}");
    byte[] body = json.toString().getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "application/json");
    if (listingPadding > 0) {
      exchange.sendResponseHeaders(200, 0); // chunked
      OutputStream out = exchange.getResponseBody();
      out.write(body);
      byte[] spaces = new byte[1 << 16];
      java.util.Arrays.fill(spaces, (byte) ' ');
      for (long left = listingPadding; left > 0; left -= spaces.length) {
        out.write(spaces, 0, (int) Math.min(spaces.length, left));
      }
      return;
    }
    if (trickleMillis > 0) {
      exchange.sendResponseHeaders(200, body.length);
      OutputStream out = exchange.getResponseBody();
      for (byte b : body) {
        out.write(b);
        out.flush();
        try {
          Thread.sleep(trickleMillis);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
        if (closing.getCount() == 0) {
          return;
        }
      }
      return;
    }
    send(exchange, body, body.length);
  }

  private void serveResolve(HttpExchange exchange, String revision, String file) throws IOException {
    byte[] content = files.get(file);
    Headers out = exchange.getResponseHeaders();
    out.set("X-Repo-Commit", commit);
    if (!isKnownRevision(revision)) {
      out.set("X-Error-Code", "RevisionNotFound");
      exchange.sendResponseHeaders(404, -1);
      return;
    }
    if (content == null || !listing.contains(file)) {
      out.set("X-Error-Code", "EntryNotFound");
      exchange.sendResponseHeaders(404, -1);
      return;
    }
    if (isLfs(file)) {
      String sha256 = faults.get(file) == Fault.WRONG_SHA256 ? sha256(new byte[] {1}) : sha256(content);
      // The hub's ETag of an LFS file is the git sha1 of its pointer file; X-Linked-Etag is the content's.
      byte[] pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:" + sha256 + "\nsize "
          + content.length + "\n").getBytes(StandardCharsets.UTF_8);
      out.set("ETag", "\"" + gitBlobSha1(pointer) + "\"");
      out.set("X-Linked-Etag", "\"" + sha256 + "\"");
      out.set("X-Linked-Size", Long.toString(content.length));
      out.set("Location", "http://localhost:" + server.getAddress().getPort() + "/cdn/" + file);
      exchange.sendResponseHeaders(302, -1);
      return;
    }
    out.set("ETag", "\"" + gitBlobSha1(content) + "\"");
    serveBytes(exchange, file, content);
  }

  private void serveCdn(HttpExchange exchange, String file) throws IOException {
    byte[] content = files.get(file);
    if (content == null) {
      exchange.sendResponseHeaders(404, -1);
      return;
    }
    exchange.getResponseHeaders().set("ETag", "\"" + sha256(content) + "\"");
    serveBytes(exchange, file, content);
  }

  private void serveBytes(HttpExchange exchange, String file, byte[] content) throws IOException {
    if (exchange.getRequestMethod().equals("HEAD")) {
      exchange.getResponseHeaders().set("Content-Length", Long.toString(content.length));
      exchange.sendResponseHeaders(200, -1);
      return;
    }
    Fault fault = faults.get(file);
    if (fault == Fault.CORRUPT && content.length > 0) {
      byte[] changed = content.clone();
      changed[changed.length - 1] ^= 1;
      send(exchange, changed, changed.length);
      return;
    }
    if (fault == Fault.GZIP) {
      java.io.ByteArrayOutputStream packed = new java.io.ByteArrayOutputStream();
      try (java.util.zip.GZIPOutputStream z = new java.util.zip.GZIPOutputStream(packed)) {
        z.write(content);
      }
      exchange.getResponseHeaders().set("Content-Encoding", "gzip");
      send(exchange, packed.toByteArray(), packed.size());
      return;
    }
    if (fault == Fault.SLOW) {
      try {
        Thread.sleep(300);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (fault == Fault.TRUNCATE) {
      exchange.sendResponseHeaders(200, content.length);
      OutputStream body = exchange.getResponseBody();
      body.write(content, 0, content.length / 2);
      body.flush();
      // Closing short of Content-Length makes the server drop the connection, as a cut-off would.
      return;
    }
    if (fault == Fault.STALL) {
      exchange.sendResponseHeaders(200, content.length);
      OutputStream body = exchange.getResponseBody();
      body.write(content, 0, Math.min(16, content.length));
      body.flush();
      awaitClose();
      return;
    }
    send(exchange, content, content.length);
  }

  private void awaitClose() {
    try {
      closing.await(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void send(HttpExchange exchange, byte[] body, int length) throws IOException {
    exchange.sendResponseHeaders(200, length == 0 ? -1 : length);
    if (length > 0) {
      exchange.getResponseBody().write(body, 0, length);
    }
  }

  // Raw path segments: a pull-request ref arrives with its slashes percent-encoded.
  private boolean isKnownRevision(String revision) {
    return revision.equals("main") || revision.equals("refs%2Fpr%2F1") || revision.equals(commit);
  }
}
