#!/usr/bin/env bash
# Runs every libFuzzer target for N seconds each (default 60) starting from the
# committed seed corpora; fails on any crash, leak, timeout or sanitizer report.
#   tests/fuzz/run.sh [SECONDS]        # CI smoke: about a minute each
#   tests/fuzz/run.sh 3600             # a long local run
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
cd "$root"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "${FLAWLENS_JOBS:-$(nproc)}"
out=build/fuzz/runs
mkdir -p "$out"
status=0
for bin in build/fuzz/tests/fuzz/fuzz_*; do
  name=$(basename "$bin")
  work="$out/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -n tests/fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null || true
  # Inputs that once crashed or hung (tests/fuzz/regressions/<target>/) are
  # replayed first: a second corpus directory is read but never written.
  extra=()
  if [ -d tests/fuzz/regressions/"$name" ]; then extra+=(tests/fuzz/regressions/"$name"); fi
  # JSON-aware targets get the dictionary of model-format keys and op names.
  case "$name" in
    fuzz_model_loader|fuzz_model_json|fuzz_web_api) extra+=(-dict=tests/fuzz/model.dict) ;;
    fuzz_tfjs_import) extra+=(-dict=tests/fuzz/tfjs.dict) ;;
    fuzz_onnx_import) extra+=(-dict=tests/fuzz/onnx.dict) ;;
  esac
  echo "[fuzz] $name for ${secs}s"
  if "$bin" "$work/corpus" "${extra[@]}" -max_total_time="$secs" -timeout=10 \
       -rss_limit_mb=2560 -max_len=262144 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/" >"$work/log.txt" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/log.txt" | sed "s/^/[fuzz]   /"
  else
    echo "[fuzz] $name FAILED — log: $work/log.txt"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$work/log.txt" | head -20
    status=1
  fi
done
exit $status
