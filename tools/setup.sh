#!/usr/bin/env bash
# Installs everything flawlens needs to build, train, test and serve on a
# fresh Debian 12 machine: Debian packages (apt) and npm packages from the
# committed lock file. Idempotent and quiet when everything is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  build-essential cmake ninja-build pkg-config python3   # node + npm: the machine's own (Node 20)
  clang libclang-rt-14-dev             # libFuzzer + sanitizers
  emscripten binaryen                  # wasm build (Emscripten 3.1.6)
  libxnnpack-dev libpthreadpool-dev    # native inference
  libtorch-dev                         # training (tools/ only)
  libstb-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev googletest
  chromium                             # browser tests (driven by playwright-core)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq -o DPkg::Lock::Timeout=300 || true
  $sudo_cmd apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages (playwright-core for the browser tests), exact versions from the lock file.
if [ ! -d "$root/tests/node_modules/playwright-core" ]; then
  echo "[setup] npm ci (tests/)"
  (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error)
fi
