"""An imported checkpoint is an ordinary mnm checkpoint: `mnm eval` scores it and `mnm train feature
--from` starts stage 2 from the published G and E (carried unchanged into the new run)."""

from __future__ import annotations

import json

import pytest
import torch

from mnm.checkpoint import load_checkpoint
from mnm.training.run import find_checkpoint
from tests.util import run_cli


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "birds"
    result = run_cli("data", "synth", "--out", str(out), "--n", "20", "--size", "64", "--shapes", "2",
                     "--textures-per-shape", "2", "--seed", "3", "--workers", "1")
    assert result.returncode == 0, result.stderr
    return out


def test_eval_scores_an_imported_checkpoint(imported, synth, tmp_path):
    record = tmp_path / "disentangle.json"
    result = run_cli("eval", "disentangle", str(imported["cub"].checkpoint), "--data", str(synth), "--split", "all",
                     "--pairs", "4", "--batch", "4", "--mode", "feature", "--device", "cpu", "--json", str(record))
    assert result.returncode == 0, result.stderr
    data = json.loads(record.read_text())
    assert data["checkpoint"] == str(imported["cub"].checkpoint)
    assert data["config"] == imported["cub"].cfg.to_dict()


def test_feature_stage_starts_from_the_imported_generator_and_encoders(imported, synth, tmp_path):
    item = imported["dogs"]
    result = run_cli("train", "feature", "--from", str(item.checkpoint), "--data", str(synth), "--out",
                     str(tmp_path / "runs"), "--steps", "1", "--batch", "2", "--threads", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "runs").iterdir()
    tensors, meta = load_checkpoint(find_checkpoint(run))
    imported_tensors, _ = load_checkpoint(item.checkpoint)
    assert meta["stage"] == "feature" and meta["step"] == 1 and meta["config"] == item.cfg.to_dict()
    frozen = [k for k in imported_tensors if k.startswith(("generator_ema.", "encoders."))]
    assert frozen and all(torch.equal(tensors[k], imported_tensors[k]) for k in frozen)
    trained = [k for k in tensors if k.startswith("extractor.") and k.endswith(".weight")]
    assert any(not torch.equal(tensors[k], imported_tensors[k]) for k in trained)  # S is trained anew
