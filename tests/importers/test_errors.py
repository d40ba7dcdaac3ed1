"""Bad input to `mnm import mixnmatch`: one line naming the file and the first offending names, exit
code 2, nothing written; a malicious pickle is refused without running its payload."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from mnm.cli import run
from mnm.config import ModelConfig
from mnm.importers.mixnmatch import reference_layout
from tests.importers.conftest import import_args, reference_states, small_config, write_files
from tests.importers.reference_files import CUB, DOGS, FILES, save_reference


class CreatesAFile:
    """Unpickling this calls open(target, "w"): a file appears if the loader runs arbitrary code."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("reference")
    states = reference_states(small_config(CUB), seed=21)
    return {"states": states, "files": write_files(states, folder)}


@pytest.fixture
def files(reference, tmp_path) -> dict[str, Path]:
    """A private copy of the good files that a test may damage."""
    return {slot: Path(shutil.copy(path, tmp_path / path.name)) for slot, path in reference["files"].items()}


def fails(capsys, args: list[str], out: Path, *expected: str) -> str:
    """Run the CLI in this process; it must fail with one line holding ``expected`` and write nothing."""
    code = run(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in expected:
        assert text in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".mnm-tmp-")]
    return lines[0]


def resave(path: Path, state: dict) -> None:
    torch.save(state, path)


def test_good_files_import(files, tmp_path, capsys):
    assert run(import_args(files, tmp_path / "out")) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "tensors.safetensors").is_file()


def test_wrong_slot_names_the_right_option(files, tmp_path, capsys):
    out = tmp_path / "out"
    swapped = {**files, "generator": files["encoders"], "encoders": files["generator"]}
    fails(capsys, import_args(swapped, out), out, str(files["encoders"]), "--generator", "encoders", "--encoders")
    as_generator = {**files, "generator": files["extractor"]}
    fails(capsys, import_args(as_generator, out), out, str(files["extractor"]), "give it as --extractor")
    as_extractor = {**files, "extractor": files["generator"]}
    fails(capsys, import_args(as_extractor, out), out, "holds the generator", "give it as --generator")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_file(reference, files, tmp_path, capsys, legacy):
    out = tmp_path / "out"
    torch.save(reference["states"]["encoders"], files["encoders"], _use_new_zipfile_serialization=not legacy)
    data = files["encoders"].read_bytes()
    files["encoders"].write_bytes(data[: len(data) // 2])
    fails(capsys, import_args(files, out), out, str(files["encoders"]))


def test_empty_and_absent_files(files, tmp_path, capsys):
    out = tmp_path / "out"
    files["extractor"].write_bytes(b"")
    fails(capsys, import_args(files, out), out, str(files["extractor"]), "empty file")
    files["extractor"].unlink()
    fails(capsys, import_args(files, out), out, str(files["extractor"]), "no such file")


def test_missing_tensors_are_named(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    state = dict(reference["states"]["generator"])
    for name in ("module.parent_stage.residual.2.block.4.running_var", "module.child_mask.img.0.weight"):
        del state[name]
    resave(files["generator"], state)
    line = fails(capsys, import_args(files, out), out, str(files["generator"]), "2 missing",
                 "parent_stage.residual.2.block.4.running_var", "child_mask.img.0.weight")
    assert "nothing was written" in line


def test_unexpected_tensors_are_named(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    state = dict(reference["states"]["extractor"])
    state["module.up7.0.weight"] = torch.zeros(3, 3)
    resave(files["extractor"], state)
    fails(capsys, import_args(files, out), out, str(files["extractor"]), "1 unexpected", "up7.0.weight")


def test_wrong_shapes_are_named_with_both_shapes(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    state = dict(reference["states"]["generator"])
    name = "module.child_stage.samesample.0.weight"
    state[name] = torch.zeros(8, 7, 3, 3)
    resave(files["generator"], state)
    fails(capsys, import_args(files, out), out, str(files["generator"]), "child_stage.samesample.0.weight is "
          "[8, 7, 3, 3], expected [8, 8, 3, 3]")


def test_files_of_two_different_models(reference, files, tmp_path, capsys):
    """E from a Dogs model with G from a CUB model: G does not fit the model E describes."""
    out = tmp_path / "out"
    dogs = reference_states(small_config(DOGS), seed=22)
    resave(files["encoders"], dogs["encoders"])
    fails(capsys, import_args(files, out), out, str(files["generator"]), "N_p 12, N_c = N_b 120",
          "background_stage.fc.0.weight is [4096, 300], expected [4096, 220]")


def test_nan_values(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    state = dict(reference["states"]["encoders"])
    state["module.model_c.2.1.running_var"] = state["module.model_c.2.1.running_var"].clone()
    state["module.model_c.2.1.running_var"][3] = float("nan")
    resave(files["encoders"], state)
    fails(capsys, import_args(files, out), out, str(files["encoders"]), "NaN", "model_c.2.1.running_var")


def test_not_a_flat_mapping_of_tensors(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    resave(files["generator"], {"state_dict": reference["states"]["generator"], "epoch": 3})
    fails(capsys, import_args(files, out), out, str(files["generator"]), "not a flat mapping",
          "'state_dict' holds an OrderedDict", "'epoch' holds an int")
    resave(files["generator"], [torch.zeros(2)])
    fails(capsys, import_args(files, out), out, str(files["generator"]), "holds a list")


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_does_not_run(files, tmp_path, capsys, how):
    out = tmp_path / "out"
    target = tmp_path / "created-by-the-pickle"
    payload = {"module.model_z.0.0.weight": CreatesAFile(target)}
    if how == "torch.save":
        torch.save(payload, files["encoders"])
    else:
        with open(files["encoders"], "wb") as f:
            pickle.dump(payload, f)
    # the payload works when unpickled the unsafe way (proved on a copy, then removed)
    with open(tmp_path / "proof.pkl", "wb") as f:
        pickle.dump(CreatesAFile(target), f)
    pickle.loads((tmp_path / "proof.pkl").read_bytes()).close()
    assert target.exists()
    target.unlink()
    fails(capsys, import_args(files, out), out, str(files["encoders"]), "refused by the safe loader")
    assert not target.exists()


def test_out_that_is_not_a_checkpoint_is_left_alone(files, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"precious")
    code = run(import_args(files, out))
    err = capsys.readouterr().err
    assert code == 2 and "is not an mnm checkpoint folder" in err
    assert (out / "keep.jpg").read_bytes() == b"precious"


def test_help_needs_no_torch():
    from tests.util import run_cli

    result = run_cli("import", "mixnmatch", "--help", block_torch=True)
    assert result.returncode == 0, result.stderr
    assert "--generator" in result.stdout and "--extractor" in result.stdout
    assert "Import models trained by other code" in run_cli("--help", block_torch=True).stdout


# ---- absurd files (issue 26 item 9): tiny pickles that would become gigabytes, refused before any copy

PEAK_RSS_LIMIT = 1536 * 2**20
"""The import subprocess is killed past this resident size: importing torch takes ~0.4 GB; the
files below would take 7 GB and more if their tensors were copied."""


def repeated(shape, dtype=torch.float32) -> torch.Tensor:
    """A stride-0 view: one stored value shown as ``shape`` (a few bytes in the file, its full size copied)."""
    return torch.zeros((1,) * len(shape), dtype=dtype).expand(shape)


def peak_rss_of(args: list[str], timeout: float = 120) -> tuple[int, str, int]:
    """Run ``mnm ARGS`` in a subprocess, sampling its resident memory; (exit code, stderr, peak bytes).
    Killed (and the test fails) past ``PEAK_RSS_LIMIT`` or ``timeout``: the shared machine never sees
    the gigabytes a regression would take."""
    code = f"import sys; from mnm.cli import run; sys.exit(run({args!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "MNM_NO_PROGRESS": "1"})
    watched, peak, deadline = psutil.Process(proc.pid), 0, time.monotonic() + timeout
    try:
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            assert peak < PEAK_RSS_LIMIT, f"the import grew past {PEAK_RSS_LIMIT >> 20} MiB resident"
            assert time.monotonic() < deadline, f"the import ran past {timeout} s"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err, peak


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_stride0_views_of_a_model_at_ngf_1024_are_refused_with_memory_bounded(tmp_path, legacy):
    """The issue's files: every tensor of G, E and EX at ngf = 1024 as a stride-0 view (each file well
    under a megabyte). Refused in one line, nothing written, the process stays small."""
    cfg = ModelConfig(**{**small_config(CUB).to_dict(), "ngf": 1024, "ndf": 64})
    for slot, file in FILES.items():
        state = {f"module.{name}": repeated(want.shape, torch.float32 if want.floating else torch.int64)
                 for name, want in reference_layout(cfg, slot).items()}
        save_reference(state, tmp_path / file, legacy=legacy)
        assert (tmp_path / file).stat().st_size < 2**20
    out = tmp_path / "out"
    code, err, peak = peak_rss_of(import_args({s: tmp_path / f for s, f in FILES.items()}, out))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "repeat stored values (stride-0 or overlapping views" in err and "nothing was written" in err
    assert not out.exists() and peak < PEAK_RSS_LIMIT


def test_one_stride0_or_overlapping_tensor_is_named(reference, files, tmp_path, capsys):
    out = tmp_path / "out"
    state = dict(reference["states"]["generator"])
    name = "module.child_stage.samesample.0.weight"
    state[name] = repeated(state[name].shape)
    resave(files["generator"], state)
    fails(capsys, import_args(files, out), out, str(files["generator"]), "1 tensor(s) repeat stored values",
          "child_stage.samesample.0.weight (576 elements on 1 stored values)")
    base = torch.randn(100)
    state[name] = base.as_strided((8, 8, 3, 3), (1, 1, 1, 1))  # overlapping: 576 elements over 100 values
    resave(files["generator"], state)
    fails(capsys, import_args(files, out), out, "child_stage.samesample.0.weight (576 elements")


def test_tensors_sharing_their_values_are_refused(reference, files, tmp_path, capsys):
    """Each tensor a plain view of one storage: each alone looks whole, together they repeat it."""
    out = tmp_path / "out"
    state = dict(reference["states"]["encoders"])
    shared = torch.randn(max(t.numel() for t in state.values()))
    state = {k: shared[: v.numel()].view(v.shape).to(v.dtype) if v.is_floating_point() else v
             for k, v in state.items()}
    resave(files["encoders"], state)
    fails(capsys, import_args(files, out), out, str(files["encoders"]), "tensors sharing their values")


def test_a_compressed_archive_is_refused_before_it_expands(files, tmp_path, capsys):
    """torch.load reads deflated zip records too: a small file can expand to any size at load."""
    import zipfile

    out = tmp_path / "out"
    with zipfile.ZipFile(files["encoders"]) as plain:
        records = [(info.filename, plain.read(info.filename)) for info in plain.infolist()]
    with zipfile.ZipFile(files["encoders"], "w", zipfile.ZIP_DEFLATED) as packed:
        for filename, data in records:
            packed.writestr(filename, data)
    fails(capsys, import_args(files, out), out, str(files["encoders"]), "expand to", "torch.save stores them "
          "uncompressed")


def test_a_config_far_past_the_published_models_is_refused(tmp_path, capsys):
    """A whole, consistent model (real tensors, narrow widths) with Z = 500 and N_c = N_b = 1000: past
    4 x the published 100 and 200. It would import; it is refused, naming each field over its limit."""
    out = tmp_path / "out"
    cfg = ModelConfig(**{**small_config(CUB).to_dict(), "z_dim": 500, "n_child": 1000})
    files = write_files(reference_states(cfg, seed=23), tmp_path / "big")
    fails(capsys, import_args(files, out), out, "far larger than any published MixNMatch",
          "z_dim 500 (published 100, limit 400)", "n_child 1000 (published 200, limit 800)")
