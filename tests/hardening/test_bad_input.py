"""Bad input to every user-facing command, as one table run through the real CLI in subprocesses.

Each row is (command line, expected exit code, words the error line must hold, what the output
location may hold afterwards). A failure must print exactly one ``error:`` line, the last line of
stderr, naming the file and the problem, with no traceback, and leave nothing at the output
location. Odd but valid references (16-bit, CMYK, palette, alpha, EXIF, animated GIF, 1x1, 10x4000)
must succeed, and the image must be the mix of exactly the pixels the file holds (computed in the
corpus without ``mnm.imaging``). Runtime commands run with torch blocked.

The runtime rows run side by side (a few subprocesses at a time) in one fixture, the torch rows in
this process; each row is then its own test.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnm.cli import run
from mnm.imaging import load_image
from mnm.runtime.pipeline import Pipeline
from tests.hardening.conftest import TINY, first_unreadable_file
from tests.util import run_cli

RUNTIME_COMMANDS = ("mix", "animate", "info", "bench")
PARALLEL = 3
UNREADABLE = first_unreadable_file()
AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    """One row: ``args`` is a template over the corpus paths (``{out}`` is the row's own empty folder)."""

    id: str
    args: str
    exit: int
    words: tuple[str, ...] = ()
    leaves: str = "nothing"  # nothing | image:<valid name> | gif-kept | anything
    report: bool = False  # the command reports problems on stdout (mnm data check) instead of an error line
    skip: str | None = field(default=None, compare=False)


def _valid(name: str) -> Case:
    return Case(f"mix-valid-{name}", f"mix {{bundle}} --background {{valid_{name}}} --pose {{valid_{name}}} "
                f"--shape {{valid_{name}}} --texture {{valid_{name}}} --out {{out}}/mix.png", 0, ("wrote",),
                leaves=f"image:{name}")


FACTORS = ("background", "pose", "shape", "texture")


def mix_with(options: str = "", bundle: str = "bundle", out: str = "{out}/mix.png", **given: str) -> str:
    """``mnm mix`` naming every factor: those in ``given``, the others random."""
    factors = " ".join(f"--{k} {given.get(k, 'random')}" for k in FACTORS)
    return f"mix {{{bundle}}} {factors} {options} --out {out}".replace("  ", " ")


ANIMATE = "animate {bundle} --image {photo} --backend ort-cpu --out {out}/anim.gif"
ROOT_SKIP = "running as root: chmod 000 does not stop root from reading (the /proc row covers it)" if AS_ROOT else None

CASES = [
    # ---- mix: reference images
    Case("mix-truncated-png", mix_with(texture="{truncated_png}"), 2, ("{truncated_png}", "corrupt or truncated")),
    Case("mix-truncated-jpg", mix_with(pose="{truncated_jpg}"), 2, ("{truncated_jpg}", "corrupt or truncated")),
    Case("mix-text-named-png", mix_with(shape="{text_png}"), 2, ("{text_png}", "not a recognised image")),
    Case("mix-empty-file", mix_with(background="{empty_png}"), 2, ("{empty_png}", "empty file")),
    Case("mix-over-pixel-limit", mix_with(texture="{huge_png}"), 2, ("{huge_png}", "12000x12000", "over the limit")),
    Case("mix-missing-path", mix_with(texture="{missing_png}"), 2, ("{missing_png}", "not found")),
    Case("mix-directory-as-image", mix_with(texture="{folder_png}"), 2, ("{folder_png}", "is a folder")),
    Case("mix-unreadable-chmod", mix_with(texture="{locked_png}"), 2, ("{locked_png}", "permission denied"),
         skip=ROOT_SKIP),
    Case("mix-unreadable-proc", mix_with(texture="{unreadable}"), 2, ("{unreadable}", "permission denied"),
         skip=None if UNREADABLE else "no file here that root cannot read"),
    *[_valid(name) for name in ("grey16", "rgb16", "cmyk", "palette", "alpha", "exif", "animated_gif", "1x1",
                                "10x4000")],
    # ---- mix: boxes
    Case("mix-box-unit-range", mix_with("--box 0.1,0.1,0.5,0.5", texture="{photo}"), 2, ("{photo}", "0-1 units")),
    Case("mix-box-negative", mix_with("--box -5,0,10,10", texture="{photo}"), 2, ("{photo}", "negative coordinate")),
    Case("mix-box-outside", mix_with("--box 60,40,30,30", texture="{photo}"), 2,
         ("{photo}", "outside the 70x52 image")),
    # ---- mix: bundles, backends, outputs
    Case("mix-bundle-missing-graph", mix_with(bundle="bundle_no_graph"), 2,
         ("{bundle_no_graph}/enc_c.onnx", "missing")),
    Case("mix-bundle-tampered-graph", mix_with(bundle="bundle_tampered"), 2,
         ("{bundle_tampered}/g_child.onnx", "sha256 mismatch")),
    Case("mix-bundle-future-format", mix_with(bundle="bundle_future"), 2,
         ("{bundle_future}/manifest.json", "bundle format 99 is newer")),
    Case("mix-bundle-is-a-file", mix_with(bundle="bundle_as_file"), 2, ("{bundle_as_file}", "not a file")),
    Case("mix-bundle-missing", mix_with(bundle="bundle_missing"), 2, ("{bundle_missing}", "not found")),
    Case("mix-engine-for-another-gpu", mix_with("--backend tensorrt", bundle="bundle_foreign_engine"), 2,
         ("backend tensorrt cannot run here",)),
    Case("mix-engine-for-another-gpu-auto", mix_with("--verbose", bundle="bundle_foreign_engine"), 0,
         ("not used: tensorrt",), leaves="anything"),
    Case("mix-out-unwritable", mix_with(out="/proc/mnm-hardening/mix.png"), 2,
         ("/proc/mnm-hardening/mix.png", "cannot write")),
    Case("mix-out-is-a-folder", mix_with(out="{folder_png}"), 2, ("{folder_png}", "cannot write")),
    # ---- animate
    Case("animate-video-unopenable", ANIMATE + " --source {video_junk}", 2, ("{video_junk}", "cannot open as a video")),
    Case("animate-video-zero-frames", ANIMATE + " --source {video_empty}", 2, ("{video_empty}", "no frames")),
    Case("animate-video-ends-mid-frame", ANIMATE + " --source {video_cut}", 2,
         ("{video_cut}", "cut short", "stopped after", "of 30 frames", "kept the"), leaves="gif-kept"),
    Case("animate-source-missing", ANIMATE + " --source {missing_png}", 2, ("{missing_png}", "no such video")),
    Case("animate-source-empty-folder", ANIMATE + " --source {folder_png}", 2, ("{folder_png}", "no frames")),
    Case("animate-static-truncated", "animate {bundle} --image {truncated_png} --source {video_ok} "
         "--out {out}/anim.gif", 2, ("{truncated_png}", "corrupt or truncated")),
    Case("animate-static-missing", "animate {bundle} --image {missing_png} --source {video_ok} --out {out}/anim.gif",
         2, ("{missing_png}", "not found")),
    Case("animate-box-unit-range", ANIMATE + " --source {video_ok} --box 0.1,0.1,0.5,0.5", 2,
         ("0-1 units", "nothing was written")),
    Case("animate-box-outside", ANIMATE + " --source {video_ok} --box 50,40,30,30", 2,
         ("box (50, 40, 30, 30) extends outside the 64x48 image", "nothing was written")),
    Case("animate-bundle-tampered", "animate {bundle_tampered} --image {photo} --source {video_ok} "
         "--out {out}/anim.gif", 2, ("{bundle_tampered}/g_child.onnx", "sha256 mismatch")),
    Case("animate-out-unwritable", "animate {bundle} --image {photo} --source {video_ok} --out /proc/mnm-frames", 2,
         ("/proc/mnm-frames", "cannot write")),
    # ---- info and bench
    Case("info-missing-graph", "info {bundle_no_graph}", 2, ("{bundle_no_graph}/enc_c.onnx", "missing")),
    Case("info-tampered-graph", "info {bundle_tampered}", 2, ("{bundle_tampered}/g_child.onnx", "sha256 mismatch")),
    Case("info-future-format", "info {bundle_future}", 2, ("{bundle_future}/manifest.json", "newer")),
    Case("info-not-a-folder", "info {text_png}", 2, ("{text_png}", "not a file")),
    Case("info-engine-for-another-gpu", "info {bundle_foreign_engine}", 0, ("does not fit",), leaves="anything"),
    Case("bench-tampered-graph", "bench {bundle_tampered} --repeats 1 --warmup 0 --batch 1", 2,
         ("{bundle_tampered}/g_child.onnx", "sha256 mismatch")),
    Case("bench-future-format", "bench {bundle_future}", 2, ("{bundle_future}/manifest.json", "newer")),
    Case("bench-missing", "bench {bundle_missing}", 2, ("{bundle_missing}", "not found")),
    # ---- export
    Case("export-source-missing", "export {missing_png} --out {out}/bundle", 2, ("{missing_png}", "no such run")),
    Case("export-source-is-a-file", "export {text_png} --out {out}/bundle", 2, ("{text_png}", "not a run folder")),
    Case("export-checkpoint-other-preset", "export {ckpt_other_preset} --out {out}/bundle", 2,
         ("{ckpt_other_preset}", "does not match the model config")),
    Case("export-checkpoint-tampered", "export {ckpt_tampered} --out {out}/bundle", 2,
         ("{ckpt_tampered}/tensors.safetensors", "sha256 does not match")),
    Case("export-checkpoint-future", "export {ckpt_future} --out {out}/bundle", 2,
         ("{ckpt_future}/meta.json", "newer")),
    Case("export-out-is-a-file", "export --random-init --preset tiny --out {text_png}", 2, ("{text_png}", "a file")),
    Case("export-out-unwritable", "export --random-init --preset tiny --out /proc/mnm-bundle", 2,
         ("/proc/mnm-bundle", "cannot write")),
    # ---- train
    Case("train-data-missing", "train code --data {missing_png} --out {out} --preset tiny --steps 1", 2,
         ("{missing_png}", "not a folder")),
    Case("train-data-is-a-file", "train code --data {text_png} --out {out} --preset tiny --steps 1", 2,
         ("{text_png}", "not a folder")),
    Case("train-boxes-in-unit-range", "train code --data {data_unit_boxes} --out {out} --preset tiny --steps 1", 2,
         ("{data_unit_boxes}/bounding_boxes.txt", "0-1 units")),
    Case("train-truncated-image", "train code --data {data_truncated} --out {out} --preset tiny --steps 1 "
         "--batch 4 --threads 1", 2, ("{data_truncated_image}", "cannot read the image")),
    Case("train-resume-other-preset", "train code --resume {run} --preset lite --steps 2", 2,
         ("{run}", "cannot change preset")),
    Case("train-resume-tampered", "train code --resume {ckpt_tampered} --steps 2", 2,
         ("{ckpt_tampered}", "give a run folder")),
    Case("train-out-unwritable", "train code --data {synth} --out /proc/mnm-runs --preset tiny --steps 1", 2,
         ("/proc/mnm-runs", "cannot create the run folder")),
    # ---- data
    Case("data-check-unit-boxes", "data check {data_unit_boxes}", 2,
         ("{data_unit_boxes}/bounding_boxes.txt", "0-1 units"), report=True),
    Case("data-check-truncated-image", "data check {data_truncated}", 2, ("{data_truncated_image}", "truncated"),
         report=True),
    Case("data-check-missing", "data check {missing_png}", 2, ("{missing_png}", "not a folder"), report=True),
    Case("data-synth-out-is-a-file", "data synth --out {text_png} --n 2 --size 32", 2,
         ("{text_png}", "not a folder")),
    Case("data-synth-out-unwritable", "data synth --out /proc/mnm-synth --n 2 --size 32", 2,
         ("/proc/mnm-synth", "cannot create the folder")),
    # ---- eval
    Case("eval-checkpoint-other-preset", "eval clustering {ckpt_other_preset} --data {synth} --json {out}/r.json", 2,
         ("{ckpt_other_preset}", "does not match the model config")),
    Case("eval-data-missing", "eval clustering {run} --data {missing_png} --json {out}/r.json", 2,
         ("{missing_png}", "no such dataset")),
    Case("eval-inception-not-weights", "eval fid {run} --data {synth} --inception-weights {text_png} --n 4 "
         "--json {out}/r.json", 2, ("{text_png}",)),
]


@pytest.fixture(scope="module")
def paths(corpus, tiny_run, checkpoints, datasets, synth_data) -> dict[str, str]:
    """What the ``{placeholders}`` of the table stand for."""
    found = {k: str(v) for k, v in vars(corpus).items() if isinstance(v, Path)}
    found.update({f"valid_{name}": str(file) for name, (file, _) in corpus.valid.items()})
    found.update(photo=str(corpus.photos[0]), run=str(tiny_run.path), synth=str(synth_data),
                 unreadable=str(UNREADABLE), data_unit_boxes=str(datasets.unit_boxes),
                 data_truncated=str(datasets.truncated), data_truncated_image=str(datasets.truncated_image))
    found.update({f"ckpt_{k}": str(v) for k, v in vars(checkpoints).items()})
    return found


def argv(case: Case, paths: dict[str, str], out: Path) -> list[str]:
    return [token.format(**paths, out=out) for token in case.args.split()]


def in_subprocess(case: Case) -> bool:
    """Runtime commands run in a subprocess with torch blocked (the lean install, and no native library
    state shared with other rows); the torch commands run in this process, which has torch imported."""
    return case.args.split()[0] in RUNTIME_COMMANDS


@pytest.fixture(scope="module")
def outcomes(paths, tmp_path_factory):
    """The subprocess rows, a few at a time: id -> (exit code, stdout, stderr, the row's output folder)."""

    def execute(case: Case):
        out = tmp_path_factory.mktemp(case.id)
        result = run_cli(*argv(case, paths, out), block_torch=True, timeout=300)
        return case.id, (result.returncode, result.stdout, result.stderr, out)

    rows = [c for c in CASES if c.skip is None and in_subprocess(c)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(pool.map(execute, rows))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes, paths, corpus, capfd, tmp_path):
    if case.skip:
        pytest.skip(case.skip)
    if in_subprocess(case):
        code, stdout, stderr, out = outcomes[case.id]
    else:
        out = tmp_path / "out"
        out.mkdir()
        capfd.readouterr()
        code = run(argv(case, paths, out))
        stdout, stderr = capfd.readouterr()
    words = [w.format(**paths) for w in case.words]
    assert "Traceback" not in stderr, stderr
    assert code == case.exit, (stdout, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if case.exit == 0 or case.report:
        assert not errors, stderr
        for word in words:
            assert word in stdout + stderr, (word, stdout + stderr)
        if case.report:  # one report line names the file and the problem
            assert any(all(w in line for w in words) for line in stdout.splitlines()), stdout
    else:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and lines[-1] == errors[0], stderr
        for word in words:
            assert word in errors[0], (word, errors[0])
    check_output(case, out, corpus, stdout)


def check_output(case: Case, out: Path, corpus, stdout: str) -> None:
    """What the row's output folder holds: nothing, the correct mix, or the frames a cut video gave."""
    left = sorted(p.name for p in out.iterdir())
    if case.leaves == "nothing":
        assert left == [], left
    elif case.leaves == "gif-kept":
        produced = int(re.search(r"frames in \d+, out (\d+)", stdout).group(1))
        assert left == ["anim.gif"] and 0 < produced < 30
        with Image.open(out / "anim.gif") as gif:
            assert gif.n_frames == produced and gif.size == (TINY.image_size,) * 2
    elif case.leaves.startswith("image:"):
        assert left == ["mix.png"], left
        file, pixels = corpus.valid[case.leaves.split(":", 1)[1]]
        np.testing.assert_array_equal(load_image(file), pixels)
        expected = _pipeline(corpus.bundle).mix(pixels, pixels, pixels, pixels)
        assert np.abs(load_image(out / "mix.png").astype(int) - expected).max() <= 1


_PIPELINES: dict[Path, Pipeline] = {}


def _pipeline(bundle: Path) -> Pipeline:
    if bundle not in _PIPELINES:
        _PIPELINES[bundle] = Pipeline(bundle, backend="ort-cpu")
    return _PIPELINES[bundle]
