"""The training-only discriminators (docs/networks.md). All return logits; losses apply the sigmoid.

Widths follow the reference at S=128 and are anchored to resolution for other sizes
(``down_widths``), so every power-of-two S from 32 to 256 builds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnm.config import ModelConfig, background_input_size
from mnm.nn.blocks import conv3x3_lrelu, strided_encoder
from mnm.nn.encoders import KINDS


class PatchD(nn.Module):
    """A padding-free patch trunk (no BN, no bias, LeakyReLU) of three convs with patch heads.

    Receptive field: with kernels k_l and strides s_l, the patch size is
    ``rf = 1 + Σ_l (k_l − 1)·Π_{m<l} s_m`` and the patch stride is ``J = Π_l s_l``; with no
    padding, output patch i covers input pixels [i·J, i·J + rf). At S=128 (input 126) the
    reference's conv4 layers with strides 2, 2, 1 give rf = 34, J = 4 and 24×24 outputs: a patch
    sees 27 % of the side. Smaller S keeps that share (``patch_layout``) rather than the pixel
    count: the reference's 34-pixel patch on a 31-pixel input would see the whole image, so no real
    patch would ever lie off the object box and the background stage would learn nothing.
    """

    def __init__(self, in_ch: int, width: int, size: int, heads: tuple[str, ...]):
        super().__init__()
        kernel, strides = patch_layout(size)
        widths = (in_ch, width, 2 * width, 4 * width)
        layers = []
        for i, stride in enumerate(strides):
            layers += [nn.Conv2d(widths[i], widths[i + 1], kernel, stride, 0, bias=False), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Conv2d(4 * width, 1, kernel, 1, 0) for name in heads})

    def _convs(self) -> list[nn.Conv2d]:
        return [m for m in self.trunk if isinstance(m, nn.Conv2d)] + [next(iter(self.heads.values()))]

    def patch_geometry(self, input_size: int) -> tuple[int, int, int]:
        """(receptive field, patch stride, output side) for a square input of ``input_size``."""
        rf, jump, side = 1, 1, input_size
        for conv in self._convs():
            k, s = conv.kernel_size[0], conv.stride[0]
            rf += (k - 1) * jump
            jump *= s
            side = (side - k) // s + 1
        return rf, jump, side

    def object_patches(self, boxes: torch.Tensor, input_size: int) -> torch.Tensor:
        """bool [N, 1, side, side]: True where a patch's receptive field overlaps the box.

        ``boxes`` [N, 4] are (x0, y0, x1, y1) in input pixels, the box covering [x0, x1)×[y0, y1);
        rows follow y, columns x. An empty box (x1 ≤ x0 or y1 ≤ y0) overlaps nothing. Training
        drops these patches from the real loss and uses the rest as "background" labels.
        """
        rf, jump, side = self.patch_geometry(input_size)
        boxes = boxes.to(torch.float32)
        start = torch.arange(side, device=boxes.device, dtype=torch.float32) * jump
        x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))
        cols = (start < x1) & (start + rf > x0)  # [N, side]
        rows = (start < y1) & (start + rf > y0)
        valid = ((x1 > x0) & (y1 > y0))[:, :, None]
        return (rows[:, :, None] & cols[:, None, :] & valid)[:, None]


def patch_layout(size: int) -> tuple[int, tuple[int, int, int]]:
    """(kernel, trunk strides) of the patch Ds at image side ``size``: the reference's at S ≥ 128;
    3×3 kernels and fewer strides below, so a patch keeps about a quarter of the input side
    (rf 15 of 63 at S=64, 9 of 31 at S=32)."""
    if size >= 128:
        return 4, (2, 2, 1)
    return 3, ((2, 1, 1) if size >= 64 else (1, 1, 1))


class BackgroundD(PatchD):
    """Patch D on the background input (126×126 at S=128): ``forward(x)`` → (real_fake,
    bg_object), both [N, 1, side, side] logits; bg_object is 1 for background patches."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(3, cfg.ndf, cfg.image_size, heads=("real_fake", "bg_object"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.heads["real_fake"](h), self.heads["bg_object"](h)


class FeatureD(PatchD):
    """Stage 2: patch D on shape features φ or S(x) [N, F, S, S], resized (bilinear, corners
    aligned, as the reference) to the background-D input side. ``forward`` → [N, 1, side, side]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg.feature_channels, cfg.ndf // 2, cfg.image_size, heads=("real_fake",))
        self.input_size = background_input_size(cfg.image_size)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        side = (self.input_size, self.input_size)
        x = F.interpolate(feature, size=side, mode="bilinear", align_corners=True)
        return self.heads["real_fake"](self.trunk(x))


def _info_trunk(cfg: ModelConfig, base: int) -> nn.Sequential:
    """conv4 s2 down to 4×4 with 8·base channels, then conv3×3+BN+LReLU (reference PARENT_D/CHILD_D)."""
    down = strided_encoder(3, cfg.image_size, base, cap=8 * base)
    return nn.Sequential(down, conv3x3_lrelu(8 * base, 8 * base))


def _info_head(base: int, n: int) -> nn.Sequential:
    return nn.Sequential(conv3x3_lrelu(8 * base, 8 * base), nn.Conv2d(8 * base, n, 4, stride=4), nn.Flatten())


class ParentInfoD(nn.Module):
    """Predicts p from the masked parent foreground fg_p·m_p: ``forward`` → [N, n_parent] logits.
    Width ndf/2 as in the reference; no adversarial head (the parent stage has no adversarial loss)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        base = cfg.ndf // 2
        self.trunk = _info_trunk(cfg, base)
        self.info = _info_head(base, cfg.n_parent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.info(self.trunk(x))


class ChildD(nn.Module):
    """On final images: ``forward(x)`` → (real_fake [N] logits, info [N, n_child] logits).

    The info head is meant for fg_c·m_c (predicting c); the real/fake head for whole images.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        base = cfg.ndf
        self.trunk = _info_trunk(cfg, base)
        self.info = _info_head(base, cfg.n_child)
        self.real_fake = nn.Sequential(nn.Conv2d(8 * base, 1, 4, stride=4), nn.Flatten(0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.real_fake(h), self.info(h)


class GaussianNoise(nn.Module):
    """Additive N(0, std²) noise in training mode only (the paper's "noise added to D")."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std if self.training else x


class PairedD(nn.Module):
    """Image-code discriminator for one code (Eq. 2): ``forward(image, code)`` → [N] logits.

    Image branch: conv4 s2 to 4×4 (16…256 channels at paper), conv4 → 8·ndf. Code branch: three
    Linear(8·ndf) + LeakyReLU with noise std 0.5, 0.3, 0.3 — sampled codes are one-hot and
    encoded ones never are. Joint: Linear(16·ndf) → LeakyReLU → Linear(1). No BN (WGAN-GP).
    """

    def __init__(self, cfg: ModelConfig, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"paired D kind must be one of {KINDS}, got {kind!r}")
        d = cfg.ndf
        self.kind = kind
        self.image = nn.Sequential(
            strided_encoder(3, cfg.image_size, base=d // 4, cap=4 * d, norm=False, bias=True),
            nn.Conv2d(4 * d, 8 * d, 4, 1, 0),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        layers, prev = [], cfg.code_dims()[kind]
        for std in (0.5, 0.3, 0.3):
            layers += [nn.Linear(prev, 8 * d), nn.LeakyReLU(0.2), GaussianNoise(std)]
            prev = 8 * d
        self.code = nn.Sequential(*layers)
        self.joint = nn.Sequential(
            nn.Linear(16 * d, 16 * d), nn.LeakyReLU(0.2), nn.Linear(16 * d, 1), nn.Flatten(0)
        )

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.image(image), self.code(code)], dim=1))


class Discriminators(nn.Module):
    """All discriminators: ``background``, ``parent``, ``child``, ``paired[kind]``, and ``feature``
    (stage 2)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.background = BackgroundD(cfg)
        self.parent = ParentInfoD(cfg)
        self.child = ChildD(cfg)
        self.paired = nn.ModuleDict({kind: PairedD(cfg, kind) for kind in KINDS})
        self.feature = FeatureD(cfg)
