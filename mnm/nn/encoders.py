"""The four image encoders E_z, E_b, E_p, E_c (docs/networks.md), one network each, no shared weights.

Paper (S=128, ndf=64): conv4 s2 to 512 channels at 8×8, a downBlock to 1024 at 4×4, two
conv3×3+BN+LReLU to 512, and a conv4 stride 4 to the code.
"""

from __future__ import annotations

import torch
from torch import nn

from mnm.config import ModelConfig
from mnm.nn.blocks import conv3x3_lrelu, strided_encoder

KINDS = ("z", "b", "p", "c")


class Encoder(nn.Module):
    """image [N, 3, S, S] in [-1, 1] → code: z as 4·tanh (the range of N(0, 1) samples), b/p/c as logits."""

    def __init__(self, cfg: ModelConfig, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"encoder kind must be one of {KINDS}, got {kind!r}")
        d = cfg.ndf
        self.kind = kind
        self.trunk = nn.Sequential(
            strided_encoder(3, cfg.image_size, base=d, cap=16 * d),
            conv3x3_lrelu(16 * d, 8 * d),
            conv3x3_lrelu(8 * d, 8 * d),
        )
        self.head = nn.Conv2d(8 * d, cfg.code_dims()[kind], 4, stride=4)

    def forward(self, image: torch.Tensor, return_features: bool = False):
        """With ``return_features`` also the penultimate activations flattened to [N, 8·ndf·16]."""
        h = self.trunk(image)
        out = self.head(h).flatten(1)
        if self.kind == "z":
            out = 4 * torch.tanh(out)
        return (out, h.flatten(1)) if return_features else out


class Encoders(nn.Module):
    """The four encoders as submodules ``z``, ``b``, ``p``, ``c``; forward gives a dict of codes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        for kind in KINDS:
            self.add_module(kind, Encoder(cfg, kind))

    def forward(self, image: torch.Tensor) -> dict:
        return {kind: getattr(self, kind)(image) for kind in KINDS}
