"""TensorRT: `--trt` where TensorRT or a GPU is missing, engine builds where both exist (a ``gpu``
test), the engine-compatibility check the runtime uses (records written here), which GPU nvidia-smi
means, the build's profiles and its timing-cache fallback."""

from __future__ import annotations

import hashlib
import json

import pytest

from mnm.export.tensorrt_build import batch_profiles, timing_cache
from mnm.runtime.engine_record import engine_compatibility, local_gpu, pick_smi_row, tensorrt_reads, version_tuple
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
    assert engine_compatibility(RECORD, {**SAME, "tensorrt_version": "10.3.0.26"})[0] is False
    assert engine_compatibility({**RECORD, "tensorrt_version": "10.3.0"}, {**SAME, "tensorrt_version": "10.3"})[0]


def test_only_the_exact_tensorrt_reads_an_engine_unless_it_was_built_version_compatible():
    assert not tensorrt_reads("10.3.0", "10.3.1")  # a patch release does not
    assert tensorrt_reads("10.14.1.48", "10.14.1.48.post1")  # a wheel re-release is the same TensorRT
    assert tensorrt_reads("10.3.0", "10.5.2", version_compatible=True)
    assert not tensorrt_reads("10.5.2", "10.3.0", version_compatible=True)  # never an older runtime
    assert not tensorrt_reads("10.3.0", "11.0.0", version_compatible=True)
    assert not tensorrt_reads(None, "10.3.0")
    assert version_tuple("10.14.1.48.post1") == (10, 14, 1, 48) and version_tuple("unknown") == ()
    ok, reason = engine_compatibility({**RECORD, "version_compatible": True}, {**SAME, "tensorrt_version": "10.9.0"})
    assert ok, reason
    ok, reason = engine_compatibility(RECORD, {**SAME, "tensorrt_version": "10.3.1"})
    assert not ok and "TensorRT 10.3.0 (it needs that exact version), this machine has 10.3.1" in reason


@pytest.mark.parametrize(
    "change, says",
    [
        ({"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}, "GPU NVIDIA A100-SXM4-80GB"),
        ({"gpu_name": "NVIDIA A30"}, "this machine has NVIDIA A30"),
        ({"compute_capability": "8.6"}, "compute capability 8.0, this GPU has 8.6"),
        ({"tensorrt_version": "11.0.0"}, "TensorRT 10.3.0 (it needs that exact version), this machine has 11.0.0"),
        ({"tensorrt_version": "10.3.1"}, "TensorRT 10.3.0 (it needs that exact version), this machine has 10.3.1"),
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
        "from mnm.runtime.engine_record import engine_compatibility\n"
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


@pytest.mark.gpu("tensorrt")
def test_engines_are_built_and_recorded(exported):
    import tensorrt as trt

    from mnm.runtime.engine_record import machine_info

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
        assert [p[first_input["name"]][2][0] for p in record["profiles"]] == [1, 4]  # batch 1; --max-batch 4
        assert record["version_compatible"] is False
        assert engine_compatibility(record, machine)[0]
        cuda_engine = runtime.deserialize_cuda_engine(data)
        names = {cuda_engine.get_tensor_name(i) for i in range(cuda_engine.num_io_tensors)}
        assert names == {t["name"] for t in graphs[key]["inputs"] + graphs[key]["outputs"]}


GPUS = [  # nvidia-smi's rows, PCI bus order
    {"index": "0", "uuid": "GPU-aaaa1111", "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"},
    {"index": "1", "uuid": "GPU-bbbb2222", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
]


def test_nvidia_smi_gpu_is_found_through_cuda_visible_devices_and_order():
    assert pick_smi_row(GPUS, 0, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})["index"] == "0"
    assert pick_smi_row(GPUS, 0, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"})["index"] == "1"
    assert pick_smi_row(GPUS, 0, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"})["index"] == "1"  # a UUID prefix: any order
    assert pick_smi_row(GPUS, 1, {"CUDA_VISIBLE_DEVICES": "0"}) is None  # only one visible
    # CUDA's default order is fastest first, nvidia-smi's is PCI: with different GPUs it cannot be told
    assert pick_smi_row(GPUS, 0, {}) is None
    same = [{**GPUS[0], "index": str(i), "uuid": f"GPU-{i}"} for i in range(2)]
    assert pick_smi_row(same, 1, {})["name"] == "NVIDIA A100-SXM4-80GB"  # identical GPUs: either will do
    assert pick_smi_row(same, 2, {}) is None


def test_engines_get_a_batch_one_profile_and_a_batch_profile():
    inputs = [{"name": "z", "shape": ["batch", 16]}, {"name": "b", "shape": ["batch", 4]}]
    single, batch = batch_profiles(inputs, max_batch=16, opt_batch=8)
    assert single == {"z": [[1, 16], [1, 16], [1, 16]], "b": [[1, 4], [1, 4], [1, 4]]}
    assert batch["z"] == [[1, 16], [8, 16], [16, 16]]
    assert batch_profiles(inputs, max_batch=1, opt_batch=1) == [single]


class StandInBuilderConfig:
    """The two IBuilderConfig calls of the timing cache (TensorRT does not run here): a saved cache
    is refused as one from another GPU would be (``set_timing_cache`` returns False)."""

    def __init__(self, refuse: bytes):
        self.refuse, self.created, self.attached = refuse, [], []

    def create_timing_cache(self, data: bytes):
        self.created.append(bytes(data))
        return {"from": bytes(data)}

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        self.attached.append((cache["from"], ignore_mismatch))
        return cache["from"] != self.refuse


def test_a_refused_timing_cache_is_replaced_by_a_fresh_one(tmp_path, capfd):
    path = tmp_path / "timing.cache"
    path.write_bytes(b"cache of another GPU")
    config = StandInBuilderConfig(refuse=b"cache of another GPU")
    assert timing_cache(config, path) == {"from": b""}
    assert config.attached == [(b"cache of another GPU", False), (b"", False)]  # never ignore_mismatch=True
    assert "starting a fresh timing cache" in capfd.readouterr().err
    path.write_bytes(b"cache of this GPU")
    assert timing_cache(StandInBuilderConfig(refuse=b"other"), path) == {"from": b"cache of this GPU"}
