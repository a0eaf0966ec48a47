#!/usr/bin/env bash
# Builds target/gpu-bundle/: everything scripts/device-check.sh needs on a GPU host that has no
# internet, no Maven and perhaps no JDK. Carry it to the device with the `carry` argument.
#   lib/        the library jar and its runtime dependencies (plain, not shaded: the tests are compiled
#               against the unrelocated Jackson)
#   tests.jar   the test classes (the fixtures come from the working tree)
#   junit.jar   the JUnit console launcher
#   jre.txz     a jlink-built Java 17 runtime, libjvm stripped, xz-compressed (12 MB instead of 19: the
#               bundle plus the tracked tree must stay under the device's 64 MiB transfer limit);
#               used only when the host has no Java 17+
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/gpu-bundle
rm -rf "$out"
mkdir -p "$out/lib"

# Kernels for the lent GPUs only (H100/H200: sm_90 machine code, no PTX): the smallest library, which keeps the
# bundle + tree under the 64 MiB transfer limit (session 11: 27.0 MiB with 90-real, 29 MiB with "90", which adds
# compute_90 PTX; tree 34.3 MiB). OPT_BUNDLE_ARCHS overrides it; the release build keeps all of 80;86;89;90 (CI
# compiles them all).
mvn -B -q -DskipTests ${OPT_MVN_ARGS:-} -Dcuda.archs="${OPT_BUNDLE_ARCHS:-90-real}" package
version="$(sed -n 's:^  <version>\(.*\)</version>:\1:p' pom.xml | head -1)"
cp "target/opt-java-$version.jar" "$out/lib/"
# Test classes only: the fixtures travel with the working tree (java/src/test/resources) and are put
# on the class path there, which keeps the bundle + tree under the device's 64 MiB transfer limit.
"${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}/bin/jar" \
  --create --file "$out/tests.jar" -C target/test-classes io
mvn -B -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/lib"
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.13.4 \
    -DoutputDirectory="$out" -Dmdep.stripVersion=true
mv "$out/junit-platform-console-standalone.jar" "$out/junit.jar"

# A Java runtime: modules of the library (jdeps) plus what the JUnit console needs (logging, xml, sql, zipfs).
jdk="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}"
rm -rf target/gpu-jre
"$jdk/bin/jlink" --add-modules java.base,java.management,jdk.unsupported,java.logging,java.xml,java.sql,jdk.zipfs,java.net.http,jdk.httpserver \
  --strip-debug --no-header-files --no-man-pages --output target/gpu-jre
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded target/gpu-jre/lib/server/libjvm.so
fi
tar -C target -cJf "$out/jre.txz" gpu-jre
# The commit the bundle was built from (the device's copy of the tree may carry a stale .git): device-check
# exports it as OPT_COMMIT, which `opt bench` writes into its JSON lines.
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- java native pom.xml || echo -dirty)" > "$out/commit.txt"
du -sh "$out" "$out"/*
