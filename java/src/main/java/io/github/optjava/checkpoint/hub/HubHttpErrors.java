package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.net.URI;
import java.net.http.HttpResponse;

/**
 * Turns a failed hub response into an exception whose message says what is wrong and what to do.
 * The hub's {@code X-Error-Code} header (RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound)
 * is used when present, as huggingface_hub does; the status code decides otherwise.
 */
final class HubHttpErrors {

  /** The most characters of a URL a message shows: a redirect's target is the server's choice. */
  private static final int MAX_URL_SHOWN = 300;

  private HubHttpErrors() {}

  /**
   * What was being asked for, for messages.
   *
   * @param file the file requested, or {@code null} for the repository listing
   * @param tokenSent whether an access token went with the request
   */
  record Context(URI endpoint, RepoId repo, String revision, String file, boolean tokenSent) {}

  static CheckpointException forStatus(HttpResponse<?> response, Context c) {
    int status = response.statusCode();
    String code = response.headers().firstValue("X-Error-Code").orElse("");
    // The server's own words, quoted and cut: a header may hold a forged log line or kilobytes of text.
    String serverMessage = response.headers().firstValue("X-Error-Message")
        .map(m -> " Hub message: " + Untrusted.quote(m) + ".").orElse("");
    String where = c.repo() + " (revision " + c.revision() + ") on " + c.endpoint();
    String modelPage = c.endpoint() + "/" + c.repo();

    if (code.equals("GatedRepo") || status == 403) {
      return new CheckpointException(
          "Access to " + where + " is restricted (HTTP " + status + "): the model is gated or private. "
              + "Accept its terms at " + modelPage + " and "
              + (c.tokenSent()
                  ? "check that the token in HF_TOKEN belongs to an account with access."
                  : "set HF_TOKEN to an access token of an account with access.")
              + serverMessage);
    }
    if (status == 401) {
      return new CheckpointException(
          "Cannot access " + where + " (HTTP 401): the repository does not exist, or it is private or "
              + "gated and needs authentication. Check the id; "
              + (c.tokenSent()
                  ? "the token in HF_TOKEN was rejected or cannot read this repository."
                  : "if the model is private or gated, set HF_TOKEN to an access token (see "
                      + "https://huggingface.co/settings/tokens) or run `huggingface-cli login`.")
              + serverMessage);
    }
    if (status == 404) {
      return new CheckpointException(notFoundMessage(code, c, where) + serverMessage);
    }
    String url = withoutQuery(response.uri());
    if (status >= 500 || status == 429) {
      // 429: rate limited. Like a server error, a cached copy serves (as huggingface_hub falls back too).
      return new HubUnavailableException(
          "The hub answered HTTP " + status + " for " + url + (status == 429 ? "; it limits how often it is asked, "
              : "; it may be down or overloaded, ") + "try again later." + serverMessage);
    }
    return new CheckpointException(
        "Unexpected HTTP " + status + " for " + url + " (" + where + ")." + serverMessage);
  }

  /**
   * A refusal by the server the hub sent a download to (its CDN): the hub had granted access, so this is not about
   * the repository's access rights or existence, which is what {@link #forStatus} would say.
   */
  static CheckpointException forFileServer(HttpResponse<?> response, Context c) {
    int status = response.statusCode();
    String server = response.uri().getScheme() + "://" + response.uri().getAuthority();
    String what = "The download of " + Untrusted.quote(c.file()) + " of " + c.repo() + " from " + server
        + ", where the hub sent it, failed with HTTP " + status;
    if (status >= 500 || status == 429) {
      return new HubUnavailableException(what + "; the file server may be overloaded: try again later.");
    }
    return new CheckpointException(what + " although the hub granted access: its signed link may have expired "
        + "(run again), or a proxy or firewall blocks " + response.uri().getHost() + ".");
  }

  private static String notFoundMessage(String code, Context c, String where) {
    if (code.equals("RevisionNotFound")) {
      return "Revision '" + c.revision() + "' of " + c.repo() + " not found on " + c.endpoint()
          + " (HTTP 404): use a branch, tag or commit of that repository.";
    }
    if (code.equals("RepoNotFound")) {
      return "Repository " + c.repo() + " not found on " + c.endpoint() + " (HTTP 404): check the "
          + "model id (for example " + RepoId.EXAMPLE + ").";
    }
    if (c.file() != null) {
      return "File " + Untrusted.quote(c.file()) + " not found in " + where + " (HTTP 404).";
    }
    return "Repository " + c.repo() + " or its revision '" + c.revision() + "' not found on "
        + c.endpoint() + " (HTTP 404): check the model id (for example " + RepoId.EXAMPLE
        + ") and the revision.";
  }

  /**
   * The URL without its query, which for CDN links holds a long signature of no use to a reader, and cut
   * to 300 characters: after a redirect the server chose it (a URI holds no control characters).
   */
  static String withoutQuery(URI uri) {
    String text = uri.toString();
    int query = text.indexOf('?');
    String shown = query < 0 ? text : text.substring(0, query);
    return shown.length() > MAX_URL_SHOWN ? shown.substring(0, MAX_URL_SHOWN) + "…" : shown;
  }
}
