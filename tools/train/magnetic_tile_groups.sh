#!/usr/bin/env bash
# Groups file for `flawlens eval --groups` on the magnetic-tile data set
# (docs/METHOD.md, "Evaluation"): the six lightings of one physical tile are files
# expN_num_M with different, but close, numbers M and increasing N
# (exp1_num_85781, exp2_num_85846, ..., exp6_num_86064). Sorted by M, a capture
# joins the previous group of its folder (good, crack, ...) while the gap is
# under 500 and its N is larger than every N already in the group.
#
# DATA is the Magnetic Tile research data set (not included) laid out as
# DATA/train/good, DATA/val/<type>:
#   tools/train/magnetic_tile_groups.sh DATA/val > tiles.csv
#   flawlens eval MODEL DATA --groups tiles.csv
set -euo pipefail
split=${1:?usage: $0 SPLIT_FOLDER (e.g. .../magnetic-tile/val)}
cd "$split"
find . -path ./masks -prune -o -type f -name 'exp*_num_*' -print | sed 's|^\./||' |
  sed -E 's|^((.*)/)?exp([0-9]+)_num_([0-9]+)(\.[A-Za-z]+)$|\2 \4 \3 &|' | sort -k1,1 -k2,2n -k3,3n |
  awk '{ if (NR == 1 || $1 != dir || $2 - last >= 500 || $3 <= maxe) { ++g; maxe = 0 }
         dir = $1; last = $2; if ($3 > maxe) maxe = $3; printf "%s,tile%d\n", $4, g }'
