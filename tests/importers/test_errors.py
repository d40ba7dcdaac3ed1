"""Bad input to `mnm import mixnmatch`: one line naming the file and the first offending names, exit
code 2, nothing written; a malicious pickle is refused without running its payload."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from mnm.cli import run
from tests.importers.conftest import import_args, reference_states, small_config, write_files
from tests.importers.reference_files import CUB, DOGS


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
