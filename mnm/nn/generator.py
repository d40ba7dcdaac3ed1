"""The three-stage FineGAN generator of MixNMatch (docs/networks.md).

Each stage is its own module because each is exported as its own graph and cached on what it
depends on: the background on (z, b), the shape feature φ on (z, p), and only the child stage
runs per combination.
"""

from __future__ import annotations

import torch
from torch import nn

from mnm.config import ModelConfig
from mnm.nn.blocks import GLU, JointBlock, ResBlock, conv3x3, same_block, up_block


def up_widths(size: int, from_output: list[int]) -> list[int]:
    """Channel schedule of the upsampling path, 4×4 first.

    ``from_output`` lists the widths at S, S/2, S/4, … (the last entry repeats as needed);
    there are log2(S/4) upBlocks, so small images keep the reference's output-side layers.
    """
    steps = size.bit_length() - 3  # log2(S / 4)
    widths = (from_output + [from_output[-1]] * steps)[: steps + 1]
    return widths[::-1]


class CodeStem(nn.Module):
    """concat(z, code) → Linear → BN1d → GLU → [N, C, 4, 4] → upBlocks to S×S."""

    def __init__(self, in_dim: int, widths: list[int]):
        super().__init__()
        self.channels = widths[0]
        self.fc = nn.Sequential(
            nn.Linear(in_dim, 2 * 16 * widths[0], bias=False), nn.BatchNorm1d(2 * 16 * widths[0]), GLU()
        )
        self.up = nn.Sequential(*(up_block(i, o) for i, o in zip(widths[:-1], widths[1:], strict=True)))

    def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, code], dim=1)).view(-1, self.channels, 4, 4)
        return self.up(h)


def image_head(channels: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(channels, 3), nn.Tanh())


def mask_head(channels: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(channels, 1), nn.Sigmoid())


class BackgroundStage(nn.Module):
    """(z, b) → background image [N, 3, S, S] in [-1, 1]. Paper: 512→256→128→64→64→32."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g = cfg.ngf
        widths = up_widths(cfg.image_size, [g // 2, g, g, 2 * g, 4 * g, 8 * g])
        self.stem = CodeStem(cfg.z_dim + cfg.n_bg, widths)
        self.image = image_head(g // 2)

    def forward(self, z: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.image(self.stem(z, b))


class ParentStage(nn.Module):
    """(z, p) → shape feature φ [N, F, S, S], F = ngf/4. Paper: 512→256→128→64→16→16, then a
    sameBlock over concat(h, p broadcast) and 3 ResBlocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        g, f = cfg.ngf, cfg.feature_channels
        widths = up_widths(cfg.image_size, [f, f, g, 2 * g, 4 * g, 8 * g])
        self.stem = CodeStem(cfg.z_dim + cfg.n_parent, widths)
        self.joint = JointBlock(f, cfg.n_parent, f, code_first=False)
        self.residual = nn.Sequential(*(ResBlock(f) for _ in range(3)))

    def forward(self, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.residual(self.joint(self.stem(z, p), p))


class ChildStage(nn.Module):
    """(φ, c, background) → the parent and child composites, masks and raw foregrounds.

    The parent heads live here because the child image is composed on the parent composite:
    parent = fg_p·m_p + bg·(1−m_p); image = fg_c·m_c + parent·(1−m_c). Foregrounds are the raw
    tanh outputs (the info discriminators see fg·m).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        f = cfg.feature_channels
        self.parent_image = image_head(f)
        self.parent_mask = mask_head(f)
        self.joint = JointBlock(f, cfg.n_child, 2 * f, code_first=True)
        self.residual = nn.Sequential(ResBlock(2 * f), ResBlock(2 * f))
        self.same = same_block(2 * f, f)
        self.child_image = image_head(f)
        self.child_mask = mask_head(f)
        self.fused_heads: nn.ModuleDict | None = None  # set on export copies by the ``fused_heads`` rewrite

    def heads(self, which: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(foreground, mask) of the ``parent`` or ``child`` heads, which read the same input."""
        if self.fused_heads is not None:
            return self.fused_heads[which](x)
        return getattr(self, f"{which}_image")(x), getattr(self, f"{which}_mask")(x)

    def forward(self, shape_feature: torch.Tensor, c: torch.Tensor, background: torch.Tensor) -> dict:
        fg_p, m_p = self.heads("parent", shape_feature)
        parent = fg_p * m_p + background * (1 - m_p)
        h = self.same(self.residual(self.joint(shape_feature, c)))
        fg_c, m_c = self.heads("child", h)
        return {
            "image": fg_c * m_c + parent * (1 - m_c),
            "child_mask": m_c,
            "child_foreground": fg_c,
            "parent_image": parent,
            "parent_mask": m_p,
            "parent_foreground": fg_p,
        }


class Generator(nn.Module):
    """The whole generator: ``forward(z, b, p, c, z_pose=None)`` → the child dict plus
    ``background`` and ``shape_feature``.

    ``z_pose`` feeds the parent stage; it defaults to ``z`` (training). At inference the
    background takes the background reference's z and the parent stage the pose reference's.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.background = BackgroundStage(cfg)
        self.parent = ParentStage(cfg)
        self.child = ChildStage(cfg)

    def forward(self, z, b, p, c, z_pose: torch.Tensor | None = None) -> dict:
        background = self.background(z, b)
        shape_feature = self.parent(z if z_pose is None else z_pose, p)
        out = self.child(shape_feature, c, background)
        return {**out, "background": background, "shape_feature": shape_feature}
