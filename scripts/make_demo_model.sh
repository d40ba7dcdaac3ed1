#!/usr/bin/env bash
# Rebuilds the bundled demo model from nothing: synthetic data, stage 1, stage 2, export, the
# inference checkpoint and the evaluation numbers. CPU only; about 1.5 hours on 2 idle cores
# (4.7 code-mode steps/s with 2 threads).
#   scripts/make_demo_model.sh [WORK_DIR]       (default: demo-work)
# Outputs: mnm/assets/demo/bundle, models/demo/checkpoint, WORK_DIR/eval-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-demo-work}
CODE_STEPS=${CODE_STEPS:-24526}
FEATURE_STEPS=${FEATURE_STEPS:-8000}
MNM=${MNM:-.venv/bin/mnm}
PY=${PY:-.venv/bin/python}

# THREADS=1 on a busy machine: on 2 cores shared with other work, PyTorch's two-thread pool stalls
# (measured 9 s/step against 0.45 s/step with one thread while other work ran).
THREADS=${THREADS:-2}
$MNM data synth --out "$WORK/data" --n 4000 --size 64 --shapes 4 --textures-per-shape 4 \
    --backgrounds 16 --correlation 0.8 --object-size 0.35 0.65 --seed 2026 --workers 2
$MNM train code --data "$WORK/data" --preset lite --out "$WORK/runs" --name demo-code \
    --steps "$CODE_STEPS" --batch 12 --seed 2026 --snapshot-every 500 --log-every 25 --keep 2 \
    --mask-max-area 0.25 --threads "$THREADS"
$MNM train feature --from "$WORK/runs/00000-demo-code" --data "$WORK/data" --out "$WORK/runs" \
    --name demo-feature --steps "$FEATURE_STEPS" --batch 12 --seed 2026 --snapshot-every 500 --keep 2 --threads "$THREADS"
$PY -c "import sys; from mnm.training.export_source import save_inference_checkpoint as s; \
s(sys.argv[1], sys.argv[2])" "$WORK/runs/00001-demo-feature" models/demo/checkpoint
$MNM export models/demo/checkpoint --out mnm/assets/demo/bundle
$MNM eval disentangle models/demo/checkpoint --data "$WORK/data" --mode code --pairs 2000 --json "$WORK/eval-disentangle-code.json"
$MNM eval disentangle models/demo/checkpoint --data "$WORK/data" --mode feature --pairs 2000 --json "$WORK/eval-disentangle-feature.json"
$MNM eval clustering models/demo/checkpoint --data "$WORK/data" --json "$WORK/eval-clustering.json"
