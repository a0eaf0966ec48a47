package io.github.optjava.parallel;

import io.github.optjava.checkpoint.Untrusted;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * TCP links between the processes of a multi-process job: every process listens on a port of its own
 * (announced through the {@link Rendezvous}), and the first use of a link between two ranks connects them
 * (the higher rank dials the lower). Links are kept per {@link Channel}, so that the driver's commands, the
 * collectives and the activations between pipeline stages never share a stream: each stream's messages are
 * read in the order they are written, whatever the other kinds do.
 *
 * <p>Written by hand: a job needs a handful of point-to-point streams, not a messaging library. On GPUs the
 * collectives go through NCCL; these links carry the commands and (as in the one-process pipeline) the
 * hidden states between stages.
 */
public final class Mesh implements AutoCloseable {
  private static final int MAGIC = 0x4f50544d; // "OPTM"

  /** The system property that sets how long a silent peer is waited for ({@link #watch}); 0: for ever. */
  public static final String HEARTBEAT_PROPERTY = "opt.multiprocess.heartbeatSeconds";

  /** What a link carries; each has its own stream. */
  public enum Channel {
    /** Driver (rank 0) to worker commands and the workers' answers: waits without a timeout when idle. */
    CONTROL,
    /** Tensor-parallel collectives inside a pipeline stage. */
    COLLECTIVE,
    /** Hidden states from one pipeline stage to the next, logits from the last stage to the driver. */
    ACTIVATIONS,
    /** A byte a second each way between the driver and each worker ({@link #watch}). */
    HEARTBEAT
  }

  private record Key(int peer, Channel channel) {}

  private final int rank;
  private final int world;
  private final List<InetSocketAddress> addresses;
  private final ServerSocket server;
  private final Duration timeout;
  private final Map<Key, Link> links = new ConcurrentHashMap<>();
  private final Map<Key, CompletableFuture<Socket>> incoming = new ConcurrentHashMap<>();
  private final Thread acceptor;
  private volatile boolean closed;
  /** Why this process gave up on the job (a peer fell silent), or null: the links' errors say it. */
  private volatile String lost;
  private static final int IDLE = 0;
  private static final int WATCHING = 1;
  private static final int STOPPED = 2;
  private static final int LOST = 3;
  /** The heartbeats: IDLE until {@link #watch}, then WATCHING until the job ends (STOPPED) or a peer is lost (LOST). */
  private final java.util.concurrent.atomic.AtomicInteger state = new java.util.concurrent.atomic.AtomicInteger();
  private final List<Runnable> onGiveUp = new java.util.concurrent.CopyOnWriteArrayList<>();

  private Mesh(int rank, List<InetSocketAddress> addresses, ServerSocket server, Duration timeout) {
    this.rank = rank;
    this.world = addresses.size();
    this.addresses = addresses;
    this.server = server;
    this.timeout = timeout;
    this.acceptor = new Thread(this::acceptLoop, "opt-mesh-accept-" + rank);
    acceptor.setDaemon(true);
    acceptor.start();
  }

  /**
   * Opens this process's port, meets the others through the rendezvous on {@code MASTER_ADDR:MASTER_PORT},
   * and returns the mesh (no link is connected yet: {@link #open} or {@link #link}). {@code timeout} bounds the
   * rendezvous, each connection and every read on a {@link Channel#COLLECTIVE} link; commands and activations
   * wait as long as the work before them takes (a failed peer closes its links; {@link #watch}'s heartbeats notice a
   * stopped process or a vanished host).
   *
   * <p>Each process announces the address it wants to be reached at: {@code OPT_HOST} when set, else its first
   * non-loopback IPv4 address. Rank 0 uses the address a peer connected from unless that is a loopback address
   * (a peer on rank 0's own machine reaching it through {@code localhost}, which other machines cannot dial).
   *
   * @throws Rendezvous.RendezvousException when the processes do not all meet
   */
  public static Mesh connect(Rendezvous.Placement p, Duration timeout) {
    return connect(p, timeout, "");
  }

  /**
   * As {@link #connect(Rendezvous.Placement, Duration)}, and every process must bring the same {@code job}: a
   * description of what it will run ({@code key=value} pairs separated by {@code ;}: the model, the layout, the
   * dtypes). A process that brings another is refused on every rank, naming the rank and the first pair that
   * differs: without it a rank started with another model or dtype ran the job to its end with wrong tokens, and
   * one with another layout hung until the link timeout.
   *
   * @throws Rendezvous.RendezvousException when the processes do not all meet, or do not agree on {@code job}
   */
  public static Mesh connect(Rendezvous.Placement p, Duration timeout, String job) {
    ServerSocket server;
    try {
      server = new ServerSocket();
      server.bind(new InetSocketAddress(0));
    } catch (IOException e) {
      throw new UncheckedIOException("rank " + p.rank() + " could not open a port for the job's links", e);
    }
    try {
      byte[] host = advertisedHost().getBytes(StandardCharsets.UTF_8);
      byte[] jobBytes = job.getBytes(StandardCharsets.UTF_8);
      ByteBuffer payload = ByteBuffer.allocate(8 + jobBytes.length + host.length).putInt(server.getLocalPort())
          .putInt(jobBytes.length).put(jobBytes).put(host);
      List<Rendezvous.Member> members = Rendezvous.allGather(p, payload.array(), timeout);
      for (Rendezvous.Member m : members) {
        String theirs = job(m);
        if (!theirs.equals(job)) {
          throw new Rendezvous.RendezvousException("rank " + m.rank() + " runs another job than rank " + p.rank()
              + ": " + firstDifference(job, theirs) + "; start every process with the same model and options");
        }
      }
      List<InetSocketAddress> addresses = members.stream().map(Mesh::address).toList();
      return new Mesh(p.rank(), addresses, server, timeout);
    } catch (RuntimeException e) {
      closeQuietly(server);
      throw e;
    }
  }

  /** The job description a member brought (see {@link #connect(Rendezvous.Placement, Duration, String)}). */
  static String job(Rendezvous.Member m) {
    ByteBuffer b = ByteBuffer.wrap(m.payload());
    b.getInt();
    int length = b.getInt();
    return new String(m.payload(), 8, length, StandardCharsets.UTF_8);
  }

  /** "model_config=ab12 here, cd34 there" for the first key whose value differs (or the whole texts). */
  static String firstDifference(String mine, String theirs) {
    java.util.Map<String, String> a = pairs(mine);
    java.util.Map<String, String> b = pairs(theirs);
    java.util.Set<String> keys = new java.util.TreeSet<>(a.keySet());
    keys.addAll(b.keySet());
    for (String k : keys) {
      if (!java.util.Objects.equals(a.get(k), b.get(k))) {
        return k + " is " + a.get(k) + " here but " + b.get(k) + " there";
      }
    }
    return "'" + mine + "' here but '" + theirs + "' there";
  }

  private static java.util.Map<String, String> pairs(String job) {
    java.util.Map<String, String> out = new java.util.LinkedHashMap<>();
    for (String pair : job.split(";")) {
      int eq = pair.indexOf('=');
      if (eq > 0) {
        out.put(pair.substring(0, eq), pair.substring(eq + 1));
      }
    }
    return out;
  }

  /** Where to dial a member: the address rank 0 saw unless it is a loopback one and the member named another. */
  static InetSocketAddress address(Rendezvous.Member m) {
    ByteBuffer b = ByteBuffer.wrap(m.payload());
    int port = b.getInt();
    int jobLength = b.getInt();
    String named = new String(m.payload(), 8 + jobLength, m.payload().length - 8 - jobLength, StandardCharsets.UTF_8);
    String seen = m.host();
    boolean loopback;
    try {
      loopback = java.net.InetAddress.getByName(seen).isLoopbackAddress();
    } catch (java.net.UnknownHostException e) {
      loopback = false;
    }
    return new InetSocketAddress(loopback && !named.isEmpty() ? named : seen, port);
  }

  /** {@code OPT_HOST}, else the first non-loopback IPv4 address of this machine, else "" (none known). */
  private static String advertisedHost() {
    String env = System.getenv("OPT_HOST");
    if (env != null && !env.isBlank()) {
      return env.trim();
    }
    try {
      for (java.net.NetworkInterface nic : java.util.Collections.list(java.net.NetworkInterface.getNetworkInterfaces())) {
        if (!nic.isUp() || nic.isLoopback()) {
          continue;
        }
        for (java.net.InetAddress a : java.util.Collections.list(nic.getInetAddresses())) {
          if (a instanceof java.net.Inet4Address && !a.isLoopbackAddress() && !a.isLinkLocalAddress()) {
            return a.getHostAddress();
          }
        }
      }
    } catch (java.net.SocketException e) {
      // no interfaces to list: rank 0's view of this process is all there is
    }
    return "";
  }

  /**
   * Connects the given links now, in an order that cannot deadlock (every link to a lower rank is dialled
   * first; the ones from higher ranks are then waited for), so that later waits never include a peer's
   * start-up. Every process of the job calls this at the same point with its side of the same links.
   */
  public void open(List<int[]> peerAndChannel) {
    for (int[] pc : peerAndChannel) {
      if (pc[0] < rank) {
        link(pc[0], Channel.values()[pc[1]]);
      }
    }
    for (int[] pc : peerAndChannel) {
      if (pc[0] > rank) {
        link(pc[0], Channel.values()[pc[1]]);
      }
    }
  }

  public int rank() {
    return rank;
  }

  public int worldSize() {
    return world;
  }

  public Duration timeout() {
    return timeout;
  }

  /** The link to {@code peer} on {@code channel}, connected on first use (both sides must ask for it). */
  public Link link(int peer, Channel channel) {
    if (peer == rank || peer < 0 || peer >= world) {
      throw new IllegalArgumentException("rank " + rank + " has no link to rank " + peer + " (world " + world + ")");
    }
    return links.computeIfAbsent(new Key(peer, channel), this::open);
  }

  private Link open(Key key) {
    // Collectives wait for a peer's share of one layer; commands and activations for whole steps of work.
    int readTimeout = key.channel == Channel.COLLECTIVE ? (int) Math.min(Integer.MAX_VALUE, timeout.toMillis()) : 0;
    try {
      Socket s;
      if (key.peer < rank) {
        s = new Socket();
        s.connect(addresses.get(key.peer), (int) Math.min(Integer.MAX_VALUE, timeout.toMillis()));
        DataOutputStream hello = new DataOutputStream(s.getOutputStream());
        hello.writeInt(MAGIC);
        hello.writeInt(rank);
        hello.writeInt(key.channel.ordinal());
        hello.flush();
      } else {
        s = incoming.computeIfAbsent(key, k -> new CompletableFuture<>())
            .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
      }
      s.setTcpNoDelay(true); // small command and logit messages: no Nagle delay
      s.setKeepAlive(true);  // a peer whose host vanished without closing is noticed
      s.setSoTimeout(readTimeout);
      return new Link(rank, key.peer, key.channel, s, () -> lost);
    } catch (TimeoutException e) {
      throw new IllegalStateException("rank " + rank + ": rank " + key.peer + " did not open its " + key.channel
          + " link within " + timeout.toSeconds() + " s: it may have failed; see its log");
    } catch (IOException e) {
      throw new IllegalStateException("rank " + rank + " could not reach rank " + key.peer + " at "
          + addresses.get(key.peer) + " (" + e.getMessage() + "): check that the hosts reach each other", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while connecting to rank " + key.peer, e);
    } catch (ExecutionException e) {
      throw new IllegalStateException("rank " + rank + ": link from rank " + key.peer + " failed", e.getCause());
    }
  }

  private void acceptLoop() {
    while (!closed) {
      Socket s;
      try {
        s = server.accept();
      } catch (IOException e) {
        if (closed) {
          return;
        }
        continue;
      }
      try {
        // A short wait for the hello: a stray connection (a port scan) must not hold up the job's links.
        s.setSoTimeout((int) Math.min(10_000, Math.max(1, timeout.toMillis())));
        DataInputStream in = new DataInputStream(s.getInputStream());
        int magic = in.readInt();
        int from = in.readInt();
        int channel = in.readInt();
        if (magic != MAGIC || from <= rank || from >= world || channel < 0 || channel >= Channel.values().length) {
          s.close(); // not one of this job's ranks
          continue;
        }
        if (!incoming.computeIfAbsent(new Key(from, Channel.values()[channel]), k -> new CompletableFuture<>())
            .complete(s)) {
          s.close(); // a second connection for a link that has one
        }
      } catch (IOException e) {
        closeQuietly(s);
      }
    }
  }

  /**
   * Exchanges heartbeats with {@code peers} (the driver with every worker, a worker with the driver) until
   * {@link #stopWatching} or {@link #close}: a byte every second each way on a link of its own. A peer silent for
   * {@code silence} after its first heartbeat (its process stopped or hung in native code, its machine powered off or
   * cut off) makes this process close all its links, so that whatever waits on that peer fails at once, naming it
   * ({@link #lost}): without this a vanished machine held the job until TCP gave up (hours), and a stopped process
   * forever. {@link Duration#ZERO} sends heartbeats but never gives up on silence. A worker also closes its links
   * shortly after the driver closed its heartbeat link without first saying CLOSE, since it may be waiting on a third
   * process that the driver gave up on. A peer that exits is noticed through its closed links as before.
   *
   * <p>Every process calls it at the same point, after {@link #open}, with the same silence (the job description
   * says so): it opens the HEARTBEAT links. A peer's silence is counted from its first heartbeat, since the driver
   * starts sending only once every worker's link is open (a late worker must not make an early one give up).
   */
  public void watch(List<Integer> peers, Duration silence) {
    open(peers.stream().map(p -> new int[] {p, Channel.HEARTBEAT.ordinal()}).toList());
    state.compareAndSet(IDLE, WATCHING);
    long intervalMs = silence.isZero() ? 1000 : Math.max(10, Math.min(1000, silence.toMillis() / 4));
    Thread sender = new Thread(() -> {
      while (state.get() == WATCHING && !closed) {
        for (int p : peers) {
          Link l = links.get(new Key(p, Channel.HEARTBEAT));
          try {
            l.out().write(0);
            l.out().flush();
          } catch (IOException e) {
            // that peer is gone: its own links say so
          }
        }
        try {
          Thread.sleep(intervalMs);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "opt-mesh-heartbeat-" + rank);
    sender.setDaemon(true);
    sender.start();
    for (int p : peers) {
      Link l = links.get(new Key(p, Channel.HEARTBEAT));
      Thread reader = new Thread(() -> listen(l, p, silence), "opt-mesh-heartbeat-" + rank + "-from-" + p);
      reader.setDaemon(true);
      reader.start();
    }
  }

  private void listen(Link l, int peer, Duration silence) {
    try {
      // The first heartbeat may take as long as the slowest process takes to reach watch(); then the silence counts.
      l.readTimeout((int) Math.min(Integer.MAX_VALUE, timeout.toMillis()));
      int got = l.in().read();
      l.readTimeout((int) Math.min(Integer.MAX_VALUE, silence.toMillis()));
      while (got >= 0) {
        if (state.get() != WATCHING || closed) {
          return;
        }
        got = l.in().read();
      }
      // The peer closed its heartbeat link: it is exiting, or (the driver) gave up on the job.
      if (peer == 0 && rank != 0) {
        giveUpUnlessEnded(silence, "rank 0 closed its links without ending the job: it failed or gave up on another "
            + "rank; see its log");
      } else if (rank == 0) {
        // A worker ends only after the driver ended the job (and stopped watching): one that closed its heartbeat link
        // before exited, failed or was killed. Noticed here even when nothing waits on it (an idle `opt batch`, which
        // then ended with exit 0 as if the job had been sound: session 27's review).
        giveUpUnlessEnded(silence, "rank " + peer + " closed its heartbeat link while the job ran: its process exited "
            + "or was killed; see its log");
      }
    } catch (SocketTimeoutException e) {
      giveUp("rank " + peer + " sent no heartbeat for " + (silence.toMillis() % 1000 == 0 ? silence.toSeconds() + " s"
          : silence.toMillis() + " ms") + ": its process is stopped or hung, or its machine is unreachable ("
          + "-D" + HEARTBEAT_PROPERTY + " sets this wait)");
    } catch (IOException e) {
      // Closed here (the job ended or failed already), or reset by the peer: a killed process whose socket still held
      // unread heartbeats resets the link instead of closing it.
      try {
        giveUpUnlessEnded(silence, "rank " + peer + "'s heartbeat link broke while the job ran ("
            + Untrusted.shown(String.valueOf(e.getMessage())) + "): its process exited or was killed; see its log");
      } catch (InterruptedException stopped) {
        // closed here
      }
    } catch (InterruptedException e) {
      // closed here: the job ended or failed already
    }
  }

  /**
   * Gives up unless the job ends (or stops being watched) within a short wait (the silence, at most 10 s): time for
   * this process to read what the peer sent just before its link closed (a CLOSE from the driver, a worker's own
   * failure on its CONTROL link), which ends the job with that message instead.
   */
  private void giveUpUnlessEnded(Duration silence, String why) throws InterruptedException {
    long until = System.nanoTime() + (silence.isZero() ? 10_000 : Math.min(10_000, silence.toMillis())) * 1_000_000;
    while (System.nanoTime() < until) {
      if (state.get() != WATCHING || closed) {
        return;
      }
      Thread.sleep(50);
    }
    giveUp(why);
  }

  private void giveUp(String why) {
    if (closed || !state.compareAndSet(WATCHING, LOST)) {
      return; // the job ended normally (stopWatching) or this process gave up already
    }
    lost = why;
    org.slf4j.LoggerFactory.getLogger(Mesh.class).error("rank {} gives up on the job: {}; closing its links", rank,
        why);
    for (Runnable r : onGiveUp) {
      try {
        r.run();
      } catch (RuntimeException | Error e) {
        org.slf4j.LoggerFactory.getLogger(Mesh.class).warn("rank {}: while giving up: {}", rank, e.toString());
      }
    }
    close();
  }

  /**
   * Runs {@code r} when this process gives up on the job ({@link #watch}), before the links close: waits that no
   * closed socket ends (an NCCL collective: {@code TpGroup.abort}) must be ended there. It runs on the heartbeat
   * thread, while other threads may be inside those waits.
   */
  public void onGiveUp(Runnable r) {
    onGiveUp.add(r);
  }

  /**
   * How long a silent peer is waited for: {@value #HEARTBEAT_PROPERTY} in seconds (decimals allowed), 60 by
   * default (a long full GC must not end a job); {@link Duration#ZERO} when set to 0 (heartbeats are still sent, a
   * silent peer is never given up on).
   *
   * @throws IllegalArgumentException when the property is not a number of seconds from 0 to 86400
   */
  public static Duration heartbeatSilence() {
    String v = System.getProperty(HEARTBEAT_PROPERTY, "60");
    double seconds;
    try {
      seconds = Double.parseDouble(v.trim());
    } catch (NumberFormatException e) {
      seconds = -1;
    }
    if (!(seconds >= 0) || seconds > 86_400) {
      throw new IllegalArgumentException("-D" + HEARTBEAT_PROPERTY + "=" + v + " is not a number of seconds from 0 "
          + "(never give up on a silent process) to 86400");
    }
    return Duration.ofMillis(seconds == 0 ? 0 : Math.max(1, Math.round(seconds * 1000)));
  }

  /** Ends the heartbeats quietly: the job ends normally (the driver is about to say CLOSE, or a worker heard it). */
  public void stopWatching() {
    if (!state.compareAndSet(WATCHING, STOPPED)) {
      state.compareAndSet(IDLE, STOPPED); // (LOST stays LOST: lost() keeps saying why)
    }
  }

  /** Why this process gave up on the job ({@link #watch}), or null. */
  public String lost() {
    return lost;
  }

  /** Closes every link and the port: a peer blocked on one of them gets an error instead of waiting. */
  @Override
  public void close() {
    closed = true;
    closeQuietly(server);
    for (Link l : links.values()) {
      l.close();
    }
    for (CompletableFuture<Socket> f : incoming.values()) {
      Socket s = f.getNow(null);
      if (s != null) {
        closeQuietly(s);
      }
    }
  }

  private static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception e) {
      // closing anyway
    }
  }

  /**
   * One direction-agnostic stream between two ranks. Writes are buffered until {@link #flush}; reads block
   * (up to the mesh timeout, except an idle worker's command wait). Used by one thread at a time per side.
   */
  public static final class Link implements AutoCloseable {
    private final int rank;
    private final int peer;
    private final Channel channel;
    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final java.util.function.Supplier<String> lost;

    Link(int rank, int peer, Channel channel, Socket socket, java.util.function.Supplier<String> lost)
        throws IOException {
      this.rank = rank;
      this.peer = peer;
      this.channel = channel;
      this.socket = socket;
      this.lost = lost;
      this.in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16));
      this.out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 1 << 16));
    }

    public DataOutputStream out() {
      return out;
    }

    public DataInputStream in() {
      return in;
    }

    /** Sets how long a read on this link may wait (0: forever); used after a failure to collect reports. */
    public void readTimeout(int millis) {
      try {
        socket.setSoTimeout(millis);
      } catch (SocketException e) {
        // the link is gone: reads fail at once anyway
      }
    }

    public void flush() {
      try {
        out.flush();
      } catch (IOException e) {
        throw failure("send to", e);
      }
    }

    /** Writes a length-prefixed float array (little-endian bulk copy, not element by element). */
    public void writeFloats(float[] v) {
      try {
        out.writeInt(v.length);
        ByteBuffer b = ByteBuffer.allocate(4 * Math.min(v.length, 1 << 16)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < v.length; i += 1 << 16) {
          int n = Math.min(1 << 16, v.length - i);
          b.clear();
          b.asFloatBuffer().put(v, i, n);
          out.write(b.array(), 0, 4 * n);
        }
      } catch (IOException e) {
        throw failure("send to", e);
      }
    }

    /** Reads what {@link #writeFloats} wrote. */
    public float[] readFloats() {
      try {
        int n = in.readInt();
        if (n < 0) {
          throw new IllegalStateException("rank " + peer + " sent a float array of " + n + " elements");
        }
        float[] v = new float[n];
        byte[] buf = new byte[4 * Math.min(n, 1 << 16)];
        for (int i = 0; i < n; i += 1 << 16) {
          int k = Math.min(1 << 16, n - i);
          in.readFully(buf, 0, 4 * k);
          ByteBuffer.wrap(buf, 0, 4 * k).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v, i, k);
        }
        return v;
      } catch (IOException e) {
        throw failure("receive from", e);
      }
    }

    /** Writes a length-prefixed byte array. */
    public void writeBytes(byte[] b) {
      try {
        out.writeInt(b.length);
        out.write(b);
      } catch (IOException e) {
        throw failure("send to", e);
      }
    }

    /** Reads what {@link #writeBytes} wrote (at most 16 MiB). */
    public byte[] readBytes() {
      try {
        int n = in.readInt();
        if (n < 0 || n > 1 << 24) {
          throw new IllegalStateException("rank " + peer + " sent a byte array of " + n + " bytes");
        }
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
      } catch (IOException e) {
        throw failure("receive from", e);
      }
    }

    public void writeUtf(String s) {
      writeBytes(s.getBytes(StandardCharsets.UTF_8));
    }

    public String readUtf() {
      return new String(readBytes(), StandardCharsets.UTF_8);
    }

    /** An I/O failure as the job's error: which link, and what it most likely means. */
    public IllegalStateException failure(String what, IOException e) {
      String gaveUp = lost.get(); // this process closed the link itself: say why
      String why = gaveUp != null ? gaveUp
          : e instanceof SocketTimeoutException ? "no data within the timeout (rank " + peer + " is stuck or waits "
              + "for something else: every rank must run the same steps)"
          : e instanceof EOFException || e instanceof SocketException ? "rank " + peer
              + " closed the link: it failed or stopped; see its log" : e.getMessage();
      return new IllegalStateException("rank " + rank + ": could not " + what + " rank " + peer + " on the "
          + channel + " link: " + why, e);
    }

    @Override
    public void close() {
      closeQuietly(socket);
    }
  }
}
