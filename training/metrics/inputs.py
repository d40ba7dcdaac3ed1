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


@dataclass
class BundleModel:
    """An exported bundle run by the torch-free runtime at one precision, so a metric can score the
    graphs users run (INT8 included) against the same model's fp32 graphs."""

    cfg: ModelConfig
    pipeline: object  # mnm.runtime.Pipeline
    meta: dict
    precision: str

    @property
    def device(self) -> str:
        return self.pipeline.backend.description

    @property
    def has_extractor(self) -> bool:
        return "feature" in self.pipeline.bundle.modes


BACKEND_OF_DEVICE = {"auto": "auto", "cpu": "ort-cpu", "cuda": "ort-cuda"}


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def open_bundle_model(path: str | Path, precision: str = "auto", device: str = "cpu", bundle=None) -> BundleModel:
    """``path`` (or an already opened ``bundle``) on the runtime's ``device`` backend at ``precision``."""
    from mnm.runtime.bundle import Bundle
    from mnm.runtime.pipeline import Pipeline

    if device not in BACKEND_OF_DEVICE:
        raise MnmError(f"--device must be auto, cpu or cuda, got {device!r}")
    bundle = bundle or Bundle.open(path)
    pipeline = Pipeline(bundle, backend=BACKEND_OF_DEVICE[device], precision=precision, concurrent=False)
    source = bundle.manifest.get("source") or {}
    meta = {"path": str(path), "bundle": True, "precision": precision, "step": source.get("step"),
            "stage": source.get("stage")}
    return BundleModel(bundle.config, pipeline, meta, precision)


def load_model(run: str | Path, device: str = "auto", precision: str | None = None) -> Model | BundleModel:
    """A run folder (its latest checkpoint) or a checkpoint folder, in eval mode on ``device``; or an
    exported bundle folder, run by the runtime at ``precision`` (default auto)."""
    from mnm.training.export_source import load_for_export

    if is_bundle(run):
        return open_bundle_model(run, precision or "auto", device)
    if precision is not None:
        raise MnmError(f"{run}: --precision applies to an exported bundle, not to a run or checkpoint")
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
