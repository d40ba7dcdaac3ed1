"""Two gloo processes on the CPU: `mnm train code --nproc 2` writes one run folder from rank 0 with
identical per-rank checksums; the collectives average (not sum) what differs between replicas; a
non-finite loss on one process stops every process at the same check."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mnm.checkpoint import load_checkpoint
from mnm.training.distributed import tensor_digest
from mnm.training.launcher import _free_port, _wait_all
from tests.util import run_cli

ROOT = Path(__file__).resolve().parents[2]
GROUP_SETUP = """
import json, os, sys, time
import torch
from mnm.training import distributed
replicas = distributed.init("cpu")
rank = replicas.rank
"""


def run_group(body: str, tmp_path: Path, world: int = 2, timeout: float = 240) -> list[dict]:
    """Run ``body`` in ``world`` real processes joined in one gloo group (the environment torchrun and
    ``--nproc`` set); each prints one JSON line, returned in rank order."""
    env = {**os.environ, "MNM_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "WORLD_SIZE": str(world),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OUT": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", GROUP_SETUP + body], cwd=ROOT, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(world)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


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

    # Resumed by one process: allowed, said, and recorded; the data continue where the two left off.
    proc = run_cli("train", "code", "--resume", run_dir, "--steps", "3", "--threads", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("note: resuming a run of 2 process(es) with 1: the global batch goes from 4 to 2 images per step; "
            "the data continue at image 8") in proc.stderr
    options = json.loads((run_dir / "options.json").read_text())
    assert options["world_size"] == 1
    assert [{k: r[k] for k in ("step", "world_size", "from_world_size")} for r in options["resumes"]] == [
        {"step": 2, "world_size": 1, "from_world_size": 2}]
    _, meta = load_checkpoint(run_dir / "checkpoints" / "00000003")
    assert meta["world_size"] == 1 and meta["images_seen"] == 2 * 4 + 2


def test_launcher_stops_the_others_when_one_process_fails():
    """A failed rank leaves its peers blocked in collectives: they are killed after the grace time,
    and the launcher reports the failure's exit code, not the kill's."""
    peers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]),
             subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])]
    began = time.monotonic()
    assert _wait_all(peers, grace_s=0.5) == 3
    assert time.monotonic() - began < 60 and peers[0].returncode == -signal.SIGKILL


def test_collectives_average_what_differs_between_replicas(tmp_path):
    """Replicas hold different data: rank r's gradient is (r + 1)·g. The mean, 1.5·g, and the sum, 3·g,
    differ, so one SGD step of size 1 tells averaging from summing; likewise buffers and stats."""
    body = """
w = torch.nn.Parameter(torch.full((3,), float(rank)))  # replicas start apart: the broadcast aligns them
module = torch.nn.Linear(1, 1)
module.register_buffer("running", torch.full((2,), float(rank)))
module.weight.data.fill_(float(rank))
holder = torch.nn.Module()
holder.w = w
replicas.broadcast_modules({"holder": holder})
after_broadcast = w.detach().tolist()
optimizer = torch.optim.SGD([w], lr=1.0)
replicas.average_gradients_before_step({"sgd": optimizer})
optimizer.zero_grad()
((rank + 1) * (w * torch.tensor([1.0, 2.0, 3.0])).sum()).backward()
optimizer.step()
replicas.average_buffers({"module": module})
print(json.dumps({
    "after_broadcast": after_broadcast, "w": w.detach().tolist(), "buffer": module.running.tolist(),
    "weight_kept": module.weight.item(), "stats": replicas.mean_stats({"loss": float(rank + 1)}),
    "any": replicas.any(rank == 1), "none": replicas.any(False),
}))
distributed.shutdown(replicas)
"""
    for rank, result in enumerate(run_group(body, tmp_path)):
        assert result["after_broadcast"] == [0.0, 0.0, 0.0]  # rank 0's values
        assert result["w"] == [-1.5, -3.0, -4.5]  # 0 − mean(1, 2)·(1, 2, 3); a sum would give −3, −6, −9
        assert result["buffer"] == [0.5, 0.5]  # mean of 0 and 1
        assert result["weight_kept"] == float(rank)  # parameters are not buffers: left alone
        assert result["stats"] == {"loss": 1.5}
        assert result["any"] is True and result["none"] is False


def test_a_non_finite_loss_on_one_process_stops_every_process_at_the_same_check(tmp_path):
    """Rank 1's batch holds a NaN. Both processes must raise ``NonFiniteLoss`` in the discriminator
    step: without agreement rank 0 would wait in the gradient average for a peer that never comes
    (rank 1 stays alive here, waiting for rank 0's report, as a real peer in its next collective)."""
    body = """
import numpy as np
from mnm.config import PRESETS
from mnm.training.code_mode import CodeModeTrainer
from mnm.training.losses import NonFiniteLoss
from mnm.training.options import TrainOptions
from tests.training.test_steps import make_batch
torch.manual_seed(0)
trainer = CodeModeTrainer(PRESETS["tiny"], TrainOptions(), "cpu")
replicas.broadcast_modules(trainer.modules())
replicas.average_gradients_before_step(trainer.optimizers())
batch = make_batch(rank)
if rank == 1:
    batch["object"][0, 0, 0, 0] = float("nan")
began = time.monotonic()
try:
    trainer.train_step(batch, np.random.default_rng(rank))
    result = {"raised": None}
except NonFiniteLoss as exc:
    result = {"raised": "NonFiniteLoss", "step": exc.step_name, "loss": exc.loss_name, "message": str(exc)}
except RuntimeError as exc:  # what a peer stuck in a collective gets once the other is gone
    result = {"raised": type(exc).__name__, "message": str(exc)[:200]}
result["seconds"] = time.monotonic() - began
mine, peer = f"{os.environ['OUT']}/rank{rank}", f"{os.environ['OUT']}/rank{1 - rank}"
open(mine, "w").write("done")
deadline = time.monotonic() + 30
while not os.path.exists(peer) and time.monotonic() < deadline:  # stay in the group until the peer reports
    time.sleep(0.1)
print(json.dumps(result))
distributed.shutdown(replicas)  # as train() does on every exit path
"""
    rank0, rank1 = run_group(body, tmp_path)
    assert rank1["raised"] == "NonFiniteLoss" and rank1["step"] == "discriminator" and rank1["loss"] is not None
    assert rank0["raised"] == "NonFiniteLoss" and rank0["step"] == "discriminator" and rank0["loss"] is None
    assert rank0["message"] == "non-finite loss on another process in the discriminator step"
