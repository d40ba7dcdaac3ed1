"""Export-time rewrites of the stride-2 upsampling layers into four 2×2 convolutions (docs/export-rewrites.md).

An output pixel (2m + a, 2n + b) of a ×2 upsampling layer depends on a 2×2 window of the input
around (m, n) only, and which taps of the layer's kernel it sees depends only on its phase (a, b).
So each layer is four small convolutions on the un-upsampled input, one per phase, whose
results DepthToSpace interleaves. Two layers of the networks have this form:

- the upBlock, nearest ×2 then a 3×3 convolution with zero padding 1: 2.25× fewer multiply-adds;
- the extractor's 4×4 ``ConvTranspose2d`` with stride 2 and padding 1: the same multiply-adds, but
  ordinary convolutions instead of onnxruntime's ConvTranspose (``benchmarks/RESULTS.md`` says
  which is faster; :data:`mnm.export.rewrites.DEFAULT_REWRITES` keeps that one).

The trained modules are never changed: :func:`rewrite_up_blocks` and
:func:`rewrite_transposed_blocks` return copies for the exporter, with each block's BatchNorm
(eval statistics) folded into the phase kernels and its GLU applied per phase, before the
interleave, where it touches a quarter of the pixels per call.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mnm.nn.blocks import GLU

# Per axis, phase a of the output reads the input at offsets (a - 1, a) around m: row t of
# TAPS[a] says which taps of the original kernel act on offset a - 1 + t.
# Nearest ×2 then 3×3 (taps at u = 2m + a - 1, 2m + a, 2m + a + 1, and u // 2 = m - 1 + a + t):
UPSAMPLE_TAPS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))
# ConvTranspose 4×4 stride 2 padding 1 (input i reaches output 2i - 1 + k):
TRANSPOSED_TAPS = (((0, 0, 0, 1), (0, 1, 0, 0)), ((0, 0, 1, 0), (1, 0, 0, 0)))
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))
# Zero padding per phase (left, right, top, bottom for F.pad): phase 0 reaches back one row or
# column, phase 1 forward one. Exact at the borders: those reads fall on the zeros that the
# original layer's padding (or the transposed conv's missing inputs) contributes.
PADS = {(a, b): (1 - b, b, 1 - a, a) for a, b in PHASES}


def phase_kernels(weight: torch.Tensor, taps) -> torch.Tensor:
    """The four 2×2 kernels [4, O, I, 2, 2] (phases in :data:`PHASES` order) of a conv kernel
    [O, I, k, k] whose taps combine per axis as ``taps`` says."""
    mix = [torch.tensor(t, dtype=weight.dtype, device=weight.device) for t in taps]
    return torch.stack([torch.einsum("tk,sl,oikl->oits", mix[a], mix[b], weight) for a, b in PHASES])


class PhaseUpsample(nn.Module):
    """A ×2 upsampling layer as four 2×2 convs, GLU per phase, then DepthToSpace (CRD order)."""

    def __init__(self, kernels: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("kernels", kernels.detach().clone())
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return interleave_phases(
            [F.glu(F.conv2d(padded, self.kernels[i], self.bias), dim=1) for i, padded in enumerate(padded_phases(x))]
        )


def padded_phases(x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` zero-padded for each phase of :data:`PHASES` (:data:`PADS`)."""
    return [F.pad(x, PADS[phase]) for phase in PHASES]


def interleave_phases(phases: list[torch.Tensor]) -> torch.Tensor:
    """Four [N, C, H, W] phase outputs in :data:`PHASES` order → [N, C, 2H, 2W].

    [N, C, 4, H, W] → [N, 4C, H, W]: channel c·4 + 2a + b, as pixel_shuffle (DepthToSpace CRD) reads it.
    """
    return F.pixel_shuffle(torch.stack(phases, dim=2).flatten(1, 2), 2)


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d, out_axis: int):
    """``weight`` and ``bias`` of a conv followed by ``bn`` in eval mode, as one conv."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * weight.dim()
    shape[out_axis] = -1
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * scale.view(shape), (bias - bn.running_mean) * scale + bn.bias


def is_up_block(module: nn.Module) -> bool:
    """nearest ×2 → Conv2d 3×3 (stride 1, padding 1, no groups) → BatchNorm2d → GLU."""
    if not isinstance(module, nn.Sequential) or len(module) != 4:
        return False
    up, conv, bn, glu = module
    return (
        isinstance(up, nn.Upsample) and up.mode == "nearest" and up.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0))
        and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
        and conv.padding_mode == "zeros" and isinstance(bn, nn.BatchNorm2d) and isinstance(glu, GLU)
    )


def is_transposed_block(module: nn.Module) -> bool:
    """ConvTranspose2d 4×4 (stride 2, padding 1, no groups) → BatchNorm2d → GLU."""
    if not isinstance(module, nn.Sequential) or len(module) != 3:
        return False
    conv, bn, glu = module
    return (
        isinstance(conv, nn.ConvTranspose2d) and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        and conv.padding == (1, 1) and conv.output_padding == (0, 0) and conv.dilation == (1, 1)
        and conv.groups == 1 and isinstance(bn, nn.BatchNorm2d) and isinstance(glu, GLU)
    )


@torch.no_grad()
def phase_up_block(block: nn.Sequential) -> PhaseUpsample:
    _, conv, bn, _ = block
    weight, bias = fold_batchnorm(conv.weight, conv.bias, bn, out_axis=0)
    return PhaseUpsample(phase_kernels(weight, UPSAMPLE_TAPS), bias)


@torch.no_grad()
def phase_transposed_block(block: nn.Sequential) -> PhaseUpsample:
    conv, bn, _ = block
    weight, bias = fold_batchnorm(conv.weight, conv.bias, bn, out_axis=1)  # [I, O, 4, 4]
    return PhaseUpsample(phase_kernels(weight.transpose(0, 1), TRANSPOSED_TAPS), bias)


def replace_matching(module: nn.Module, matches, make) -> nn.Module:
    """A copy of ``module`` (eval mode) with every submodule that ``matches`` replaced by ``make(it)``."""
    if module.training:
        raise ValueError("the phase rewrite folds BatchNorm's running statistics: put the module in eval mode")
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for key, child in list(parent.named_children()):
            if matches(child):
                setattr(parent, key, make(child))
    return out


def rewrite_up_blocks(module: nn.Module) -> nn.Module:
    return replace_matching(module, is_up_block, phase_up_block)


def rewrite_transposed_blocks(module: nn.Module) -> nn.Module:
    return replace_matching(module, is_transposed_block, phase_transposed_block)
