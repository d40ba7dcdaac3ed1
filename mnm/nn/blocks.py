"""Building blocks shared by the networks (docs/networks.md) and the joint-conv rewrite (docs/export-rewrites.md).

The generator blocks follow the reference: every conv is bias-free and followed by BatchNorm,
and gating is a GLU over channels (``F.glu``). The exporter computes each GLU as a value and a
gate conv instead (the ``glu_split`` rewrite, ``mnm.export.rewrites.gated``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GLU(nn.Module):
    """First half of the channels times the sigmoid of the second half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)


def up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest ×2 → conv3×3 → BN → GLU: doubles the side, ends with ``out_ch`` channels."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *same_block(in_ch, out_ch))


def same_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv3×3 → BN → GLU at the same side."""
    return nn.Sequential(conv3x3(in_ch, 2 * out_ch), nn.BatchNorm2d(2 * out_ch), GLU())


class ResBlock(nn.Module):
    """conv3×3(n, 2n) → BN → GLU → conv3×3(n, n) → BN, plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, 2 * channels),
            nn.BatchNorm2d(2 * channels),
            GLU(),
            conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x


def down_block(in_ch: int, out_ch: int, norm: bool = True, bias: bool = False) -> nn.Sequential:
    """conv4 stride 2 (halves the side) → BN (optional) → LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=bias)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def conv3x3_lrelu(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv3×3 → BN → LeakyReLU(0.2) at the same side (encoder and info-D tails)."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_widths(size: int, base: int, cap: int) -> list[int]:
    """Channels after each stride-2 step from ``size`` down to 4×4.

    Widths are anchored to the resolution r reached (``base·64/r``, capped), so every image size
    gets the reference's deep layers and small sizes simply skip the wide, shallow ones.
    """
    widths, r = [], size // 2
    while r >= 4:
        widths.append(min(base * 64 // r, cap))
        r //= 2
    return widths


def strided_encoder(
    in_ch: int, size: int, base: int, cap: int, norm: bool = True, bias: bool = False
) -> nn.Sequential:
    """The conv4-stride-2 path from ``size`` to 4×4 used by the encoders and the discriminators.

    The first step has no BatchNorm (as in the reference); ``norm=False`` drops it everywhere.
    """
    layers, prev = [], in_ch
    for i, width in enumerate(down_widths(size, base, cap)):
        layers.append(down_block(prev, width, norm=norm and i > 0, bias=bias))
        prev = width
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=32)
def _border_class_onehot(height: int, width: int) -> np.ndarray:
    rows = np.ones(height, dtype=np.int64)
    cols = np.ones(width, dtype=np.int64)
    rows[0], rows[-1], cols[0], cols[-1] = 0, 2, 0, 2
    onehot = np.zeros((9, height * width), dtype=np.float32)
    onehot[(3 * rows[:, None] + cols[None, :]).ravel(), np.arange(height * width)] = 1.0
    onehot.setflags(write=False)
    return onehot


def border_class_map(like: torch.Tensor) -> torch.Tensor:
    """[9, H·W] one-hot for the H×W of ``like`` [N, C, H, W] (H, W ≥ 2): column i·W + j has its 1
    in row 3·r + c, the border class of pixel (i, j) (r, c: 0 on the first row/column, 2 on the
    last, 1 between). Built from numpy, so an exported graph holds it as a constant."""
    onehot = _border_class_onehot(like.shape[2], like.shape[3])
    return torch.tensor(onehot, dtype=like.dtype, device=like.device)


def spread_border_classes(classes: torch.Tensor, class_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The nine border classes [N, C, 3, 3] spread over H×W as a product with ``class_map``.

    Exact (each output is 1·its class plus zeros) and one MatMul: in onnxruntime 1.04–1.07× faster
    for g_child and g_parent than slices, Expand and Concat per axis, which in turn were 1.13–1.24×
    faster than a Gather with [0, 1, …, 1, 2] (benchmarks/RESULTS.md).
    """
    return torch.matmul(classes.flatten(2), class_map).unflatten(2, (height, width))


def code_conv3x3(
    feat: torch.Tensor, code: torch.Tensor, w_feat: torch.Tensor, w_code: torch.Tensor,
    bias: torch.Tensor | None = None, class_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """conv3×3(feat, w_feat) + the code's share as nine border classes (:class:`CodeConv3x3`);
    ``bias`` is added to the nine classes, before they are spread; ``class_map`` is
    ``border_class_map(feat)``, passed in where several calls share it."""
    out = F.conv2d(feat, w_feat, padding=1)
    plane = code[:, :, None, None] * torch.ones(1, 1, 3, 3, dtype=code.dtype, device=code.device)
    classes = F.conv2d(plane, w_code, bias, padding=1)  # [N, out, 3, 3]: the nine border classes
    class_map = border_class_map(feat) if class_map is None else class_map
    return out + spread_border_classes(classes, class_map, feat.shape[2], feat.shape[3])


class CodeConv3x3(nn.Module):
    """A bias-free 3×3 conv over ``concat(features, code broadcast to H×W)``, computed exactly
    without materialising the broadcast (docs/export-rewrites.md, "code_conv").

    The code's share of the output is constant except where zero padding cuts taps off, so it
    takes one of nine values (corners, edges, interior). Convolving the code over a 3×3 constant
    map with the same padding yields exactly those nine, which are then spread over H×W (first row,
    H − 2 copies of the middle one, last row; likewise for columns). The weight keeps the naive
    layout ``[out, in, 3, 3]`` with the input channels in the
    reference order: ``code_first`` (child: c then φ) or features first (parent: h then p).
    """

    def __init__(self, feat_channels: int, code_channels: int, out_channels: int, code_first: bool):
        super().__init__()
        self.feat_channels = feat_channels
        self.code_channels = code_channels
        self.code_first = code_first
        self.use_rewrite = True  # False runs the naive broadcast-concat conv (cost comparison)
        self.weight = nn.Parameter(torch.empty(out_channels, feat_channels + code_channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default

    def split_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.code_first:
            return self.weight[:, self.code_channels :], self.weight[:, : self.code_channels]
        return self.weight[:, : self.feat_channels], self.weight[:, self.feat_channels :]

    def forward(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        if not self.use_rewrite:
            return self.naive(feat, code)
        return code_conv3x3(feat, code, *self.split_weight())

    def naive(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The reference computation: broadcast the code to H×W, concatenate, convolve."""
        tiled = code[:, :, None, None].expand(-1, -1, feat.shape[2], feat.shape[3])
        joint = torch.cat([tiled, feat] if self.code_first else [feat, tiled], dim=1)
        return F.conv2d(joint, self.weight, padding=1)


class JointBlock(nn.Module):
    """sameBlock over ``concat(features, broadcast code)`` via :class:`CodeConv3x3` → BN → GLU."""

    def __init__(self, feat_channels: int, code_channels: int, out_channels: int, code_first: bool):
        super().__init__()
        self.conv = CodeConv3x3(feat_channels, code_channels, 2 * out_channels, code_first)
        self.bn = nn.BatchNorm2d(2 * out_channels)

    def forward(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return F.glu(self.bn(self.conv(feat, code)), dim=1)


@torch.no_grad()
def init_weights(module: nn.Module) -> nn.Module:
    """The reference's init: orthogonal conv/linear weights, BN weights N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, CodeConv3x3)):
            nn.init.orthogonal_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module
