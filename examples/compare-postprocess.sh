#!/usr/bin/env bash
# Every post-processing method on the same probability map, scored against the truth:
# prints one table (method, picks, F4, seconds).
# Uses the unseen tomogram's map from `make demo` (run it first).
# Usage: examples/compare-postprocess.sh [DEMO_DIR] [THRESHOLD]   (default demo-output 0.15)
set -euo pipefail
demo=${1:-demo-output}
threshold=${2:-0.15}
probs="$demo/unseen-probs.zarr"
truth="$demo/unseen/train_annotations/TS_sim_0.csv"
test -e "$probs" || { echo "compare-postprocess.sh: no $probs; run 'make demo' first" >&2; exit 2; }
work="$demo/compare"
rm -rf "$work"; mkdir -p "$work"

printf '%-10s %6s %8s %9s\n' method picks F4 seconds
for method in cc peaks watershed dbscan kl-fit; do
    start=$(date +%s%N)
    czii postprocess "$probs" --method "$method" --threshold "$threshold" -q > "$work/$method.csv"
    milliseconds=$((($(date +%s%N) - start) / 1000000))
    picks=$(($(wc -l < "$work/$method.csv") - 1))
    f4=$(czii score "$work/$method.csv" "$truth" -q)
    printf '%-10s %6d %8.4f %5d.%03d\n' "$method" "$picks" "$f4" $((milliseconds / 1000)) $((milliseconds % 1000))
done
