"""The GPU paths on a real GPU: native TensorRT engines, onnxruntime CUDA and TensorRT providers,
CUDA training. Each test skips with the reason where its part is absent (tests/conftest.py);
``benchmarks/gpu.sh`` runs them (``pytest -m gpu``). Outputs are compared with onnxruntime CPU on
the same graphs: fp32 on a GPU is fp32 here (TF32 off), so the tolerances are tight."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnm.config import PRESETS
from mnm.runtime.backends import create
from mnm.runtime.bench import graph_inputs
from mnm.runtime.bundle import Bundle
from tests.bundle_edits import edit_manifest
from tests.util import run_cli

TINY = PRESETS["tiny"]
MAX_BATCH = 4


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from mnm.export import export_random

    out = tmp_path_factory.mktemp("gpu") / "tiny"
    export_random(TINY, out, seed=3, preset="tiny", parity_batches=(2,))
    return out


@pytest.fixture(scope="module")
def engines(bundle, tmp_path_factory) -> Path:
    """The bundle with fp32 TensorRT engines (two profiles: batch 1, and 1..4)."""
    from mnm.export.bundle import build_bundle_engines

    out = Path(shutil.copytree(bundle, tmp_path_factory.mktemp("gpu") / "engines"))
    build_bundle_engines(out, json.loads((out / "manifest.json").read_text()), MAX_BATCH)
    return out


def assert_matches_cpu(backend, bundle: Bundle, batches=(1, 3, MAX_BATCH, 2 * MAX_BATCH + 1), tol=1e-3):
    cpu = create(bundle, "ort-cpu", threads=1)
    for graph in bundle.graphs:
        for batch in batches:
            feeds = graph_inputs(bundle, graph, batch, np.random.default_rng(batch))
            got, want = backend.run(graph, feeds), cpu.run(graph, feeds)
            for name, expected in want.items():
                scale = max(1.0, float(np.abs(expected).max()))
                assert got[name].shape == expected.shape, (graph, name)
                assert float(np.abs(got[name] - expected).max()) <= tol * scale, (graph, batch, name)


@pytest.mark.gpu("tensorrt")
def test_tensorrt_engines_load_at_creation_and_match_cpu_at_every_profile(engines):
    opened = Bundle.open(engines)
    backend = create(opened, "tensorrt", precision="fp32")
    assert set(backend._engines) == set(opened.graphs)  # every engine deserialised up front
    engine = backend._engines["g_child"]
    assert [(p.low, p.opt, p.high) for p in engine.profiles] == [(1, 1, 1), (1, MAX_BATCH, MAX_BATCH)]
    assert engine.pick(1).index == 0 and engine.pick(3).index == 1
    assert_matches_cpu(backend, opened)
    backend.close()


@pytest.mark.gpu("tensorrt")
def test_tensorrt_runs_from_other_threads(engines):
    opened = Bundle.open(engines)
    backend = create(opened, "tensorrt", precision="fp32")
    feeds = graph_inputs(opened, "g_child", 3, np.random.default_rng(0))
    expected = backend.run("g_child", feeds)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: backend.run("g_child", feeds), range(8)))
    for result in results:
        for name, value in expected.items():
            np.testing.assert_array_equal(result[name], value)
    backend.close()


@pytest.mark.gpu("tensorrt")
def test_an_engine_tensorrt_cannot_read_falls_through_at_creation(engines, tmp_path):
    from mnm.provenance import sha256_file

    broken = Path(shutil.copytree(engines, tmp_path / "broken"))
    engine = broken / "engines" / "g_child.fp32.engine"
    engine.write_bytes(b"not a TensorRT plan" * 100)
    edit_manifest(broken, lambda m: m["engines"]["g_child.fp32"].update(sha256=sha256_file(engine)))
    backend = create(Bundle.open(broken), "auto")
    assert backend.name != "tensorrt"
    assert backend.skipped[0].startswith("tensorrt: ") and "deserialise" in backend.skipped[0]


@pytest.mark.gpu("tensorrt")
def test_a_timing_cache_from_another_machine_is_replaced(engines, tmp_path):
    rebuilt = Path(shutil.copytree(engines, tmp_path / "rebuilt"))
    (rebuilt / "timing.cache").write_bytes(b"a timing cache from somewhere else")
    result = run_cli("export", "--preset", "tiny", "--random-init", "--seed", "3", "--out", rebuilt, "--trt",
                     "--max-batch", str(MAX_BATCH))
    assert result.returncode == 0, result.stderr
    assert (rebuilt / "timing.cache").read_bytes() != b"a timing cache from somewhere else"


@pytest.mark.gpu("onnxruntime")
def test_ort_cuda_fp32_matches_cpu(bundle):
    opened = Bundle.open(bundle)
    backend = create(opened, "ort-cuda")
    assert_matches_cpu(backend, opened, tol=1e-4)


@pytest.mark.gpu("onnxruntime", "tensorrt")
def test_ort_trt_builds_its_engines_once_and_matches_cpu(bundle, tmp_path):
    opened = Bundle.open(bundle)
    backend = create(opened, "ort-trt", cache_dir=tmp_path, max_batch=MAX_BATCH)
    built = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.engine")}
    assert built, "the TensorRT provider cached no engine"
    assert_matches_cpu(backend, opened)
    again = create(opened, "ort-trt", cache_dir=tmp_path, max_batch=MAX_BATCH)
    again.run("g_child", graph_inputs(opened, "g_child", 1, np.random.default_rng(1)))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.engine")} == built  # no rebuild


@pytest.mark.gpu("torch")
def test_training_steps_on_cuda_fp32_and_amp(tmp_path):
    data = tmp_path / "data"
    made = run_cli("data", "synth", "--out", data, "--n", "40", "--size", "32", "--shapes", "2",
                   "--textures-per-shape", "2", "--seed", "1")
    assert made.returncode == 0, made.stderr
    for amp in ([], ["--amp"]):
        result = run_cli("train", "code", "--data", data, "--preset", "tiny", "--out", tmp_path / "runs", "--steps",
                         "4", "--log-every", "2", "--batch", "4", "--device", "cuda", *amp)
        assert result.returncode == 0, result.stderr
    records = [json.loads(line) for stats in (tmp_path / "runs").glob("*/stats.jsonl")
               for line in stats.read_text().splitlines()]
    assert len(records) == 4 and all(np.isfinite(r["sec_per_step"]) for r in records)
