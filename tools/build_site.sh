#!/usr/bin/env bash
# Assemble the static site: web/* + the wasm module + the default model + demo images.
#
#   tools/build_site.sh [WASM_BUILD_DIR] [OUT_DIR]
#     WASM_BUILD_DIR  default build/wasm-release (holds flawlens-core.mjs/.wasm, searched recursively)
#     OUT_DIR         default build/site (replaced)
#
# Layout produced:
#   OUT/index.html, css/, js/ ...        web/* as is, nested folders included (cp -R)
#   OUT/flawlens-core.mjs, .wasm        the Emscripten ES module (single thread)
#   OUT/flawlens-core-mt.mjs, .wasm,    the threaded module (-pthread) and its pthread
#       .worker.js                      worker script: the page runs it when it is
#                                       cross-origin isolated. Required: a site without
#                                       it would try it and fall back on every isolated
#                                       load. A CMake build dir that lacks it (built
#                                       with --target flawlens_wasm only) gets the
#                                       target flawlens_wasm_mt built here.
#   OUT/coi-sw.js                       the service worker that isolates the page on
#                                       hosts that cannot send COOP/COEP (web/, as is)
#   OUT/model/default.safetensors       the default model (required)
#   OUT/model/demo/*.png + index.json   demo images (optional; index.json lists them)
#   OUT/js/vendor/fflate.mjs + LICENSE  the zip writer of "Download photos", from the npm
#                                       package pinned in tools/web-deps (npm ci there first:
#                                       tools/setup.sh serve does)
# Environment (development): FLAWLENS_MODEL=path overrides the default model,
# FLAWLENS_DEMO_DIR=dir the demo images folder.
# Serve with: tools/serve.py (sends the isolation headers), or any static server
# (python3 -m http.server --bind 127.0.0.1 --directory OUT 8000: coi-sw.js isolates the page)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wasm_dir="${1:-$root/build/wasm-release}"
out="${2:-$root/build/site}"

die() { echo "build_site.sh: error: $*" >&2; exit 1; }

[[ -d "$wasm_dir" ]] || die "wasm build dir '$wasm_dir' does not exist (build it: cmake --preset wasm-release && cmake --build --preset wasm-release)"
core_mjs="$(find "$wasm_dir" -maxdepth 4 -name flawlens-core.mjs -type f -not -path '*/CMakeFiles/*' | head -n 1)"
[[ -n "$core_mjs" ]] || die "no flawlens-core.mjs under '$wasm_dir' (is the wasm build complete?)"
core_wasm="$(dirname "$core_mjs")/flawlens-core.wasm"
[[ -f "$core_wasm" ]] || die "'$core_wasm' is missing next to $core_mjs"
mt_names=(flawlens-core-mt.mjs flawlens-core-mt.wasm flawlens-core-mt.worker.js)
core_dir="$(dirname "$core_mjs")"
if [[ ! -f "$core_dir/${mt_names[1]}" && -f "$core_dir/CMakeCache.txt" ]]; then
  echo "build_site.sh: $core_dir has no threaded module: building it (cmake --build $core_dir --target flawlens_wasm_mt)" >&2
  cmake --build "$core_dir" -j "${FLAWLENS_JOBS:-$(nproc)}" --target flawlens_wasm_mt >&2 \
    || die "building the threaded module in '$core_dir' failed"
fi
mt_files=()
for f in "${mt_names[@]}"; do
  [[ -f "$core_dir/$f" ]] || die "'$core_dir/$f' is missing: the page needs the threaded module too (build it: cmake --build <wasm build dir> --target flawlens_wasm_mt)"
  mt_files+=("$core_dir/$f")
done
[[ -f "$root/web/coi-sw.js" ]] || die "web/coi-sw.js is missing (the page registers it on hosts without isolation headers)"
[[ -f "$root/web/index.html" ]] || die "web/index.html is missing"
[[ -f "$root/web/js/engine.mjs" ]] || die "web/js/engine.mjs is missing (the JS wrapper of the wasm module)"
model="${FLAWLENS_MODEL:-$root/build/model/default.safetensors}"
demo_dir="${FLAWLENS_DEMO_DIR:-$root/model/demo}"
[[ -f "$model" ]] || die "the default model '$model' is missing (build it: model/build_default.sh build/model/default.safetensors, or set FLAWLENS_MODEL)"
fflate="$root/tools/web-deps/node_modules/fflate"
[[ -f "$fflate/esm/browser.js" ]] || die "$fflate/esm/browser.js is missing (run: tools/setup.sh serve, or npm ci in tools/web-deps)"

case "$(cd "$(dirname "$out")" 2>/dev/null && pwd)/$(basename "$out")" in
  /|"$root"|"$root/web"|"$root/model"|"$root/src") die "refusing to replace '$out'";;
esac

tmp="$(mktemp -d "${out%/}.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp -R "$root/web/." "$tmp/"
rm -f "$tmp/README.md"
cp "$core_mjs" "$core_wasm" "${mt_files[@]}" "$tmp/"
mkdir -p "$tmp/js/vendor"
cp "$fflate/esm/browser.js" "$tmp/js/vendor/fflate.mjs"
cp "$fflate/LICENSE" "$tmp/js/vendor/fflate.LICENSE"
mkdir -p "$tmp/model/demo"
cp "$model" "$tmp/model/default.safetensors"

shopt -s nullglob nocaseglob
demo=("$demo_dir"/*.{png,jpg,jpeg,bmp,webp})
shopt -u nocaseglob
if (( ${#demo[@]} == 0 )); then
  echo "build_site.sh: warning: no demo images in $demo_dir (the 'Try demo images' button will say so)" >&2
fi
names=()
for f in "${demo[@]}"; do
  cp "$f" "$tmp/model/demo/"
  names+=("$(basename "$f")")
done
# index.json: a sorted JSON array of the demo file names (static hosts list no directories).
printf '%s\n' "${names[@]+"${names[@]}"}" | LC_ALL=C sort | python3 -c '
import json, sys
print(json.dumps([l.rstrip("\n") for l in sys.stdin if l.strip()], indent=1))' > "$tmp/model/demo/index.json"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp" "$out"
trap - EXIT
echo "site: $out ($(du -sh "$out" | cut -f1); wasm $(du -h "$out/flawlens-core.wasm" | cut -f1), threaded wasm $(du -h "$out/flawlens-core-mt.wasm" | cut -f1), ${#names[@]} demo images)"
