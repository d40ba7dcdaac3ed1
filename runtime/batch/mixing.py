"""Mixing a window of plan rows with one ``Pipeline``: the work a plain process and a Ray actor share.

A window is a run of consecutive plan rows (``Scan.windows``). Its rows whose file exists are
skipped; the rest are **grouped by reference** — sorted by their background, then pose, shape and
texture cells — and rendered ``max_batch`` at a time, so rows that share a reference meet in one
``render`` call (one encoding, one ``g_background`` run) or in consecutive ones (the pipeline's
caches). Grouping changes which rows share a graph run, never a row's bytes: a row's random draws
come from its line and the seed (``draws``), and each row's result does not depend on its
neighbours in a batch.

A chunk that fails is retried row by row to name the row: with ``keep_going`` the row is recorded
as failed and the others are written; without it the run stops with that row's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mnm.errors import MnmError
from mnm.imaging import encode_image
from mnm.runtime.batch.draws import resolve
from mnm.runtime.batch.plan import Plan, PlanRow, output_format

STAGE_GRAPHS = ("enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "extractor")
"""The graphs whose results a row may take from a cache or a batch neighbour (all but g_child)."""


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to mix rows; small and picklable (sent to every Ray actor)."""

    plan: Plan
    seed: int = 0
    group: bool = True
    keep_going: bool = False
    shard: tuple[int, int] = (0, 1)

    def mine(self, row: PlanRow) -> bool:
        index, count = self.shard
        return (row.number - 1) % count == index


@dataclass
class Tally:
    """What a window (or a whole run) did; ``stage_needed``/``stage_run`` give the cache hit rate."""

    written: int = 0
    existed: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    stage_needed: int = 0
    stage_run: int = 0

    def add(self, other: Tally) -> None:
        self.written += other.written
        self.existed += other.existed
        self.failed.extend(other.failed)
        self.stage_needed += other.stage_needed
        self.stage_run += other.stage_run

    @property
    def hit_rate(self) -> float:
        """The share of encoder and stage results (per row) that came without a graph run of their own."""
        return 1.0 - self.stage_run / self.stage_needed if self.stage_needed else 0.0


def mix_rows(pipe, job: Job, rows: list[PlanRow], store) -> Tally:
    """Mix ``rows`` (this shard's only) into ``store``, a chunk of ``pipe.max_batch`` at a time."""
    tally = Tally()
    todo = []
    for row in rows:
        if not job.mine(row):
            continue
        if store.exists(row.out):
            tally.existed += 1
            continue
        try:
            mix = job.plan.check(row)
        except MnmError:  # counted at the scan; under keep_going it is in the index
            if not job.keep_going:
                raise
            continue
        todo.append((row, resolve(mix, job.seed, row.line, pipe.config)))
    if job.group:
        todo.sort(key=lambda item: reference_key(item[0]))
    before = _stage_images(pipe)
    for start in range(0, len(todo), pipe.max_batch):
        chunk = todo[start : start + pipe.max_batch]
        for row, image in _render(pipe, job, chunk, tally):
            store.write(row.out, encode_image(image, output_format(Path(row.out).suffix)))
            tally.written += 1
    tally.stage_run = _stage_images(pipe) - before
    tally.stage_needed = sum(stage_work(mix, job.plan.mode) for _, mix in todo)
    return tally


def reference_key(row: PlanRow) -> tuple[str, ...]:
    """Rows that share a background (then pose, shape, texture) sort next to each other."""
    cells = row.cells
    return (cells["background"], cells["pose"], cells["shape"], cells["texture"])


def stage_work(mix, mode: str) -> int:
    """Encoder and stage results one row needs: g_background, g_parent or S, and each reference's encodings."""
    work = 2 + (2 if mix.background.is_image else 0) + (1 if mix.texture.is_image else 0)
    if mode == "code":
        work += (1 if mix.pose.is_image else 0) + (1 if mix.shape.is_image else 0)
    return work


def _render(pipe, job: Job, chunk, tally: Tally) -> list:
    plan = job.plan
    try:
        rendered = pipe.render([mix for _, mix in chunk], mode=plan.mode, stitch=plan.stitch)
    except MnmError as exc:
        if len(chunk) > 1:  # again row by row, to name the row that fails
            return [pair for item in chunk for pair in _render(pipe, job, [item], tally)]
        row = chunk[0][0]
        error = MnmError(f"{plan.where(row)}: {exc}")
        if not job.keep_going:
            raise error from None
        tally.failed.append((row.line, str(error)))
        return []
    return [(row, r.image) for (row, _), r in zip(chunk, rendered, strict=True)]


def _stage_images(pipe) -> int:
    return sum(pipe.counters.images(g) for g in STAGE_GRAPHS)
