"""Two gloo processes on the CPU (`mnm train code --nproc 2`): one run folder written by rank 0,
every checkpoint recording identical per-rank checksums that match the saved tensors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mnm.checkpoint import load_checkpoint
from mnm.training.distributed import tensor_digest
from mnm.training.launcher import _wait_all
from tests.util import run_cli


def test_two_processes_train_identical_replicas(synth_data, tmp_path):
    proc = run_cli("train", "code", "--data", synth_data, "--out", tmp_path, "--preset", "tiny", "--steps", "2",
                   "--batch", "2", "--log-every", "1", "--threads", "1",
                   "--nproc", "2", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["00000-code-tiny"]  # only rank 0 writes
    run_dir = Path(re.search(r"^run folder: (.+)$", proc.stdout, re.M).group(1))
    assert proc.stdout.count("run folder:") == 1

    options = json.loads((run_dir / "options.json").read_text())
    assert options["world_size"] == 2
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["kimg"] == 2 * 2 * 2 / 1000  # steps × batch × processes

    tensors, meta = load_checkpoint(run_dir / "checkpoints" / "00000002")
    assert meta["world_size"] == 2 and meta["images_seen"] == 2 * 4
    rank0, rank1 = meta["replica_checksums"]
    assert rank0 == rank1 == tensor_digest(tensors).hex()


def test_launcher_stops_the_others_when_one_process_fails():
    """A failed rank leaves its peers blocked in collectives: they are killed after the grace time,
    and the launcher reports the failure's exit code, not the kill's."""
    peers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]),
             subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])]
    began = time.monotonic()
    assert _wait_all(peers, grace_s=0.5) == 3
    assert time.monotonic() - began < 60 and peers[0].returncode == -signal.SIGKILL
