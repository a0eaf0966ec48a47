package io.github.optjava.backend.cuda;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * Marks a test that needs a usable CUDA backend. Without one it is reported as skipped; with
 * {@code -Dopt.requireGpu=true} (scripts/device-check.sh sets it) a missing GPU is an error instead, so
 * a broken GPU host cannot pass silently. Run only these with {@code -Dgroups=gpu}.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag("gpu")
@EnabledIf(value = "io.github.optjava.backend.cuda.GpuCondition#usable",
    disabledReason = "CUDA backend not usable on this machine (see the CudaProbe log line)")
public @interface GpuTest {}
