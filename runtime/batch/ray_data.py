"""``mnm mix --batch PLAN --ray``: the plan as a Ray Dataset, mixed by an actor pool of ``Pipeline``s.

The Dataset's items are the plan's windows (``Scan.windows``: a byte offset, a first line and a
row count), one block each, so Ray hands whole windows to the actors: a window's rows are read
from the plan file by the actor that mixes them (the plan and the references must be on a path
every node sees), grouped by reference inside the window, and its rows that share references meet
in that actor's pipeline and caches (``mixing``). Each actor (``WindowMixer``) holds one
``Pipeline`` for its life and writes its files itself, to a shared folder or a ``pyarrow.fs``
URL; only small per-window tallies come back to the driver, which reports progress as windows
finish. Nothing holds the plan's images: a window's images live only while its chunk is written.

Ray is an extra (``pip install 'mnm[ray]'``), imported only here. Without ``address`` a local Ray
instance is started on loopback with ``workers`` CPUs and stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.batch.mixing import Job, Tally, mix_rows
from mnm.runtime.batch.plan import read_window
from mnm.runtime.batch.store import open_store

log = logging.getLogger(__name__)
GPU_BACKENDS = ("ort-cuda", "ort-trt", "tensorrt")
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20
"""The object store of a local instance: windows and tallies are small, no image passes through it."""


class WindowMixer:
    """A Ray actor: one ``Pipeline`` mixing whole windows of the plan into the output store."""

    def __init__(self, job: Job, bundle: str, target: str, pipeline_options: dict):
        from mnm.runtime.pipeline import Pipeline

        self.job, self.failure = job, ""
        try:  # a worker that cannot start (say, its backend) answers every window with why, in one line
            self.store = open_store(target)
            self.pipe = Pipeline(bundle, **pipeline_options)
        except MnmError as exc:
            self.failure = str(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tallies, errors = [], []
        for offset, line, count in zip(batch["offset"], batch["first_line"], batch["rows"], strict=True):
            try:
                if self.failure:
                    raise MnmError(self.failure)
                rows = read_window(self.job.plan, int(offset), int(line), int(count))
                tallies.append((int(count), mix_rows(self.pipe, self.job, rows, self.store)))
                errors.append("")
            except MnmError as exc:  # reported by the driver as one line
                tallies.append((int(count), Tally()))
                errors.append(str(exc))
        return {
            "rows": np.array([n for n, _ in tallies]),
            "written": np.array([t.written for _, t in tallies]),
            "existed": np.array([t.existed for _, t in tallies]),
            "stage_needed": np.array([t.stage_needed for _, t in tallies]),
            "stage_run": np.array([t.stage_run for _, t in tallies]),
            "failed": np.array([json.dumps(t.failed) for _, t in tallies]),
            "error": np.array(errors),
        }


@contextlib.contextmanager
def ray_session(address: str | None, workers: int):
    """Ray for the run: the cluster at ``address``, or a local instance on loopback with ``workers``
    CPUs, stopped at the end (an instance this process already runs is used as it is)."""
    try:
        import ray
    except ImportError as exc:
        raise MnmError(f"--ray needs the ray extra: pip install 'mnm[ray]' ({exc})") from None
    if ray.is_initialized():
        yield
        return
    local = {"_node_ip_address": "127.0.0.1", "num_cpus": workers,
             "object_store_memory": LOCAL_OBJECT_STORE_BYTES} if address is None else {}
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, **local)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        where = f"join the Ray cluster at {address}" if address else "start Ray"
        raise MnmError(f"cannot {where}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def mix_on_ray(job: Job, windows, bundle: str, target: str, pipeline_options: dict, workers: int,
               progress) -> Tally:
    """Mix every window with ``workers`` actors (inside ``ray_session``); ``progress(rows)`` as each finishes."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours reports rows; Ray's would interleave on stderr
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timing lines: in Ray's session logs
    items = [{"offset": o, "first_line": line, "rows": n} for o, line, n in windows]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        WindowMixer, fn_constructor_args=(job, bundle, target, pipeline_options),
        batch_size=1, num_cpus=1,
        # one window in flight per actor: a queued window waits for the actor that is free first
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_gpus=1 if pipeline_options.get("backend") in GPU_BACKENDS else 0,
    )
    total = Tally()
    for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
        if batch["error"][0]:
            raise MnmError(str(batch["error"][0]))
        total.add(Tally(int(batch["written"][0]), int(batch["existed"][0]),
                        [tuple(f) for f in json.loads(str(batch["failed"][0]))],
                        int(batch["stage_needed"][0]), int(batch["stage_run"][0])))
        progress(int(batch["rows"][0]))
    return total
