"""The exponential moving average of the generator's weights: what is saved and exported.

Averaged weights give visibly cleaner samples than the last step's; BatchNorm running
statistics are not averaged but copied, so the EMA's normalisation matches its source's.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy in eval mode, to be moved along by :func:`update_ema`."""
    ema = copy.deepcopy(module).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, source: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·source for parameters; buffers copied."""
    for ema_param, param in zip(ema.parameters(), source.parameters(), strict=True):
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), source.buffers(), strict=True):
        ema_buffer.copy_(buffer)
