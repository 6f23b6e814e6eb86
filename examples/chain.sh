#!/usr/bin/env bash
# The Unix-style chain: each stage reads the previous stage's file (or stdout stream).
#   czii predict-probs a.mrc -m unet.pt > p.zarr
#   czii postprocess p.zarr --method kl-fit > pred.csv
#   czii score pred.csv gt/
# Uses the model and the unseen tomogram of `make demo` (run it first).
# Usage: examples/chain.sh [DEMO_DIR]   (default demo-output)
set -euo pipefail
demo=${1:-demo-output}
test -f "$demo/light.pt" || { echo "chain.sh: no $demo/light.pt; run 'make demo' first" >&2; exit 2; }
work="$demo/chain"
rm -rf "$work"; mkdir -p "$work"
tomogram="$demo/unseen/train_images/TS_sim_0.mrc"     # a raw MRC: predict-probs normalizes it as in training
truth="$demo/unseen/train_annotations/"               # a folder of annotation CSVs

czii info "$tomogram"
czii predict-probs "$tomogram" -m "$demo/light.pt" --tta flips > "$work/p.zarr"
czii info "$work/p.zarr"
czii postprocess "$work/p.zarr" --method kl-fit > "$work/pred.csv"
czii score "$work/pred.csv" "$truth" --format table
czii view "$tomogram" --probs "$work/p.zarr" --picks "$work/pred.csv" --gt "$truth" --slices 3 -o "$work/view.png"
echo "picture of the picks: $work/view.png" >&2
