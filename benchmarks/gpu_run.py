"""The prepared GPU run: everything this machine's GPU can measure within a time budget, in one command.

    bash benchmarks/gpu.sh OUT_DIR [options]        (sets up the import path, then runs this file)
    python benchmarks/gpu_run.py OUT_DIR [--budget 450] [--presets lite,paper] [--batches 1,8,64] ...

It uses what the machine has and installs nothing. Each step is a subprocess with a timeout cut
from the budget; a step that cannot run here, fails, or no longer fits the budget is recorded in
``skipped`` with why, and the run goes on. Steps:

1. the machine: nvidia-smi's GPUs and driver, torch's CUDA devices (CUDA's order, which can differ
   from nvidia-smi's), the onnxruntime/TensorRT installation;
2. the GPU backends: ort-cuda and ort-trt created for the demo bundle, TensorRT's runtime started;
3. training: ``mnm data synth`` (small), then code-mode steps per preset, fp32 and ``--amp``: steps/s
   from stats.jsonl, the first record (warm-up, cuDNN autotuning) left out;
4. PyTorch eager and CUDA-graph replay of every graph of ``--baseline-preset`` per batch size;
5. for the GPU backends that start: a random-init bundle of the baseline preset (TensorRT engines
   where TensorRT starts), then ``mnm bench`` on each;
6. the GPU tests (``pytest -m gpu`` on the files that hold them).

Writes OUT_DIR/gpu.json, OUT_DIR/gpu.md and OUT_DIR/gpu.log (every step's command and output):
three files, so all of them come back from a lent device. Exits 0 unless the report itself cannot
be written. ``--device cpu`` with tiny settings exercises the same steps where
there is no GPU (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_report import markdown  # noqa: E402  (benchmarks/ is not a package)

RESERVE_S = 15  # kept back for writing the report
MIN_STEP_S = 10  # a step with less time than this left is not started
GPU_BACKENDS = ("tensorrt", "ort-trt", "ort-cuda")
TEST_FILES = ("tests/gpu", "tests/export/test_tensorrt.py")
# pytest in-process after ``import mnm``: pytest puts the repository root first on sys.path, where
# mnm/ lacks training/, export/ and runtime/ unless mnm is installed; imported first, the mnm that
# gpu.sh set up stays the one every test module sees.
PYTEST_CODE = "import sys, mnm, pytest; sys.exit(pytest.main(sys.argv[1:]))"

MACHINE_CODE = """
import json, os
from mnm.runtime.backends.environment import installation
out = {"installation": installation(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER")}
try:
    import torch
    out["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available()}
    out["torch"]["devices"] = [
        {"index": i, "name": torch.cuda.get_device_name(i),
         "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
        for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
except ImportError as exc:
    out["torch"] = {"error": str(exc)}
print(json.dumps(out))
"""

BACKENDS_CODE = """
import json
from mnm.cli.info import DEMO_BUNDLE
from mnm.runtime.backends import BackendUnavailable, probe
from mnm.runtime.bundle import Bundle
found = {n: [p.starts, p.detail] for n, p in probe(Bundle.open(DEMO_BUNDLE), names=("ort-trt", "ort-cuda")).items()}
try:
    from mnm.runtime.backends.tensorrt import runtime_check
    found["tensorrt"] = [True, runtime_check()]
except BackendUnavailable as exc:
    found["tensorrt"] = [False, str(exc)]
print(json.dumps(found))
"""


class Run:
    """Runs the steps against one deadline and keeps the record: results, skips, step times."""

    def __init__(self, out: Path, budget: float, work: Path):
        self.out, self.log, self.work = out, out / "gpu.log", work
        out.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.skipped: list[dict] = []
        self.steps: list[dict] = []
        self.env = {**os.environ, "MNM_NO_PROGRESS": "1"}

    def skip(self, what: str, why: str) -> None:
        print(f"gpu_run: skipped {what}: {why}", file=sys.stderr, flush=True)
        self.skipped.append({"what": what, "why": why})

    def call(self, what: str, cmd: list[str], cap: float, ok=(0,)) -> subprocess.CompletedProcess | None:
        """Run one step; None (and a skip record) when it is not started, fails or times out."""
        left = self.deadline - time.monotonic() - RESERVE_S
        if left < MIN_STEP_S:
            self.skip(what, "not started: the time budget is spent")
            return None
        timeout = min(cap, left)
        print(f"gpu_run: {what}", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            # cwd is the scratch folder, not the repository: there ``import mnm`` could find mnm/ alone
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.work, env=self.env)
        except subprocess.TimeoutExpired as exc:
            self._log(what, cmd, "timed out", _text(exc.stdout) + _text(exc.stderr))
            self.skip(what, f"stopped after {timeout:.0f} s (the step's share of the time budget)")
            return None
        seconds = round(time.monotonic() - began, 1)
        self._log(what, cmd, f"exit {proc.returncode} after {seconds} s", proc.stdout + proc.stderr)
        self.steps.append({"what": what, "seconds": seconds, "exit": proc.returncode})
        if proc.returncode not in ok:
            self.skip(what, f"failed (exit {proc.returncode}): {_last_line(proc.stderr or proc.stdout)}")
            return None
        return proc


    def _log(self, what: str, cmd: list[str], outcome: str, output: str) -> None:
        with self.log.open("a") as log:
            log.write(f"== {what}: {outcome}\n$ {' '.join(cmd)}\n{output.rstrip()}\n\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out_dir).resolve()
    report = {"format": "mnm-gpu-run", "format_version": 1, "command": " ".join(sys.argv),
              "settings": {k: v for k, v in vars(args).items() if k != "out_dir"}}
    with tempfile.TemporaryDirectory(prefix="mnm-gpu-") as work:
        run = Run(out, args.budget, Path(work))
        for step in (machine_step, backends_step, training_step, baselines_step, bench_step, tests_step):
            try:
                step(run, args, report, Path(work))
            except Exception as exc:  # a bug in one step must not cost the others (or the report)
                run.skip(step.__name__, f"{type(exc).__name__}: {exc}")
    from mnm.atomic import write_text
    from mnm.provenance import utc_now

    report.update(created=utc_now(), wall_s=round(time.monotonic() - run.start, 1), steps=run.steps,
                  skipped=run.skipped)
    write_text(out / "gpu.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "gpu.md", markdown(report))
    print(f"gpu_run: {len(run.steps)} steps ran, {len(run.skipped)} skipped; {out / 'gpu.json'}, {out / 'gpu.md'}",
          file=sys.stderr)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description="The prepared GPU run (benchmarks/README.md).")
    parser.add_argument("out_dir")
    parser.add_argument("--budget", type=float, default=450, help="Seconds for the whole run (default 450).")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a smoke run without a GPU.")
    parser.add_argument("--presets", default="lite,paper", help="Presets to train (default lite,paper).")
    parser.add_argument("--train-steps", type=int, default=40, help="Training steps per run (default 40).")
    parser.add_argument("--log-every", type=int, default=10, help="Steps per stats record (default 10).")
    parser.add_argument("--train-batch", type=int, default=12, help="Training batch (default 12, the paper's).")
    parser.add_argument("--data-n", type=int, default=240, help="Synthetic training images (default 240).")
    parser.add_argument("--baseline-preset", default="paper", help="Preset of the baselines and benches.")
    parser.add_argument("--batches", default="1,8,64", help="Batch sizes of the baselines and benches.")
    parser.add_argument("--repeats", type=int, default=30, help="Timed repeats per measurement (default 30).")
    parser.add_argument("--no-tests", action="store_true", help="Leave out the GPU tests.")
    return parser.parse_args(argv)


def mnm(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnm", *args]


def machine_step(run: Run, args, report: dict, work: Path) -> None:
    proc = run.call("machine", [sys.executable, "-c", MACHINE_CODE], 60)
    report["machine"] = json.loads(proc.stdout) if proc else None
    torch_info = (report["machine"] or {}).get("torch", {})
    if "error" in torch_info:
        report["no_device"] = f"torch is not importable ({torch_info['error']})"
    elif args.device == "cuda" and not torch_info.get("available"):
        report["no_device"] = f"no CUDA GPU: torch {torch_info.get('version')} sees none"


def backends_step(run: Run, args, report: dict, work: Path) -> None:
    proc = run.call("GPU backends: create each", [sys.executable, "-c", BACKENDS_CODE], 240)
    found = json.loads(proc.stdout) if proc else {}
    report["backends"] = {name: {"starts": ok, "detail": detail} for name, (ok, detail) in found.items()}
    for name, (ok, detail) in found.items():
        if not ok:
            run.skip(f"backend {name}", detail)


def training_step(run: Run, args, report: dict, work: Path) -> None:
    report["training"] = []
    if report.get("no_device"):
        run.skip("training", report["no_device"])
        return
    data = work / "data"
    if not run.call("synthetic data", mnm("data", "synth", "--out", str(data), "--n", str(args.data_n), "--size",
                                          "64", "--shapes", "4", "--textures-per-shape", "4", "--seed", "1"), 120):
        return
    for preset in args.presets.split(","):
        for amp in (False, True):
            precision = "amp (bf16 autocast)" if amp else "fp32"
            name = f"{preset}-{'amp' if amp else 'fp32'}"
            cmd = mnm("train", "code", "--data", str(data), "--preset", preset, "--out", str(work / "runs"),
                      "--name", name, "--steps", str(args.train_steps), "--log-every", str(args.log_every),
                      "--batch", str(args.train_batch), "--device", args.device, "--keep", "1",
                      *(["--amp"] if amp else []))
            if run.call(f"train {preset} {precision}", cmd, 150):
                stats = next((work / "runs").glob(f"*-{name}/stats.jsonl"))
                report["training"].append(training_speed(stats, preset, precision, args.train_batch))


def training_speed(stats: Path, preset: str, precision: str, batch: int) -> dict:
    """Steps/s from stats.jsonl: the median of the records after the first (warm-up)."""
    records = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    steady = records[1:] or records
    sec = statistics.median(r["sec_per_step"] for r in steady)
    return {"preset": preset, "precision": precision, "batch": batch, "steps": records[-1]["step"],
            "steps_per_s": round(1 / sec, 3), "images_per_s": round(batch / sec, 2),
            "first_record_sec_per_step": records[0]["sec_per_step"], "records": len(records)}


def baselines_step(run: Run, args, report: dict, work: Path) -> None:
    if report.get("no_device"):
        run.skip("PyTorch baselines", report["no_device"])
        return
    target = work / "torch-baselines.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "torch_cuda.py"), "--preset", args.baseline_preset,
           "--batch", args.batches, "--repeats", str(args.repeats), "--device", args.device, "--json", str(target)]
    if run.call(f"PyTorch baselines ({args.baseline_preset})", cmd, 180):
        report["torch_baselines"] = json.loads(target.read_text())
        if args.device != "cuda":
            run.skip("CUDA-graph replay", "needs CUDA (this run is on the CPU)")


def bench_step(run: Run, args, report: dict, work: Path) -> None:
    started = [name for name, found in report.get("backends", {}).items() if found["starts"]]
    report["bench"] = {}
    if not started:
        run.skip("mnm bench on GPU backends", "no GPU backend starts here (see backend entries)")
        return
    bundle = work / "bundle"
    export = mnm("export", "--random-init", "--preset", args.baseline_preset, "--out", str(bundle))
    if "tensorrt" in started:
        export += ["--trt", "--max-batch", str(max(int(b) for b in args.batches.split(",")))]
    if not run.call(f"export {args.baseline_preset} bundle", export, 300):
        return
    for name in started:
        target = work / f"bench-{name}.json"
        cmd = mnm("bench", str(bundle), "--backend", name, "--batch", args.batches, "--repeats", str(args.repeats),
                  "--json", str(target))
        if run.call(f"mnm bench {name}", cmd, 240):
            report["bench"][name] = json.loads(target.read_text())["backends"][name]


def tests_step(run: Run, args, report: dict, work: Path) -> None:
    if args.no_tests:
        run.skip("GPU tests", "left out (--no-tests)")
        return
    if subprocess.run([sys.executable, "-c", "import pytest"], capture_output=True).returncode != 0:
        run.skip("GPU tests", "pytest is not installed for this Python")
        return
    xml = work / "gpu-tests.xml"
    cmd = [sys.executable, "-c", PYTEST_CODE, "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
           f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), f"--junitxml={xml}",
           *(str(ROOT / f) for f in TEST_FILES)]
    proc = run.call("GPU tests (pytest -m gpu)", cmd, 240, ok=(0, 1))  # 1: some failed, listed below
    if xml.is_file():
        report["gpu_tests"] = junit_summary(xml)
    elif proc is None:
        report["gpu_tests"] = None


def junit_summary(path: Path) -> dict:
    """Counts and, per test that did not pass, its outcome and message."""
    import xml.etree.ElementTree as ET

    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, (found.get("message") or "").strip()
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "message": message[:300]})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failure", "error", "skipped")}
    return {**counts, "cases": [c for c in cases if c["outcome"] != "passed"]}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else "no output"


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


if __name__ == "__main__":
    sys.exit(main())
