#!/usr/bin/env bash
# An ensemble of two models, three ways, each scored on the demo's unseen tomogram:
#   on the fly (predict-probs -m A -m B), map-level (ensemble --mode mean|rank) and
#   picks-level (ensemble --mode cluster, weighted box fusion for points).
# The second model fine-tunes the demo's model with another seed for TRAIN_SECONDS (120).
# Usage: examples/ensemble.sh [DEMO_DIR]   (default demo-output; run `make demo` first)
set -euo pipefail
demo=${1:-demo-output}
test -f "$demo/light.pt" || { echo "ensemble.sh: no $demo/light.pt; run 'make demo' first" >&2; exit 2; }
work="$demo/ensemble"
rm -rf "$work"; mkdir -p "$work"
tomogram="$demo/unseen-data/TS_sim_0.zarr"
truth="$demo/unseen/train_annotations/TS_sim_0.csv"
a="$demo/light.pt"
b="$work/light-b.pt"

czii train "$demo/data" -o "$b" --init "$a" --lr 3e-4 --val-runs TS_sim_3 --seed 1 \
    --max-time "${TRAIN_SECONDS:-120}" -q

czii predict-probs "$tomogram" -m "$a" -o "$work/a.zarr" -q
czii predict-probs "$tomogram" -m "$b" -o "$work/b.zarr" -q
czii predict-probs "$tomogram" -m "$a" -m "$b" -o "$work/on-the-fly.zarr" -q
czii ensemble "$work/a.zarr" "$work/b.zarr" --mode mean -o "$work/mean.zarr" -q
czii ensemble "$work/a.zarr" "$work/b.zarr" --mode rank -o "$work/rank.zarr" -q
for map in a b on-the-fly mean rank; do
    czii postprocess "$work/$map.zarr" -o "$work/$map.csv" -q
done
czii ensemble "$work/a.csv" "$work/b.csv" --mode cluster -o "$work/cluster.csv" -q

printf '%-12s %8s\n' input F4
for name in a b on-the-fly mean rank cluster; do
    printf '%-12s %8.4f\n' "$name" "$(czii score "$work/$name.csv" "$truth" -q)"
done
