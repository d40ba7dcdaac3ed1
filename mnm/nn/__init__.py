"""The MixNMatch networks in PyTorch (docs/networks.md); importing this package imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from mnm.config import ModelConfig
from mnm.nn.blocks import CodeConv3x3, init_weights
from mnm.nn.discriminators import (
    BackgroundD,
    ChildD,
    Discriminators,
    FeatureD,
    PairedD,
    ParentInfoD,
    background_input_size,
)
from mnm.nn.encoders import Encoder, Encoders
from mnm.nn.extractor import FeatureExtractor
from mnm.nn.generator import BackgroundStage, ChildStage, Generator, ParentStage


@dataclass
class Networks:
    """Every network of one model, built from one config."""

    generator: Generator
    encoders: Encoders
    extractor: FeatureExtractor
    discriminators: Discriminators


def build_networks(cfg: ModelConfig) -> Networks:
    """All networks for ``cfg``, initialised as the reference does (:func:`init_weights`)."""
    cfg.validate()
    return Networks(
        generator=init_weights(Generator(cfg)),
        encoders=init_weights(Encoders(cfg)),
        extractor=init_weights(FeatureExtractor(cfg)),
        discriminators=init_weights(Discriminators(cfg)),
    )


__all__ = [
    "BackgroundD",
    "BackgroundStage",
    "ChildD",
    "ChildStage",
    "CodeConv3x3",
    "Discriminators",
    "Encoder",
    "Encoders",
    "FeatureD",
    "FeatureExtractor",
    "Generator",
    "Networks",
    "PairedD",
    "ParentInfoD",
    "ParentStage",
    "background_input_size",
    "build_networks",
    "init_weights",
]
