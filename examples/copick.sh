#!/usr/bin/env bash
# A walkthrough inside a copick project: czii reads the curated picks from it and writes
# its own picks and probability maps back into it, under user czii, session 0.
#   1. a small copick project (simulated: copick_config.json, static/ tomograms, overlay/ picks of curation/0)
#   2. fine-tune the demo's model on two of its runs, from the curated picks only
#   3. predict every run: one probability map per class back into the project (Segmentations/),
#      the same maps kept for postprocess; picks back into the project (Picks/czii_0_<class>.json)
#   4. score czii/0 against curation/0 (a per-class plot too), then list the picks per user and session
# Usage: examples/copick.sh [DEMO_DIR]   (default demo-output; run `make demo` first)
# With CZII_COPICK_PYTHON set to a python that has the copick library, the last step also
# lists the project as copick itself sees it.
set -euo pipefail
demo=${1:-demo-output}
test -f "$demo/light.pt" || { echo "copick.sh: no $demo/light.pt; run 'make demo' first" >&2; exit 2; }
work="$demo/copick"
rm -rf "$work"; mkdir -p "$work"
project="$work/project/copick_config.json"

czii simulate "$work/project" --runs 3 --shape 96 192 192 --density 3 --seed 2 -q
czii info "$project"
czii view "$project" --run TS_sim_0 --tomo-type denoised --gt "$project" --user-id curation -o "$work/TS_sim_0.png"

# Train straight from the project's curated picks (tomograms normalized and spheres painted on the fly).
czii train "$project" --user-id curation --session-id 0 -o "$work/tuned.pt" --init "$demo/light.pt" --lr 3e-4 \
    --val-runs TS_sim_2 --max-time "${TRAIN_SECONDS:-90}" -q

# Every run of the project (no --run): maps into the project as copick segmentations, kept for postprocess too.
czii predict-probs "$project" --tomo-type denoised -m "$work/tuned.pt" \
    -o "copick:$project" --user-id czii --session-id 0 --keep-maps "$work/probs" -q
# Picks of every map into the project: overlay/ExperimentRuns/<run>/Picks/czii_0_<class>.json.
czii postprocess "$work"/probs/*.zarr -j 2 -o "copick:$project" --user-id czii --session-id 0

# czii's picks against the curated ones, both read from the project.
czii score "$project" "$project" --pred-user-id czii --pred-session-id 0 --user-id curation \
    --format table --per-experiment --plot "$work/score.png"

# The project's picks per user and session (curation/0 and czii/0 side by side).
czii info "$project"
if [ -n "${CZII_COPICK_PYTHON:-}" ]; then
    "$CZII_COPICK_PYTHON" - "$project" <<'EOF'
import sys
import copick

root = copick.from_file(sys.argv[1])
for run in root.runs:
    for picks in sorted(run.get_picks(), key=lambda p: (p.user_id, p.session_id, p.pickable_object_name)):
        print(f"{run.name}\t{picks.user_id}\t{picks.session_id}\t{picks.pickable_object_name}\t{len(picks.points)} picks")
    for seg in sorted(run.get_segmentations(), key=lambda s: s.name):
        print(f"{run.name}\t{seg.user_id}\t{seg.session_id}\tsegmentation {seg.name}\t{seg.voxel_size} A")
EOF
fi
