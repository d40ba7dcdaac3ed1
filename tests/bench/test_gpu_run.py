"""The prepared GPU run (benchmarks/gpu.sh → gpu_run.py) on a machine without a GPU: it exits 0 and
writes gpu.json and gpu.md whose ``skipped`` list says what did not run and why; the same steps on
the CPU (``--device cpu``, tiny settings) produce training speeds and eager baselines; the budget
cuts steps it cannot fit. With a GPU present these runs would measure for minutes: skipped there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnm.runtime import machine

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(bool(machine.gpus()), reason="a GPU is here: gpu.sh would measure for minutes")
SMOKE = ["--device", "cpu", "--presets", "tiny", "--train-steps", "2", "--log-every", "1", "--train-batch", "4",
         "--data-n", "16", "--baseline-preset", "tiny", "--batches", "1,2", "--repeats", "1", "--no-tests"]


def gpu_sh(out: Path, *args: str, python: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNM_NO_PROGRESS": "1", "PYTHON": python or sys.executable}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out), *args], capture_output=True,
                          text=True, timeout=900, env=env, cwd=ROOT)


def check_written(out: Path) -> dict:
    report = json.loads((out / "gpu.json").read_text())
    assert report["format"] == "mnm-gpu-run" and report["wall_s"] > 0
    assert report["skipped"] and all(s["what"] and s["why"] and "\n" not in s["why"] for s in report["skipped"])
    text = (out / "gpu.md").read_text()
    assert "## Not run, and why" in text
    for entry in report["skipped"]:
        assert entry["what"] in text
    return report


def test_gpu_sh_without_a_gpu_exits_0_and_says_what_did_not_run_and_why(tmp_path):
    out = tmp_path / "gpu"
    result = gpu_sh(out)
    assert result.returncode == 0, result.stderr
    report = check_written(out)
    why = {s["what"]: s["why"] for s in report["skipped"]}
    assert why["training"].startswith("no CUDA GPU: torch") and why["PyTorch baselines"] == why["training"]
    for name in ("tensorrt", "ort-trt", "ort-cuda"):
        assert why[f"backend {name}"] == report["backends"][name]["detail"]
    assert why["mnm bench on GPU backends"].startswith("no GPU backend starts here")
    tests = report["gpu_tests"]  # the GPU tests ran, and each skipped with its reason
    assert tests["passed"] == tests["failure"] == tests["error"] == 0 and tests["skipped"] >= 7
    assert all(c["message"].startswith("gpu test: no NVIDIA GPU") for c in tests["cases"])
    assert report["machine"]["installation"]["gpus"] == [] and report["steps"][0]["what"] == "machine"


def test_gpu_sh_runs_from_the_source_tree_where_mnm_is_not_installed(tmp_path):
    """The lent GPU machine has a system Python with torch and onnxruntime but no mnm: gpu.sh builds
    the mnm.training/export/runtime import tree itself."""
    probe = subprocess.run(["python3", "-c", "import numpy, onnxruntime, typer, PIL, cv2, tqdm\n"
                            "import importlib.util, sys; sys.exit(importlib.util.find_spec('mnm') is not None)"],
                           capture_output=True, cwd=tmp_path)
    if probe.returncode != 0:
        pytest.skip("the system python3 lacks the runtime's packages, or has mnm installed")
    out = tmp_path / "gpu"
    result = gpu_sh(out, "--no-tests", python="python3")
    assert result.returncode == 0, result.stderr
    report = check_written(out)
    assert report["machine"] is not None and set(report["backends"]) == {"tensorrt", "ort-trt", "ort-cuda"}


@pytest.mark.slow
def test_the_same_steps_on_the_cpu_measure_training_and_eager_baselines(tmp_path):
    out = tmp_path / "cpu"
    result = gpu_sh(out, *SMOKE, "--budget", "600")
    assert result.returncode == 0, result.stderr
    report = check_written(out)
    [fp32] = report["training"]
    assert fp32["preset"] == "tiny" and fp32["precision"] == "fp32" and fp32["steps"] == 2 and fp32["records"] == 2
    assert fp32["steps_per_s"] > 0 and fp32["images_per_s"] == pytest.approx(4 * fp32["steps_per_s"], abs=0.01)
    why = {s["what"]: s["why"] for s in report["skipped"]}
    assert "needs a CUDA device" in why["train tiny amp (bf16 autocast)"]
    assert why["CUDA-graph replay"] == "needs CUDA (this run is on the CPU)"
    graphs = report["torch_baselines"]["graphs"]
    assert len(graphs) == 8 and all(set(per_batch) == {"1", "2"} for per_batch in graphs.values())
    assert all(set(r) == {"eager"} and r["eager"]["median_ms"] > 0 for g in graphs.values() for r in g.values())
    text = (out / "gpu.md").read_text()
    assert "| tiny | fp32 | 4 | 2 |" in text and "| g_child | 2 |" in text
    log = (out / "gpu.log").read_text()
    assert "== train tiny fp32: exit 0" in log and "== train tiny amp (bf16 autocast): exit 2" in log
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "gpu.log", "gpu.md"]


def test_a_spent_budget_skips_every_step_and_still_writes_the_report(tmp_path):
    out = tmp_path / "late"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_run.py"), str(out), "--budget", "1"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "MNM_NO_PROGRESS": "1"})
    assert result.returncode == 0, result.stderr
    report = check_written(out)
    assert report["steps"] == []
    assert {s["why"] for s in report["skipped"] if s["what"] in ("machine", "GPU backends: create each",
                                                                 "GPU tests")} == {
        "not started: the time budget is spent"}
