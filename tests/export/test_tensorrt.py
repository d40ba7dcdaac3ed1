"""TensorRT: `--trt` where TensorRT or a GPU is missing, engine builds where both exist, and the
engine-compatibility check the runtime uses (records written here)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mnm.export.engine_record import engine_compatibility, local_gpu
from tests.util import run_python

REBUILD = "mnm export runs/00001-cub --out bundle --trt --fp16"
RECORD = {
    "graph": "g_child",
    "precision": "fp16",
    "tensorrt_version": "10.3.0",
    "gpu_name": "NVIDIA A100-SXM4-80GB",
    "compute_capability": "8.0",
    "rebuild": REBUILD,
}
SAME = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}


def tensorrt_ready() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return local_gpu() is not None


def test_same_gpu_and_tensorrt_is_accepted():
    ok, reason = engine_compatibility(RECORD, SAME)
    assert ok, reason
    ok, _ = engine_compatibility(RECORD, {**SAME, "tensorrt_version": "10.3.1"})
    assert ok  # a patch release reads the engine


@pytest.mark.parametrize(
    "change, says",
    [
        ({"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}, "GPU NVIDIA A100-SXM4-80GB"),
        ({"gpu_name": "NVIDIA A30"}, "this machine has NVIDIA A30"),
        ({"compute_capability": "8.6"}, "compute capability 8.0, this GPU has 8.6"),
        ({"tensorrt_version": "11.0.0"}, "TensorRT 10.3.0, this machine has 11.0.0"),
        ({"tensorrt_version": "10.4.0"}, "TensorRT 10.3.0, this machine has 10.4.0"),
        ({"tensorrt_version": None}, "TensorRT is not installed here"),
    ],
)
def test_mismatched_engine_is_refused_with_the_rebuild_command(change, says):
    ok, reason = engine_compatibility(RECORD, {**SAME, **change})
    assert not ok
    assert says in reason
    assert reason.startswith("g_child.fp16 was built for")
    assert reason.endswith(REBUILD) and "rebuild them on this machine" in reason
    assert "\n" not in reason


def test_record_without_a_rebuild_command_still_says_how():
    ok, reason = engine_compatibility({**RECORD, "rebuild": None}, {**SAME, "compute_capability": "9.0"})
    assert not ok and reason.endswith("mnm export CHECKPOINT_OR_RUN --out BUNDLE --trt")


def test_engine_record_imports_without_torch_or_tensorrt():
    code = (
        "import sys; sys.modules['tensorrt'] = None\n"
        "from mnm.export.engine_record import engine_compatibility\n"
        f"print(engine_compatibility({RECORD!r}, {SAME!r})[0])\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None"
    )
    result = run_python(code, block_torch=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_trt_flag_without_tensorrt_stops_after_a_complete_onnx_bundle(exported):
    if tensorrt_ready():
        pytest.skip("TensorRT and a GPU are present: the engine build test covers --trt here")
    result = exported.checkpoint_run
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --trt: "), result.stderr
    assert str(exported.checkpoint_bundle) in lines[0] and "complete" in lines[0]
    manifest = json.loads((exported.checkpoint_bundle / "manifest.json").read_text())
    assert manifest["engines"] == {}
    for section in ("graphs", "graphs_fp16"):
        assert len(manifest[section]) == 8
        for entry in manifest[section].values():
            data = (exported.checkpoint_bundle / entry["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_engines_are_built_and_recorded(exported):
    if not tensorrt_ready():
        pytest.skip("needs TensorRT (pip install 'mnm[trt]') and a CUDA GPU")
    import tensorrt as trt

    from mnm.export.engine_record import machine_info

    assert exported.checkpoint_run.returncode == 0, exported.checkpoint_run.stderr
    bundle = exported.checkpoint_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (bundle / "timing.cache").stat().st_size > 0
    machine = machine_info(trt.__version__)
    graphs = {**{f"{n}.fp32": e for n, e in manifest["graphs"].items()},
              **{f"{n}.fp16": e for n, e in manifest["graphs_fp16"].items()}}
    assert set(manifest["engines"]) == set(graphs)
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    for key, engine in manifest["engines"].items():
        data = (bundle / engine["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == engine["sha256"]
        record = json.loads((bundle / engine["record"]).read_text())
        assert record["precision"] == graphs[key]["precision"]
        assert record["source_sha256"] == graphs[key]["sha256"]
        first_input = graphs[key]["inputs"][0]
        assert record["profiles"][first_input["name"]][2][0] == 4  # --max-batch 4
        assert engine_compatibility(record, machine)[0]
        cuda_engine = runtime.deserialize_cuda_engine(data)
        names = {cuda_engine.get_tensor_name(i) for i in range(cuda_engine.num_io_tensors)}
        assert names == {t["name"] for t in graphs[key]["inputs"] + graphs[key]["outputs"]}
