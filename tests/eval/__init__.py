"""Helpers of the evaluation tests: a tiny synthetic set and run folders of random-init networks.

The checkpoints use the documented run format (``checkpoints/<step>/`` + ``latest``, tensors under
``generator_ema``, ``encoders``, ``extractor``), so the metrics load them through
``load_for_export`` exactly as they load a trained run.
"""

from __future__ import annotations

from pathlib import Path

from mnm.config import PRESETS

# The class counts of the tiny preset: 2 shapes x 2 textures, 4 backgrounds, S = 32.
SYNTH = {"n": 30, "size": 32, "shapes": 2, "textures_per_shape": 2, "backgrounds": 4, "correlation": 0.8,
         "seed": 3}


def write_synth(root: Path) -> Path:
    from mnm.training.synthetic import render_dataset

    return render_dataset(root, workers=1, **SYNTH)


def write_run(root: Path, stage: str = "feature", seed: int = 0, step: int = 7) -> Path:
    """A run folder whose latest checkpoint holds randomly initialised tiny networks (PyTorch's
    default init: the reference's orthogonal init costs seconds on a busy CPU and changes nothing here)."""
    import torch

    from mnm.checkpoint import state_tensors
    from mnm.nn import Encoders, FeatureExtractor, Generator
    from mnm.training.run import RunFolder

    cfg = PRESETS["tiny"]
    torch.manual_seed(seed)
    modules = {"generator_ema": Generator(cfg), "encoders": Encoders(cfg)}
    if stage == "feature":
        modules["extractor"] = FeatureExtractor(cfg)
    run = RunFolder(root)
    root.mkdir(parents=True, exist_ok=True)
    run.write_options({"stage": stage})
    meta = {"config": cfg.to_dict(), "stage": stage, "step": step, "has_extractor": stage == "feature"}
    run.save_checkpoint(step, state_tensors(modules), meta, keep=1)
    return root
