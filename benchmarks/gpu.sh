#!/usr/bin/env bash
# The prepared GPU run: one command for a machine with an NVIDIA GPU (benchmarks/README.md).
#
#   bash benchmarks/gpu.sh OUT_DIR [gpu_run.py options]     (default OUT_DIR: $OUT, else benchmarks/results/gpu)
#
# Needs no network and installs nothing: it runs with .venv/bin/python where there is one, else
# $PYTHON, else python3. Where `mnm` is not installed for that Python it builds a throw-away
# import tree (mnm/ with training/, export/ and runtime/ linked in as mnm.training, mnm.export and
# mnm.runtime, the mapping pyproject.toml's package-dir makes) and puts it on PYTHONPATH. Then
# benchmarks/gpu_run.py measures what it can within its time budget and records what it could not,
# and why; it writes OUT_DIR/gpu.json, gpu.md and gpu.log and exits 0 also where there is no GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="${1:-${OUT:-$ROOT/benchmarks/results/gpu}}"
[ "$#" -gt 0 ] && shift
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3)"; fi
fi

SITE=""
cleanup() { if [ -n "$SITE" ]; then rm -rf "$SITE"; fi; }
trap cleanup EXIT
if ! "$PY" -c 'import sys, mnm.training, mnm.export, mnm.runtime, mnm
sys.exit(0 if mnm.__file__.startswith(sys.argv[1]) else 1)' "$ROOT/" 2>/dev/null; then
  SITE="$(mktemp -d)"
  mkdir "$SITE/mnm"
  for entry in "$ROOT"/mnm/*; do ln -s "$entry" "$SITE/mnm/"; done
  ln -s "$ROOT/training" "$SITE/mnm/training"
  ln -s "$ROOT/export" "$SITE/mnm/export"
  ln -s "$ROOT/runtime" "$SITE/mnm/runtime"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

cd "$ROOT"
status=0
"$PY" "$ROOT/benchmarks/gpu_run.py" "$OUT_DIR" "$@" || status=$?
exit "$status"
