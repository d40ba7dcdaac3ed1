"""Running a checked plan: windows of rows through one pipeline here, or through Ray's actors.

``run_here`` is one plain process (all rows, or every N-th row with ``--shard I/N``); ``ray_data``
spreads windows over an actor pool. Both read windows of ``WINDOW`` rows at most from the plan file,
so no step holds more than a window of rows, and a chunk of ``max_batch`` images, at once.
"""

from __future__ import annotations

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.runtime.batch.mixing import Job, Tally, mix_rows
from mnm.runtime.batch.plan import Scan, read_window
from mnm.runtime.requests import CODE_OF

SCAN_WINDOW = 16
"""Rows per window when the plan is scanned; runs merge consecutive ones into larger windows."""
WINDOW = 1024
"""The most rows one window (sorted by reference, then mixed by one pipeline) holds."""


def check_codes(scan: Scan, config: ModelConfig) -> None:
    """Refuse a ``code:K`` past the bundle's categories, naming the row (before any work)."""
    dims = config.code_dims()
    for kind, (largest, where) in scan.codes.items():
        n = dims[CODE_OF[kind]]
        if largest >= n:
            raise MnmError(f"{where}: {kind}: code:{largest} is out of range; the bundle's {CODE_OF[kind]} has "
                           f"{n} categories (code:0 to code:{n - 1})")


def merge_windows(windows: list[tuple[int, int, int]], rows: int) -> list[tuple[int, int, int]]:
    """Consecutive scan windows joined into windows of about ``rows`` rows."""
    merged: list[tuple[int, int, int]] = []
    for offset, line, count in windows:
        if merged and merged[-1][2] + count <= rows:
            first_offset, first_line, total = merged[-1]
            merged[-1] = (first_offset, first_line, total + count)
        else:
            merged.append((offset, line, count))
    return merged


def ray_window(rows: int, workers: int) -> int:
    """Windows small enough that every actor gets eight or more (so none idles long at the end), large
    enough to group references."""
    return max(SCAN_WINDOW, min(WINDOW, rows // (8 * workers)))


def run_here(pipe, job: Job, windows, store, progress) -> Tally:
    """Every window in this process; ``progress(rows)`` after each."""
    total = Tally()
    for offset, line, count in merge_windows(windows, WINDOW):
        total.add(mix_rows(pipe, job, read_window(job.plan, offset, line, count), store))
        progress(count)
    return total
