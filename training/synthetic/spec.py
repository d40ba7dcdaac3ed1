"""The parameters of a synthetic dataset, their validation, and the seeded random streams.

Everything a scene depends on is derived from a ``SynthSpec`` and an image index, never from
process state, so the same parameters give the same bytes in any worker layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from mnm.codes import parent_of
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.jsonfile import read_json_object

# First word of every seed key: keeps the random streams of different kinds of thing apart.
DOMAIN_IMAGE, DOMAIN_SHAPE, DOMAIN_TEXTURE, DOMAIN_BACKGROUND, DOMAIN_WORLD = range(5)
# Streams of one image: the sampled factors, the background jitter, the texture jitter.
STREAM_FACTORS, STREAM_BACKGROUND, STREAM_TEXTURE = range(3)


def rng_for(seed: int, domain: int, index: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on its four-part key."""
    return np.random.default_rng(np.random.SeedSequence([seed, domain, index, stream]))


@dataclass(frozen=True)
class SynthSpec:
    """What ``mnm data synth`` renders: image side, family counts, correlation and seed."""

    size: int = 64
    shapes: int = 4  # N_p silhouette families
    textures_per_shape: int = 3  # k: N_c = N_p * k textures, child c belongs to parent c // k
    backgrounds: int = 12  # N_b background families
    correlation: float = 0.8  # rho: P(background drawn from the texture's preferred family)
    seed: int = 0
    # The object's larger box side as a fraction of the image side, drawn uniformly from this range.
    # Background must show around the box: FineGAN's background stage learns only from real patches
    # that lie off it.
    object_min: float = 0.35
    object_max: float = 0.65

    @property
    def n_child(self) -> int:
        return self.shapes * self.textures_per_shape

    @property
    def model_config(self) -> ModelConfig:
        """The code layout a model trained on this data uses (children in contiguous groups)."""
        return ModelConfig(image_size=self.size, n_parent=self.shapes, n_child=self.n_child)

    def parent(self, c: int) -> int:
        return int(parent_of(c, self.model_config))

    def preferred_background(self, c: int) -> int:
        """Texture c prefers background family c mod N_b (b = c when N_b = N_c, as in the reference)."""
        return int(c) % self.backgrounds

    def validate(self) -> SynthSpec:
        s = self.size
        if not (is_int(s) and 32 <= s <= 512 and s & (s - 1) == 0):
            raise MnmError(f"--size must be a power of two from 32 to 512, got {s!r}")
        for name, flag in (("shapes", "--shapes"), ("textures_per_shape", "--textures-per-shape"),
                           ("backgrounds", "--backgrounds")):
            value = getattr(self, name)
            if not (is_int(value) and 1 <= value <= 10_000):
                raise MnmError(f"{flag} must be an integer from 1 to 10000, got {value!r}")
        rho = self.correlation
        if not (isinstance(rho, (int, float)) and 0.0 <= float(rho) <= 1.0):
            raise MnmError(f"--correlation must be a number from 0 to 1, got {rho!r}")
        lo, hi = self.object_min, self.object_max
        if not (all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
                and 0.1 <= lo <= hi <= 0.95):
            raise MnmError(f"--object-size must be two fractions with 0.1 <= min <= max <= 0.95, got {lo!r}, {hi!r}")
        if not (is_int(self.seed) and 0 <= self.seed < 2**63):
            raise MnmError(f"--seed must be a non-negative integer, got {self.seed!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "synth.json") -> SynthSpec:
        known = {f.name for f in fields(cls)}
        missing = sorted(known - set(data))
        if missing:
            raise MnmError(f"{source}: missing field(s) {', '.join(missing)}")
        return cls(**{k: data[k] for k in known}).validate()

    @classmethod
    def load(cls, root: str | Path) -> SynthSpec:
        """The spec of a rendered dataset folder, read from its ``synth.json``."""
        path = Path(root) / "synth.json"
        data = read_json_object(path, "synthetic data description",
                                missing=f"not found; is {root} a folder written by `mnm data synth`?")
        if not isinstance(data.get("spec"), dict):
            raise MnmError(f"{path}: no 'spec' object in it")
        return cls.from_dict(data["spec"], source=str(path))


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
