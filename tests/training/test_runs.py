"""Training runs end to end on the tiny preset: the run folder, both stages through the real CLI,
exact resume, Ctrl-C, kill -9, the ablation switches, non-finite stops and load_for_export."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mnm.cli.train  # noqa: F401  (registers `mnm train`)
from mnm.checkpoint import load_checkpoint
from mnm.cli import run
from mnm.errors import MnmError
from mnm.training.export_source import load_for_export
from mnm.training.run import RunFolder
from tests.util import run_cli

TINY = ("--preset", "tiny", "--batch", "4", "--threads", "1", "--log-every", "1")
RUN_FOLDER = re.compile(r"^run folder: (.+)$", re.M)


def run_dir_of(stdout: str) -> Path:
    found = RUN_FOLDER.search(stdout)
    assert found, stdout
    return Path(found.group(1))


def train(capsys, *args: str) -> tuple[int, str, str]:
    """`mnm train ...` in this process (the real CLI parser): (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = run(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def start_training(*args: str) -> subprocess.Popen:
    """`mnm train ...` in a subprocess that the test can signal."""
    code = f"import sys; from mnm.cli import run; sys.exit(run({['train', *args]!r}))"
    env = {**os.environ, "MNM_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def stats_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def loss_keys(record: dict) -> set[str]:
    return set(record) - {"step", "kimg", "images_per_s", "sec_per_step"}


@pytest.fixture(scope="module")
def code_run(synth_data, tmp_path_factory):
    """3 steps of stage 1 through the real CLI: checkpoints at 2 and 3, only the last one kept."""
    out = tmp_path_factory.mktemp("code")
    proc = run_cli("train", "code", "--data", synth_data, "--out", out, "--steps", "3", "--snapshot-every", "2",
                   "--keep", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    return run_dir_of(proc.stdout)


@pytest.fixture(scope="module")
def feature_run(code_run, synth_data, tmp_path_factory):
    """2 steps of stage 2 from ``code_run`` through the real CLI."""
    out = tmp_path_factory.mktemp("feature")
    proc = run_cli("train", "feature", "--from", code_run, "--data", synth_data, "--out", out, "--steps", "2",
                   "--batch", "4", "--threads", "1", "--log-every", "1")
    assert proc.returncode == 0, proc.stderr
    return run_dir_of(proc.stdout)


def test_code_run_folder(code_run):
    assert code_run.name == "00000-code-tiny"
    options = json.loads((code_run / "options.json").read_text())
    assert options["stage"] == "code" and options["config"]["image_size"] == 32 and options["total_steps"] == 3

    records = stats_of(code_run)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["images_per_s"] > 0 and r["kimg"] == r["step"] * 4 / 1000 for r in records)
    assert {"info_p", "info_c", "g_bg_adv", "d_bg_real"} <= loss_keys(records[0])
    assert all(np.isfinite(r[k]) for r in records for k in loss_keys(r))

    samples = sorted(p.name for p in (code_run / "samples").iterdir())
    assert samples == ["00000002.png", "00000003.png"]
    assert Image.open(code_run / "samples" / samples[-1]).mode == "RGB"

    # --keep 1: the checkpoint of step 2 was removed once step 3 was complete
    assert sorted(p.name for p in (code_run / "checkpoints").iterdir()) == ["00000003"]
    assert (code_run / "latest").read_text().strip() == "checkpoints/00000003"
    tensors, meta = load_checkpoint(code_run / "checkpoints" / "00000003")
    assert meta["stage"] == "code" and meta["step"] == 3 and meta["images_seen"] == 12
    prefixes = {k.split(".")[0] for k in tensors}
    assert {"generator", "generator_ema", "encoders", "discriminators", "optim"} == prefixes


def test_feature_run_keeps_stage_one_and_adds_the_extractor(code_run, feature_run):
    assert feature_run.name == "00000-feature-tiny"
    assert loss_keys(stats_of(feature_run)[0]) == {"d_feature_real", "d_feature_fake", "s_adv", "s_l1"}
    stage1, _ = load_checkpoint(code_run / "checkpoints" / "00000003")
    stage2, meta = load_checkpoint(feature_run / "checkpoints" / "00000002")
    assert meta["stage"] == "feature" and meta["has_extractor"]
    frozen = [k for k in stage1 if k.startswith(("generator", "encoders"))]
    assert frozen and all(torch.equal(stage1[k], stage2[k]) for k in frozen)
    assert any(k.startswith("extractor.") for k in stage2)
    assert not any(k.startswith("optim.generator.") for k in stage2)  # stage-1 optimiser state stays behind


def test_load_for_export_from_either_stage(code_run, feature_run):
    cfg, generator, encoders, extractor, meta = load_for_export(code_run)
    assert cfg.image_size == 32 and extractor is None and meta["step"] == 3
    assert not generator.training and not encoders.training
    stage1, _ = load_checkpoint(code_run / "checkpoints" / "00000003")
    state = generator.state_dict()
    assert all(torch.equal(state[k], stage1[f"generator_ema.{k}"]) for k in state)

    checkpoint = feature_run / "checkpoints" / "00000002"
    cfg, generator, encoders, extractor, meta = load_for_export(checkpoint)
    assert extractor is not None and not extractor.training and meta["path"] == str(checkpoint)
    with torch.no_grad():
        feature = extractor(torch.zeros(1, 3, 32, 32))
    assert feature.shape == (1, cfg.feature_channels, 32, 32)


def test_load_for_export_errors(code_run, tmp_path):
    with pytest.raises(MnmError, match="no such run or checkpoint"):
        load_for_export(tmp_path / "missing")
    with pytest.raises(MnmError, match="not a run folder"):
        load_for_export(tmp_path)
    # A checkpoint whose meta names another config: one line naming the mismatches.
    other = tmp_path / "other"
    other.mkdir()
    source = code_run / "checkpoints" / "00000003"
    for name in ("tensors.safetensors", "meta.json"):
        (other / name).write_bytes((source / name).read_bytes())
    meta = json.loads((other / "meta.json").read_text())
    meta["config"]["z_dim"] = 8
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MnmError, match="does not match the model config") as info:
        load_for_export(other)
    assert "\n" not in str(info.value) and str(other) in str(info.value)


def assert_same_checkpoints(a: Path, b: Path) -> None:
    ta, meta_a = load_checkpoint(a)
    tb, meta_b = load_checkpoint(b)
    assert sorted(ta) == sorted(tb)
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, different[:5]
    assert meta_a["data_order"] == meta_b["data_order"] and meta_a["images_seen"] == meta_b["images_seen"]


def test_resume_is_bit_identical(synth_data, tmp_path, capsys):
    common = ("code", "--data", str(synth_data), "--out", str(tmp_path), "--snapshot-every", "2", *TINY)
    code, out, err = train(capsys, *common, "--steps", "4")
    assert code == 0, err
    straight = run_dir_of(out)
    code, out, err = train(capsys, *common, "--kimg", "0.008")  # 2 steps of 4 images
    assert code == 0, err
    halves = run_dir_of(out)
    assert RunFolder(halves).latest_checkpoint().name == "00000002"
    code, out, err = train(capsys, "code", "--resume", str(halves), "--steps", "4", "--threads", "1")
    assert code == 0, err

    assert_same_checkpoints(straight / "checkpoints" / "00000004", halves / "checkpoints" / "00000004")
    losses = [{k: r[k] for k in loss_keys(r)} for r in stats_of(straight)]
    assert losses == [{k: r[k] for k in loss_keys(r)} for r in stats_of(halves)]


def test_feature_resume_is_bit_identical(code_run, synth_data, tmp_path, capsys):
    common = ("feature", "--from", str(code_run), "--data", str(synth_data), "--out", str(tmp_path),
              "--batch", "4", "--threads", "1")
    code, out, err = train(capsys, *common, "--steps", "2")
    assert code == 0, err
    straight = run_dir_of(out)
    code, out, err = train(capsys, *common, "--steps", "1")
    assert code == 0, err
    halves = run_dir_of(out)
    code, out, err = train(capsys, "feature", "--resume", str(halves / "checkpoints" / "00000001"), "--steps", "2")
    assert code == 0, err
    assert_same_checkpoints(straight / "checkpoints" / "00000002", halves / "checkpoints" / "00000002")


def test_resume_refuses_to_change_the_run(code_run, capsys):
    code, _, err = train(capsys, "code", "--resume", str(code_run), "--batch", "8")
    assert code == 2 and "cannot change batch" in err
    code, _, err = train(capsys, "feature", "--resume", str(code_run))
    assert code == 2 and "mnm train code" in err


def test_resume_refuses_a_data_set_of_another_size(code_run, synth_data, tmp_path, capsys):
    from mnm.training.synthetic import render_dataset
    from tests.training.conftest import SYNTH

    other = render_dataset(tmp_path / "more", workers=1, **{**SYNTH, "n": 30})  # 27 training images, not 22
    code, _, err = train(capsys, "code", "--resume", str(code_run), "--data", str(other), "--steps", "4")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {code_run / 'checkpoints' / '00000003'}: trained on a data set of 22 images, but ")
    assert f"{other} (train split) has 27; resume with the same data" in err
    assert RunFolder(code_run).latest_checkpoint().name == "00000003"  # nothing trained, nothing written
    _, meta = load_checkpoint(RunFolder(code_run).latest_checkpoint())
    assert meta["data_order"] == {"images": 22, "epoch": 0, "position": 12}  # 3 steps of 4 images


def test_sigint_saves_a_checkpoint_and_exits_130(synth_data, tmp_path):
    proc = start_training("code", "--data", str(synth_data), "--out", str(tmp_path), "--steps", "100000", *TINY)
    wait_for(tmp_path / "00000-code-tiny" / "stats.jsonl", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    run_dir = run_dir_of(out)
    last = stats_of(run_dir)[-1]["step"]
    checkpoint = RunFolder(run_dir).latest_checkpoint()
    assert checkpoint.name == f"{last:08d}"
    cfg, generator, *_ = load_for_export(run_dir)
    assert cfg.n_child == 4


def test_kill_9_leaves_a_resumable_run(synth_data, tmp_path, capsys):
    proc = start_training("code", "--data", str(synth_data), "--out", str(tmp_path), "--steps", "100000",
                          "--snapshot-every", "1", *TINY)
    run_dir = tmp_path / "00000-code-tiny"
    wait_for(run_dir / "checkpoints" / "00000002", proc)
    proc.kill()
    proc.communicate(timeout=60)
    latest = RunFolder(run_dir).latest_checkpoint()
    _, meta = load_checkpoint(latest)  # complete and verified, whatever moment the kill hit
    step = meta["step"]
    code, out, err = train(capsys, "code", "--resume", str(run_dir), "--steps", str(step + 1), "--threads", "1")
    assert code == 0, err
    assert RunFolder(run_dir).latest_checkpoint().name == f"{step + 1:08d}"
    steps = [r["step"] for r in stats_of(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == step + 1  # no torn or repeated records
    assert not list((run_dir / "checkpoints").glob(".mnm-tmp-*"))


CODE_SWITCHES = {
    "--no-paired-adv": ({"recon_l1"}, {"d_pair_z", "d_pair_c", "g_pair_p", "gp_b"}),
    "--no-code-repred": (set(), {"repred_z", "repred_b", "repred_p", "repred_c"}),
    "--pair-loss=bce": (set(), {"gp_z", "gp_b", "gp_p", "gp_c"}),
    "--mask-max-area=0.3": ({"mask_prior"}, set()),
}


@pytest.mark.parametrize("switch", list(CODE_SWITCHES))
def test_code_ablation_switches_change_the_losses(switch, code_run, synth_data, tmp_path, capsys):
    baseline = loss_keys(stats_of(code_run)[0])
    code, out, err = train(capsys, "code", "--data", str(synth_data), "--out", str(tmp_path), "--steps", "1",
                           switch, *TINY)
    assert code == 0, err
    keys = loss_keys(stats_of(run_dir_of(out))[0])
    added, removed = CODE_SWITCHES[switch]
    assert added <= keys and not added & baseline
    assert removed <= baseline and not removed & keys


def test_repred_with_constraints_changes_the_reprediction_codes(code_run, synth_data, tmp_path, capsys):
    code, out, err = train(capsys, "code", "--data", str(synth_data), "--out", str(tmp_path), "--steps", "1",
                           "--repred-with-constraints", *TINY)
    assert code == 0, err
    run_dir = run_dir_of(out)
    assert json.loads((run_dir / "options.json").read_text())["train_options"]["repred_with_constraints"]
    baseline, switched = stats_of(code_run)[0], stats_of(run_dir)[0]
    assert loss_keys(baseline) == loss_keys(switched)
    # Same seed, data and weights: only the sampled reprediction codes differ, so its losses do.
    assert all(baseline[k] != switched[k] for k in ("repred_b", "repred_p"))


@pytest.mark.parametrize(("switch", "removed"), [
    ("--no-feature-l1", {"s_l1"}),
    ("--no-feature-adv", {"s_adv", "d_feature_real", "d_feature_fake"}),
])
def test_feature_ablation_switches_change_the_losses(switch, removed, code_run, feature_run, synth_data,
                                                      tmp_path, capsys):
    code, out, err = train(capsys, "feature", "--from", str(code_run), "--data", str(synth_data),
                           "--out", str(tmp_path), "--steps", "1", "--batch", "4", "--threads", "1", switch)
    assert code == 0, err
    keys = loss_keys(stats_of(run_dir_of(out))[0])
    assert keys == loss_keys(stats_of(feature_run)[0]) - removed


def test_non_finite_loss_stops_with_the_last_good_checkpoint(synth_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNM_NO_PROGRESS", "1")  # stderr is then the error line alone
    code, out, err = train(capsys, "code", "--data", str(synth_data), "--out", str(tmp_path), "--steps", "20",
                           "--snapshot-every", "1", "--lr", "10", *TINY)
    assert code == 2
    line = err.strip()
    assert "\n" not in line
    found = re.fullmatch(r"error: non-finite (.+) at step (\d+); stopped without saving; last good checkpoint: (.+)",
                         line)
    assert found, line
    step, last = int(found.group(2)), found.group(3)
    assert step >= 2, "lr 10 should survive one step here; the test needs a good checkpoint first"
    _, meta = load_checkpoint(last)
    assert meta["step"] == step - 1
    assert RunFolder(run_dir_of(out)).latest_checkpoint() == Path(last)


def test_inference_checkpoint_keeps_only_what_export_needs(feature_run, tmp_path):
    from mnm.training.export_source import save_inference_checkpoint

    small = save_inference_checkpoint(feature_run, tmp_path / "demo-checkpoint")
    tensors, meta = load_checkpoint(small)
    assert {k.split(".", 1)[0] for k in tensors} == {"generator_ema", "encoders", "extractor"}
    assert meta["inference_only"] and meta["stage"] == "feature"
    full, _ = load_checkpoint(feature_run / "checkpoints" / "00000002")
    assert all(torch.equal(tensors[k], full[k]) for k in tensors)
    cfg, generator, encoders, extractor, _ = load_for_export(small)
    assert extractor is not None and cfg.image_size == 32
