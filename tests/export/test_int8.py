"""INT8 export with its quality gate (docs/int8.md), and the runtime choosing the precision it is told.

One real INT8 export of the tiny preset (random weights, the default synthetic calibration set,
which has ground truth, so the disentangle check runs too) with ``g_child``'s gate set so that it
cannot pass; the runtime then runs that bundle torch-free at each precision.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from mnm.config import PRESETS
from mnm.errors import MnmError
from mnm.export.bundle import export_random
from mnm.export.calibration import HELD_OUT_EVERY, reference_set
from mnm.export.int8_gate import Gate, compare
from mnm.runtime.bundle import Bundle
from mnm.runtime.pipeline import Pipeline
from tests.bundle_edits import edit_manifest
from tests.util import RANDOM_FACTORS, run_cli

CFG = PRESETS["tiny"]
UNREACHABLE = Gate(min_psnr_db=1000.0)  # no graph can be this close to fp32: the gate fails


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "bundle"
    export_random(CFG, out, seed=4, preset="tiny", parity_batches=(2,), int8=True,
                  int8_gates={"g_child": UNREACHABLE})
    return out


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "bundle"
    export_random(CFG, out, seed=4, preset="tiny", parity_batches=(2,))
    return out


def _manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def test_int8_graphs_are_written_gated_and_recorded(int8_bundle):
    manifest = _manifest(int8_bundle)
    int8 = manifest["int8"]
    assert int8["calibration"]["kind"] == "synthetic" and int8["calibration"]["held_out_images"] > 0
    assert int8["gate"] == Gate().to_dict()
    assert set(int8["graphs"]) == set(manifest["graphs"])
    for name, record in int8["graphs"].items():
        assert {"psnr_db", "max_abs_diff", "gate", "passed", "precision"} <= set(record), name
        assert record["precision"] == ("int8" if name in manifest["graphs_int8"] else "fp32")
        assert record["passed"] == Gate(**record["gate"]).passes(record)
    checked = {path for path, _ in Bundle.open(int8_bundle).files()}  # every INT8 file's sha256 is verified
    assert {int8_bundle / e["file"] for e in manifest["graphs_int8"].values()} <= checked
    for name, entry in manifest["graphs_int8"].items():
        model = onnx.load(str(int8_bundle / entry["file"]))
        ops = {node.op_type for node in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, name
        assert entry["precision"] == "int8" and entry["quality"]["passed"]
    # The default synthetic set has ground truth: mnm eval disentangle ran at fp32 and with the INT8 graphs.
    dis = int8["disentangle"]
    assert dis["pairs"] == 300 and set(dis["fp32"]) == set(dis["int8"]) == {"shape_iou", "texture_chi2",
                                                                           "background_chi2"}
    assert dis["max_change"] == pytest.approx(max(abs(dis["fp32"][k] - dis["int8"][k]) for k in dis["fp32"]), abs=2e-4)
    assert dis["max_change"] <= 0.02 and int8["combined"]["passed"]


def test_a_graph_failing_its_gate_stays_fp32_and_the_manifest_says_so(int8_bundle):
    manifest = _manifest(int8_bundle)
    record = manifest["int8"]["graphs"]["g_child"]
    assert record["gate"]["min_psnr_db"] == 1000.0 and not record["passed"]
    assert record["precision"] == "fp32"
    assert "g_child" not in manifest["graphs_int8"]
    assert not (int8_bundle / "int8" / "g_child.onnx").exists()
    assert manifest["graphs_int8"], "the other graphs kept the default gate; some must pass at tiny scale"


def test_the_runtime_runs_the_precision_it_is_told(int8_bundle):
    bundle = Bundle.open(int8_bundle)
    quantized = sorted(bundle.graphs_int8)
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (2, 3, CFG.image_size, CFG.image_size)).astype(np.float32)
    child = {"shape_feature": rng.standard_normal((2, CFG.feature_channels, 32, 32)).astype(np.float32),
             "c": np.eye(CFG.n_child, dtype=np.float32)[[0, 1]],
             "background": rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)}
    outputs = {}
    for precision in ("fp32", "int8", "auto"):
        pipe = Pipeline(bundle, backend="ort-cpu", precision=precision, threads=1)
        for name in quantized:
            assert bundle.graph(name, precision).precision == ("fp32" if precision == "fp32" else "int8")
        assert bundle.graph("g_child", precision).precision == "fp32"
        encoder = quantized[0] if quantized[0].startswith("enc_") else "enc_b"
        outputs[precision] = (pipe.backend.run(encoder, {"image": image}), pipe.backend.run("g_child", child))
        expected = "fp32" if precision == "fp32" else f"int8 for {len(quantized)} of {len(bundle.graphs)} graphs"
        assert expected in pipe.backend.description
        pipe.close()
    (enc32, child32), (enc8, child8), (enc_auto, child_auto) = outputs["fp32"], outputs["int8"], outputs["auto"]
    assert all(np.array_equal(child32[k], child8[k]) and np.array_equal(child32[k], child_auto[k]) for k in child32)
    if encoder in quantized:
        key = next(iter(enc32))
        assert not np.array_equal(enc32[key], enc8[key])  # really another graph...
        assert np.abs(enc32[key] - enc8[key]).max() < 0.2  # ...computing nearly the same codes
        np.testing.assert_array_equal(enc8[key], enc_auto[key])


def test_mix_cli_precision_choice_without_torch(int8_bundle, plain_bundle, tmp_path):
    out = tmp_path / "mix.png"
    ok = run_cli("mix", int8_bundle, "--precision", "int8", "--background", "seed:1", "--pose", "seed:2",
                 "--shape", "random", "--texture", "code:3", "--out", out, block_torch=True)
    assert ok.returncode == 0, ok.stderr
    assert "int8 for" in ok.stderr and out.is_file()
    refused = run_cli("mix", plain_bundle, *RANDOM_FACTORS, "--precision", "int8", "--out", tmp_path / "x.png",
                      block_torch=True)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no INT8 graphs" in lines[0], refused.stderr
    bogus = run_cli("mix", plain_bundle, *RANDOM_FACTORS, "--precision", "int4", "--out", tmp_path / "y.png",
                    block_torch=True)
    assert bogus.returncode == 2 and "--precision" in bogus.stderr and len(bogus.stderr.strip().splitlines()) == 1
    with pytest.raises(MnmError, match="no INT8 graphs"):
        Pipeline(plain_bundle, backend="ort-cpu", precision="int8")
    assert "fp32" in Pipeline(plain_bundle, backend="ort-cpu", precision="auto").backend.description


def test_calibration_folder_of_plain_images_holds_every_fourth_out(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"img{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with reference_set(tmp_path, 32) as refs:
        assert refs.calibration.shape == (10 - 10 // HELD_OUT_EVERY, 3, 32, 32)
        assert len(refs.held_out) == 10 // HELD_OUT_EVERY and refs.held_out[0].shape == (32, 32, 3)
        assert refs.truth is None and refs.source["found"] == 10
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(few / f"{i}.png")
    with pytest.raises(MnmError, match="needs at least 8"), reference_set(few, 32):
        pass


NO_VNNI = {"MNM_CPU_FEATURES": "avx avx2 fma"}
"""The CPU feature read of a machine without VNNI (runtime.machine.CPU_FEATURES_ENV), in a subprocess."""


def test_auto_runs_int8_only_where_the_cpu_makes_it_safe(int8_bundle, tmp_path, monkeypatch):
    """Issue 26 item 11: the gate's CPU is recorded; a bundle gated on a CPU with VNNI runs fp32 under
    auto on one without (U8S8 kernels may saturate there), says why in mnm info, and int8 on request."""
    from mnm.runtime import machine

    monkeypatch.delenv("MNM_CPU_FEATURES", raising=False)
    gate = _manifest(int8_bundle)["int8"]["gate_machine"]
    here = machine.cpu_features()
    assert gate == {"cpu": machine.cpu_model(), "cpu_features": here, "vnni": bool(set(here) & set(machine.VNNI))}

    bundle = Path(shutil.copytree(int8_bundle, tmp_path / "bundle"))
    vnni_gate = {"cpu": "a build server", "cpu_features": ["avx2", "avx512f", "avx512_vnni"], "vnni": True}
    edit_manifest(bundle, lambda m: m["int8"].update(gate_machine=vnni_gate))
    n = len(_manifest(bundle)["graphs_int8"])
    info = run_cli("info", bundle, env=NO_VNNI, block_torch=True)
    assert info.returncode == 0, info.stderr
    assert ("--precision auto here: fp32 (this CPU has no VNNI (avx512_vnni or avx_vnni): onnxruntime's U8S8 "
            "kernels can saturate here") in info.stdout
    assert "the gate ran on a CPU with avx2, avx512f, avx512_vnni" in info.stdout
    assert "gate measured on: a build server (avx2, avx512f, avx512_vnni)" in info.stdout
    for precision, features, runs in (("auto", NO_VNNI, "fp32"), ("int8", NO_VNNI, f"int8 for {n} of"),
                                      ("auto", {"MNM_CPU_FEATURES": "avx2 avx_vnni"}, f"int8 for {n} of")):
        mix = run_cli("mix", bundle, *RANDOM_FACTORS, "--precision", precision, "--out", tmp_path / "x.png",
                      env=features, block_torch=True)
        assert mix.returncode == 0 and f"backend: ort-cpu (onnxruntime, {runs}" in mix.stderr, (precision, mix.stderr)

    monkeypatch.setenv("MNM_CPU_FEATURES", "avx avx2 fma")
    assert Bundle.open(bundle, verify=False).int8_choice[0] is False
    edit_manifest(bundle, lambda m: m["int8"]["gate_machine"].update(vnni=False, cpu_features=["avx2"]))
    assert Bundle.open(bundle, verify=False).int8_choice == (
        True, "no VNNI here, and none where the gate measured the INT8 graphs: it saw the same kernels")
    edit_manifest(bundle, lambda m: (m["int8"]["gate_machine"].update(vnni=True),
                                     m["int8"]["quantizer"].update(reduce_range=True)))
    chosen, why = Bundle.open(bundle, verify=False).int8_choice
    assert chosen and "reduce_range" in why
    monkeypatch.setenv("MNM_CPU_FEATURES", "avx2 avx512_vnni")
    edit_manifest(bundle, lambda m: m["int8"]["quantizer"].update(reduce_range=False))
    assert Bundle.open(bundle, verify=False).int8_choice == (
        True, "this CPU has VNNI (avx512_vnni): onnxruntime's U8S8 kernels do not saturate")


def test_fp16_graphs_get_the_int8_quality_gate(exported, tmp_path):
    """Issue 26 item 12: an --fp16 export gates its fp16 graphs as INT8 graphs are gated (held-out mixes
    against fp32, disentanglement on the synthetic set's ground truth); a gate they cannot pass says so."""
    from mnm.export.int8_gate import Judge, gate_fp16

    manifest = _manifest(exported.checkpoint_bundle)
    record = manifest["fp16"]
    assert manifest["graphs_fp16"] and record["gate"] == Gate().to_dict()
    assert record["combined"]["images"] > 0 and record["held_out"]["kind"] == "synthetic"
    assert record["disentangle"]["pairs"] == 300 and set(record["disentangle"]["fp32"]) == {
        "shape_iou", "texture_chi2", "background_chi2"}
    assert record["passed"] == (Gate().passes(record["combined"]) and record["disentangle"]["max_change"] <= 0.02)
    assert Bundle.open(exported.checkpoint_bundle).fp16_choice[0] == record["passed"]
    with reference_set(None, CFG.image_size) as refs:
        judge = Judge(exported.checkpoint_bundle, manifest, manifest["graphs_fp16"], refs.held_out[:4],
                      precision="fp16")
        strict = gate_fp16(judge, UNREACHABLE)
    assert strict["passed"] is False and strict["combined"]["psnr_db"] < 1000


def _digests(paths) -> set[str]:
    return {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_calibration_and_gate_images_are_disjoint_by_file(tmp_path):
    """Issue 26 item 10: no image the gate judges (its mixes, and the test split that its disentangle
    check scores) was calibrated on, compared by file content, not by name."""
    from mnm.training.datasets import open_dataset
    from mnm.training.synthetic.writer import render_dataset

    synth = render_dataset(tmp_path / "synth", 60, size=32, shapes=2, textures_per_shape=2, backgrounds=4,
                           correlation=0.8, seed=1, workers=1)
    scored = _digests(r.path for r in open_dataset(synth, "test").records)  # what disentangle.evaluate reads
    with reference_set(synth, 32) as refs:
        assert refs.truth == synth
        calibrated, judged = _digests(refs.files["calibration"]), _digests(refs.files["held_out"])
        assert len(calibrated) == len(refs.calibration) and len(judged) == len(refs.held_out) == 6
    assert not calibrated & judged and not calibrated & scored and judged <= scored
    assert refs.source["held_out"] == "the test split"

    plain = tmp_path / "plain"  # a copy of a held-out photo under another name is held out with it
    plain.mkdir()
    rng = np.random.default_rng(2)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(plain / f"img{i:02d}.png")
    (plain / "img00-copy.png").write_bytes((plain / "img02.png").read_bytes())  # sorts into the calibration side
    with reference_set(plain, 32) as refs:
        calibrated, judged = _digests(refs.files["calibration"]), _digests(refs.files["held_out"])
        assert plain / "img02.png" in refs.files["held_out"]  # the 4th file in sorted order
        assert plain / "img00-copy.png" not in refs.files["calibration"]
    assert not calibrated & judged and len(calibrated) == 13 - 3 - 1


def test_compare_measures_psnr_and_the_largest_difference():
    a = np.full((2, 4, 4, 3), 100, np.uint8)
    b = a.copy()
    assert compare(a, b) == {"psnr_db": 100.0, "max_abs_diff": 0, "images": 2}
    b[0, 0, 0, 0] = 110
    result = compare(a, b)
    assert result["max_abs_diff"] == 10
    assert result["psnr_db"] == pytest.approx(10 * np.log10(255**2 / (100 / a.size)), abs=1e-3)


def test_eval_scores_a_bundle_only_where_the_metric_can(int8_bundle, tmp_path):
    result = run_cli("eval", "clustering", int8_bundle, "--data", tmp_path)
    assert result.returncode == 2 and "needs the trained networks" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_cli_rejects_calibrate_without_int8(tmp_path):
    result = run_cli("export", "--preset", "tiny", "--random-init", "--out", tmp_path / "b",
                     "--calibrate", tmp_path)
    assert result.returncode == 2 and "--calibrate applies to --int8" in result.stderr
    assert not (tmp_path / "b").exists()
