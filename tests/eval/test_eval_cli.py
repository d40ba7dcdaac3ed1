"""`mnm eval clustering|disentangle|fid` end to end in a subprocess, on a tiny random-init run."""

from __future__ import annotations

import json

import pytest

from tests.eval import write_run, write_synth
from tests.util import run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synth(tmp_path_factory.mktemp("synth") / "data")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run") / "run", stage="feature", step=7)


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_eval_help_does_not_import_torch():
    result = run_cli("eval", "--help", block_torch=True)
    assert result.returncode == 0, result.stderr
    for command in ("clustering", "disentangle", "fid"):
        assert command in result.stdout


def test_fid_without_weights_says_where_to_put_them(tmp_path, run, data):
    result = run_cli("eval", "fid", str(run), "--data", str(data), env={"XDG_CACHE_HOME": str(tmp_path)})
    line = one_error_line(result)
    assert str(tmp_path / "mnm" / "inception-2015-12-05.safetensors") in line
    assert "pt_inception-2015-12-05-6726825d.pth" in line and "--inception-weights" in line
    assert not (run / "eval").exists()


def test_fid_refuses_a_pickled_weights_file(tmp_path, run, data):
    import torch

    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({"fc.weight": torch.zeros(2)}, pth)
    line = one_error_line(run_cli("eval", "fid", str(run), "--data", str(data), "--inception-weights", str(pth)))
    assert "pickle" in line and "safetensors" in line


def test_fid_end_to_end_with_a_weights_file(tmp_path, run, data):
    import torch
    from safetensors.torch import save_file

    from mnm.training.metrics.inception import FIDInception

    torch.manual_seed(0)
    weights = tmp_path / "inception.safetensors"
    save_file(FIDInception().state_dict(), str(weights))
    out = tmp_path / "fid.json"
    result = run_cli("eval", "fid", str(run), "--data", str(data), "--inception-weights", str(weights),
                     "--n", "2", "--split", "all", "--seed", "5", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "FID" in result.stdout and str(out) in result.stdout
    record = json.loads(out.read_text())
    assert record["metric"] == "fid" and record["n_generated"] == 2 and record["n_real"] == 2
    assert record["fid"] >= -1e-6 and record["kid"]["subset_size"] == 2
    assert record["feature_dim"] == 2048 and record["seed"] == 5 and record["step"] == 7
    assert "bilinear" in record["protocol"]["resize"] and record["versions"]["torch"]
    assert len(record["inception"]["sha256"]) == 64


def test_disentangle_writes_json_and_one_line(tmp_path, run, data):
    out = tmp_path / "d.json"
    result = run_cli("eval", "disentangle", str(run), "--data", str(data), "--pairs", "6", "--mode", "feature",
                     "--split", "all", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "ideal IoU 1.000" in result.stdout
    record = json.loads(out.read_text())
    assert record["mode"] == "feature" and record["pairs"] == 6 and record["checkpoint"].endswith("00000007")
    assert record["results"]["ideal"]["shape_iou"]["mean"] == 1.0
    assert "8 uniform bins per channel" in record["protocol"]["histogram"]


def test_disentangle_needs_a_synthetic_folder(tmp_path, run):
    (tmp_path / "plain").mkdir()
    line = one_error_line(run_cli("eval", "disentangle", str(run), "--data", str(tmp_path / "plain")))
    assert "synth.json" in line


def test_clustering_writes_into_the_run_folder_by_default(run, data):
    result = run_cli("eval", "clustering", str(run), "--data", str(data), "--split", "all")
    assert result.returncode == 0, result.stderr
    path = run / "eval" / "clustering-00000007.json"
    assert str(path) in result.stdout and "NMI" in result.stdout
    record = json.loads(path.read_text())
    assert record["k"] == 4 and record["n"] == 30 and record["protocol"]["nmi_average"] == "arithmetic"
    assert 0 <= record["nmi"] <= 1 and record["options"]["n_init"] == 10
