#!/usr/bin/env bash
# The whole pipeline on simulated data, on a CPU, in about ten minutes:
#   simulate -> normalize -> make-labels -> train -> predict-probs -> postprocess -> tune -> score
# Four simulated runs: TS_sim_0..2 train the light net, TS_sim_3 picks its best checkpoint and
# tunes the per-class thresholds.  The final score is on a fifth tomogram, simulated with
# another seed, that no step has seen.
# Usage: examples/demo.sh [OUT_DIR]   (default demo-output; TRAIN_SECONDS=360 by default)
set -euo pipefail
out=${1:-demo-output}
train_seconds=${TRAIN_SECONDS:-360}
step() { printf '\n== %s\n' "$*" >&2; }

rm -rf "$out"
mkdir -p "$out/data" "$out/unseen-data"

step "1/9 simulate four 96x192x192 tomograms at 10 Å with their true picks (and one unseen)"
czii simulate "$out/sim" --runs 4 --shape 96 192 192 --density 3 --layout both --seed 0 -q
czii simulate "$out/unseen" --runs 1 --shape 96 192 192 --density 3 --layout both --seed 1 -q

step "2/9 normalize each tomogram (z-score, clipped)"
for run in TS_sim_0 TS_sim_1 TS_sim_2 TS_sim_3; do
    czii normalize "$out/sim/train_images/$run.mrc" -o "$out/data/$run.zarr" -q
done
czii normalize "$out/unseen/train_images/TS_sim_0.mrc" -o "$out/unseen-data/TS_sim_0.zarr" -q

step "3/9 paint sphere labels (0.5 x particle radius) from the picks"
for run in TS_sim_0 TS_sim_1 TS_sim_2 TS_sim_3; do
    czii make-labels "$out/sim/train_annotations/$run.csv" --like "$out/data/$run.zarr" \
        --radius-scale 0.5 -o "$out/data/$run.labels.zarr" -q
done

step "4/9 train the light net for ${train_seconds} s on TS_sim_0..2, validating on TS_sim_3"
czii train "$out/data" -o "$out/light.pt" --arch light --val-runs TS_sim_3 --max-time "$train_seconds" --seed 0

step "5/9 predict probabilities with flip test-time augmentation"
czii predict-probs "$out/data/TS_sim_3.zarr" -m "$out/light.pt" --tta flips -o "$out/val-probs.zarr"
czii predict-probs "$out/unseen-data/TS_sim_0.zarr" -m "$out/light.pt" --tta flips -o "$out/unseen-probs.zarr"

step "6/9 postprocess the validation run into candidate picks (connected components, threshold 0.15)"
czii postprocess "$out/val-probs.zarr" -o "$out/val-picks.csv"

step "7/9 tune per-class score cutoffs on the validation run"
czii tune "$out/val-picks.csv" "$out/sim/train_annotations/TS_sim_3.csv" -o "$out/thresholds.json" >/dev/null

step "8/9 pick the unseen tomogram the same way: at the default threshold, and above the tuned cutoffs"
czii postprocess "$out/unseen-probs.zarr" -o "$out/picks.csv"
czii postprocess "$out/unseen-probs.zarr" --thresholds "$out/thresholds.json" -o "$out/picks-tuned.csv"

step "9/9 score the unseen tomogram"
tuned=$(czii score "$out/picks-tuned.csv" "$out/unseen/train_annotations/TS_sim_0.csv" -q)
czii score "$out/picks.csv" "$out/unseen/train_annotations/TS_sim_0.csv" --format table >"$out/score.txt"
# Cutoffs tuned on one small run rarely carry over; `czii tune --cv` on several runs tells.
printf 'F4 on the unseen tomogram with the cutoffs tuned on TS_sim_3: %s\n' "$tuned" >&2
printf 'F4 on the unseen tomogram at the default threshold: %s\n' "$(cat "$out/score.txt")" >&2
cat "$out/score.txt"
