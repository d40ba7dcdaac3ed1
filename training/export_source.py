"""What export needs from a training run: the config, G (EMA), E and, after stage 2, S.

Export takes a run folder or a checkpoint folder; everything else a checkpoint holds
(discriminators, optimiser state, the raw G) stays behind.
"""

from __future__ import annotations

from pathlib import Path

from mnm.errors import MnmError
from mnm.training.run import find_checkpoint


def load_for_export(path: str | Path):
    """(cfg, generator_ema, encoders, extractor or None, meta) on the CPU in eval mode.

    ``path`` is a run folder (its ``latest`` checkpoint) or a checkpoint folder. ``meta`` is the
    checkpoint's meta.json plus ``path``, the checkpoint folder used. A checkpoint whose tensors
    do not fit its config, or that is not a training checkpoint, raises one ``MnmError`` line.
    """
    from mnm.checkpoint import config_from_meta, load_checkpoint, load_state
    from mnm.nn.encoders import Encoders
    from mnm.nn.extractor import FeatureExtractor
    from mnm.nn.generator import Generator

    checkpoint = find_checkpoint(path)
    tensors, meta = load_checkpoint(checkpoint)
    cfg = config_from_meta(meta, source=str(checkpoint))
    if meta.get("stage") not in ("code", "feature"):
        raise MnmError(f"{checkpoint}: not a training checkpoint (meta.json has no stage code/feature)")
    generator, encoders = Generator(cfg), Encoders(cfg)
    modules = {"generator_ema": generator, "encoders": encoders}
    extractor = None
    if meta.get("has_extractor"):
        extractor = modules["extractor"] = FeatureExtractor(cfg)
    load_state(modules, tensors, source=str(checkpoint))
    for module in modules.values():
        module.eval()
    return cfg, generator, encoders, extractor, {**meta, "path": str(checkpoint)}


INFERENCE_PREFIXES = ("generator_ema", "encoders", "extractor")


def save_inference_checkpoint(path: str | Path, out: str | Path) -> Path:
    """Copy what inference needs (G's EMA, E, S) from a run or checkpoint into a small checkpoint.

    The copy still loads with ``load_for_export`` (and so exports); the discriminators, the raw G
    and the optimiser state, which only training needs, stay behind. This is how the bundled demo
    model's checkpoint is made.
    """
    from mnm.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = find_checkpoint(path)
    tensors, meta = load_checkpoint(checkpoint)
    kept = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in INFERENCE_PREFIXES}
    return save_checkpoint(out, kept, {**meta, "inference_only": True, "source_checkpoint": str(checkpoint)})
