package io.github.optjava.backend;

/**
 * A step begun with {@link Ops#graphStep} could not be captured or replayed as a graph. Nothing of the step
 * ran on the device (a capture only records, a replay launches only at the end), the backend has abandoned
 * the step and runs later steps without graphs: the caller runs the same step again, op by op.
 */
public class GraphStepFailedException extends RuntimeException {
  public GraphStepFailedException(String message, Throwable cause) {
    super(message, cause);
  }
}
