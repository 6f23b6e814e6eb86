#!/usr/bin/env bash
# The whole pipeline on simulated data, on a CPU, in about eight minutes:
#   simulate -> normalize -> make-labels -> train -> predict-probs -> postprocess -> score
# Four simulated runs: TS_sim_0..2 train the light net, TS_sim_3 picks its best checkpoint and
# tunes the per-class thresholds that the model file, and then every probability map it
# predicts, carries.  The final score is on a fifth tomogram, simulated with another seed, that
# no step has seen, picked with the thresholds the pipeline chose itself.
# Usage: examples/demo.sh [OUT_DIR]   (default demo-output; TRAIN_SECONDS=360 by default)
set -euo pipefail
out=${1:-demo-output}
train_seconds=${TRAIN_SECONDS:-360}
step() { printf '\n== %s\n' "$*" >&2; }

rm -rf "$out"
mkdir -p "$out/data" "$out/unseen-data"

step "1/7 simulate four 96x192x192 tomograms at 10 Å with their true picks (and one unseen)"
czii simulate "$out/sim" --runs 4 --shape 96 192 192 --density 3 --layout both --seed 0 -q
czii simulate "$out/unseen" --runs 1 --shape 96 192 192 --density 3 --layout both --seed 1 -q

step "2/7 normalize each tomogram (z-score)"
for run in TS_sim_0 TS_sim_1 TS_sim_2 TS_sim_3; do
    czii normalize "$out/sim/train_images/$run.mrc" -o "$out/data/$run.zarr" -q
done
czii normalize "$out/unseen/train_images/TS_sim_0.mrc" -o "$out/unseen-data/TS_sim_0.zarr" -q

step "3/7 paint sphere labels (0.5 x particle radius) from the picks"
for run in TS_sim_0 TS_sim_1 TS_sim_2 TS_sim_3; do
    czii make-labels "$out/sim/train_annotations/$run.csv" --like "$out/data/$run.zarr" \
        --radius-scale 0.5 -o "$out/data/$run.labels.zarr" -q
done

step "4/7 train for ${train_seconds} s on TS_sim_0..2 (the plan chooses the rest), validating on TS_sim_3"
czii train "$out/data" -o "$out/light.pt" --val-runs TS_sim_3 --max-time "$train_seconds" --seed 0

step "5/7 predict the unseen tomogram with flip test-time augmentation"
czii predict-probs "$out/unseen-data/TS_sim_0.zarr" -m "$out/light.pt" --tta flips -o "$out/unseen-probs.zarr"
czii info "$out/unseen-probs.zarr" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["thresholds"])' >&2

step "6/7 pick it with the thresholds the model tuned (and, to compare, at the default 0.15)"
czii postprocess "$out/unseen-probs.zarr" -o "$out/picks.csv"
czii postprocess "$out/unseen-probs.zarr" --threshold 0.15 -o "$out/picks-default.csv" -q

step "7/7 score the unseen tomogram"
default=$(czii score "$out/picks-default.csv" "$out/unseen/train_annotations/TS_sim_0.csv" -q)
czii score "$out/picks.csv" "$out/unseen/train_annotations/TS_sim_0.csv" --format table >"$out/score.txt"
printf 'F4 on the unseen tomogram at the default threshold 0.15: %s\n' "$default" >&2
printf 'F4 on the unseen tomogram with the thresholds the pipeline chose: %s\n' "$(cat "$out/score.txt")" >&2
cat "$out/score.txt"
