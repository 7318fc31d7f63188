#!/usr/bin/env bash
# The two commands of the README:
#   tools/dev.sh serve   build the wasm module + site with the default model, serve on 127.0.0.1
#   tools/dev.sh test    every test: native, ASan+UBSan, wasm under node, Embind JS, browser, fuzz smoke
# Each installs what is missing first: `serve` only what building and serving
# the site needs (tools/setup.sh serve), `test` everything (tools/setup.sh test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export NODE_PATH=/usr/share/nodejs   # Debian's emcc needs acorn from here
jobs=${FLAWLENS_JOBS:-$(nproc)}

step() { printf '\n\033[1m== %s\033[0m (%s)\n' "$*" "$(date +%H:%M:%S)"; }

# build_wasm ON|OFF [cmake --build args]: the tests need GoogleTest's sources
# (googletest package), which serving does not install, so the flag is always
# passed explicitly (a cached OFF from `serve` must not leak into `test`).
build_wasm() {
  local tests=$1; shift
  # sed reads all of emcc's output: `head` would close the pipe and emcc prints a traceback.
  step "wasm build (Emscripten $(emcc --version 2>/dev/null | sed -n '1s/.* \([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p'))"
  cmake --preset wasm-release -DFLAWLENS_TESTS="$tests" >/dev/null
  cmake --build --preset wasm-release -j "$jobs" "$@"
}

# default_model FLAWLENS_BIN: the page's default model is built, not stored:
# it carries a third-party backbone's weights (model/build_default.sh).
default_model() {
  step "default model (backbone from the npm package + generated parts)"
  bash model/build_default.sh build/model/default.safetensors "$1"
}

build_site() {
  step "site -> build/site"
  FLAWLENS_MODEL=build/model/default.safetensors bash tools/build_site.sh build/wasm-release build/site
}

case "${1:-}" in
  serve)
    bash tools/setup.sh serve
    # The CLI without LibTorch: it converts the backbone and fits the default model.
    step "native CLI (no LibTorch)"
    cmake --preset native-release -B build/native-cli -DFLAWLENS_TORCH=OFF -DFLAWLENS_TESTS=OFF \
      -DFLAWLENS_BENCH=OFF >/dev/null
    cmake --build build/native-cli -j "$jobs" --target flawlens
    default_model build/native-cli/tools/flawlens
    build_wasm OFF --target flawlens_wasm flawlens_wasm_mt   # single-thread + threaded module
    build_site
    port=${PORT:-8080}
    step "serving"
    echo "flawlens is at  http://127.0.0.1:$port/   (Ctrl-C to stop)"
    # Cross-origin isolation headers (COOP/COEP) and the right MIME types.
    exec python3 tools/serve.py "$port" --dir build/site
    ;;
  test)
    bash tools/setup.sh test
    start=$(date +%s)
    step "native release: build"
    cmake --preset native-release >/dev/null
    cmake --build --preset native-release -j "$jobs"
    # Before ctest: it converts the backbone that the backbone tests use.
    default_model build/native-release/tools/flawlens
    step "native release: ctest"
    ctest --preset native-release -j "$jobs"

    step "native ASan + UBSan: build"
    cmake --preset native-asan >/dev/null
    cmake --build --preset native-asan -j "$jobs"
    step "native ASan + UBSan: ctest"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --preset native-asan -j "$jobs"

    build_wasm ON
    step "wasm: ctest under node (same gtest binaries + Embind API test)"
    ctest --preset wasm-release -j "$jobs"

    build_site
    step "browser tests (Chromium headless, playwright-core)"
    node tests/browser/run.mjs --site build/site

    step "fuzz smoke (libFuzzer, ${FUZZ_SECONDS:-30} s per target)"
    bash tests/fuzz/run.sh "${FUZZ_SECONDS:-30}"

    step "all tests passed in $(( $(date +%s) - start )) s"
    ;;
  *)
    echo "usage: tools/dev.sh serve | test" >&2
    exit 2
    ;;
esac
