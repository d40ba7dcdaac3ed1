"""The shape/pose feature extractor S of feature mode (docs/networks.md): a U-Net into φ's space.

Paper (S=128, ndf=64): two sameBlocks 3→32; six downs (conv4 s2 + BN + GLU) to 32, 64, 128,
256, 512, 512 channels, the last at 2×2; six ups (convT4 s2 + BN + GLU) to 256, 512, 256, 128,
64 and F, each after concatenating the skip of its side; two ResBlocks(F). Smaller images have
fewer levels (always down to 2×2) and lose the deepest, widest ones.
"""

from __future__ import annotations

import torch
from torch import nn

from mnm.config import ModelConfig
from mnm.nn.blocks import GLU, ResBlock, same_block


def _down(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, 2 * out_ch, 4, 2, 1), nn.BatchNorm2d(2 * out_ch), GLU())


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_ch, 2 * out_ch, 4, 2, 1), nn.BatchNorm2d(2 * out_ch), GLU())


def unet_widths(size: int, ndf: int) -> list[int]:
    """Channels after each down step, S/2 first: ndf/2·2^i capped at 8·ndf, down to 2×2."""
    levels = size.bit_length() - 2  # log2(S / 2)
    return [min(ndf // 2 << i, 8 * ndf) for i in range(levels)]


class FeatureExtractor(nn.Module):
    """image [N, 3, S, S] in [-1, 1] → shape feature [N, F, S, S] (F = ngf/4)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        downs = unet_widths(cfg.image_size, cfg.ndf)
        first = downs[0]
        self.first = nn.Sequential(same_block(3, first), same_block(first, first))
        self.down = nn.ModuleList(_down(i, o) for i, o in zip([first] + downs[:-1], downs, strict=True))
        # Up j (after the first) takes [previous up, skip of the same side] and ends with the
        # skip's width; the first ends with half the next skip, the last with F.
        skips = downs[-2::-1]
        outs = [skips[0] // 2] + skips[:-1] + [cfg.feature_channels]
        ins = [downs[-1]] + [o + s for o, s in zip(outs[:-1], skips, strict=True)]
        self.up = nn.ModuleList(_up(i, o) for i, o in zip(ins, outs, strict=True))
        self.last = nn.Sequential(ResBlock(cfg.feature_channels), ResBlock(cfg.feature_channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = self.first(image)
        skips = []
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()  # the 2×2 bottom feeds the first up directly
        h = self.up[0](h)
        for up in self.up[1:]:
            h = up(torch.cat([h, skips.pop()], dim=1))
        return self.last(h)
