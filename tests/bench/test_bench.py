"""`mnm bench` (torch-free, real subprocess), the reference comparison harness, the roofline profile
parser and the RESULTS.md writer (the GPU run: test_gpu_run.py). No timed assertions: numbers on a
shared machine vary; the tests check that every number is there, finite and consistent."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnm.config import PRESETS
from mnm.errors import MnmError
from mnm.runtime.bench import interleaved, summarize
from tests.util import run_cli

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
GRAPHS = {"enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "g_child", "extractor"}
SCENARIOS = {"single_mix", "grid", "img2gif_code", "img2gif_feature"}
STAT_KEYS = {"median_ms", "p95_ms", "min_ms", "repeats", "images", "images_per_s"}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    from mnm.export import export_random

    out = tmp_path_factory.mktemp("bench") / "tiny"
    export_random(PRESETS["tiny"], out, seed=5, preset="tiny", parity_batches=(2,))
    return out


def _finite_stats(stats: dict, images: int) -> None:
    assert set(stats) >= STAT_KEYS
    assert stats["images"] == images
    for key in ("median_ms", "p95_ms", "min_ms", "images_per_s"):
        assert math.isfinite(stats[key]) and stats[key] > 0, (key, stats)
    assert stats["min_ms"] <= stats["median_ms"] <= stats["p95_ms"]
    assert stats["images_per_s"] == pytest.approx(images / (stats["median_ms"] / 1e3))


def test_mnm_bench_json_without_torch(tiny_bundle, tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", tiny_bundle, "--backend", "ort-cpu", "--batch", "1,3", "--repeats", "2",
                     "--warmup", "1", "--json", out, block_torch=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["format"] == "mnm-bench"
    assert report["settings"] == {"batches": [1, 3], "repeats": 2, "warmup": 1, "grid": [4, 4, 4], "precision": "auto"}
    machine = report["machine"]
    assert machine["physical_cores"] >= 1 and machine["cpu"]
    assert "onnxruntime" in machine["libraries"] and "torch" not in machine["libraries"]
    entry = report["backends"]["ort-cpu"]
    assert set(entry["graphs"]) == GRAPHS
    for per_batch in entry["graphs"].values():
        assert set(per_batch) == {"1", "3"}
        for batch, stats in per_batch.items():
            _finite_stats(stats, int(batch))
            assert stats["repeats"] == 2
    assert set(entry["scenarios"]) == SCENARIOS
    expected_images = {"single_mix": 1, "grid": 64, "img2gif_code": 1, "img2gif_feature": 1}
    for name, stats in entry["scenarios"].items():
        _finite_stats(stats, expected_images[name])
    # What each call ran, from the pipeline's counters: the cache structure of docs/runtime.md.
    runs = {name: s["graph_runs_per_call"] for name, s in entry["scenarios"].items()}
    assert runs["single_mix"] == {"enc_z": 1, "enc_b": 1, "enc_p": 1, "enc_c": 1,
                                  "g_background": 1, "g_parent": 1, "g_child": 1}
    assert runs["grid"]["g_background"] == 1 and runs["grid"]["g_parent"] == 1  # 4 distinct each, one batch
    assert runs["grid"]["g_child"] == 4  # 64 combinations in batches of 16
    assert runs["img2gif_code"] == {"enc_z": 1, "g_parent": 1, "g_child": 1}
    assert runs["img2gif_feature"] == {"extractor": 1, "g_child": 1}
    # The terminal table names every graph and scenario.
    for name in GRAPHS:
        assert name in result.stdout
    assert "grid 4x4x4" in result.stdout and "fps" in result.stdout
    assert len(report["load_average_after"]) == 3  # the load before is machine["load_average"]


def test_mnm_bench_output_captured_with_its_stderr_is_the_report_alone(tiny_bundle):
    """With stdout and stderr in one file (a log, a CI step) no progress bar runs into the report:
    bars are drawn only on a terminal. The report names the load around the run and says which
    graphs each img2gif mode runs per frame."""
    env = {k: v for k, v in os.environ.items() if k != "MNM_NO_PROGRESS"}
    result = subprocess.run([sys.executable, "-m", "mnm", "bench", str(tiny_bundle), "--backend", "ort-cpu",
                             "--batch", "1", "--repeats", "2", "--warmup", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout
    assert "\r" not in result.stdout and "%|" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ") and lines[1].startswith("CPU features: ")
    assert lines[2].startswith("load average (1, 5, 15 min): ") and " before, " in lines[2] and " after" in lines[2]
    assert any(line.startswith("per img2gif frame, code mode runs enc_z + g_parent + g_child (") and
               "feature mode runs extractor + g_child (" in line for line in lines)


def _frame_entry(code_ms: float, feature_ms: float) -> dict:
    graphs = {g: {"1": {"median_ms": ms}} for g, ms in
              {"enc_z": 2.0, "g_parent": 3.0, "g_child": 4.0, "extractor": 1.5}.items()}
    return {"graphs": graphs, "scenarios": {
        "img2gif_code": {"median_ms": code_ms, "graph_runs_per_call": {"enc_z": 1, "g_parent": 1, "g_child": 1}},
        "img2gif_feature": {"median_ms": feature_ms, "graph_runs_per_call": {"extractor": 1, "g_child": 1}}}}


def test_frame_notes_say_why_feature_mode_is_faster_only_where_it_is():
    from mnm.runtime.bench import frame_notes

    faster = frame_notes(_frame_entry(code_ms=9.5, feature_ms=6.0))
    assert faster[1] == ("per img2gif frame, code mode runs enc_z + g_parent + g_child (9.00 ms at batch 1); "
                         "feature mode runs extractor + g_child (5.50 ms at batch 1).")
    assert faster[2] == ("feature mode is faster here: extractor takes the place of enc_z + g_parent, "
                         "so a frame runs 2 graphs instead of 3.")
    slower = frame_notes(_frame_entry(code_ms=6.0, feature_ms=9.5))
    assert len(slower) == 2 and slower[1] == faster[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "0,8"], "--batch"),
        (["--batch", "one"], "--batch"),
        (["--backend", "cuda-please"], "unknown backend"),
    ],
)
def test_mnm_bench_bad_options(tiny_bundle, args, message):
    result = run_cli("bench", tiny_bundle, *args, "--repeats", "1", block_torch=True)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_mnm_bench_missing_bundle(tmp_path):
    result = run_cli("bench", tmp_path / "nope", block_torch=True)
    assert result.returncode == 2
    assert "nope" in result.stderr and "not found" in result.stderr


def test_interleaved_alternates_and_summarize_statistics():
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    stats = summarize([0.004, 0.001, 0.003, 0.002], images=8)
    assert stats["median_ms"] == pytest.approx(2.5)
    assert stats["min_ms"] == pytest.approx(1.0)
    assert 3.0 < stats["p95_ms"] <= 4.0
    assert stats["images_per_s"] == pytest.approx(8 / 0.0025)
    with pytest.raises(MnmError):
        interleaved({"a": lambda: None}, repeats=0, warmup=0)


def _bench_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNM_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_compare_reference_tiny(tmp_path):
    """The benchmark's one command, end to end at the tiny preset: it exports the bundles itself
    (without and with the export rewrites, the latter with INT8 graphs) and times every lever."""
    out, md = tmp_path / "cmp.json", tmp_path / "RESULTS.md"
    md.write_text("# old\n<!-- NOTES: hand-written, kept when this file is regenerated -->\nmy analysis\n"
                  "<!-- END NOTES -->\n")
    # One thread: on a loaded machine torch's OpenMP pool with 2 threads is many times slower.
    result = _bench_script(str(BENCHMARKS / "compare_reference.py"), "--preset", "tiny", "--repeats", "1",
                           "--roofline-repeats", "1", "--peak-size", "256", "--threads", "1",
                           "--json", str(out), "--markdown", str(md), timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["precision"] in ("int8", "fp32")
    passed = sorted(g for g, r in report["int8_quality"]["graphs"].items() if r["precision"] == "int8")
    assert report["int8_graphs"] == (passed if report["precision"] == "int8" else [])
    heads = {"fp32": report["fp32"], **({"int8": report["int8"]} if report["int8"] else {})}
    assert (report["int8"] is not None) == bool(passed)  # an int8 run only with graphs that passed their gate
    overall = {name: math.prod(h[k] for k in ("single_mix_speedup", "grid_speedup", "img2gif_speedup"))
               for name, h in heads.items()}
    assert report["precision"] == max(overall, key=overall.get)  # the faster overall of those that passed
    assert {k: report[k] for k in heads[report["precision"]]} == heads[report["precision"]]
    for head in (report, *heads.values()):
        for key in ("single_mix_speedup", "grid_speedup", "img2gif_speedup", "img2gif_fps",
                    "img2gif_feature_speedup", "img2gif_feature_fps"):
            assert math.isfinite(head[key]) and head[key] > 0, key
        assert set(head["fraction_of_peak"]) == GRAPHS
        for per_batch in head["fraction_of_peak"].values():
            assert set(per_batch) == {"1", "8"}
            assert all(math.isfinite(v) and v > 0 for v in per_batch.values())
    assert set(report["scenarios"]) == SCENARIOS
    variants = {"baseline", "fp32", "no_spin", "concurrent"} | set(heads)
    for s in report["scenarios"].values():
        assert set(s["runtimes"]) == variants
        for v in variants:
            assert s["speedups"][v] == pytest.approx(s["reference"]["median_ms"] / s["runtimes"][v]["median_ms"])
        # Same weights, same images: the reference procedure and the fp32 variants agree to rounding.
        assert max(s["agreement_max_abs_uint8"][v] for v in ("baseline", "fp32", "no_spin", "concurrent")) <= 2
    assert report["single_mix_speedup"] == report["scenarios"]["single_mix"]["speedups"][report["precision"]]
    assert report["fp32"]["grid_speedup"] == report["scenarios"]["grid"]["speedups"]["fp32"]
    levers = {row["lever"]: row for row in report["levers"]}
    assert {"rewrites", "spin", "concurrent"} <= set(levers)
    rewrites = levers["rewrites"]
    assert set(rewrites["scenarios"]) == SCENARIOS and {"g_background", "g_parent"} <= set(rewrites["graphs"])
    single = report["scenarios"]["single_mix"]["runtimes"]
    assert rewrites["scenarios"]["single_mix"] == pytest.approx(
        single["baseline"]["median_ms"] / single["no_spin"]["median_ms"])
    assert report["source"] == {"kind": "random-init", "seed": 0, "preset": "tiny"}
    assert list(report["rewrites"]) == ["code_conv", "up_phase", "transposed_phase", "glu_split", "fused_heads"]
    peak = report["peak"]
    assert peak["peak_gflops"] == max(peak["numpy"]["gflops"], peak["onnxruntime"]["gflops"])
    assert report["int8_peak"]["peak_gflops"] > 0
    for entry in report["graphs"].values():  # the fraction never uses the lower of the two peaks
        for r in entry["batches"].values():
            best = max(peak["peak_gflops"], r["peak_alongside_gflops"])
            assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / best)
    targets = {(t["precision"], t["target"]): t for t in report["targets"]}
    for name, head in heads.items():
        for key in ("single_mix_speedup", "grid_speedup", "img2gif_speedup"):
            row = targets[(name, key)]
            assert row["value"] == head[key] and row["met"] == (head[key] >= row["goal"])
    g_child_8 = report["fp32"]["fraction_of_peak"]["g_child"]["8"]
    assert targets[("fp32", "fraction_of_peak.g_child.8")]["value"] == g_child_8
    assert report["profile"]["g_child"]["ops"] and report["profile"]["g_child"]["kernel_ms_per_run"] > 0
    text = md.read_text()
    assert "my analysis" in text and "# old" not in text
    assert "## Roofline" in text and "## Levers" in text and "## INT8 quality gate" in text
    assert "g_background" in text and report["command"] in text


@pytest.fixture
def benchmarks_on_path(monkeypatch):
    """The benchmark scripts import their siblings as top-level modules, as when run as scripts."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))


@pytest.mark.usefixtures("benchmarks_on_path")
def test_profile_trace_summary():
    from roofline import summarize_trace

    def run(ts):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": 50}

    def kernel(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [run(0), kernel("conv1", "Conv", 1, 999),  # the warm-up run, left out
              run(100), kernel("conv1", "Conv", 101, 3000), kernel("add", "Add", 105, 1000),
              {"cat": "Node", "name": "conv1_fence_before", "ts": 101, "dur": 7},
              run(200), kernel("conv1", "Conv", 201, 5000), kernel("add", "Add", 205, 1000)]
    summary = summarize_trace(events, skip_runs=1)
    assert summary["runs"] == 2
    assert summary["kernel_ms_per_run"] == pytest.approx(5.0)
    assert summary["ops"][0] == {"op": "Conv", "ms": pytest.approx(4.0), "share": pytest.approx(0.8)}
    assert summary["slowest_nodes"][1]["node"] == "add"


def test_mnm_bench_all_starts_each_backend_and_keeps_going_past_those_that_do_not(tiny_bundle, tmp_path):
    out = tmp_path / "all.json"
    result = run_cli("bench", tiny_bundle, "--backend", "all", "--batch", "1", "--repeats", "1", "--warmup", "0",
                     "--json", out, block_torch=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert "ort-cpu" in report["backends"]
    assert set(report["backends"]) | set(report["skipped_backends"]) == {"tensorrt", "ort-trt", "ort-cuda", "ort-cpu"}
    for name, reason in report["skipped_backends"].items():
        assert reason and "\n" not in reason
        assert f"skipped {name}: {reason}" in result.stdout


def test_mnm_bench_verbose_says_why_auto_passed_over_the_faster_backends(tiny_bundle):
    result = run_cli("bench", tiny_bundle, "--batch", "1", "--repeats", "1", "--warmup", "0", "--verbose",
                     block_torch=True)
    assert result.returncode == 0, result.stderr
    if "--backend auto picked ort-cpu; not used:" not in result.stderr:
        pytest.skip("a GPU backend started here")
    assert "  tensorrt: " in result.stderr and "  ort-cuda: " in result.stderr


class _CountingBar:
    """The progress interface run_bench uses, counting what it is told."""

    def __init__(self, total: int):
        self.total, self.first_total, self.n, self.refreshes = total, total, 0, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1):
        self.n += n

    def refresh(self):
        self.refreshes += 1


def test_run_bench_measures_one_backend_at_a_time_and_the_bar_ends_full(tiny_bundle, monkeypatch):
    """Every backend that starts is closed before the next one starts (a GPU machine never holds
    two backends' sessions), and a backend that does not start takes its share off the bar."""
    from mnm.runtime import bench
    from mnm.runtime.pipeline import Pipeline

    live, most_live = [], []
    real_start, real_close = bench.start_pipeline, Pipeline.close

    def start(*args, **kwargs):
        started = real_start(*args, **kwargs)
        if started[1] is not None:
            live.append(started[1])
            most_live.append(len(live))
        return started

    def close(self):
        if self in live:
            live.remove(self)
        return real_close(self)

    monkeypatch.setattr(bench, "start_pipeline", start)
    monkeypatch.setattr(Pipeline, "close", close)
    bars = []
    report = bench.run_bench(tiny_bundle, ["ort-cpu", "all"], batches=[1], repeats=1, warmup=0,
                             progress=lambda total: bars.append(_CountingBar(total)) or bars[-1])
    assert most_live and max(most_live) == 1 and not live
    (bar,) = bars
    started = len(report["backends"])
    assert bar.n == bar.total and bar.first_total == bar.total * 4 // started
    assert bar.refreshes == len(report["skipped_backends"]) == 4 - started
