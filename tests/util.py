"""Helpers shared by the test suites: run the real CLI in a subprocess, optionally with torch blocked."""

from __future__ import annotations

import os
import subprocess
import sys

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "
RANDOM_FACTORS = ("--background", "random", "--pose", "random", "--shape", "random", "--texture", "random")
"""``mnm mix`` options that name every factor random (the CLI refuses a factor left out)."""


def run_python(code: str, block_torch: bool = False, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; with ``block_torch`` every ``import torch`` raises ImportError."""
    env = {**os.environ, "MNM_NO_PROGRESS": "1", **kwargs.pop("env", {})}
    prefix = BLOCK_TORCH if block_torch else ""
    return subprocess.run(
        [sys.executable, "-c", prefix + code],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )


def run_cli(*args: str, block_torch: bool = False, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``mnm ARGS`` in a real subprocess and return its exit code and output."""
    code = f"import sys; from mnm.cli import run; sys.exit(run({list(map(str, args))!r}))"
    return run_python(code, block_torch=block_torch, timeout=timeout, **kwargs)


def find_tile(picture, tile) -> list[tuple[int, int]]:
    """Top-left corners (y, x) where ``tile`` appears in ``picture`` pixel for pixel."""
    import cv2
    import numpy as np

    diff = cv2.matchTemplate(picture.astype(np.float32), tile.astype(np.float32), cv2.TM_SQDIFF)
    h, w = tile.shape[:2]
    near = zip(*np.nonzero(diff < 0.1 * tile.size), strict=True)  # float32 sums are near, not exact: check each
    return [(int(y), int(x)) for y, x in near if np.array_equal(picture[y : y + h, x : x + w], tile)]
