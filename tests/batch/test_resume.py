"""A run killed half-way (SIGKILL) resumes: finished rows are not redone, the rest completes and the
folder equals an uninterrupted run's; a resume with another bundle, plan or seed is refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from tests.batch.conftest import digests, mix_cli, write_plan
from tests.util import BLOCK_TORCH

ROWS = 600


def codes_plan(path, rows: int):
    return write_plan(path, [(f"seed:{i}", f"seed:{i + 7}", f"code:{i % 2}", f"code:{i % 4}", "") for i in range(rows)],
                      header="background,pose,shape,texture,out")


def finished(folder):
    """The images under their final names (a killed writer's temporary file is hidden: ``.mnm-tmp-...``)."""
    return [p for p in folder.glob("*.png") if not p.name.startswith(".")]


def test_a_killed_run_resumes_to_the_uninterrupted_result(tiny_bundle, tmp_path):
    plan = codes_plan(tmp_path / "plan.csv", ROWS)
    whole = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "whole", "--max-batch", "4")
    assert whole.returncode == 0, whole.stderr

    folder = tmp_path / "killed"
    code = (f"{BLOCK_TORCH}import sys; from mnm.cli import run; sys.exit(run(['mix', {str(tiny_bundle)!r}, "
            f"'--batch', {str(plan)!r}, '--out', {str(folder)!r}, '--max-batch', '4', '--threads', '1']))")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "MNM_NO_PROGRESS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(finished(folder)) < ROWS // 4:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no progress in 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = {p.name: p.stat().st_mtime_ns for p in finished(folder)}
    assert ROWS // 4 <= len(done) < ROWS

    resumed = mix_cli(tiny_bundle, "--batch", plan, "--out", folder, "--max-batch", "4")
    assert resumed.returncode == 0, resumed.stderr
    assert f"wrote {ROWS - len(done)} images" in resumed.stdout and f"{len(done)} already there" in resumed.stdout
    assert {name: (folder / name).stat().st_mtime_ns for name in done} == done  # not redone
    assert digests(folder) == digests(tmp_path / "whole") and len(digests(folder)) == ROWS
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # the killed writer's temp file is gone


def test_a_resume_with_another_bundle_plan_or_seed_is_refused(tiny_bundle, tmp_path):
    plan = codes_plan(tmp_path / "plan.csv", 4)
    folder = tmp_path / "out"
    assert mix_cli(tiny_bundle, "--batch", plan, "--out", folder).returncode == 0
    other_bundle = shutil.copytree(tiny_bundle, tmp_path / "other-bundle")
    manifest = json.loads((other_bundle / "manifest.json").read_text())
    (other_bundle / "manifest.json").write_text(json.dumps({**manifest, "created": "2026-01-01T00:00:00Z"}))
    other_plan = codes_plan(tmp_path / "other.csv", 5)
    for bundle, args, what in ((other_bundle, [plan], "bundle_sha256"), (tiny_bundle, [other_plan], "plan_sha256"),
                               (tiny_bundle, [plan, "--seed", "1"], "seed 0 there, 1 now")):
        result = mix_cli(bundle, "--batch", *args, "--out", folder)
        assert result.returncode == 2 and result.stderr.count("error:") == 1, result.stderr
        assert f"error: {folder}: made by another run ({what}" in result.stderr
    assert len(list(folder.glob("*.png"))) == 4  # nothing was added or replaced
