"""Export-time rewrite of each image/mask head pair into one convolution (docs/export-rewrites.md, "fused_heads").

The child stage reads a tanh image head (3 channels) and a sigmoid mask head (1 channel) off the
same features, twice. onnxruntime's CPU provider computes convolutions in blocks of 8 or 16 output
channels, so each of those thin heads costs about as much as a full block: one conv with the
3 + 1 kernels stacked does both for the price of one, and slicing its output before tanh and
sigmoid gives exactly the two heads.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mnm.nn.generator import ChildStage


class ImageMaskHeads(nn.Module):
    """(tanh image, sigmoid mask) from one 3×3 conv whose kernel stacks the two heads' kernels."""

    def __init__(self, image: nn.Sequential, mask: nn.Sequential):
        super().__init__()
        convs = (image[0], mask[0])
        self.image_channels = convs[0].out_channels
        self.register_buffer("weight", torch.cat([c.weight.detach() for c in convs]).clone())
        biases = [c.bias.detach() if c.bias is not None else c.weight.new_zeros(c.out_channels) for c in convs]
        self.register_buffer("bias", torch.cat(biases).clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.conv2d(x, self.weight, self.bias, padding=1)
        return torch.tanh(y[:, : self.image_channels]), torch.sigmoid(y[:, self.image_channels :])


def has_head_pairs(module: nn.Module) -> bool:
    return isinstance(module, ChildStage)


@torch.no_grad()
def fuse_heads(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose child stages compute each head pair with one conv."""
    out = copy.deepcopy(module)
    for stage in out.modules():
        if isinstance(stage, ChildStage):
            stage.fused_heads = nn.ModuleDict({
                which: ImageMaskHeads(getattr(stage, f"{which}_image"), getattr(stage, f"{which}_mask"))
                for which in ("parent", "child")
            })
    return out
