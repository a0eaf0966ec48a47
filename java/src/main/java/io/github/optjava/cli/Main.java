package io.github.optjava.cli;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code opt} command-line program (run through {@code scripts/opt}). Its sub-commands and their
 * JSON formats are a stable contract: research batch jobs and automated checks depend on them.
 *
 * <p>Every failure prints one clear line to stderr and exits non-zero; {@code --debug} adds the stack
 * trace.
 */
@Command(name = "opt", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Run Meta's OPT language models on the JVM.",
    subcommands = {TokenizeCommand.class, InspectCommand.class, InfoCommand.class,
        BenchTokenizerCommand.class, CommandLine.HelpCommand.class})
public final class Main {

  @Option(names = "--debug", scope = CommandLine.ScopeType.INHERIT,
      description = "Print stack traces of errors.")
  boolean debug;

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs the CLI and returns its exit status (for tests: no System.exit). */
  public static int run(String... args) {
    Main main = new Main();
    CommandLine cl = new CommandLine(main);
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      PrintWriter err = cmd.getErr();
      err.println("opt: error: " + describe(e));
      if (main.debug) {
        e.printStackTrace(err);
      }
      err.flush();
      return 1;
    });
    return cl.execute(args);
  }

  /** One line for the user: our own exceptions carry a complete message; others get their type too. */
  static String describe(Throwable e) {
    if (e instanceof CheckpointException || e instanceof IllegalArgumentException
        || e instanceof IllegalStateException) {
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
