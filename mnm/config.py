"""Model configuration: one frozen dataclass, three presets, JSON and CLI overrides.

Everything that fixes a tensor shape lives here, so a checkpoint's config is enough to rebuild
its networks and a bundle's config is enough to check its graphs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

from mnm.errors import MnmError


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of every network (docs/networks.md).

    ``n_child`` children come in ``n_parent`` contiguous groups; the number of background codes
    equals ``n_child`` as in the reference (constrained sampling sets b = c).
    """

    image_size: int = 128  # S: side of the square images the networks see
    z_dim: int = 100  # Z: continuous pose/variation code
    ngf: int = 64  # generator width
    ndf: int = 64  # encoder, extractor and discriminator width
    n_parent: int = 20  # N_p: shape codes
    n_child: int = 200  # N_c: texture codes (N_b = N_c)

    @property
    def n_bg(self) -> int:
        return self.n_child

    @property
    def children_per_parent(self) -> int:
        return self.n_child // self.n_parent

    @property
    def feature_channels(self) -> int:
        """Channels of the shape feature φ(p, z) and of S(x): 16 at ngf=64."""
        return self.ngf // 4

    def code_dims(self) -> dict[str, int]:
        return {"z": self.z_dim, "b": self.n_bg, "p": self.n_parent, "c": self.n_child}

    def validate(self) -> ModelConfig:
        s = self.image_size
        if not (isinstance(s, int) and 32 <= s <= 256 and s & (s - 1) == 0):
            raise MnmError(f"image_size must be a power of two from 32 to 256, got {s}")
        for name in ("z_dim", "ngf", "ndf", "n_parent", "n_child"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MnmError(f"{name} must be a positive integer, got {value!r}")
        if self.ngf % 8:
            raise MnmError(f"ngf must be a multiple of 8 (the shape feature has ngf/4 channels), got {self.ngf}")
        if self.ndf % 8:
            raise MnmError(f"ndf must be a multiple of 8, got {self.ndf}")
        if self.n_child % self.n_parent:
            raise MnmError(
                f"n_child ({self.n_child}) must be a multiple of n_parent ({self.n_parent}): "
                "each texture belongs to exactly one shape"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MnmError(f"{source}: unknown config field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise MnmError(f"{source}: field {key} must be an integer, got {value!r}")
        return cls(**data).validate()


def background_input_size(image_size: int) -> int:
    """Side B of the background-discriminator input: 126·S/128 rounded down (126 at S=128, as the
    reference; 31 at S=32). The data loaders crop to it and the background D is built for it."""
    return 126 * image_size // 128


PRESETS: dict[str, ModelConfig] = {
    # The paper's CUB model.
    "paper": ModelConfig(),
    # The CPU demo model. Sized by measured training speed on 2 cores (README, "The demo model"):
    # a code-mode step at batch 12 takes 0.22 s at S=32 and 0.37 s at S=64, so S=32 trains 1.7x
    # more steps in the two hours.
    "lite": ModelConfig(image_size=32, z_dim=32, ngf=32, ndf=16, n_parent=4, n_child=16),
    # For tests: a training step well under a second on 2 cores.
    "tiny": ModelConfig(image_size=32, z_dim=16, ngf=16, ndf=16, n_parent=2, n_child=4),
}


def resolve_config(
    preset: str = "paper",
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ModelConfig:
    """Preset, then a JSON file's fields, then ``key=value`` overrides; validated once at the end."""
    if preset not in PRESETS:
        raise MnmError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    data = PRESETS[preset].to_dict()
    if config_file is not None:
        from mnm.jsonfile import read_json_object

        path = Path(config_file)
        loaded = read_json_object(path, "config file")
        ModelConfig.from_dict({**data, **loaded}, source=str(path))
        data.update(loaded)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MnmError(f"override {item!r} must look like key=value")
        try:
            data[key] = int(raw)
        except ValueError:
            raise MnmError(f"override {item!r}: value must be an integer") from None
    return ModelConfig.from_dict(data, source="config")
