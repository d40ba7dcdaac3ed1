"""The one table of exported graphs (docs/bundle.md): names, the network each is cut from, tensor names
and shapes, the mode that needs it, and its parity tolerance.

Export, parity checks, the manifest and the TensorRT profiles all read this table, so a graph's
interface is written down exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from mnm.config import ModelConfig

BATCH = "batch"  # the name of the dynamic batch axis in every graph
FP32_TOLERANCE = 1e-4  # max abs diff onnxruntime vs torch, fp32 graphs
FP16_TOLERANCE = 2e-2  # max abs diff / max(1, output scale), fp16 graphs vs fp32 torch

# Shape of every named tensor without the batch axis.
TENSOR_SHAPES: dict[str, Callable[[ModelConfig], tuple[int, ...]]] = {
    "image": lambda cfg: (3, cfg.image_size, cfg.image_size),
    "z": lambda cfg: (cfg.z_dim,),
    "b": lambda cfg: (cfg.n_bg,),
    "p": lambda cfg: (cfg.n_parent,),
    "c": lambda cfg: (cfg.n_child,),
    "shape_feature": lambda cfg: (cfg.feature_channels, cfg.image_size, cfg.image_size),
    "background": lambda cfg: (3, cfg.image_size, cfg.image_size),
    "child_mask": lambda cfg: (1, cfg.image_size, cfg.image_size),
    "child_foreground": lambda cfg: (3, cfg.image_size, cfg.image_size),
    "parent_image": lambda cfg: (3, cfg.image_size, cfg.image_size),
    "parent_mask": lambda cfg: (1, cfg.image_size, cfg.image_size),
    "parent_foreground": lambda cfg: (3, cfg.image_size, cfg.image_size),
}


class ExportModules(NamedTuple):
    """The trained networks a bundle is cut from; ``extractor`` is None before stage 2."""

    generator: nn.Module
    encoders: nn.Module
    extractor: nn.Module | None


@dataclass(frozen=True)
class GraphSpec:
    name: str
    mode: str  # "code" or "feature": the runtime mode that needs the graph
    source: str  # dotted path of the submodule in ExportModules, e.g. "generator.child"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    softmax: bool = False  # encoders b, p, c: the graph returns probabilities, not logits

    def module(self, modules: ExportModules) -> GraphModule:
        net = modules
        for part in self.source.split("."):
            net = getattr(net, part)
        return GraphModule(net, self.outputs, self.softmax)

    def shape(self, tensor: str, cfg: ModelConfig) -> tuple[int, ...]:
        """Shape of one of this graph's tensors without the batch axis."""
        return TENSOR_SHAPES[tensor](cfg)


class GraphModule(nn.Module):
    """A network as one graph sees it: positional inputs in spec order, a tuple of outputs in spec
    order (a dict output is unpacked by name), softmax applied where the graph promises it."""

    def __init__(self, net: nn.Module, outputs: tuple[str, ...], softmax: bool):
        super().__init__()
        self.net = net
        self.output_names = outputs
        self.softmax = softmax

    def forward(self, *inputs: torch.Tensor):
        out = self.net(*inputs)
        if isinstance(out, dict):
            return tuple(out[name] for name in self.output_names)
        return torch.softmax(out, dim=1) if self.softmax else out


CHILD_OUTPUTS = ("image", "child_mask", "child_foreground", "parent_image", "parent_mask", "parent_foreground")

GRAPHS: tuple[GraphSpec, ...] = (
    GraphSpec("enc_z", "code", "encoders.z", ("image",), ("z",)),
    GraphSpec("enc_b", "code", "encoders.b", ("image",), ("b",), softmax=True),
    GraphSpec("enc_p", "code", "encoders.p", ("image",), ("p",), softmax=True),
    GraphSpec("enc_c", "code", "encoders.c", ("image",), ("c",), softmax=True),
    GraphSpec("g_background", "code", "generator.background", ("z", "b"), ("background",)),
    GraphSpec("g_parent", "code", "generator.parent", ("z", "p"), ("shape_feature",)),
    GraphSpec("g_child", "code", "generator.child", ("shape_feature", "c", "background"), CHILD_OUTPUTS),
    GraphSpec("extractor", "feature", "extractor", ("image",), ("shape_feature",)),
)

SPECS = {spec.name: spec for spec in GRAPHS}


def graphs_for(modules: ExportModules) -> list[GraphSpec]:
    """The graphs a bundle holds: feature mode only when the extractor S was trained."""
    return [spec for spec in GRAPHS if spec.mode == "code" or modules.extractor is not None]


def modes_for(modules: ExportModules) -> list[str]:
    return ["code", "feature"] if modules.extractor is not None else ["code"]
