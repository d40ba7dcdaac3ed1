"""Progress bars for long work (training, export, builds, batch generation, video).

One place decides how progress looks; bars go to stderr so stdout stays machine-readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def enabled() -> bool:
    """Bars are off when MNM_NO_PROGRESS is set (tests, logs)."""
    return not os.environ.get("MNM_NO_PROGRESS")


def track(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
          terminal_only: bool = False):
    """A tqdm bar on stderr; use as an iterator wrapper or as a context manager with ``update``.
    ``terminal_only``: no bar when stderr is not a terminal (a report printed after the bar would
    share the captured file with its carriage returns)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled() or (terminal_only and not sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )
