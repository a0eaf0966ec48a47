package io.github.optjava.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One set of CUDA kernel choices for {@code opt bench --variants}: several variants are timed one after the other
 * on the same model in one process, so that the numbers that decide a default (a new kernel against the verified
 * one) come from the same run, and a GPU session spends its minutes on timing rather than on building models.
 *
 * <p>Written as {@code default} (the process's choices: {@code -Dopt.cuda.*} properties, else the verified
 * kernels) or as comma-separated settings, each overriding the default: {@code attention=first|split|tiled|tc|fa},
 * {@code gemv=on|off|N} (the most rows whose Linears run the matrix-vector kernel: on = 8, off = 0),
 * {@code gemm=cublas|lt}, {@code chained=on|off}, {@code combine=inline|kernel}, {@code gemvsplit=1|2|4|auto},
 * {@code splitkernel=grouped|perkey}, {@code lnvec=on|off}, {@code lttune=on|off}, {@code tclinear=off|N} (the
 * most rows whose Linears run the tensor-core kernel, session 22), {@code tcsplit=1|2|4|8|auto} (its warps per group
 * of outputs), {@code tconerow=on|off} (16-bit Linears of one row on it too);
 * for example {@code attention=first,gemv=off}. The choices mean what the {@code -Dopt.cuda.attention},
 * {@code -Dopt.cuda.gemv}, {@code -Dopt.cuda.gemm}, {@code -Dopt.cuda.chained}, {@code -Dopt.cuda.inlineCombine},
 * {@code -Dopt.cuda.gemvSplit}, {@code -Dopt.cuda.groupedSplit}, {@code -Dopt.cuda.vecNorm},
 * {@code -Dopt.cuda.ltTune}, {@code -Dopt.cuda.tcLinear}, {@code -Dopt.cuda.tcSplit} and {@code -Dopt.cuda.tcOneRow}
 * properties mean (see {@code CudaOps}).
 *
 * @param spec the text as given (the JSON lines' {@code variant} field)
 * @param attention the attention kernel, or null for the default
 * @param gemvRows Linears of 1 to this many rows use the matrix-vector kernel (0: none), or null for the default
 * @param ltGemm whether Linears go through cuBLASLt, or null for the default
 * @param chained whether decode kernels are chained launches (sm_90+), or null for the default
 * @param inlineCombine whether the split-KV attention merges its splits in the kernel, or null for the default
 * @param gemvSplit warps per output group of the matrix-vector kernel (1, 2, 4; 0 = auto), or null for the default
 * @param groupedSplit whether the split-KV attention reads each key row with a group of threads, or null for the
 *     default
 * @param vectorNorm whether layer norms run the vector kernel (process-wide), or null for the default
 * @param ltTune whether cuBLASLt picks the algorithms of decode-sized Linears by timing them, or null for the default
 * @param tcRows Linears of up to this many rows run the tensor-core kernel (0: none), or null for the default
 * @param tcSplit the tensor-core Linear's warps per group of outputs (1, 2, 4, 8; 0 = auto), or null for the default
 * @param tcOneRow whether 16-bit Linears of one row run the tensor-core kernel too, or null for the default
 */
record CudaVariant(String spec, String attention, Integer gemvRows, Boolean ltGemm, Boolean chained,
    Boolean inlineCombine, Integer gemvSplit, Boolean groupedSplit, Boolean vectorNorm, Boolean ltTune,
    Integer tcRows, Integer tcSplit, Boolean tcOneRow) {
  /**
   * Every setting a variant may give, for the help text and the error message (a compile-time constant, so that
   * picocli's annotation can use it; {@code CudaVariantTest} checks it names every key the parser reads).
   */
  static final String SETTINGS = "attention=first|split|tiled|tc|fa, gemv=on|off|N rows, gemm=cublas|lt, "
      + "chained=on|off, combine=inline|kernel, gemvsplit=1|2|4|auto, splitkernel=grouped|perkey, lnvec=on|off, "
      + "lttune=on|off, tclinear=off|N rows, tcsplit=1|2|4|8|auto, tconerow=on|off";

  // CudaOps' list (loading the class touches no native code: its static fields are properties and constants)
  private static final List<String> ATTENTION = io.github.optjava.backend.cuda.CudaOps.ATTENTION_KERNELS;

  /** The variants of a {@code ;}-separated list, in order; a clear error for anything else. */
  static List<CudaVariant> parseList(String text) {
    List<CudaVariant> out = new ArrayList<>();
    for (String part : text.split(";", -1)) {
      out.add(parse(part.trim()));
    }
    return out;
  }

  static CudaVariant parse(String spec) {
    if (spec.equalsIgnoreCase("default")) {
      return new CudaVariant("default", null, null, null, null, null, null, null, null, null, null, null, null);
    }
    Map<String, String> settings = new LinkedHashMap<>();
    for (String setting : spec.split(",", -1)) {
      String[] kv = setting.trim().split("=", -1);
      if (kv.length != 2 || kv[0].isBlank() || kv[1].isBlank()) {
        throw bad(spec, "'" + setting.trim() + "' is not KEY=VALUE");
      }
      String key = kv[0].trim().toLowerCase(Locale.ROOT);
      if (settings.put(key, kv[1].trim().toLowerCase(Locale.ROOT)) != null) {
        throw bad(spec, key + " is given twice");
      }
    }
    String attention = settings.remove("attention");
    if (attention != null && !ATTENTION.contains(attention)) {
      throw bad(spec, "attention must be one of " + String.join(", ", ATTENTION));
    }
    Integer gemv = gemvRows(spec, settings.remove("gemv"));
    Boolean lt = onOff(spec, "gemm", settings.remove("gemm"), "lt", "cublas");
    Boolean chained = onOff(spec, "chained", settings.remove("chained"), "on", "off");
    Boolean inlineCombine = onOff(spec, "combine", settings.remove("combine"), "inline", "kernel");
    Integer gemvSplit = gemvSplit(spec, settings.remove("gemvsplit"));
    Boolean groupedSplit = onOff(spec, "splitkernel", settings.remove("splitkernel"), "grouped", "perkey");
    Boolean vectorNorm = onOff(spec, "lnvec", settings.remove("lnvec"), "on", "off");
    Boolean ltTune = onOff(spec, "lttune", settings.remove("lttune"), "on", "off");
    Integer tcRows = tcRows(spec, settings.remove("tclinear"));
    Integer tcSplit = tcSplit(spec, settings.remove("tcsplit"));
    Boolean tcOneRow = onOff(spec, "tconerow", settings.remove("tconerow"), "on", "off");
    if (!settings.isEmpty()) {
      throw bad(spec, "unknown setting(s) " + settings.keySet()
          + " (known: attention, gemv, gemm, chained, combine, gemvsplit, splitkernel, lnvec, lttune, tclinear, "
          + "tcsplit, tconerow)");
    }
    return new CudaVariant(spec, attention, gemv, lt, chained, inlineCombine, gemvSplit, groupedSplit, vectorNorm,
        ltTune, tcRows, tcSplit, tcOneRow);
  }

  private static Integer tcSplit(String spec, String value) {
    if (value == null) {
      return null;
    }
    return switch (value) {
      case "1", "2", "4", "8" -> Integer.parseInt(value);
      case "auto" -> 0;
      default -> throw bad(spec, "tcsplit must be 1, 2, 4, 8 or auto, not '" + value + "'");
    };
  }

  private static Integer tcRows(String spec, String value) {
    if (value == null) {
      return null;
    }
    int most = 32; // CudaSwitches.TC_LINEAR_MAX_ROWS (package-private there)
    if (value.equals("off")) {
      return 0;
    }
    try {
      int n = Integer.parseInt(value);
      if (n >= 0 && n <= most) {
        return n;
      }
    } catch (NumberFormatException e) {
      // the message below
    }
    throw bad(spec, "tclinear must be off or the most rows (0 to " + most + "), not '" + value + "'");
  }

  private static Integer gemvRows(String spec, String value) {
    if (value == null) {
      return null;
    }
    int most = 8; // CudaSwitches.GEMV_MAX_ROWS (package-private there)
    switch (value) {
      case "on" -> { return most; }
      case "off" -> { return 0; }
      default -> {
        try {
          int n = Integer.parseInt(value);
          if (n >= 0 && n <= most) {
            return n;
          }
        } catch (NumberFormatException e) {
          // the message below
        }
        throw bad(spec, "gemv must be on, off or the most rows (0 to " + most + "), not '" + value + "'");
      }
    }
  }

  private static Integer gemvSplit(String spec, String value) {
    if (value == null) {
      return null;
    }
    return switch (value) {
      case "1", "2", "4" -> Integer.parseInt(value);
      case "auto" -> 0;
      default -> throw bad(spec, "gemvsplit must be 1, 2, 4 or auto, not '" + value + "'");
    };
  }

  private static Boolean onOff(String spec, String key, String value, String yes, String no) {
    if (value == null) {
      return null;
    }
    if (value.equals(yes) || value.equals(no)) {
      return value.equals(yes);
    }
    throw bad(spec, key + " must be " + yes + " or " + no + ", not '" + value + "'");
  }

  private static IllegalArgumentException bad(String spec, String why) {
    return new IllegalArgumentException("--variants: '" + spec + "': " + why + ". A variant is 'default' or "
        + "comma-separated settings (" + SETTINGS + "); separate variants with ';'");
  }
}
