"""Per-row randomness: a row's ``random`` factors are drawn from ``default_rng((seed, line))``.

The draw depends on the plan row and the seed only, never on which rows ran before it, in which
process, shard or Ray worker: that is what makes one process, ``--shard`` pieces and Ray write the
same bytes, and a resumed run the same images as an uninterrupted one. Factors are resolved in the
order background, pose, shape, texture.
"""

from __future__ import annotations

import numpy as np

from mnm.config import ModelConfig
from mnm.runtime.requests import FACTORS, Mix


def row_rng(seed: int, line: int) -> np.random.Generator:
    return np.random.default_rng((seed, line))


def resolve(mix: Mix, seed: int, line: int, config: ModelConfig) -> Mix:
    """The row's mix with every code factor concrete (images pass through to the encoders)."""
    rng = row_rng(seed, line)
    factors = (mix.background, mix.pose, mix.shape, mix.texture)
    return Mix(*(None if f is None else f.resolve(kind, config, rng) for kind, f in zip(FACTORS, factors, strict=True)))
