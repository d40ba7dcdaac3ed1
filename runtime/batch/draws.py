"""Per-row randomness: a row's ``random`` parts are drawn from ``default_rng((seed, line))``.

The draws depend on the plan row and the seed only, never on which rows ran before it, in which
process, shard or Ray worker: that is what makes one process, ``--shard`` pieces and Ray write the
same bytes, and a resumed run the same images as an uninterrupted one. The parts are drawn in the
order background, pose, shape, texture, each factor's category before its z (as
``Factor.resolve`` samples them). ``draw`` only draws (the index reads the categories from it);
``resolve`` also makes the vectors the graphs take.
"""

from __future__ import annotations

import numpy as np

from mnm.config import ModelConfig
from mnm.runtime.requests import CODE_OF, FACTORS, HAS_Z, Factor, Mix


def draw(mix: Mix, seed: int, line: int, config: ModelConfig) -> Mix:
    """The row's mix with every missing category (an int) and z (a vector) drawn; images unchanged."""
    dims = config.code_dims()
    rng = None
    drawn = []
    for kind, factor in zip(FACTORS, (mix.background, mix.pose, mix.shape, mix.texture), strict=True):
        if factor is None or factor.is_image:
            drawn.append(factor)
            continue
        code, z = factor.code, factor.z
        if kind in CODE_OF and code is None:
            rng = rng or np.random.default_rng((seed, line))
            code = int(rng.integers(dims[CODE_OF[kind]]))
        if kind in HAS_Z and z is None:
            rng = rng or np.random.default_rng((seed, line))
            z = rng.standard_normal(config.z_dim).astype(np.float32)
        drawn.append(Factor(code=code, z=z, label=factor.label))
    return Mix(*drawn)


def resolve(mix: Mix, seed: int, line: int, config: ModelConfig) -> Mix:
    """The row's mix with concrete codes: categories one-hot, seeds as z vectors (``Factor.resolve``)."""
    factors = draw(mix, seed, line, config)
    # Nothing is left to sample, so Factor.resolve never touches its generator.
    return Mix(*(None if f is None else f.resolve(kind, config, None)
                 for kind, f in zip(FACTORS, (factors.background, factors.pose, factors.shape, factors.texture),
                                    strict=True)))
