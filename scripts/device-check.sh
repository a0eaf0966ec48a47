#!/usr/bin/env bash
# The one prepared command for a GPU host (Linux, NVIDIA GPU, no internet, Python with PyTorch and
# transformers, perhaps no JDK). Build its input first, on the build machine:
#     scripts/gpu-bundle.sh            -> target/gpu-bundle (carry it to the host)
# then on the host, from the repository root:
#     bash scripts/device-check.sh     (logs under $OUT, default target/device-out; a table is printed last)
# Steps: host facts -> Java -> CUDA libraries -> JUnit with a GPU required -> summary table.
# The HF-transformers comparison joins with the CUDA backend (#4). Budget: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-target/device-out}"
mkdir -p "$OUT"
bundle=target/gpu-bundle
declare -a rows=()
row() { rows+=("$(printf '%-28s %-8s %s' "$1" "$2" "$3")"); }

# 1. Host facts (docs/gpu-host.md is written from these).
{
  echo "## date";      date -u +%FT%TZ
  echo "## nvidia-smi"; timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1
  echo "## os";        grep PRETTY_NAME /etc/os-release 2>&1; uname -r
  echo "## glibc";     ldd --version 2>&1 | head -1
  echo "## cpu/mem";   nproc; free -g | head -2
  echo "## java";      command -v java && java -version 2>&1
  echo "## nvcc";      (command -v nvcc || ls /usr/local/cuda/bin/nvcc) 2>&1; nvcc --version 2>&1 | tail -2
  echo "## python";    command -v python3; timeout 60 python3 -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  echo "## pip nvidia"; timeout 30 python3 -m pip list 2>/dev/null | grep -iE "nvidia|torch|transformers|safetensors"
  echo "## binutils";  command -v nm readelf objdump
} > "$OUT/host.txt" 2>&1
gpu="$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
row "host" "info" "${gpu:-no nvidia-smi}; $(ldd --version 2>&1 | head -1 | awk '{print "glibc " $NF}')"

# 2. Java 17+: the system one, else the bundled jlink runtime.
java_bin=""
if command -v java >/dev/null 2>&1; then
  jv="$(java -version 2>&1 | head -1 | sed -E 's/.*version "([0-9]+).*/\1/')"
  [ "${jv:-0}" -ge 17 ] 2>/dev/null && java_bin="$(command -v java)"
fi
if [ -z "$java_bin" ] && [ -f "$bundle/jre.tgz" ]; then
  tar -C target -xzf "$bundle/jre.tgz" && java_bin="$PWD/target/gpu-jre/bin/java"
fi
if [ -z "$java_bin" ]; then
  row "java" "FAIL" "no Java 17+ and no $bundle/jre.tgz (run scripts/gpu-bundle.sh and carry target/gpu-bundle)"
  printf '%s\n' "${rows[@]}"; exit 1
fi
row "java" "ok" "$("$java_bin" -version 2>&1 | head -1)"

# 3. CUDA libraries: pip packages of the Python environment first, then a disk search.
libdirs="$(timeout 60 python3 - <<'PY' 2>/dev/null
import os, sys
seen = []
for p in sys.path:
    for sub in ("nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/cuda_runtime/lib", "nvidia/nccl/lib"):
        d = os.path.join(p, sub)
        if os.path.isdir(d) and d not in seen:
            seen.append(d)
print(":".join(seen))
PY
)"
if [ -z "$libdirs" ]; then
  libdirs="$(timeout 60 find / -xdev \( -name 'libcublas.so.13' -o -name 'libnccl.so.2' \) 2>/dev/null \
             | xargs -r -n1 dirname | sort -u | paste -sd: -)"
fi
echo "$libdirs" > "$OUT/libdirs.txt"
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  found="$(IFS=:; for d in $libdirs; do ls "$d/$lib" 2>/dev/null; done | head -1)"
  row "$lib" "$([ -n "$found" ] && echo ok || echo MISSING)" "${found:-not in $libdirs}"
done
# Symbols the preset's JNI cuBLAS needs that this cuBLAS lacks (the 13.3 preset vs a 13.0 runtime).
if command -v nm >/dev/null 2>&1 && [ -d "$bundle/lib" ]; then
  tmp="$(mktemp -d)"
  unzip -q -o "$bundle"/lib/cuda-*-linux-x86_64.jar 'org/bytedeco/cuda/linux-x86_64/libjnicublas.so' -d "$tmp" 2>/dev/null
  cub="$(IFS=:; for d in $libdirs; do ls "$d"/libcublas.so.13 "$d"/libcublasLt.so.13 2>/dev/null; done)"
  if [ -f "$tmp/org/bytedeco/cuda/linux-x86_64/libjnicublas.so" ] && [ -n "$cub" ]; then
    nm -D --undefined-only "$tmp/org/bytedeco/cuda/linux-x86_64/libjnicublas.so" | awk '{print $2}' | grep -i cublas | sort -u > "$tmp/need"
    for f in $cub; do nm -D --defined-only "$f" | awk '{print $3}'; done | sort -u > "$tmp/have"
    comm -23 "$tmp/need" "$tmp/have" > "$OUT/cublas-missing-symbols.txt"
    row "cublas symbols" "info" "$(wc -l < "$OUT/cublas-missing-symbols.txt") preset symbols missing (never call those)"
  fi
  rm -rf "$tmp"
fi

# 4. The JUnit suite with a GPU required: GPU tests fail instead of skipping when CUDA is not usable.
# The fixtures come from the working tree; re-create the vocab/merges links if the copy dropped them.
fx=java/src/test/resources/fixtures
for m in "$fx"/models/*/; do
  for f in vocab.json merges.txt; do [ -s "$m$f" ] || cp "$fx/tokenizer/$f" "$m$f"; done
done
cp="$(ls "$bundle"/lib/*.jar | paste -sd: -):$bundle/tests.jar:java/src/test/resources"
timeout 300 "$java_bin" -Dopt.requireGpu=true "-Dopt.cuda.libpath=$libdirs" \
  -Dorg.bytedeco.javacpp.cachedir=target/javacpp-cache \
  -jar "$bundle/junit.jar" execute -cp "$cp" --scan-classpath "$bundle/tests.jar" \
  --exclude-classname '.*IT$' --details=summary --disable-ansi-colors \
  --reports-dir="$OUT/junit-reports" > "$OUT/junit.log" 2>&1
rc=$?
grep -E "CUDA (not )?usable" "$OUT/junit.log" | head -1 | sed 's/.*CudaProbe - //' > "$OUT/probe.txt"
summary="$(grep -E "(tests (successful|failed|skipped)|containers failed)" "$OUT/junit.log" | tr -d '[]' | tr -s ' ' | paste -sd, -)"
row "junit (GPU required)" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "${summary:-see junit.log}"
row "cuda probe" "info" "$(cut -c1-150 "$OUT/probe.txt")"

echo
echo "== device-check summary ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')) =="
printf '%s\n' "${rows[@]}"
[ $rc -eq 0 ]
