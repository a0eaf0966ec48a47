#!/usr/bin/env bash
# The one prepared command for a GPU host (Linux, NVIDIA GPU, no internet, Python with PyTorch and
# transformers, perhaps no JDK). Build its input first, on the build machine:
#     scripts/gpu-bundle.sh            -> target/gpu-bundle (carry it to the host)
# then on the host, from the repository root:
#     bash scripts/device-check.sh     (logs under $OUT, default target/device-out; a table is printed last)
# Steps: host facts -> Java -> CUDA libraries -> JUnit with a GPU required -> native/dev/check_ops ->
# HF transformers vs ours on a random-weight opt-1.3b (scripts/hf_peer.py + devicecheck.CompareMain) -> table.
# Budget: under 8 minutes; later steps get what is left of DEVICE_CHECK_BUDGET_S (default 450 s) and are
# skipped with a row saying so when too little is left.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
budget="${DEVICE_CHECK_BUDGET_S:-450}"
OUT="${OUT:-target/device-out}"
mkdir -p "$OUT" target
bundle=target/gpu-bundle
declare -a rows=()
failed=0
row() { rows+=("$(printf '%-28s %-8s %s' "$1" "$2" "$3")"); [ "$2" = FAIL ] && failed=1; return 0; }
# Seconds a step may take: its own cap, but never past the budget minus what later steps reserve.
# At least 1 (`timeout 0` would mean no limit at all).
cap() { local c=$1 l=$(( budget - SECONDS - ${2:-0} )); [ "$l" -lt "$c" ] && c=$l; [ "$c" -lt 1 ] && c=1; echo "$c"; }

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
if [ -z "$java_bin" ] && [ -f "$bundle/jre.txz" ]; then
  # tar needs the xz program for -J; Python's tarfile does not.
  { tar -C target -xJf "$bundle/jre.txz" 2>/dev/null \
      || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle/jre.txz" target; } \
    && chmod -R u+x target/gpu-jre/bin && java_bin="$PWD/target/gpu-jre/bin/java"
fi
if [ -z "$java_bin" ]; then
  row "java" "FAIL" "no Java 17+ and no $bundle/jre.txz (run scripts/gpu-bundle.sh and carry target/gpu-bundle)"
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
# The disk search also runs when Python found directories but not all three libraries in them (a torch
# built for CUDA 12 has nvidia/cublas/lib with libcublas.so.12 only; a CUDA 13 toolkit may sit elsewhere),
# and it looks for libcudart.so.13 too: without it OptKernels cannot load and every GPU test fails.
has_lib() { local d IFS=:; for d in $libdirs; do [ -e "$d/$1" ] && return 0; done; return 1; }
if ! has_lib libcudart.so.13 || ! has_lib libcublas.so.13 || ! has_lib libnccl.so.2; then
  extra="$(timeout 60 find / -xdev \( -name 'libcudart.so.13' -o -name 'libcublas.so.13' -o -name 'libnccl.so.2' \) \
             2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd: -)"
  [ -n "$extra" ] && libdirs="${libdirs:+$libdirs:}$extra"
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
# Meanwhile, in the background (nothing of theirs is timed): compile native/dev/check_ops (CPU only) and
# build the random-weight opt-1.3b for the HF comparison (GPU, ~2.6 GB under target/, not $OUT: $OUT is
# copied back). Their logs are under $OUT; steps 5 and 6 wait for them.
nvcc_bin="$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)"
cc="$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
case "$cc" in [0-9][0-9]|[0-9][0-9][0-9]) ;; *) cc=90 ;; esac
pid_nvcc=""
if [ -n "$nvcc_bin" ]; then
  rm -f target/check_ops
  ( echo "## build: $nvcc_bin -O2 -arch=sm_$cc"
    timeout 240 "$nvcc_bin" -O2 -arch="sm_$cc" -I native/include native/dev/check_ops.cu native/src/*.cu \
      -o target/check_ops ) > "$OUT/check_ops.log" 2>&1 &
  pid_nvcc=$!
fi
hf_model=target/hf-opt-1.3b
timeout "$(cap 300 120)" python3 scripts/hf_peer.py make --out "$hf_model" --shape 1.3b --seed 0 \
  > "$OUT/hf_make.log" 2>&1 &
pid_make=$!
cp="$(ls "$bundle"/lib/*.jar | paste -sd: -):$bundle/tests.jar:java/src/test/resources"
timeout "$(cap 300)" "$java_bin" -Dopt.requireGpu=true -Dorg.slf4j.simpleLogger.log.io.github.optjava.backend.cuda.CudaProbe=debug "-Dopt.cuda.libpath=$libdirs" \
  -Dorg.bytedeco.javacpp.cachedir=target/javacpp-cache \
  -jar "$bundle/junit.jar" execute -cp "$cp" --scan-classpath "$bundle/tests.jar" \
  --exclude-classname '.*IT$' --details=summary --disable-ansi-colors \
  --reports-dir="$OUT/junit-reports" > "$OUT/junit.log" 2>&1
rc=$?
grep -E "CUDA (not )?usable" "$OUT/junit.log" | head -1 | sed -E 's/.*(CudaProbe - |\[DEBUG\] )//' > "$OUT/probe.txt"
summary="$(grep -E "(tests (successful|failed|skipped)|containers failed)" "$OUT/junit.log" | tr -d '[]' | tr -s ' ' | paste -sd, -)"
row "junit (GPU required)" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "${summary:-see junit.log}"
row "cuda probe" "info" "$(cut -c1-150 "$OUT/probe.txt")"

# 5. native/dev/check_ops: every kernel launcher against its CPU reference (f32, f16, bf16), outside Java.
if [ -z "$pid_nvcc" ]; then
  row "check_ops (kernels)" "skip" "no nvcc on PATH or in /usr/local/cuda/bin"
elif ! wait "$pid_nvcc" || [ ! -x target/check_ops ]; then
  row "check_ops (kernels)" "FAIL" "nvcc build failed: $(grep -m1 -iE 'error|timeout' "$OUT/check_ops.log" | cut -c1-110)"
elif [ "$(cap 90)" -lt 20 ]; then
  row "check_ops (kernels)" "skip" "time budget spent (${SECONDS}s of ${budget}s)"
else
  timeout "$(cap 90)" target/check_ops >> "$OUT/check_ops.log" 2>&1
  crc=$?
  row "check_ops (kernels)" "$([ $crc -eq 0 ] && echo ok || echo FAIL)" \
    "$( (grep -E '^(PASS|FAIL):' "$OUT/check_ops.log" || echo "exit $crc: $(tail -1 "$OUT/check_ops.log")") | tail -1 | cut -c1-110)"
fi

# 6. HF transformers (cuda fp16, eager) vs ours (CudaOps F16) on the random opt-1.3b: logits, greedy, timings.
hfc="$OUT/hf-compare"
rm -rf "$hfc" "$OUT/hf_compare.log"
mkdir -p "$hfc"
wait "$pid_make"
mrc=$?
if [ $mrc -ne 0 ]; then
  row "hf model (opt-1.3b random)" "FAIL" "hf_peer.py make exit $mrc: $(tail -1 "$OUT/hf_make.log" | cut -c1-100)"
elif ! python3 scripts/hf_peer.py prompts --out "$hfc/prompts.jsonl" > "$OUT/hf_prompts.log" 2>&1; then
  row "hf prompts" "FAIL" "$(tail -1 "$OUT/hf_prompts.log" | cut -c1-110)"
elif [ "$(cap 180 60)" -lt 45 ]; then
  row "hf vs ours" "skip" "time budget spent (${SECONDS}s of ${budget}s)"
else
  row "hf model (opt-1.3b random)" "ok" "$(grep -m1 -oE '(saved|reused).*|already holds.*' "$OUT/hf_make.log" | cut -c1-100)"
  timeout "$(cap 180 60)" python3 scripts/hf_peer.py run --model "$hf_model" --prompts "$hfc/prompts.jsonl" \
    --out "$hfc/hf" --new-tokens 32 > "$OUT/hf_run.log" 2>&1
  hrc=$?
  [ $hrc -ne 0 ] && row "hf peer (run)" "FAIL" "exit $hrc: $(tail -1 "$OUT/hf_run.log" | cut -c1-100)"
  timeout "$(cap 180 10)" "$java_bin" -cp "$cp" "-Dopt.cuda.libpath=$libdirs" \
    -Dorg.bytedeco.javacpp.cachedir=target/javacpp-cache io.github.optjava.devicecheck.CompareMain \
    --model "$hf_model" --prompts "$hfc/prompts.jsonl" --out "$hfc/ours" --new-tokens 32 --dtype F16 \
    --device cuda > "$OUT/ours_run.log" 2>&1
  orc=$?
  [ $orc -ne 0 ] && row "ours (CompareMain)" "FAIL" "exit $orc: $(grep -m1 -E 'CompareMain: (failed|CUDA)|Exception' "$OUT/ours_run.log" | cut -c1-100)"
  if [ $hrc -eq 0 ] && [ $orc -eq 0 ]; then
    timeout "$(cap 60)" python3 scripts/hf_peer.py compare --hf "$hfc/hf" --ours "$hfc/ours" --out "$hfc" \
      --rows "$hfc/rows.tsv" > "$OUT/hf_compare.log" 2>&1
    prc=$?
    if [ -s "$hfc/rows.tsv" ]; then
      while IFS=$'\t' read -r name status detail; do row "$name" "$status" "$detail"; done < "$hfc/rows.tsv"
    else
      row "hf vs ours (compare)" "FAIL" "exit $prc: $(tail -1 "$OUT/hf_compare.log" | cut -c1-100)"
    fi
  fi
fi

echo
[ -s "$OUT/hf_compare.log" ] && { echo "== HF vs ours, opt-1.3b random weights, fp16 ($OUT/hf-compare/compare.json) =="; cat "$OUT/hf_compare.log"; echo; }
echo "== device-check summary ($(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), ${SECONDS}s) =="
printf '%s\n' "${rows[@]}"
[ $rc -eq 0 ] && [ $failed -eq 0 ]
