"""Parameters and multiply-accumulates per exported graph, measured on the real modules.

Modules are built on the meta device (no memory, no arithmetic) and run once at batch 1 under
``FlopCounterMode``, which counts the aten conv/matmul ops actually dispatched; MACs = FLOPs / 2.
``macs`` is the cost of the exported graph (every rewrite of docs/export-rewrites.md that the
export applies), ``macs_naive`` the cost of the reference computation (no rewrite at all), and
``macs_saved`` what each rewrite takes off, applied one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnm.config import ModelConfig
from mnm.export.rewrites import DEFAULT_REWRITES, rewritten
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


def _set_code_conv(module: nn.Module, enabled: bool) -> None:
    for m in module.modules():
        if isinstance(m, CodeConv3x3):
            m.use_rewrite = enabled


def summarize(cfg: ModelConfig, rewrites: Sequence[str] | None = None) -> dict:
    """``{"config", "rewrites", "graphs": {name: {params, macs, macs_naive, macs_saved}}, "totals":
    {generator, encoders, extractor}}``; MACs are per image. ``rewrites``: the export rewrites
    counted in ``macs`` (default: those ``mnm export`` applies)."""
    cfg.validate()
    rewrites = tuple(DEFAULT_REWRITES if rewrites is None else rewrites)
    graphs = {}
    with torch.device("meta"):
        for name, (module, inputs) in _graphs(cfg).items():
            module.eval()
            params = sum(p.numel() for p in module.parameters())
            _set_code_conv(module, False)
            naive = _macs(module, inputs)
            _set_code_conv(module, True)
            saved, macs = {}, _macs(module, inputs)
            saved["code_conv"] = naive - macs
            for rewrite in rewrites:
                module = rewritten(module, [rewrite])
                before, macs = macs, _macs(module, inputs)
                saved[rewrite] = before - macs
            graphs[name] = {"params": params, "macs": macs, "macs_naive": naive, "macs_saved": saved}
    totals = {
        total: {key: sum(graphs[g][key] for g in members) for key in ("params", "macs", "macs_naive")}
        for total, members in TOTALS.items()
    }
    return {"config": cfg.to_dict(), "rewrites": ["code_conv", *rewrites], "graphs": graphs, "totals": totals}
