#!/usr/bin/env bash
# End to end on simulated data: simulate -> train -> predict -> postprocess -> score.
set -euo pipefail
out=${1:-demo-output}
rm -rf "$out"; mkdir -p "$out"
czii simulate "$out/sim" --runs 4 --shape 96 192 192 --seed 0 --density 3 -q
czii train "$out/sim" -o "$out/model.pt" --arch light --val-runs TS_sim_3 --max-time 300 --seed 0
czii predict-probs "$out/sim" --run TS_sim_3 -m "$out/model.pt" --tta flips -o "$out/TS_sim_3.zarr"
czii postprocess "$out/TS_sim_3.zarr" --threshold 0.1 -o "$out/picks.csv"
czii score "$out/picks.csv" "$out/sim" --format table
