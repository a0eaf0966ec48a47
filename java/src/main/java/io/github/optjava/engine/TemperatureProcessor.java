package io.github.optjava.engine;

/**
 * HF {@code TemperatureLogitsWarper}: {@code scores / temperature}.
 *
 * <p>Torch divides a float32 tensor by a Python float in float32 (the scalar is cast to the tensor's
 * dtype), so each score is divided by {@code (float) temperature}: bit-exact with HF.
 */
public final class TemperatureProcessor implements LogitsProcessor {

  private final float temperature;

  /**
   * @param temperature a finite value {@code > 0}; temperature 0 is greedy decoding, which needs no
   *                    processor (the argmax does not depend on it)
   */
  public TemperatureProcessor(double temperature) {
    if (!(temperature > 0) || !Double.isFinite(temperature)) {
      throw new IllegalArgumentException("temperature must be a finite number > 0 (got " + temperature + ")");
    }
    this.temperature = (float) temperature;
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    for (int i = 0; i < logits.length; i++) {
      logits[i] = logits[i] / temperature;
    }
  }

  @Override
  public String toString() {
    return "Temperature(" + temperature + ")";
  }
}
