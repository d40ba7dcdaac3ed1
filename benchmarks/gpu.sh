#!/usr/bin/env bash
# GPU benchmarks: the same harness as on the CPU, with the CUDA and TensorRT backends that exist on
# this machine, and PyTorch CUDA eager and CUDA-graph replay as baselines. Needs no network.
#
#   benchmarks/gpu.sh [OUT_DIR]        (default: $OUT, else benchmarks/results/gpu)
#
# Environment: PYTHON (default .venv/bin/python, else python3), PRESET (paper), REPEATS (20),
# GRID_REPEATS (3). Writes into OUT_DIR: machine.json, bench.json (mnm bench, every backend that
# starts), compare-<backend>.json (reference procedure in PyTorch CUDA eager vs the runtime, one per
# GPU backend) and torch-cuda.json (per-graph PyTorch eager vs CUDA-graph replay). The bundle (with
# FP16 graphs, and TensorRT engines when TensorRT is installed) is exported to a temporary folder.
# Where there is no GPU it stops at once and writes nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
die() { echo "gpu.sh: $*" >&2; exit 2; }

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3 || true)"
[ -n "$PY" ] || die "no Python found (set PYTHON); nothing was measured"
OUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
PRESET="${PRESET:-paper}"
REPEATS="${REPEATS:-20}"
GRID_REPEATS="${GRID_REPEATS:-3}"

# Fail fast, before anything is exported or written.
command -v nvidia-smi >/dev/null 2>&1 \
  || die "no nvidia-smi on PATH: this script needs an NVIDIA GPU and its driver; nothing was measured"
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' \
  || die "nvidia-smi lists no GPU; nothing was measured"
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
  || die "torch sees no CUDA GPU (a CPU-only torch build?); nothing was measured"
"$PY" -c 'import sys, onnxruntime as o; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() else 1)' \
  || die "onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu in place of onnxruntime (README); nothing was measured"

TRT=""
if "$PY" -c 'import tensorrt' 2>/dev/null; then TRT="--trt"; fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BUNDLE="$WORK/bundle"
mkdir -p "$OUT_DIR"

echo "== machine" >&2
"$PY" -c 'import json, sys; sys.path.insert(0, "benchmarks"); from peak import details, measure_peak;
json.dump({"machine": details(), "peak": measure_peak(device="cuda")}, sys.stdout, indent=2)' > "$OUT_DIR/machine.json"

echo "== export: random-init $PRESET bundle, fp16 graphs ${TRT:+and TensorRT engines}" >&2
"$PY" -m mnm export --random-init --preset "$PRESET" --seed 0 --fp16 $TRT --out "$BUNDLE"

echo "== mnm bench, every backend that starts here" >&2
"$PY" -m mnm bench "$BUNDLE" --backend all --batch 1,8,32 --repeats "$REPEATS" --json "$OUT_DIR/bench.json"

for backend in ort-cuda ort-trt tensorrt; do
  reason="$("$PY" -c "import sys
from mnm.runtime.backends import available
from mnm.runtime.bundle import Bundle
print(available(Bundle.open(sys.argv[1])).get(sys.argv[2]) or '')" "$BUNDLE" "$backend")"
  if [ -n "$reason" ]; then
    echo "== skip compare on $backend: $reason" >&2
    continue
  fi
  echo "== reference procedure (PyTorch CUDA eager) vs runtime on $backend" >&2
  "$PY" benchmarks/compare_reference.py --bundle "$BUNDLE" --device cuda --backend "$backend" \
    --repeats "$REPEATS" --grid-repeats "$GRID_REPEATS" --json "$OUT_DIR/compare-$backend.json"
done

echo "== PyTorch CUDA eager vs CUDA-graph replay per graph" >&2
"$PY" benchmarks/torch_cuda.py --bundle "$BUNDLE" --batch 1,8,32 --json "$OUT_DIR/torch-cuda.json"

echo "gpu.sh: results in $OUT_DIR" >&2
