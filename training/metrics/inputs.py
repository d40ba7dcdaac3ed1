"""What every metric reads: the trained networks of a run, and a dataset split as model inputs.

Images reach the networks exactly as in training and the runtime: the object crop of each
record (``mnm.imaging.prepare_reference`` with its box) at the model's side S, in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.imaging import prepare_reference
from mnm.progress import track
from mnm.training.datasets import ImageDataset
from mnm.training.datasets.annotations import SPLITS
from mnm.training.datasets.dataset import load_record


@dataclass
class Model:
    """The exported networks of one checkpoint (EMA generator, encoders, S if trained), on ``device``."""

    cfg: ModelConfig
    generator: torch.nn.Module
    encoders: torch.nn.Module
    extractor: torch.nn.Module | None
    meta: dict
    device: torch.device


def load_model(run: str | Path, device: str = "auto") -> Model:
    """A run folder (its latest checkpoint) or a checkpoint folder, in eval mode on ``device``."""
    from mnm.training.export_source import load_for_export
    from mnm.training.trainer import resolve_device

    if device == "cuda" and not torch.cuda.is_available():
        raise MnmError("--device cuda: no CUDA device is visible to PyTorch")
    chosen = resolve_device(device)
    cfg, generator, encoders, extractor, meta = load_for_export(run)
    nets = [n.to(chosen) if n is not None else None for n in (generator, encoders, extractor)]
    return Model(cfg, *nets, meta=meta, device=chosen)


def check_common(data: str | Path, split: str, batch: int) -> None:
    """The options every metric takes: an existing data folder, a split name, a positive batch."""
    if not Path(data).is_dir():
        raise MnmError(f"{data}: no such dataset folder")
    if split not in SPLITS:
        raise MnmError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if batch < 1:
        raise MnmError(f"--batch must be a positive integer, got {batch}")


def dataset_batches(dataset: ImageDataset, indices: Iterable[int], size: int, batch: int,
                    desc: str) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Object crops of the records at ``indices`` as [B, 3, S, S] float32 tensors, in order."""
    indices = [int(i) for i in indices]
    with track(total=len(indices), desc=desc, unit="img") as bar:
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            crops = [prepare_reference(load_record(dataset.records[i]), size, dataset.records[i].box)
                     for i in chunk]
            bar.update(len(chunk))
            yield torch.from_numpy(np.stack(crops)), chunk
