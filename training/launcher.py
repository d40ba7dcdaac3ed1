"""The ``--nproc`` launcher: ``mnm train code --nproc N`` starts N training processes on this machine.

``launch`` (torch-free) starts each as ``python -m mnm train worker --spec FILE`` (the CLI's hidden
command), with the process group in the environment as torchrun sets it; ``torchrun
--nproc_per_node=N -m mnm train code --data DIR ...`` starts the same processes itself. The training
side never imports the CLI: the processes enter through ``mnm``'s ``__main__``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnm.atomic import write_text

LAUNCHER_PID = "MNM_LAUNCHER_PID"


def launcher_gone() -> bool:
    """True when this process was started by ``launch`` and that launcher has died (kill -9)."""
    pid = os.environ.get(LAUNCHER_PID)
    return pid is not None and os.getppid() != int(pid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(spec: dict, nproc: int, grace_s: float = 10.0) -> int:
    """Run ``nproc`` training processes on this machine (``mnm train ... --nproc N``); their exit code.

    SIGINT and SIGTERM sent to the launcher are passed on, so a Ctrl-C makes rank 0 save a
    checkpoint. When one child fails the others get ``grace_s`` seconds to notice (their
    collectives fail) and are then killed.
    """
    with tempfile.TemporaryDirectory(prefix="mnm-launch-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        write_text(spec_file, json.dumps(spec))
        base_env = {
            # share the cores instead of each process taking all of them (as torchrun does)
            "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)),
            **os.environ,
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()),
            LAUNCHER_PID: str(os.getpid()),
        }
        cmd = [sys.executable, "-m", "mnm", "train", "worker", "--spec", str(spec_file)]
        children = [
            subprocess.Popen(cmd, env={**base_env, "RANK": str(rank), "LOCAL_RANK": str(rank)})
            for rank in range(nproc)
        ]

        def forward(signum, frame):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return _wait_all(children, grace_s)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _wait_all(children: list[subprocess.Popen], grace_s: float) -> int:
    """Wait for every child; the exit code of the first to fail (130 for a clean stop), else 0."""
    first_failure, failed_at = None, None
    while [c.poll() for c in children].count(None):  # poll every child, each round
        for child in children:
            if first_failure is None and child.returncode not in (None, 0, 130):
                first_failure, failed_at = child, time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace_s:
            for child in children:
                if child.poll() is None:
                    child.kill()
        time.sleep(0.1)
    if first_failure is None:  # they ended together: a failure before a clean stop
        first_failure = min(children, key=lambda c: (c.returncode in (0, 130), c.returncode == 0))
    code = first_failure.returncode
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell reports it
