"""Parameters and multiply-accumulates per exported graph, measured on the real modules.

Modules are built on the meta device (no memory, no arithmetic) and run once at batch 1 under
``FlopCounterMode``, which counts the aten conv/matmul ops actually dispatched, so the joint-conv
rewrite shows up; MACs = FLOPs / 2. ``macs_naive`` reruns with the broadcast-concat joint convs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnm.config import ModelConfig
from mnm.nn.blocks import CodeConv3x3
from mnm.nn.encoders import KINDS, Encoder
from mnm.nn.extractor import FeatureExtractor
from mnm.nn.generator import BackgroundStage, ChildStage, ParentStage

TOTALS = {
    "generator": ("g_background", "g_parent", "g_child"),
    "encoders": tuple(f"enc_{k}" for k in KINDS),
    "extractor": ("extractor",),
}


def _graphs(cfg: ModelConfig) -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    """Each exported graph's module with batch-1 example inputs (docs/bundle.md)."""
    s, dims = cfg.image_size, cfg.code_dims()
    image = torch.zeros(1, 3, s, s)
    graphs = {f"enc_{k}": (Encoder(cfg, k), (image,)) for k in KINDS}
    graphs["g_background"] = (BackgroundStage(cfg), (torch.zeros(1, cfg.z_dim), torch.zeros(1, dims["b"])))
    graphs["g_parent"] = (ParentStage(cfg), (torch.zeros(1, cfg.z_dim), torch.zeros(1, dims["p"])))
    graphs["extractor"] = (FeatureExtractor(cfg), (image,))
    feature = torch.zeros(1, cfg.feature_channels, s, s)
    graphs["g_child"] = (ChildStage(cfg), (feature, torch.zeros(1, dims["c"]), image))
    return graphs


def _macs(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def _set_rewrite(module: nn.Module, enabled: bool) -> None:
    for m in module.modules():
        if isinstance(m, CodeConv3x3):
            m.use_rewrite = enabled


def summarize(cfg: ModelConfig) -> dict:
    """``{"config", "graphs": {name: {params, macs, macs_naive}}, "totals": {generator, encoders,
    extractor}}``; MACs are per image, ``macs_naive`` without the joint-conv rewrite (docs/export-rewrites.md)."""
    cfg.validate()
    graphs = {}
    with torch.device("meta"):
        for name, (module, inputs) in _graphs(cfg).items():
            module.eval()
            macs = _macs(module, inputs)
            _set_rewrite(module, False)
            naive = _macs(module, inputs)
            params = sum(p.numel() for p in module.parameters())
            graphs[name] = {"params": params, "macs": macs, "macs_naive": naive}
    totals = {
        total: {key: sum(graphs[g][key] for g in members) for key in ("params", "macs", "macs_naive")}
        for total, members in TOTALS.items()
    }
    return {"config": cfg.to_dict(), "graphs": graphs, "totals": totals}
