#!/usr/bin/env bash
# A walkthrough on a copick project: every command reads the project directly.
#   1. a small copick project (simulated: copick_config.json, static/ tomograms, overlay/ picks)
#   2. fine-tune the demo's model on two of its runs (labels painted on the fly)
#   3. predict every run at once, post-process the maps in parallel, score against the project
# Usage: examples/copick.sh [DEMO_DIR]   (default demo-output; run `make demo` first)
set -euo pipefail
demo=${1:-demo-output}
test -f "$demo/light.pt" || { echo "copick.sh: no $demo/light.pt; run 'make demo' first" >&2; exit 2; }
work="$demo/copick"
rm -rf "$work"; mkdir -p "$work"
project="$work/project/copick_config.json"

czii simulate "$work/project" --runs 3 --shape 96 192 192 --density 3 --seed 2 -q
czii info "$project"
czii view "$project" --run TS_sim_0 --tomo-type denoised --gt "$project" -o "$work/TS_sim_0.png"

# Train straight from the project: tomograms normalized and spheres painted on the fly.
czii train "$project" -o "$work/tuned.pt" --init "$demo/light.pt" --lr 3e-4 \
    --val-runs TS_sim_2 --max-time "${TRAIN_SECONDS:-90}" -q

# Every run of the project (no --run), one map each; then one CSV for all of them.
czii predict-probs "$project" --tomo-type denoised -m "$work/tuned.pt" -o "$work/probs/" -q
czii postprocess "$work"/probs/*.zarr -j 2 -o "$work/picks.csv"
czii score "$work/picks.csv" "$project" --format table --per-experiment
