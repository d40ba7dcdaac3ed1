"""One plan mixed three ways — one process, two ``--shard`` processes at once, Ray Data with two
actors on a real local Ray (writing through ``pyarrow.fs``) — gives byte-identical files and index."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.batch.conftest import digests, mix_cli, mixed_plan
from tests.util import BLOCK_TORCH


def shard_process(bundle: Path, plan: Path, out: Path, index: Path, shard: str) -> subprocess.Popen:
    code = (f"{BLOCK_TORCH}import sys; from mnm.cli import run; sys.exit(run(['mix', {str(bundle)!r}, '--batch', "
            f"{str(plan)!r}, '--out', {str(out)!r}, '--index', {str(index)!r}, '--shard', {shard!r}, "
            "'--threads', '1']))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MNM_NO_PROGRESS": "1"}, cwd=plan.parent)


@pytest.fixture(scope="module")
def one_process(tiny_bundle, refs, tmp_path_factory):
    root = tmp_path_factory.mktemp("three-ways")
    (root / "refs").mkdir()
    shutil.copy(refs[0], root / "refs" / "r0.png")  # a relative path: from the folder the command runs in
    plan = mixed_plan(root / "plan.csv", [Path("refs/r0.png"), *refs[1:]])
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", root / "one", "--index", root / "one.csv",
                     "--max-batch", "5", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "wrote 64 images" in result.stdout
    return plan, root


def test_shards_give_the_same_bytes_as_one_process(tiny_bundle, one_process):
    plan, root = one_process
    pieces = [shard_process(tiny_bundle, plan, root / "sharded", root / f"shard{i}.csv", f"{i}/2") for i in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in pieces]
    for p, (_, stderr) in zip(pieces, outputs, strict=True):
        assert p.returncode == 0, stderr
    written = sorted(int(stdout.split("wrote ")[1].split()[0]) for stdout, _ in outputs)
    assert written == [32, 32]  # every other row each; neither redid the other's
    assert digests(root / "sharded") == digests(root / "one") and len(digests(root / "one")) == 64
    one_index = (root / "one.csv").read_bytes()
    assert (root / "shard0.csv").read_bytes() == one_index == (root / "shard1.csv").read_bytes()
    assert (root / "sharded" / "mnm-batch.json").read_bytes() == (root / "one" / "mnm-batch.json").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'mnm[ray]')")
def test_ray_data_gives_the_same_bytes_as_one_process(tiny_bundle, one_process):
    plan, root = one_process
    session = tempfile.mkdtemp(prefix="mnm-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": session}
    try:
        result = mix_cli(tiny_bundle, "--batch", plan, "--out", f"file://{root / 'ray'}", "--index", root / "ray.csv",
                         "--ray", "--workers", "2", "--max-batch", "3", env=env, timeout=400, cwd=root)
    finally:
        shutil.rmtree(session, ignore_errors=True)
    if result.returncode != 0 and "cannot start Ray" in result.stderr:
        pytest.skip(f"Ray cannot start here: {result.stderr[-500:]}")
    assert result.returncode == 0, result.stderr
    assert "wrote 64 images to file://" in result.stdout
    assert digests(root / "ray") == digests(root / "one")
    assert (root / "ray.csv").read_bytes() == (root / "one.csv").read_bytes()
