"""Bundle reading and verification, engine refusal, and the choice of backend."""

from __future__ import annotations

import json

import pytest

from mnm.errors import MnmError
from mnm.runtime.backends import create, probe
from mnm.runtime.backends.tensorrt import choose_engines, engine_problem
from mnm.runtime.bundle import Bundle
from tests.bundle_edits import add_engine, edit_manifest
from tests.runtime.conftest import TINY
from tests.util import RANDOM_FACTORS, run_cli

H200 = {"tensorrt_version": "10.5.0", "gpu_name": "NVIDIA H200", "compute_capability": "9.0"}


def one_line_error(result, *fragments) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_open_reads_the_manifest_and_every_file_verifies(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    assert bundle.config == TINY
    assert bundle.modes == ("code", "feature")
    assert set(bundle.graphs) == {
        "enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "g_child", "extractor"
    }
    child = bundle.graph("g_child")
    assert child.input_names == ["shape_feature", "c", "background"]
    assert child.output_names[0] == "image" and child.macs_per_image > 0
    assert [problem for _, problem in bundle.check_files()] == [None] * 8


def test_a_tampered_graph_is_named(bundle_copy):
    path = bundle_copy / "g_child.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MnmError, match=r"g_child\.onnx: sha256 mismatch"):
        Bundle.open(bundle_copy)
    Bundle.open(bundle_copy, verify=False)  # parsing alone does not read the graphs

    info = run_cli("info", bundle_copy, block_torch=True)
    one_line_error(info, "g_child.onnx", "sha256 mismatch")
    assert "SHA256 MISMATCH" in info.stdout and "7 checked" not in info.stdout
    mix = run_cli("mix", bundle_copy, *RANDOM_FACTORS, "--out", bundle_copy / "x.png", block_torch=True)
    one_line_error(mix, "g_child.onnx", "re-export")


def test_a_missing_file_is_named(bundle_copy):
    (bundle_copy / "enc_b.onnx").unlink()
    with pytest.raises(MnmError, match=r"enc_b\.onnx: missing"):
        Bundle.open(bundle_copy)
    one_line_error(run_cli("info", bundle_copy, block_torch=True), "enc_b.onnx", "missing")


def test_a_newer_format_version_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(format_version=2))
    result = run_cli("mix", bundle_copy, *RANDOM_FACTORS, "--out", bundle_copy / "x.png", block_torch=True)
    one_line_error(result, "manifest.json", "bundle format 2 is newer")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda b: (b / "manifest.json").write_text("{not json"), "unreadable bundle manifest"),
        (lambda b: edit_manifest(b, lambda m: m["graphs"]["enc_z"].update(file="../enc_z.onnx")), "outside the bundle"),
        (lambda b: edit_manifest(b, lambda m: m["graphs"].pop("g_parent")), r"mode code needs graph\(s\) g_parent"),
        (lambda b: edit_manifest(b, lambda m: m["config"].update(ngf="wide")), "ngf must be an integer"),
    ],
)
def test_broken_manifests_are_one_clear_line(bundle_copy, damage, message):
    damage(bundle_copy)
    with pytest.raises(MnmError, match=message) as info:
        Bundle.open(bundle_copy)
    assert "\n" not in str(info.value)


def test_not_a_bundle(tmp_path):
    with pytest.raises(MnmError, match="not found"):
        Bundle.open(tmp_path / "nothing")
    (tmp_path / "file.onnx").write_bytes(b"x")
    with pytest.raises(MnmError, match="is a folder"):
        Bundle.open(tmp_path / "file.onnx")


def test_engines_are_refused_on_another_machine_with_how_to_rebuild(bundle_copy):
    for graph in Bundle.open(bundle_copy).graphs:
        add_engine(bundle_copy, graph, H200)
    bundle = Bundle.open(bundle_copy)
    entry = bundle.engines["g_child.fp32"]
    assert engine_problem(bundle, entry, H200) is None
    assert set(choose_engines(bundle, H200)) == set(bundle.graphs)

    a100 = {**H200, "gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    problem = engine_problem(bundle, entry, a100)
    assert "g_child.fp32.engine" in problem and "rebuild" in problem and "--trt" in problem
    older = {**H200, "tensorrt_version": "11.0.1"}
    assert "TensorRT" in engine_problem(bundle, entry, older)
    with pytest.raises(MnmError, match="rebuild"):
        choose_engines(bundle, a100)

    add_engine(bundle_copy, "g_parent", H200, source_sha256="0" * 64)  # built from another graph
    bundle = Bundle.open(bundle_copy)
    assert "another g_parent graph" in engine_problem(bundle, bundle.engines["g_parent.fp32"], H200)

    report = run_cli("info", bundle_copy, "--json", block_torch=True)
    assert report.returncode == 0, report.stderr
    engines = json.loads(report.stdout)["engines"]
    assert len(engines) == 8 and not any(e["fits_here"] for e in engines)  # no TensorRT/GPU here
    assert all(e["gpu_name"] == "NVIDIA H200" and e["why_not"] for e in engines)


def test_auto_picks_ort_cpu_here_and_says_why_not_the_others(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    status = probe(bundle)
    assert status["ort-cpu"].starts and not status["tensorrt"].starts and not status["ort-cuda"].starts
    assert status["tensorrt"].detail and status["ort-cuda"].detail  # not on this machine: reasons given
    backend = create(bundle, "auto")
    assert backend.name == "ort-cpu"
    assert [s.split(":")[0] for s in backend.skipped] == ["tensorrt", "ort-trt", "ort-cuda"]


@pytest.mark.parametrize("name", ["tensorrt", "ort-cuda"])
def test_an_explicit_backend_that_cannot_run_here_is_an_error_not_a_fallback(tiny_bundle, tmp_path, name):
    with pytest.raises(MnmError, match=f"backend {name} cannot run here"):
        create(Bundle.open(tiny_bundle), name)
    result = run_cli("mix", tiny_bundle, *RANDOM_FACTORS, "--backend", name, "--out", tmp_path / "x.png",
                     block_torch=True)
    one_line_error(result, f"backend {name} cannot run here")
    assert not (tmp_path / "x.png").exists()


def test_unknown_backend(tiny_bundle):
    with pytest.raises(MnmError, match="unknown backend 'gpu'"):
        create(Bundle.open(tiny_bundle), "gpu")


def test_info_without_torch_describes_every_graph(tiny_bundle):
    result = run_cli("info", tiny_bundle, block_torch=True)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "image_size=32" in text and "modes: code, feature" in text
    for graph in ("enc_z", "g_child", "extractor"):
        assert graph in text
    assert "in: shape_feature[N,4,32,32], c[N,4], background[N,3,32,32]" in text
    assert "parity vs torch" in text and "files: 8 checked, all sha256 match" in text
    report = json.loads(run_cli("info", tiny_bundle, "--json", block_torch=True).stdout)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert {g["name"]: g["macs_per_image"] for g in report["graphs"]} == {
        k: v["macs_per_image"] for k, v in manifest["graphs"].items()
    }
    assert "backends" not in report and all(not f["problem"] for f in report["files"])  # --backends tests them


def test_auto_on_a_gpu_takes_fp16_only_when_the_fp16_graphs_passed_their_gate(bundle_copy):
    """Issue 26 item 12: TensorRT's auto took fp16 engines whenever they were there, while the help
    said INT8, else fp32. Now auto on a GPU is fp16 only if the fp16 graphs passed the quality gate
    (the export's fp16 record), else fp32; --precision fp16 still takes them; mnm info says which."""
    edit_manifest(bundle_copy, lambda m: m.update(graphs_fp16={n: {**e, "precision": "fp16"}
                                                               for n, e in m["graphs"].items()}))
    for graph in Bundle.open(bundle_copy).graphs:
        for precision in ("fp32", "fp16"):
            add_engine(bundle_copy, graph, H200, precision=precision)

    def engines(precision="auto") -> set[str]:
        return {e.precision for e in choose_engines(Bundle.open(bundle_copy), H200, precision).values()}

    bundle = Bundle.open(bundle_copy)
    assert bundle.fp16_choice == (False, "its fp16 graphs were exported without the quality gate (re-export with "
                                         "--fp16)")
    assert engines() == {"fp32"} and engines("fp16") == {"fp16"}
    record = {"gate": {"min_psnr_db": 30.0, "max_abs_diff": 64}, "combined": {"psnr_db": 21.5, "max_abs_diff": 90}}
    edit_manifest(bundle_copy, lambda m: m.update(fp16={**record, "passed": False}))
    assert engines() == {"fp32"}
    assert "failed the quality gate (PSNR 21.5 dB, max diff 90 against fp32)" in Bundle.open(bundle_copy).fp16_choice[1]
    edit_manifest(bundle_copy, lambda m: m["fp16"].update(passed=True, combined={"psnr_db": 44.0, "max_abs_diff": 9}))
    assert engines() == {"fp16"}
    info = run_cli("info", bundle_copy, block_torch=True)
    assert ("--precision auto on a GPU: fp16 (its fp16 graphs passed the quality gate (PSNR 44.0 dB, max diff 9 "
            "against fp32))") in info.stdout
