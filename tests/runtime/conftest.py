"""Fixtures for the runtime suites: one tiny random-init bundle per session, its PyTorch twin, and
reference photos.

The bundle is made with the exporter's Python API (``mnm.export.export_random``); the same (config,
seed) rebuilds the identical torch modules (``mnm.export.random_init_modules``), so tests can compute
the expected outputs in PyTorch while the runtime under test never imports torch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnm.config import PRESETS

BUNDLE_SEED = 3
TINY = PRESETS["tiny"]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A tiny (S=32) random-init bundle with both modes; read-only by convention (copy to tamper)."""
    from mnm.export import export_random

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    export_random(TINY, out, seed=BUNDLE_SEED, preset="tiny", parity_batches=(2,))
    return out


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle that a test may damage."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def torch_twin():
    """The bundle's networks in PyTorch (generator, encoders, extractor), eval mode."""
    from mnm.export import random_init_modules

    return random_init_modules(TINY, BUNDLE_SEED)


def photo(path: Path, seed: int, size=(70, 52)) -> Path:
    """A made-up photo: a smooth coloured background with an ellipse 'object'; distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 215, 3)
    slope = rng.uniform(-1.5, 1.5, (2, 3))
    img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    inside = ((xx - cx) / (0.2 * w)) ** 2 + ((yy - cy) / (0.25 * h)) ** 2 < 1
    img[inside] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> list[Path]:
    """Six distinct reference photos (PNG, 70 x 52: the runtime crops the centred square)."""
    folder = tmp_path_factory.mktemp("photos")
    return [photo(folder / f"ref{i}.png", seed=100 + i) for i in range(6)]
