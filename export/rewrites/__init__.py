"""The exact rewrites between the trained networks and the exported graphs (docs/export-rewrites.md).

``code_conv`` is part of the networks themselves (``mnm.nn.blocks.CodeConv3x3``: training uses it
too); the others are applied by the exporter to copies of the trained modules, whose weights and
layout stay as trained. Every rewrite is exact in real arithmetic; each exported graph is checked
against the naive torch module (parity ≤ 1e-4), and the manifest names the rewrites in each graph.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from mnm.errors import MnmError
from mnm.export.rewrites.gated import is_glu_site, rewrite_glus
from mnm.export.rewrites.heads import fuse_heads, has_head_pairs
from mnm.export.rewrites.phase import is_transposed_block, is_up_block, rewrite_transposed_blocks, rewrite_up_blocks
from mnm.nn.blocks import CodeConv3x3

REWRITES = {
    "code_conv": "joint conv over concat(features, broadcast code) = feature conv + nine border classes of the code",
    "up_phase": "nearest x2 + conv3x3 = four 2x2 convs on the input, one per output phase, + DepthToSpace",
    "transposed_phase": "ConvTranspose 4x4 stride 2 = four 2x2 convs, one per output phase, + DepthToSpace",
    "glu_split": "conv + BatchNorm + GLU = value conv times sigmoid of gate conv (BatchNorm folded)",
    "fused_heads": "image head (3 channels) and mask head (1) on the same input = one conv, sliced",
}
EXPORT_REWRITES = ("up_phase", "transposed_phase", "glu_split", "fused_heads")
"""The rewrites the exporter applies (``code_conv`` is always on: it is in the networks)."""
DEFAULT_REWRITES = EXPORT_REWRITES
"""Applied unless asked otherwise. Each was measured faster than the form it replaces in
onnxruntime on this project's CPU (benchmarks/RESULTS.md, "Levers"); only ``up_phase`` saves
multiply-adds, the others move the same ones onto onnxruntime's blocked convolution path."""

_APPLY = {"up_phase": rewrite_up_blocks, "transposed_phase": rewrite_transposed_blocks, "glu_split": rewrite_glus,
          "fused_heads": fuse_heads}
_FINDS = {
    "code_conv": lambda m: isinstance(m, CodeConv3x3) and m.use_rewrite,
    "up_phase": is_up_block,
    "transposed_phase": is_transposed_block,
    "glu_split": is_glu_site,
    "fused_heads": has_head_pairs,
}


def check_rewrites(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in EXPORT_REWRITES]
    if unknown:
        raise MnmError(f"unknown export rewrite(s) {', '.join(unknown)}; known: {', '.join(EXPORT_REWRITES)}")
    return names


def rewritten(module: nn.Module, names: Iterable[str]) -> nn.Module:
    """A copy of ``module`` (eval mode) with the named export rewrites applied; ``module`` is untouched.

    They are applied in :data:`EXPORT_REWRITES` order: ``glu_split`` also splits the gates of the
    phase blocks the first two create."""
    names = check_rewrites(names)
    for name in (n for n in EXPORT_REWRITES if n in names):
        module = _APPLY[name](module)
    return module


def rewrites_in(module: nn.Module, names: Iterable[str]) -> list[str]:
    """The rewrites (``code_conv`` and the named export rewrites) that change ``module``'s graph."""
    wanted = ("code_conv", *check_rewrites(names))
    return [n for n in wanted if any(_FINDS[n](m) for m in module.modules())]
