"""Export-time rewrite of every GLU into a value conv and a gate conv (docs/export-rewrites.md,
"glu_split").

The generator's blocks end in conv → BatchNorm → GLU (its code stems in linear → BatchNorm →
GLU): the first half of the output channels times the sigmoid of the second half. Computed that
way, onnxruntime's CPU provider leaves its blocked (NCHWc) layout after every conv: Split and the
gating run on plain NCHW, with a reorder out and back in around them. Two convolutions, one per
half of the (BatchNorm-folded) kernel, give the same numbers without the Split: the sigmoid fuses
into the gate conv and the product stays in the blocked layout. Exact: each output channel is the
same sum over the same taps; only the order of floating-point rounding may differ.

Like the phase rewrites, :func:`rewrite_glus` returns a copy for the exporter and leaves the
trained modules alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnm.export.rewrites.phase import PhaseUpsample, fold_batchnorm, interleave_phases, padded_phases, replace_matching
from mnm.nn.blocks import GLU, JointBlock, border_class_map, code_conv3x3


def _register_halves(module: nn.Module, axis: int = 0, **tensors: torch.Tensor) -> None:
    """Buffers ``value_<name>`` and ``gate_<name>``: the first and second half of each tensor along
    its output-channel ``axis``."""
    for name, t in tensors.items():
        value, gate = t.detach().chunk(2, dim=axis)
        module.register_buffer(f"value_{name}", value.clone().contiguous())
        module.register_buffer(f"gate_{name}", gate.clone().contiguous())


class GatedConv2d(nn.Module):
    """conv → BatchNorm → GLU as ``conv(x, value) · sigmoid(conv(x, gate))``, BatchNorm folded."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d):
        super().__init__()
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        _register_halves(self, weight=weight, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        geometry = (self.stride, self.padding, self.dilation)
        value = F.conv2d(x, self.value_weight, self.value_bias, *geometry)
        return value * torch.sigmoid(F.conv2d(x, self.gate_weight, self.gate_bias, *geometry))


class GatedLinear(nn.Module):
    """Linear → BatchNorm1d → GLU (the code stems) as ``linear(x, value) · sigmoid(linear(x, gate))``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        _register_halves(self, weight=weight, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = F.linear(x, self.value_weight, self.value_bias)
        return value * torch.sigmoid(F.linear(x, self.gate_weight, self.gate_bias))


class GatedJoint(nn.Module):
    """:class:`~mnm.nn.blocks.JointBlock` (code conv → BatchNorm → GLU) as value and gate code convs."""

    def __init__(self, block: JointBlock):
        super().__init__()
        w_feat, w_code = block.conv.split_weight()
        w_feat, bias = fold_batchnorm(w_feat, None, block.bn, out_axis=0)
        w_code, _ = fold_batchnorm(w_code, None, block.bn, out_axis=0)
        _register_halves(self, feat=w_feat, code=w_code, bias=bias)

    def forward(self, feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        class_map = border_class_map(feat)  # one constant for both halves in the exported graph
        value = code_conv3x3(feat, code, self.value_feat, self.value_code, self.value_bias, class_map)
        gate = code_conv3x3(feat, code, self.gate_feat, self.gate_code, self.gate_bias, class_map)
        return value * torch.sigmoid(gate)


class GatedPhaseUpsample(nn.Module):
    """:class:`~mnm.export.rewrites.phase.PhaseUpsample` with each phase's GLU as value and gate convs."""

    def __init__(self, block: PhaseUpsample):
        super().__init__()
        _register_halves(self, axis=1, kernels=block.kernels)  # [4, O, I, 2, 2]: phases, then outputs
        _register_halves(self, bias=block.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = []
        for i, padded in enumerate(padded_phases(x)):
            value = F.conv2d(padded, self.value_kernels[i], self.value_bias)
            phases.append(value * torch.sigmoid(F.conv2d(padded, self.gate_kernels[i], self.gate_bias)))
        return interleave_phases(phases)


def _is_conv_bn(a: nn.Module, b: nn.Module) -> bool:
    return isinstance(a, nn.Conv2d) and a.groups == 1 and a.padding_mode == "zeros" and isinstance(b, nn.BatchNorm2d)


def _is_linear_bn_glu(items: list[nn.Module]) -> bool:
    return (len(items) == 3 and isinstance(items[0], nn.Linear) and isinstance(items[1], nn.BatchNorm1d)
            and isinstance(items[2], GLU))


@torch.no_grad()
def _gated_sequential(seq: nn.Sequential) -> nn.Sequential:
    """conv → BN → GLU runs become :class:`GatedConv2d`, conv → BN pairs one conv with a bias."""
    layers, items, i = [], list(seq), 0
    while i < len(items):
        if _is_linear_bn_glu(items[i : i + 3]):
            layers.append(GatedLinear(*fold_batchnorm(items[i].weight, items[i].bias, items[i + 1], out_axis=0)))
            i += 3
            continue
        if i + 1 < len(items) and _is_conv_bn(items[i], items[i + 1]):
            conv, bn = items[i], items[i + 1]
            weight, bias = fold_batchnorm(conv.weight, conv.bias, bn, out_axis=0)
            if i + 2 < len(items) and isinstance(items[i + 2], GLU):
                layers.append(GatedConv2d(weight, bias, conv))
                i += 3
                continue
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               conv.dilation, device=weight.device, dtype=weight.dtype)
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
            layers.append(folded)
            i += 2
            continue
        layers.append(items[i])
        i += 1
    return nn.Sequential(*layers)


def is_glu_site(module: nn.Module) -> bool:
    """Does the rewrite change this module (a JointBlock, a PhaseUpsample, or a Sequential with
    conv → BN or linear → BN → GLU)?"""
    if isinstance(module, (JointBlock, PhaseUpsample)):
        return True
    if not isinstance(module, nn.Sequential):
        return False
    items = list(module)
    return any(_is_conv_bn(items[i], items[i + 1]) or _is_linear_bn_glu(items[i : i + 3])
               for i in range(len(items) - 1))


@torch.no_grad()
def _gated(module: nn.Module) -> nn.Module:
    if isinstance(module, JointBlock):
        return GatedJoint(module)
    if isinstance(module, PhaseUpsample):
        return GatedPhaseUpsample(module)
    return _gated_sequential(module)


def rewrite_glus(module: nn.Module) -> nn.Module:
    return replace_matching(module, is_glu_site, _gated)
