#!/usr/bin/env bash
# A dry run of scripts/device-check.sh on a machine without a GPU (CI, the build machine): the script's own logic,
# end to end, with stand-ins for java, nvcc, ncu, nvidia-smi and hf_peer.py's torch commands
# (scripts/dev/dryrun/). It catches what would waste the GPU host's scarce minutes: bash errors (an unbound
# variable, a bad test), a mode that skips what it promises, a summary that never prints, more files in $OUT than
# the device returns. It measures nothing and checks no kernel.
#
#   scripts/dev/device-check-dryrun.sh [full|quick|peer|retest]...   (default: all four)
#
# Each mode runs in a scratch copy of the tree's scripts (the check cd's to its own root and writes target/); output
# under target/device-check-dryrun/MODE/. Exit 0 when every mode passes the checks below, 1 otherwise.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out_root="$root/target/device-check-dryrun"
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(full quick peer retest)
real_python="$(command -v python3)" || { echo "dry run: needs python3"; exit 1; }
status=0
for mode in "${modes[@]}"; do
  dir="$out_root/$mode"
  rm -rf "$dir" && mkdir -p "$dir/tree/scripts/dev" "$dir/out" "$dir/site/nvidia/cu13/lib"
  # the tree the check sees: its scripts, empty kernel sources (the stand-in nvcc reads none), the fixtures, a bundle
  cp "$root/scripts/device-check.sh" "$root/scripts/hf_peer.py" "$dir/tree/scripts/"
  cp "$root/scripts/dev/ncu_summary.py" "$dir/tree/scripts/dev/"
  mkdir -p "$dir/tree/native/dev" "$dir/tree/native/src" "$dir/tree/native/include" "$dir/tree/java/src/test"
  for f in "$root"/native/src/*.cu "$root"/native/dev/check_ops.cu "$root"/native/dev/persistent_probe.cu; do
    : > "$dir/tree/native/${f#"$root"/native/}"
  done
  ln -s "$root/java/src/test/resources" "$dir/tree/java/src/test/resources"
  mkdir -p "$dir/tree/target/gpu-bundle/lib"
  : > "$dir/tree/target/gpu-bundle/lib/opt-java.jar"
  : > "$dir/tree/target/gpu-bundle/lib/cuda-13.0-1.5.12-linux-x86_64.jar"
  : > "$dir/tree/target/gpu-bundle/junit.jar"
  : > "$dir/tree/target/gpu-bundle/tests.jar"
  echo "0000000" > "$dir/tree/target/gpu-bundle/commit.txt"
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do : > "$dir/site/nvidia/cu13/lib/$lib"; done
  env_mode=()
  case "$mode" in
    full) env_mode=(DEVICE_CHECK_BUDGET_S=500 "DEVICE_CHECK_JUNIT_ARGS=--include-tag gpu") ;;
    quick) env_mode=(DEVICE_CHECK_QUICK=1 DEVICE_CHECK_BUDGET_S=262) ;;
    peer) env_mode=(DEVICE_CHECK_PEER_ONLY=1 DEVICE_CHECK_BUDGET_S=400) ;;
    retest) env_mode=(DEVICE_CHECK_RETEST=1 DEVICE_CHECK_BUDGET_S=300
                      "DEVICE_CHECK_RETEST_SELECT=--select-class io.github.optjava.engine.GpuEnginePartialPicksTest") ;;
    *) echo "dry run: unknown mode '$mode' (full, quick, peer, retest)"; exit 2 ;;
  esac
  ( cd "$dir/tree" && env PATH="$root/scripts/dev/dryrun/bin:$PATH" DRYRUN_PYTHON="$real_python" \
      DRYRUN_FAKES="$root/scripts/dev/dryrun" DRYRUN_SITE="$dir/site" OUT="$dir/out" "${env_mode[@]}" \
      timeout 300 bash scripts/device-check.sh ) > "$dir/console.txt" 2>&1
  rc=$?
  problems=()
  # bash reports its own errors as "scripts/device-check.sh: line N: ..."
  grep -n "device-check.sh: line [0-9]*:" "$dir/console.txt" > "$dir/bash_errors.txt" && problems+=("bash errors")
  grep -q "== device-check summary (" "$dir/console.txt" || problems+=("no summary")
  grep -q "CUT SHORT" "$dir/console.txt" && problems+=("cut short")
  [ "$rc" -le 1 ] || problems+=("exit $rc")
  files=$(find "$dir/out" -type f | wc -l)
  [ "$files" -le 7 ] || problems+=("$files files in \$OUT (the header promises at most 7)")
  # What each mode must do: rows of the summary (ERE), variant runs started (their "## NAME" in bench_variants.log)
  # and lines in bench.jsonl (ERE).
  rows=() runs=() lines=()
  case "$mode" in
    full) rows=("check_ops chained +ok" "junit chained launches +ok" "junit new kernels +ok" "variants opt-1.3b +info"
                "target b1 roofline opt-1.3b")
          runs=("opt-1.3b launches" "opt-125m launches" "opt-1.3b tclinear" "opt-6.7b tclinear" "opt-1.3b int8")
          lines=('"model": "opt-6.7b".*"variant": "chained=on"' '"engine": "hf-static-compiled"'
                 '"model": "opt-1.3b", "dtype": "f16", "batch": 128') ;;
    quick) rows=("check_ops chained +ok" "junit chained launches +ok")
           runs=("opt-1.3b decode" "opt-6.7b decode")
           lines=('"model": "opt-1.3b".*"variant": "chained=on"') ;;
    peer) rows=("steps 4-6c +skip")
          lines=('"model": "opt-6.7b".*"engine": "hf-static-compiled"' '"model": "opt-125m".*"engine": "hf-eager"') ;;
    retest) rows=("junit \\(GPU required\\) +ok" "check_ops \\(kernels\\) +skip") ;;
  esac
  summary="$(sed -n '/== device-check summary (/,$p' "$dir/console.txt")"
  for n in "${rows[@]}"; do grep -qE "$n" <<< "$summary" || problems+=("no row /$n/"); done
  for n in "${runs[@]}"; do
    grep -qxF "## $n" "$dir/tree/target/device-work/bench_variants.log" 2>/dev/null || problems+=("no run '$n'")
  done
  for n in "${lines[@]}"; do grep -qE "$n" "$dir/out/bench.jsonl" 2>/dev/null || problems+=("no bench line /$n/"); done
  if [ ${#problems[@]} -eq 0 ]; then
    echo "dry run $mode: PASS (exit $rc, $files files in \$OUT; $dir/console.txt)"
  else
    echo "dry run $mode: FAIL: $(IFS=';'; echo "${problems[*]}") ($dir/console.txt)"
    head -5 "$dir/bash_errors.txt"
    status=1
  fi
done
exit $status
