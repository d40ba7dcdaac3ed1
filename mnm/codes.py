"""The codes z, b, p, c: sampling, one-hot, parent_of, and parsing of user-given codes.

numpy only, so the runtime and training share one definition. Soft codes (any non-negative
vector summing to 1) are accepted wherever a one-hot code is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnm.config import ModelConfig
from mnm.errors import MnmError


@dataclass
class Codes:
    """A batch of codes: z [N, Z] float32, b/p/c [N, n] float32 probability vectors."""

    z: np.ndarray
    b: np.ndarray
    p: np.ndarray
    c: np.ndarray

    def __len__(self) -> int:
        return len(self.z)


def one_hot(index, n: int) -> np.ndarray:
    """[N] integer indices → [N, n] float32 one-hot rows."""
    try:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
    except OverflowError:  # beyond int64: out of range whatever n is
        raise MnmError(f"code index out of range 0..{n - 1}: {index}") from None
    if index.size and (index.min() < 0 or index.max() >= n):
        raise MnmError(f"code index out of range 0..{n - 1}: {index.tolist()}")
    out = np.zeros((index.size, n), np.float32)
    out[np.arange(index.size), index] = 1.0
    return out


def parent_of(c, cfg: ModelConfig) -> np.ndarray:
    """Parent (shape) index of each child (texture) index: children come in contiguous groups."""
    return np.asarray(c, dtype=np.int64) // cfg.children_per_parent


def sample_codes(cfg: ModelConfig, n: int, rng: np.random.Generator, constrained: bool = True) -> Codes:
    """Codes for n images.

    constrained (the adversarial side of training and random generation): c uniform,
    p = parent_of(c), b = c. Unconstrained (code reprediction, Eq. 3): all independent.
    """
    z = rng.standard_normal((n, cfg.z_dim)).astype(np.float32)
    c = rng.integers(0, cfg.n_child, n)
    if constrained:
        p, b = parent_of(c, cfg), c
    else:
        p = rng.integers(0, cfg.n_parent, n)
        b = rng.integers(0, cfg.n_bg, n)
    return Codes(z=z, b=one_hot(b, cfg.n_bg), p=one_hot(p, cfg.n_parent), c=one_hot(c, cfg.n_child))


def as_categorical(value, n: int, name: str = "code") -> np.ndarray:
    """An index, a one-hot or a soft vector → a [n] float32 probability vector."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return one_hot([int(value)], n)[0]
    vec = np.asarray(value, dtype=np.float32).reshape(-1)
    if vec.shape != (n,):
        raise MnmError(f"{name} must be an index or a vector of length {n}, got shape {vec.shape}")
    if not np.all(np.isfinite(vec)) or vec.min() < 0 or abs(float(vec.sum()) - 1.0) > 1e-3:
        raise MnmError(f"{name} must be non-negative and sum to 1 (a one-hot or soft code)")
    return vec


def z_from_seed(seed: int, z_dim: int) -> np.ndarray:
    """The z for a seed: the same seed gives the same z in every process and backend."""
    if seed < 0:
        raise MnmError(f"seed:{seed}: a seed is a non-negative integer")
    return np.random.default_rng(seed).standard_normal(z_dim).astype(np.float32)
