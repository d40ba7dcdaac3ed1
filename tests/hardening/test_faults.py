"""Faults: SIGKILL at random points of training, export and ``mnm mix --batch``; a full output disk.

Everything runs as real subprocesses of the real CLI. After each fault the previous outputs must be
intact (same bytes), no half-written file may carry a final name, and a re-run must complete.
The full disk is a file-size limit (``RLIMIT_FSIZE``) set in the child with SIGXFSZ ignored, so a
write past it fails with EFBIG exactly as on a full disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnm import atomic
from mnm.checkpoint import load_checkpoint
from mnm.errors import MnmError
from mnm.imaging import load_image
from mnm.runtime.bundle import Bundle
from mnm.runtime.pipeline import Pipeline
from mnm.training.run import CHECKPOINT_NAME, RunFolder, is_checkpoint
from tests.runtime.test_video import write_video
from tests.util import run_cli

KILL_SEED = 9
TRAIN_KILLS = 3


def start(*args: str) -> subprocess.Popen:
    """``mnm ARGS`` in a subprocess that the test can kill; stdout is read line by line."""
    code = f"import sys; from mnm.cli import run; sys.exit(run({list(map(str, args))!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MNM_NO_PROGRESS": "1"})


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 120, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (the bytes a fault must not touch)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def final_names(folder: Path) -> list[Path]:
    """Files and folders under ``folder`` that carry a final name (not a temporary one)."""
    return [p for p in folder.rglob("*") if not any(part.startswith(atomic.TMP_PREFIX) for part in p.parts)]


# ---------------------------------------------------------------- training


def test_training_killed_at_random_points_resumes_from_its_newest_checkpoint(synth_data, tmp_path):
    """SIGKILL a tiny run several times at random moments (checkpoints are written every step, so many
    kills land inside a save); each time every checkpoint on disk is complete and verified, and the
    resumed process continues from the newest one."""
    rng = random.Random(KILL_SEED)
    common = ("--snapshot-every", "1", "--keep", "2", "--batch", "2", "--threads", "1", "--log-every", "1")
    proc = start("train", "code", "--data", synth_data, "--out", tmp_path, "--preset", "tiny", "--steps", "100000",
                 *common)
    run_dir = tmp_path / "00000-code-tiny"
    folder = RunFolder(run_dir)
    wait_until(lambda: folder.latest_checkpoint() is not None, proc, "the first checkpoint")
    for kills in range(1, TRAIN_KILLS + 1):
        time.sleep(rng.uniform(0.0, 1.5))
        kill(proc)
        newest = check_checkpoints(folder)
        step = int(newest.name)
        last = kills == TRAIN_KILLS  # the last resume runs one more step and finishes
        proc = start("train", "code", "--resume", run_dir, "--steps", step + 1 if last else 100000, *common[:2])
        line = proc.stdout.readline()  # printed once the run points `latest` at what it continues from
        assert line.startswith("run folder:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        assert folder.latest_checkpoint() == newest
        if not last:
            wait_until(lambda newest=newest: folder.latest_checkpoint() != newest, proc, "a checkpoint after resuming")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert folder.latest_checkpoint().name == f"{step + 1:08d}"
    check_checkpoints(folder)
    assert not list(folder.checkpoints.glob(atomic.TMP_PREFIX + "*"))  # leftovers of killed saves are gone
    steps = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step + 2))  # one record per step: none lost, none repeated or torn


def check_checkpoints(folder: RunFolder) -> Path:
    """Every checkpoint with a final name is complete and matches its recorded sha256; ``latest``
    names the newest (or, after a kill between a checkpoint's rename and the ``latest`` update, the
    one before it, which the run then continues from). Returns what a resume continues from."""
    named = [p for p in folder.checkpoints.iterdir() if CHECKPOINT_NAME.fullmatch(p.name)]
    assert named and all(is_checkpoint(p) for p in named), named
    for checkpoint in named:
        _, meta = load_checkpoint(checkpoint)  # raises on a truncated or altered tensors file
        assert meta["step"] == int(checkpoint.name)
    latest, newest = folder.latest_checkpoint(), max(named)
    assert latest == newest or (latest in named and int(newest.name) == int(latest.name) + 1), (latest, named)
    return latest


# ---------------------------------------------------------------- export and mix --batch


def test_export_killed_midway_keeps_the_previous_bundle_and_a_rerun_completes(tiny_bundle, tmp_path):
    out = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    before = digests(out)
    proc = start("export", "--random-init", "--preset", "tiny", "--seed", "1", "--out", out)
    staging = atomic.TMP_PREFIX + "*-bundle-*/*.onnx"  # .mnm-tmp-<pid>.<host>-bundle-XXXX/
    wait_until(lambda: len(list(tmp_path.glob(staging))) >= 2, proc, "two graphs written into the staging folder")
    kill(proc)
    assert digests(out) == before  # the previous bundle, byte for byte
    Bundle.open(out)
    assert sorted(p.name for p in final_names(tmp_path) if p.parent == tmp_path) == ["bundle"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(atomic.TMP_PREFIX)]  # the dead writer's

    again = run_cli("export", "--random-init", "--preset", "tiny", "--seed", "1", "--out", out, timeout=600)
    assert again.returncode == 0, again.stderr
    assert Bundle.open(out).manifest["source"] == {"kind": "random-init", "seed": 1, "preset": "tiny"}
    assert digests(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the rerun removed the staging folder


def test_mix_batch_killed_midway_leaves_only_whole_images_and_a_rerun_completes(tiny_bundle, tmp_path):
    rows = 400
    plan = tmp_path / "plan.csv"
    plan.write_text("background,pose,shape,texture\n" + "".join(
        f"seed:{i},seed:{i + 1},code:{i % 2},code:{i % 4}\n" for i in range(rows)))
    out = tmp_path / "out"
    proc = start("mix", tiny_bundle, "--batch", plan, "--out", out, "--max-batch", "1", "--backend", "ort-cpu")
    wait_until(lambda: out.is_dir() and len(list(out.glob("0*.png"))) >= 5, proc, "five images", poll=0.002)
    kill(proc)
    written = sorted(out.glob("0*.png"))
    assert 5 <= len(written) < rows
    assert all(p in written or p.name.startswith(atomic.TMP_PREFIX) or p.name == "mnm-batch.json"
               for p in out.iterdir())  # final or temporary, beside the batch manifest
    pipe = Pipeline(tiny_bundle, backend="ort-cpu")
    for image in written:  # each whole, and the image of its row
        i = int(image.stem) - 1
        expected = pipe.mix(f"seed:{i}", f"seed:{i + 1}", f"code:{i % 2}", f"code:{i % 4}")
        assert np.abs(load_image(image).astype(int) - expected).max() <= 1
    kept = digests(out)
    kept = {k: v for k, v in kept.items() if not k.startswith(atomic.TMP_PREFIX)}

    again = run_cli("mix", tiny_bundle, "--batch", plan, "--out", out, "--backend", "ort-cpu", block_torch=True)
    assert again.returncode == 0, again.stderr
    assert f"{len(written)} already there" in again.stdout
    assert len(list(out.glob("0*.png"))) == rows
    assert {k: v for k, v in digests(out).items() if k in kept} == kept
    assert not [p.name for p in out.iterdir() if p.name.startswith(atomic.TMP_PREFIX)]  # the killed run's are gone


# ---------------------------------------------------------------- a full disk


def file_size_limit(limit: int):
    """preexec_fn: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored, as a full disk fails them)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _previous_outputs(root: Path, corpus, tiny_bundle, tiny_run) -> dict[str, Path]:
    """What an earlier good run left at each output; the failing write must leave it as it was."""
    root.mkdir()
    shutil.copyfile(corpus.photos[1], root / "mix.png")
    (root / "batch").mkdir()  # empty: a folder with files but no batch manifest is refused
    shutil.copyfile(corpus.valid["animated_gif"][0], root / "anim.gif")
    write_video(root / "anim.mp4", 4)
    frames = root / "frames"
    frames.mkdir()
    shutil.copyfile(corpus.photos[2], frames / "000000.png")
    shutil.copytree(tiny_bundle, root / "bundle")
    shutil.copytree(tiny_run.path, root / "run")
    return {"run": root / "run"}


ANIMATE = "animate {bundle} --image {photo} --source {video} --backend ort-cpu --out {out}/"
FULL = "File too large"
DISK_FULL = [
    # (id, command line, file-size limit in bytes, the output the error names, the problem it states,
    #  files the command rewrites before the failing write)
    ("mix", "mix {bundle} --background random --pose random --shape random --texture {photo} --out {out}/mix.png",
     300, "mix.png", FULL, ()),
    ("mix-batch", "mix {bundle} --batch {plan} --out {out}/batch", 300, "batch/mnm-batch.json", FULL, ()),
    ("animate-gif", ANIMATE + "anim.gif", 300, "anim.gif", FULL, ()),
    # OpenCV's writer hides the errno: the frames missing from the file tell
    ("animate-mp4", ANIMATE + "anim.mp4", 300, "anim.mp4", "0 of 6 frames reached the file", ()),
    ("animate-frames", ANIMATE + "frames", 300, "frames", FULL, ()),
    ("export", "export --random-init --preset tiny --out {out}/bundle", 100_000, "bundle", FULL, ()),
    # a resume rewrites options.json (atomically) and appends to stats.jsonl before its first checkpoint
    ("train-checkpoint", "train code --resume {out}/run --steps 2 --threads 1", 100_000, "run/checkpoints/00000002",
     FULL, ("run/options.json", "run/stats.jsonl")),
    ("data-synth", "data synth --out {out}/synth --n 4 --size 32 --workers 1", 2000, "synth", FULL, ()),
]


@pytest.mark.parametrize(("command", "limit", "names", "words", "rewritten"), [row[1:] for row in DISK_FULL],
                         ids=[row[0] for row in DISK_FULL])
def test_a_full_disk_is_one_clear_line_and_nothing_is_corrupted(command, limit, names, words, rewritten, corpus,
                                                               tiny_bundle, tiny_run, tmp_path):
    out = tmp_path / "out"
    _previous_outputs(out, corpus, tiny_bundle, tiny_run)
    plan = tmp_path / "plan.csv"
    plan.write_text("background,pose,shape,texture\nseed:1,seed:2,code:0,code:1\nseed:3,seed:4,code:1,code:2\n")
    before = digests(out)
    args = [t.format(bundle=tiny_bundle, photo=corpus.photos[0], video=corpus.video_ok, out=out, plan=plan)
            for t in command.split()]
    result = run_cli(*args, block_torch=args[0] in ("mix", "animate"), preexec_fn=file_size_limit(limit), timeout=300)

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(out / names) in errors[0], result.stderr
    assert words in errors[0], errors[0]
    after = digests(out)
    untouched = {k: v for k, v in before.items() if k not in rewritten}
    assert {k: v for k, v in after.items() if k in untouched} == untouched  # nothing there before was touched
    assert not [p for p in out.rglob("*") if p.name.startswith(atomic.TMP_PREFIX)]
    for new in sorted(set(after) - set(untouched)):  # whatever is new or rewritten is whole
        check_whole(out / new)


def check_whole(path: Path) -> None:
    """A file written under its final name reads back completely."""
    if path.suffix in (".png", ".gif"):
        with Image.open(path) as image:
            image.load()
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".jsonl":
        for line in path.read_text().splitlines():
            json.loads(line)


def test_unwritable_targets_are_one_error_naming_the_target(tmp_path):
    """The shared writer: a folder that cannot be created, and a file over the size limit."""
    with pytest.raises(MnmError, match=r"^/proc/mnm-hardening/x\.txt: cannot write \(") as err:
        atomic.write_text("/proc/mnm-hardening/x.txt", "x")
    assert "\n" not in str(err.value)
    with pytest.raises(MnmError, match=r"^/proc/mnm-hardening: cannot write \("), atomic.atomic_dir(
            "/proc/mnm-hardening"):
        pass
    with pytest.raises(RuntimeError), atomic.atomic_path(tmp_path / "y.txt") as tmp:  # other errors pass through
        tmp.write_text("half")
        raise RuntimeError("not a write failure")
    assert list(tmp_path.iterdir()) == []
