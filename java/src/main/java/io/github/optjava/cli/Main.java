package io.github.optjava.cli;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code opt} command-line program (run through {@code scripts/opt}). Its sub-commands and their
 * JSON formats are a stable contract: research batch jobs and automated checks depend on them.
 *
 * <p>Every failure prints one clear line to stderr and exits 1 ({@code --debug} adds the stack trace); a command
 * line that does not parse exits 2 (picocli's usage error). The README's "Exit status" lists them all.
 */
@Command(name = "opt", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Run Meta's OPT language models on the JVM.",
    subcommands = {GenerateCommand.class, BatchCommand.class, ScoreCommand.class, BenchCommand.class, TokenizeCommand.class,
        InspectCommand.class, InfoCommand.class, RendezvousCommand.class, BenchTokenizerCommand.class,
        ConvertMetaseqCommand.class, CommandLine.HelpCommand.class})
public final class Main {

  @Option(names = "--debug", scope = CommandLine.ScopeType.INHERIT,
      description = "Print stack traces of errors.")
  boolean debug;

  /** Standard streams of this run; UTF-8 whatever the platform's locale says. */
  InputStream in;
  PrintStream out;
  PrintStream err;

  public static void main(String[] args) {
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
    System.exit(run(System.in, out, err, args));
  }

  /** Runs the CLI on the given streams and returns its exit status (tests call this: no System.exit). */
  public static int run(InputStream in, PrintStream out, PrintStream err, String... args) {
    Main main = new Main();
    main.in = in;
    main.out = out;
    main.err = err;
    CommandLine cl = new CommandLine(main);
    cl.setOut(new PrintWriter(new OutputStreamWriter(out, StandardCharsets.UTF_8), true));
    cl.setErr(new PrintWriter(new OutputStreamWriter(err, StandardCharsets.UTF_8), true));
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      PrintWriter w = cmd.getErr();
      // A command's own failure names what the user can change as options (--max-tokens, not max_tokens)
      w.println("opt: error: " + (e instanceof IllegalArgumentException ? ParamNames.cli(describe(e)) : describe(e)));
      if (main.debug) {
        e.printStackTrace(w);
      }
      w.flush();
      return 1;
    });
    try {
      return cl.execute(args);
    } catch (OutOfMemoryError e) { // (an Error passes picocli's handler): one line, as for every other failure
      err.println("opt: error: out of Java heap (" + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB at most: "
          + e.getMessage() + "); give the JVM a larger heap: OPT_JAVA_OPTS=-Xmx8g scripts/opt ...");
      if (main.debug) {
        e.printStackTrace(err);
      }
      err.flush();
      return 1;
    }
  }

  /**
   * Whether standard output was closed under a JSON Lines command (a reader such as {@code head} went away:
   * PrintStream swallows the broken pipe, {@code checkError} reports it); if so, says so on {@code err}, so the
   * command can stop instead of computing answers nobody reads, and exit 1.
   *
   * @param answer the number of the answer just written (1 for the first), which may be the first to fail
   */
  static boolean outputClosed(PrintStream out, PrintStream err, long answer) {
    if (!out.checkError()) {
      return false;
    }
    err.printf(java.util.Locale.ROOT, "opt: error: standard output closed (at answer %d); stopped without reading the "
        + "rest of the input%n", answer);
    return true;
  }

  /** One line for the user: our own exceptions carry a complete message; others get their type too. */
  static String describe(Throwable e) {
    if (e instanceof CheckpointException || e instanceof IllegalArgumentException
        || e instanceof IllegalStateException || e instanceof io.github.optjava.parallel.Rendezvous.RendezvousException) {
      return e.getMessage();
    }
    if (e instanceof java.io.UncheckedIOException || e instanceof java.io.IOException) {
      return "I/O error: " + e.getMessage();
    }
    return e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Main.class.getPackage().getImplementationVersion();
      return new String[] {"opt-java " + (v == null ? "(development build)" : v)};
    }
  }
}
