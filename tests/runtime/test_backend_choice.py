"""Choosing a backend by creating it: ``--backend auto`` falls through every backend whose creation
fails (TensorRT missing here; with stand-in TensorRT modules, each failure after the engine-record
check), records why, and ends on onnxruntime CPU; ``probe``, ``mnm info --backends`` and the
one-line backend note of the runtime commands."""

from __future__ import annotations

import importlib.util
import json

import pytest

from mnm.errors import MnmError
from mnm.runtime.backends import create, probe
from mnm.runtime.bundle import Bundle
from tests.bundle_edits import add_engine
from tests.runtime import stand_in_gpu
from tests.util import RANDOM_FACTORS, run_cli

NO_TENSORRT = importlib.util.find_spec("tensorrt") is None
NO_ORT_GPU = "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers()
needs_plain_install = pytest.mark.skipif(not (NO_TENSORRT and NO_ORT_GPU),
                                         reason="TensorRT or onnxruntime-gpu is installed here")


@needs_plain_install
def test_auto_falls_through_to_ort_cpu_when_tensorrt_is_missing(tiny_bundle):
    backend = create(Bundle.open(tiny_bundle), "auto")
    assert backend.name == "ort-cpu"
    reasons = dict(s.split(": ", 1) for s in backend.skipped)
    assert list(reasons) == ["tensorrt", "ort-trt", "ort-cuda"]
    assert "tensorrt package is not installed" in reasons["tensorrt"] and "trt-cu12" in reasons["tensorrt"]
    assert "no CUDAExecutionProvider" in reasons["ort-cuda"]


def engines_for_stand_in(bundle_copy, **record):
    for graph in Bundle.open(bundle_copy).graphs:
        add_engine(bundle_copy, graph, stand_in_gpu.GPU, **record)
    return Bundle.open(bundle_copy)


@pytest.mark.parametrize(
    "fail, says",
    [
        ("set_device", "CUDA error 100: no CUDA-capable device is detected"),
        ("runtime", "TensorRT cannot start on this machine (pybind11::init(): factory function returned nullptr)"),
        ("deserialize", "TensorRT could not deserialise the engine; rebuild on this machine"),
    ],
)
def test_a_tensorrt_failure_after_the_record_check_is_unavailable_at_creation(bundle_copy, monkeypatch, fail, says):
    bundle = engines_for_stand_in(bundle_copy)
    stand_in_gpu.install(monkeypatch, fail)
    backend = create(bundle, "auto")
    assert backend.name == "ort-cpu"
    assert backend.skipped[0].startswith("tensorrt: ") and says in backend.skipped[0], backend.skipped[0]
    assert "\n" not in backend.skipped[0]
    with pytest.raises(MnmError, match="backend tensorrt cannot run here: ") as refused:
        create(bundle, "tensorrt")
    assert says in str(refused.value)
    assert not probe(bundle, names=("tensorrt",))["tensorrt"].starts


def test_an_engine_from_another_tensorrt_patch_release_is_refused_before_loading(bundle_copy, monkeypatch):
    bundle = engines_for_stand_in(bundle_copy, tensorrt_version="10.13.3.8")
    stand_in_gpu.install(monkeypatch, "none")
    backend = create(bundle, "auto")
    assert backend.name == "ort-cpu"
    assert "TensorRT 10.13.3.8 (it needs that exact version), this machine has 10.13.3.9" in backend.skipped[0]


def test_probe_creates_each_backend_and_records_why_not(tiny_bundle):
    found = probe(Bundle.open(tiny_bundle))
    assert list(found) == ["tensorrt", "ort-trt", "ort-cuda", "ort-cpu"]
    assert found["ort-cpu"].starts and found["ort-cpu"].detail.startswith("ort-cpu (onnxruntime, fp32")
    for name in ("tensorrt", "ort-trt", "ort-cuda"):
        if not found[name].starts:
            assert found[name].detail and "\n" not in found[name].detail


@needs_plain_install
def test_info_backends_reports_what_really_starts(tiny_bundle):
    result = run_cli("info", tiny_bundle, "--backends", "--json", block_torch=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["auto"] == "ort-cpu"
    assert {k: v["starts"] for k, v in report["backends"].items()} == {
        "tensorrt": False, "ort-trt": False, "ort-cuda": False, "ort-cpu": True}
    installed = report["installation"]
    assert "onnxruntime" in installed["packages"] and "CPUExecutionProvider" in installed["providers_listed"]
    assert installed["problems"] == []
    text = run_cli("info", "--backends", block_torch=True)  # no bundle: the demo model
    assert text.returncode == 0, text.stderr
    assert "ort-cpu   starts: ort-cpu (onnxruntime" in text.stdout and "--backend auto picks: ort-cpu" in text.stdout
    assert "tensorrt  does not start: the tensorrt package is not installed" in text.stdout


def test_info_without_a_bundle_or_backends_is_one_line(tmp_path):
    result = run_cli("info", block_torch=True)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: give a bundle folder")


@needs_plain_install
def test_mix_says_in_one_line_which_backend_runs_and_why_not_the_others_only_when_asked(tiny_bundle, tmp_path):
    out = tmp_path / "mix.png"
    quiet = run_cli("mix", tiny_bundle, *RANDOM_FACTORS, "--threads", "1", "--out", out, block_torch=True)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip().splitlines() == [
        "backend: ort-cpu (onnxruntime, fp32, 1 thread), picked by --backend auto"]
    loud = run_cli("mix", tiny_bundle, *RANDOM_FACTORS, "--threads", "1", "--verbose", "--out", out, block_torch=True)
    lines = loud.stderr.strip().splitlines()
    assert lines[0].startswith("backend: ort-cpu") and len(lines) == 4
    assert [line.split(":")[1].strip() for line in lines[1:]] == ["tensorrt", "ort-trt", "ort-cuda"]


LISTED_NOT_STARTING = not NO_ORT_GPU and not __import__("mnm.runtime.machine").runtime.machine.gpus()


@pytest.mark.skipif(not LISTED_NOT_STARTING, reason="needs onnxruntime-gpu on a machine without a GPU, where its "
                                                     "providers are listed but cannot start")
def test_listed_providers_that_cannot_start_are_skipped_with_the_reason_and_stdout_stays_clean(tiny_bundle, capfd):
    bundle = Bundle.open(tiny_bundle)
    backend = create(bundle, "auto")
    assert backend.name == "ort-cpu"
    reasons = dict(s.split(": ", 1) for s in backend.skipped)
    for name in ("ort-trt", "ort-cuda"):
        assert "ExecutionProvider is built in but could not start" in reasons[name]
    assert not probe(bundle, names=("ort-cuda",))["ort-cuda"].starts
    assert "EP Error" not in capfd.readouterr().out  # onnxruntime's fallback notice does not reach stdout
