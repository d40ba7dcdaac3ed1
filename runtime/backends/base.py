"""What every backend provides, and the error that means "this backend cannot run here"."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mnm.errors import MnmError


class BackendUnavailable(MnmError):
    """The backend cannot run on this machine or install; ``--backend auto`` moves on to the next."""


class Backend(Protocol):
    """``run`` takes and returns float32 arrays by tensor name; it must be safe to call from many threads."""

    name: str

    @property
    def description(self) -> str: ...

    def run(
        self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def zero_feeds(graph, batch: int = 1) -> dict[str, np.ndarray]:
    """Zeros for every input of ``graph`` (a bundle ``GraphEntry``): the warm-up run at creation."""
    return {t.name: np.zeros([batch if d == "batch" else d for d in t.shape], np.float32) for t in graph.inputs}


def first_line(exc: BaseException) -> str:
    """An exception as one line (libraries raise multi-line messages)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
