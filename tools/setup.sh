#!/usr/bin/env bash
# Installs what flawlens needs on a fresh Debian 12 machine: Debian packages
# (apt) and npm packages from the committed lock files. Idempotent, and quiet
# when everything is present.
#
#   tools/setup.sh serve   build the wasm module and the static site, and serve it
#   tools/setup.sh test    everything: serve + LibTorch (training CLI), GoogleTest,
#                          Chromium (browser tests), clang's libFuzzer runtime
#   (no argument = test)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-test}

# Building and serving the site. node + npm come with emscripten (Debian's Node).
serve_packages=(
  cmake ninja-build g++ python3
  emscripten binaryen                  # wasm build (Emscripten 3.1.6)
  libstb-dev nlohmann-json3-dev libcli11-dev
  libxnnpack-dev libpthreadpool-dev    # native CLI without LibTorch (model preparation at build time)
)
# Everything else the tests need.
test_packages=(
  build-essential pkg-config
  libtorch-dev                         # training (tools/ only)
  libgtest-dev libgmock-dev libbenchmark-dev googletest
  clang libclang-rt-14-dev             # libFuzzer + sanitizers
  chromium                             # browser tests (driven by playwright-core)
  libonnx-dev libprotobuf-dev protobuf-compiler   # import-onnx / export-onnx
  libonnx-testdata                     # the ONNX project's operator tests (conformance)
  python3-torch python3-torchvision python3-onnx python3-numpy   # torchvision architectures -> ONNX test models
)
# npm folders installed with `npm ci` when they hold a package-lock.json.
serve_npm=(tools/backbones tools/web-deps)
test_npm=(tests tests/onnx tests/onnx_export)   # onnx*: onnxruntime-node, install scripts off (.npmrc)

case "$what" in
  serve) packages=("${serve_packages[@]}"); npm_dirs=("${serve_npm[@]}") ;;
  test)  packages=("${serve_packages[@]}" "${test_packages[@]}")
         npm_dirs=("${serve_npm[@]}" "${test_npm[@]}") ;;
  *) echo "usage: tools/setup.sh serve | test" >&2; exit 2 ;;
esac

# One dpkg-query for the whole list: missing packages print nothing or a
# status other than "install ok installed".
missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null \
            | awk '$2 == "install" && $3 == "ok" && $4 == "installed" {print $1}' || true)
for p in "${packages[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
# npm: Debian's nodejs (pulled in by emscripten) comes without it; a Node.js
# from elsewhere usually brings its own, so install Debian's only when absent.
for d in "${npm_dirs[@]}"; do
  if [ -f "$root/$d/package-lock.json" ] && ! command -v npm >/dev/null; then
    missing+=(npm); break
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq -o DPkg::Lock::Timeout=300 || true
  $sudo_cmd apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, exact versions from each folder's lock file. Re-run `npm ci`
# only when the lock file is newer than the installed tree.
for d in "${npm_dirs[@]}"; do
  lock="$root/$d/package-lock.json"
  [ -f "$lock" ] || continue
  stamp="$root/$d/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "[setup] npm ci ($d/)"
    (cd "$root/$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
