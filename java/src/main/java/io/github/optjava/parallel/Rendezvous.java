package io.github.optjava.parallel;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How the processes of a multi-process job find each other: each learns its {@link Placement} from the
 * environment its launcher set, then every rank hands rank 0 a small payload over TCP and rank 0 hands
 * every rank all of them ({@link #allGather}: the address each rank listens on for {@link Mesh}), or only
 * its own ({@link #exchange}: the NCCL unique id, NCCL does the rest). Nothing else travels this way.
 *
 * <p>Written by hand rather than taken from a library: the whole protocol is "every peer says hello,
 * rank 0 answers each with the payloads once all have arrived", about a page, with the checks a user needs
 * when a job is misconfigured (a peer that never arrives, a peer that disagrees on the world size, two
 * peers with one rank, a process that failed before it could join, another program on the port), each failing
 * on every side with a message naming the variables to fix. Once rank 0 knows the job failed, it keeps answering
 * the ranks that have not arrived yet with the reason (until all have, or the timeout), so that none of them waits
 * for its timeout in vain.
 *
 * <p>Wire format (big-endian, one connection per peer): rank 0 greets each connection with {@code MAGIC,
 * VERSION} (a peer that reached another program on the port learns so in seconds, not at the timeout); the peer
 * sends {@code MAGIC, VERSION, rank, worldSize, kind, length, payload} (the first four in every version, so that
 * rank 0 can name a process of another version and stop waiting for it), where kind 0 joins with its payload and
 * kind 1 reports that the peer failed before it could join (the payload: its message in UTF-8); rank 0 answers
 * {@code 0} and then per rank {@code host (UTF), length, payload}, or {@code 1, message} (UTF). The host is the
 * peer's address as rank 0 saw it (rank 0's own: {@code MASTER_ADDR}): an address the others can reach it at.
 */
public final class Rendezvous {
  private static final Logger LOG = LoggerFactory.getLogger(Rendezvous.class);
  static final int MAGIC = 0x4f505452; // "OPTR"
  static final int VERSION = 3;
  private static final int MAX_PAYLOAD = 1 << 20;
  static final int JOIN = 0;
  private static final int FAILED = 1;
  /** Longest failure message passed on (a stack of causes can be long; the failing process logs it whole). */
  private static final int MAX_MESSAGE = 2000;
  /**
   * How long a peer waits for rank 0's greeting. Rank 0 greets as it accepts, and reads each hello for at most
   * 10 s, so a legitimate wait is short unless several stray connections came first.
   */
  static final int GREETING_MS = 30_000;
  /** How long a process that failed before joining spends telling the others ({@link #abandon}). */
  private static final Duration ABANDON_WAIT = Duration.ofSeconds(30);

  private Rendezvous() {}

  /**
   * This process's place in the job.
   *
   * @param rank       0 .. worldSize - 1
   * @param worldSize  processes in the job
   * @param localRank  rank among the processes of this machine (picks the GPU)
   * @param masterAddr host of rank 0 (null at world size 1)
   * @param masterPort its rendezvous port (0 at world size 1)
   * @param source     which launcher's variables were read, for messages
   */
  public record Placement(int rank, int worldSize, int localRank, String masterAddr, int masterPort, String source) {

    /** A job of one process. */
    public static Placement single() {
      return new Placement(0, 1, 0, null, 0, "single process");
    }

    /**
     * Reads the launcher's variables: torchrun's ({@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}), else
     * Open MPI's ({@code OMPI_COMM_WORLD_RANK}, {@code _SIZE}, {@code _LOCAL_RANK}), else Slurm's
     * ({@code SLURM_PROCID}, {@code SLURM_NTASKS}, {@code SLURM_LOCALID}); none of them means a single
     * process. Above one process, {@code MASTER_ADDR} and {@code MASTER_PORT} name rank 0 in every case
     * (Slurm and mpirun do not set them: the launch scripts in {@code scripts/} do). {@code OPT_RENDEZVOUS_PORT}
     * overrides the port; under torchrun's own agent store ({@code TORCHELASTIC_USE_AGENT_STORE=True}, which
     * holds {@code MASTER_PORT}) the default is {@code MASTER_PORT + 1}.
     *
     * @throws IllegalArgumentException naming the variable that is missing or wrong
     */
    public static Placement fromEnvironment(Map<String, String> env) {
      String[][] launchers = {
          {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
          {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
          {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}};
      for (String[] l : launchers) {
        if (env.containsKey(l[1]) || env.containsKey(l[2])) {
          int world = positive(env, l[2], l[0]);
          int rank = nonNegative(env, l[1], l[0]);
          if (rank >= world) {
            throw new IllegalArgumentException(l[1] + "=" + rank + " is not below " + l[2] + "=" + world + " ("
                + l[0] + " variables)");
          }
          int local = env.containsKey(l[3]) ? nonNegative(env, l[3], l[0]) : 0;
          if (world == 1) {
            return new Placement(0, 1, local, null, 0, l[0]);
          }
          String addr = env.get("MASTER_ADDR");
          if (addr == null || addr.isBlank()) {
            throw new IllegalArgumentException(l[0] + " says this is rank " + rank + " of " + world
                + " but MASTER_ADDR is not set: set it to the host of rank 0 (and MASTER_PORT to a free port there)");
          }
          String portName = env.containsKey("OPT_RENDEZVOUS_PORT") ? "OPT_RENDEZVOUS_PORT" : "MASTER_PORT";
          int port = nonNegative(env, portName, l[0]);
          if (portName.equals("MASTER_PORT") && "true".equalsIgnoreCase(env.get("TORCHELASTIC_USE_AGENT_STORE"))) {
            port++; // torchrun's agent serves its TCPStore on MASTER_PORT itself
          }
          if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(portName + "=" + port + " is not a TCP port (1..65535)");
          }
          return new Placement(rank, world, local, addr.trim(), port, l[0]);
        }
      }
      return single();
    }

    private static int nonNegative(Map<String, String> env, String name, String launcher) {
      String v = env.get(name);
      if (v == null) {
        throw new IllegalArgumentException(name + " is not set (" + launcher + " variables)");
      }
      try {
        int i = Integer.parseInt(v.trim());
        if (i < 0) {
          throw new NumberFormatException();
        }
        return i;
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(name + "=" + v + " is not a non-negative integer (" + launcher
            + " variables)");
      }
    }

    private static int positive(Map<String, String> env, String name, String launcher) {
      int i = nonNegative(env, name, launcher);
      if (i == 0) {
        throw new IllegalArgumentException(name + "=0: a job has at least one process (" + launcher + " variables)");
      }
      return i;
    }
  }

  /** A rendezvous that failed: a peer missing, misconfigured, or unreachable. */
  public static final class RendezvousException extends RuntimeException {
    public RendezvousException(String message) {
      super(message);
    }
  }

  /** One rank's share of an {@link #allGather}: where rank 0 saw it connect from, and its payload. */
  public record Member(int rank, String host, byte[] payload) {}

  /**
   * Rank 0 gives {@code payload} to every other rank and returns it; every other rank returns what rank 0
   * gave. Blocks until all {@code worldSize} processes have joined or {@code timeout} has passed.
   *
   * @param payload rank 0's bytes (ignored on other ranks; at most 1 MiB)
   * @throws RendezvousException on every rank that can tell, with what to check
   */
  public static byte[] exchange(Placement p, byte[] payload, Duration timeout) {
    if (p.rank() == 0 && (payload == null || payload.length > MAX_PAYLOAD)) {
      throw new IllegalArgumentException("rank 0 needs a payload of at most " + MAX_PAYLOAD + " bytes");
    }
    return allGather(p, p.rank() == 0 ? payload : new byte[0], timeout).get(0).payload();
  }

  /**
   * Every rank's payload, in rank order, on every rank. Blocks until all {@code worldSize} processes have
   * joined or {@code timeout} has passed.
   *
   * @param payload this rank's bytes (at most 1 MiB)
   * @throws RendezvousException on every rank that can tell, with what to check
   */
  public static List<Member> allGather(Placement p, byte[] payload, Duration timeout) {
    if (payload == null || payload.length > MAX_PAYLOAD) {
      throw new IllegalArgumentException("a rendezvous payload of at most " + MAX_PAYLOAD + " bytes is needed");
    }
    if (p.worldSize() == 1) {
      return List.of(new Member(0, "127.0.0.1", payload));
    }
    return allGather(p, payload, timeout, GREETING_MS);
  }

  /** As {@link #allGather(Placement, byte[], Duration)}, waiting {@code greetingMs} for rank 0's greeting. */
  static List<Member> allGather(Placement p, byte[] payload, Duration timeout, int greetingMs) {
    long deadline = System.nanoTime() + timeout.toNanos();
    return p.rank() == 0 ? serve(p, payload, timeout, deadline, null)
        : join(p, JOIN, payload, timeout, deadline, greetingMs);
  }

  /**
   * Tells the job that this process failed before it could join (a missing model, no GPU, a wrong option), so
   * that the others stop at once with {@code why} instead of waiting for the rendezvous timeout: another rank
   * tells rank 0, which tells everyone; rank 0 answers every rank that joins with its failure. Best effort: returns
   * (never throws) once told, or after {@code timeout} or 30 s, whichever is shorter (a rank that starts later waits
   * for its own timeout, as before). Every process calls it, or {@link #allGather}, once.
   */
  public static void abandon(Placement p, String why, Duration timeout) {
    if (p.worldSize() == 1) {
      return;
    }
    String message = printable(why == null ? "(no message)" : why);
    // Bounded below the rendezvous timeout: this process has failed, and its caller waits for the exception.
    Duration wait = timeout.compareTo(ABANDON_WAIT) < 0 ? timeout : ABANDON_WAIT;
    LOG.error("rank {} failed before joining the job: {}; telling the other processes (for up to {})", p.rank(),
        message, seconds(wait));
    long deadline = System.nanoTime() + wait.toNanos();
    try {
      if (p.rank() == 0) {
        serve(p, new byte[0], wait, deadline, message);
      } else {
        join(p, FAILED, message.getBytes(java.nio.charset.StandardCharsets.UTF_8), wait, deadline, GREETING_MS);
      }
    } catch (RendezvousException | IllegalArgumentException e) {
      LOG.debug("rank {} reporting its failure: {}", p.rank(), e.getMessage()); // the expected end: refused
    }
  }

  /** A peer's message as one bounded line: no control characters (it goes into logs and error messages). */
  static String printable(String s) {
    StringBuilder b = new StringBuilder(Math.min(s.length(), MAX_MESSAGE + 3));
    for (int i = 0; i < s.length() && b.length() < MAX_MESSAGE; i++) {
      char c = s.charAt(i);
      b.append(Character.isISOControl(c) ? ' ' : c);
    }
    return s.length() > MAX_MESSAGE ? b + "..." : b.toString();
  }

  private record Peer(Socket socket, int rank) {}

  /** A connection's hello, read on a greeter thread; {@code version} other than VERSION: only rank and world read. */
  private record Hello(Socket socket, int version, int rank, int world, int kind, byte[] payload) {}

  /**
   * Rank 0's side: greets and hears every connection until all ranks are accounted for or the deadline. Each
   * connection is greeted and heard on a thread of its own, so that silent stray connections (a port scan, a health
   * check) never delay a rank's greeting; this thread keeps the books. Once the job failed ({@code ownFailure}, or a
   * rank's report or misconfiguration), the ranks waiting are told at once and later ones as they arrive.
   */
  private static List<Member> serve(Placement p, byte[] payload, Duration timeout, long deadline, String ownFailure) {
    List<Peer> peers = new ArrayList<>();
    Member[] members = new Member[p.worldSize()];
    members[0] = new Member(0, p.masterAddr(), payload);
    TreeSet<Integer> missing = new TreeSet<>();
    for (int r = 1; r < p.worldSize(); r++) {
      missing.add(r);
    }
    String error = ownFailure == null ? null : "rank 0 failed before joining: " + ownFailure;
    java.util.concurrent.BlockingQueue<Hello> hellos = new java.util.concurrent.LinkedBlockingQueue<>();
    java.util.Set<Socket> unheard = java.util.concurrent.ConcurrentHashMap.newKeySet(); // closed at the end
    java.util.concurrent.ExecutorService greeters = java.util.concurrent.Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "opt-rendezvous-greeter");
      t.setDaemon(true);
      return t;
    });
    try (ServerSocket server = new ServerSocket()) {
      server.setReuseAddress(true);
      server.bind(new InetSocketAddress(p.masterPort()));
      while (!missing.isEmpty()) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          if (error == null) {
            error = "rank" + (missing.size() == 1 ? " " : "s ") + join(missing) + " of " + p.worldSize()
                + " did not join within " + seconds(timeout) + ": check that every process started and that "
                + "MASTER_ADDR=" + p.masterAddr() + " and MASTER_PORT=" + p.masterPort() + " reach rank 0 from them";
          }
          break;
        }
        Hello h = hellos.poll();
        if (h != null) {
          unheard.remove(h.socket());
          String before = error;
          error = admit(h, p, error, missing, members, peers);
          if (before == null && error != null) {
            tell(peers, null, error); // the ranks already waiting stop now, not at their timeout
            if (!missing.isEmpty()) {
              LOG.error("{}; telling {} {} {} (for up to {})", error, missing.size() == 1 ? "rank" : "ranks",
                  join(missing), missing.size() == 1 ? "when it joins" : "as they join",
                  seconds(Duration.ofSeconds(Math.max(0, (deadline - System.nanoTime()) / 1_000_000_000))));
            }
          }
          continue;
        }
        server.setSoTimeout((int) Math.max(1, Math.min(100, left / 1_000_000)));
        Socket s;
        try {
          s = server.accept();
        } catch (SocketTimeoutException e) {
          continue;
        }
        unheard.add(s);
        long leftMs = left / 1_000_000;
        greeters.execute(() -> greetAndHear(s, leftMs, hellos, unheard));
      }
      if (error == null) {
        refuseLateArrivals(p, hellos, unheard);
      }
    } catch (IOException e) {
      if (error == null) {
        error = "rank 0 could not listen on port " + p.masterPort() + " (" + e.getMessage() + "): choose a free "
            + "MASTER_PORT";
      }
    } finally {
      greeters.shutdownNow();
      unheard.forEach(Rendezvous::closeQuietly); // connections still greeting: a rank among them retries or times out
    }
    error = tell(peers, error == null ? members : null, error);
    if (error != null) {
      throw new RendezvousException(error);
    }
    return List.of(members);
  }

  /**
   * Once every rank joined: a process that connected meanwhile (greeted, its hello on the way) is told why it is not
   * part of the job, instead of a closed connection that read as rank 0's failure (session 27's review: two processes
   * given RANK=1, or another job's rank on the same MASTER_PORT). Waits at most 300 ms, and only when there is one.
   */
  private static void refuseLateArrivals(Placement p, java.util.concurrent.BlockingQueue<Hello> hellos,
      java.util.Set<Socket> unheard) {
    long until = System.nanoTime() + 300_000_000L;
    while (!(hellos.isEmpty() && unheard.isEmpty()) && System.nanoTime() < until) {
      Hello h;
      try {
        h = hellos.poll(20, java.util.concurrent.TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      if (h != null) {
        unheard.remove(h.socket());
        refuse(h.socket(), "the job's " + p.worldSize() + " ranks had all joined rank 0 at " + p.masterAddr() + ":"
            + p.masterPort() + " when this process came as rank " + h.rank() + ": two processes were given RANK="
            + h.rank() + ", or this one belongs to another job that uses the same MASTER_ADDR and MASTER_PORT");
      }
    }
  }

  /**
   * On a greeter thread: greets one connection and reads its hello (waiting at most 10 s: a stray connection holds
   * up only its own thread) into {@code hellos}; a connection that is not an opt-java rendezvous is refused here.
   */
  private static void greetAndHear(Socket s, long leftMs, java.util.concurrent.BlockingQueue<Hello> hellos,
      java.util.Set<Socket> unheard) {
    try {
      s.setSoTimeout((int) Math.max(1000, Math.min(10_000, leftMs)));
      DataOutputStream greeting = new DataOutputStream(s.getOutputStream());
      greeting.writeInt(MAGIC);
      greeting.writeInt(VERSION);
      greeting.flush();
      DataInputStream in = new DataInputStream(s.getInputStream());
      int magic = in.readInt();
      int version = in.readInt();
      if (magic != MAGIC) {
        unheard.remove(s);
        refuse(s, "not an opt-java rendezvous"); // a stray connection (a port scanner, another program)
        return;
      }
      int rank = in.readInt(); // magic, version, rank and world size begin the hello in every version
      int world = in.readInt();
      if (version != VERSION) {
        hellos.add(new Hello(s, version, rank, world, -1, null)); // one of ours, of another version: cannot run
        return;
      }
      int kind = in.readInt();
      int n = in.readInt();
      if (n < 0 || n > MAX_PAYLOAD || (kind != JOIN && kind != FAILED)) {
        unheard.remove(s);
        refuse(s, "not an opt-java rendezvous of version " + VERSION);
        return;
      }
      byte[] got = new byte[n];
      in.readFully(got);
      hellos.add(new Hello(s, VERSION, rank, world, kind, got));
    } catch (IOException e) {
      unheard.remove(s);
      closeQuietly(s); // a peer that hung up half way: it retries, or times out on its side
    }
  }

  /**
   * Rank 0's books for one hello: a joining rank is added to {@code peers} (or, once the job failed, refused with
   * the reason); anything else is refused. Returns the job's error, the given one or a new one.
   */
  private static String admit(Hello h, Placement p, String error, TreeSet<Integer> missing, Member[] members,
      List<Peer> peers) {
    Socket s = h.socket();
    int rank = h.rank();
    int world = h.world();
    boolean inRange = rank >= 1 && rank < p.worldSize();
    boolean first = inRange && missing.remove(rank); // a rank told of any problem is not waited for again
    String problem;
    if (h.version() != VERSION) {
      problem = "a process of another opt-java version joined (rendezvous version " + h.version() + ", rank 0 has "
          + VERSION + "): start every process with the same version";
    } else if (world != p.worldSize()) {
      problem = "rank " + rank + " joined with a world size of " + world + " but rank 0 has " + p.worldSize()
          + ": every process must see the same WORLD_SIZE (" + p.source() + " variables)";
    } else if (!inRange) {
      problem = "a process joined as rank " + rank + ", outside 1.." + (world - 1);
    } else if (!first) {
      problem = "two processes joined as rank " + rank + ": every process needs its own RANK";
    } else if (h.kind() == FAILED) {
      problem = "rank " + rank + " failed before joining: "
          + printable(new String(h.payload(), java.nio.charset.StandardCharsets.UTF_8));
    } else if (error == null) {
      members[rank] = new Member(rank, s.getInetAddress().getHostAddress(), h.payload());
      peers.add(new Peer(s, rank));
      return null;
    } else {
      problem = null; // a rank arriving after the job failed: told why
    }
    String result = error != null ? error : problem;
    refuse(s, result);
    return result;
  }

  /**
   * Answers every waiting peer: the members, or the error. Returns the error, or a new one when a peer hung up
   * before it got the members.
   */
  private static String tell(List<Peer> peers, Member[] members, String error) {
    for (Peer peer : peers) {
      try (Socket s = peer.socket) {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        if (error == null) {
          out.writeInt(0);
          for (Member m : members) {
            out.writeUTF(m.host());
            out.writeInt(m.payload().length);
            out.write(m.payload());
          }
        } else {
          out.writeInt(1);
          out.writeUTF(error);
        }
        out.flush();
      } catch (IOException e) {
        if (error == null) {
          error = "rank " + peer.rank + " hung up before it got the payload: " + e.getMessage();
        }
      }
    }
    peers.clear();
    return error;
  }

  /** A peer's side: reaches rank 0 (retrying until it listens), checks its greeting, says hello, awaits the answer. */
  private static List<Member> join(Placement p, int kind, byte[] payload, Duration timeout, long deadline,
      int greetingMs) {
    String where = p.masterAddr() + ":" + p.masterPort();
    IOException last = null;
    boolean unresolvedLogged = false;
    while (System.nanoTime() < deadline) {
      InetSocketAddress master = new InetSocketAddress(p.masterAddr(), p.masterPort());
      if (master.isUnresolved()) {
        // Not fatal: on a cluster rank 0's name may be published only once its container starts.
        last = new java.net.UnknownHostException("MASTER_ADDR=" + p.masterAddr() + " does not resolve");
        if (!unresolvedLogged) {
          LOG.warn("rank {}: {} yet; retrying until the rendezvous timeout ({})", p.rank(), last.getMessage(),
              seconds(timeout));
          unresolvedLogged = true;
        }
        pause();
        continue;
      }
      try (Socket s = new Socket()) {
        long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
        try {
          s.connect(master, (int) Math.min(left, 5_000));
        } catch (SocketTimeoutException e) { // no answer to the SYN (rank 0's host not up yet): not rank 0's silence
          throw new java.net.ConnectException("connect timed out");
        }
        if (selfConnected(s)) { // holds the master port while rank 0 is not listening yet: give it back
          throw new java.net.ConnectException("connected to itself (rank 0 not listening yet)");
        }
        DataInputStream in = new DataInputStream(s.getInputStream());
        long leftMs = Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
        s.setSoTimeout((int) Math.min(greetingMs, leftMs));
        int magic;
        int version;
        try {
          magic = in.readInt();
          version = in.readInt();
        } catch (SocketTimeoutException e) {
          // Rank 0 greets as it accepts: no greeting means something else listens there. With a rendezvous timeout
          // shorter than the greeting's wait, this was reported as rank 0 waiting for another rank (review, session 27).
          throw new RendezvousException("rank " + p.rank() + " reached " + where + " but what listens there did "
              + "not greet it as an opt-java rank 0 within " + seconds(Duration.ofMillis(Math.min(greetingMs, leftMs)))
              + (leftMs < greetingMs ? " (the rest of the rendezvous timeout)" : "")
              + ": another program may use that port (torchrun's store listens on MASTER_PORT; see "
              + "OPT_RENDEZVOUS_PORT): choose a free MASTER_PORT for rank 0");
        }
        if (magic != MAGIC) {
          throw new RendezvousException("rank " + p.rank() + " reached " + where + " but another program answered "
              + "there (it sent 0x" + Integer.toHexString(magic) + ", not an opt-java greeting): choose a free "
              + "MASTER_PORT for rank 0");
        }
        if (version != VERSION) {
          throw new RendezvousException("rank 0 at " + where + " speaks rendezvous version " + version + ", rank "
              + p.rank() + " version " + VERSION + ": start every process with the same opt-java version");
        }
        s.setSoTimeout((int) Math.min(Integer.MAX_VALUE, Math.max(1, (deadline - System.nanoTime()) / 1_000_000)));
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(MAGIC);
        out.writeInt(VERSION);
        out.writeInt(p.rank());
        out.writeInt(p.worldSize());
        out.writeInt(kind);
        out.writeInt(payload.length);
        out.write(payload);
        out.flush();
        int status = in.readInt();
        if (status != 0) {
          String why = in.readUTF();
          throw new RendezvousException(why.startsWith("rank " + p.rank() + " failed before joining") ? why
              : "rank 0 refused rank " + p.rank() + ": " + why);
        }
        List<Member> members = new ArrayList<>();
        for (int r = 0; r < p.worldSize(); r++) {
          String host = in.readUTF();
          int n = in.readInt();
          if (n < 0 || n > MAX_PAYLOAD) {
            throw new RendezvousException("rank 0 sent a payload of " + n + " bytes: not an opt-java rendezvous");
          }
          byte[] got = new byte[n];
          in.readFully(got);
          members.add(new Member(r, host, got));
        }
        return members;
      } catch (SocketTimeoutException e) {
        throw new RendezvousException("rank " + p.rank() + " reached rank 0 at " + where + " but got no answer within "
            + seconds(timeout) + ": some other rank did not join");
      } catch (EOFException e) {
        throw new RendezvousException("rank 0 at " + where + " closed the connection without an answer: it may have "
            + "failed; see its log");
      } catch (IOException e) {
        last = e; // rank 0 not listening yet: try again shortly
        pause();
      }
    }
    throw new RendezvousException("rank " + p.rank() + " could not reach rank 0 at " + where + " within "
        + seconds(timeout) + (last == null ? "" : " (" + last.getMessage() + ")")
        + ": check MASTER_ADDR and MASTER_PORT and that rank 0 started");
  }

  private static void pause() {
    try {
      Thread.sleep(100);
    } catch (InterruptedException ie) {
      Thread.currentThread().interrupt();
      throw new RendezvousException("interrupted while waiting for rank 0");
    }
  }

  /**
   * Whether s is connected to itself: on one host, a connect to a port nobody listens on yet can pick that very
   * port as its own ephemeral port and complete (TCP's simultaneous open), and would then hold rank 0's port, so
   * that rank 0 fails to listen with "Address already in use" (seen once in CI, 2026-11-27).
   */
  static boolean selfConnected(Socket s) {
    return s.isConnected() && s.getLocalPort() == s.getPort() && s.getLocalAddress().equals(s.getInetAddress());
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closing anyway
    }
  }

  private static void refuse(Socket s, String message) {
    try (s) {
      DataOutputStream out = new DataOutputStream(s.getOutputStream());
      out.writeInt(1);
      out.writeUTF(message);
      out.flush();
    } catch (IOException e) {
      // the peer is gone already; rank 0 reports the problem itself
    }
  }

  private static String join(TreeSet<Integer> ranks) {
    StringBuilder b = new StringBuilder();
    for (int r : ranks) {
      b.append(b.length() == 0 ? "" : ", ").append(r);
    }
    return b.toString();
  }

  private static String seconds(Duration d) {
    return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
  }
}
