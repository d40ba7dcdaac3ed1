"""Checkpoints: tensors in safetensors, everything else in JSON, never pickle.

A checkpoint is a folder ``<name>/`` holding ``tensors.safetensors`` and ``meta.json``. The folder
is written with ``atomic_dir``, so an interrupted save leaves the previous checkpoint intact, and
``meta.json`` records the tensors file's sha256 so truncation or tampering is caught on load.
Tensor keys are ``"<prefix>.<state_dict key>"``, one prefix per module (``generator``,
``encoders``, ...), so one file holds a whole training state.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import mnm
from mnm.atomic import FILE_MODE, atomic_dir, write_text
from mnm.config import ModelConfig
from mnm.errors import MnmError, check_format_version
from mnm.jsonfile import read_json_object
from mnm.provenance import file_digest

FORMAT_VERSION = 1
TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"
_RESERVED = ("format", "versions", "tensors_sha256", "tensors_bytes")
_SHOWN_MISMATCHES = 3


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping) -> Path:
    """Write a checkpoint folder atomically; return its path.

    ``meta`` is plain JSON from the caller (``config``, ``step``, ...); ``format``, ``versions``,
    ``tensors_sha256`` and ``tensors_bytes`` are set here, replacing any the caller passes (so a
    loaded meta can be saved again). Tensors are stored detached, contiguous and on the CPU.
    """
    path = Path(path)
    prepared = _cpu_contiguous(tensors)
    record = {"format": FORMAT_VERSION, **{k: v for k, v in meta.items() if k not in _RESERVED}}
    record["versions"] = _versions()
    try:
        json.dumps(record, allow_nan=False)  # fail before anything is written
    except (TypeError, ValueError) as exc:
        raise TypeError(f"checkpoint meta must be plain JSON without NaN: {exc}") from None
    try:
        with atomic_dir(path) as tmp:
            tensor_file = tmp / TENSORS_FILE
            save_file(prepared, str(tensor_file))
            os.chmod(tensor_file, FILE_MODE)  # safetensors creates it owner-only
            record["tensors_sha256"], record["tensors_bytes"] = file_digest(tensor_file, sync=True)
            write_text(tmp / META_FILE, json.dumps(record, indent=2, allow_nan=False) + "\n")
    except (OSError, SafetensorError) as exc:
        raise MnmError(f"{path}: cannot write the checkpoint ({exc})") from None
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint folder -> (tensors on the CPU, meta), after checking the sha256."""
    path = Path(path)
    meta = _read_meta(path)
    tensor_file = path / TENSORS_FILE
    if not tensor_file.is_file():
        raise MnmError(f"{tensor_file}: missing; the checkpoint is incomplete")
    sha256, size = file_digest(tensor_file)
    if size != meta.get("tensors_bytes", size):
        raise MnmError(
            f"{tensor_file}: {size} bytes but {META_FILE} records {meta['tensors_bytes']}; "
            "the file is truncated or was replaced"
        )
    if sha256 != meta["tensors_sha256"]:
        raise MnmError(
            f"{tensor_file}: sha256 does not match {META_FILE}; the file is corrupt or was modified"
        )
    try:
        tensors = load_file(str(tensor_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise MnmError(f"{tensor_file}: not a readable safetensors file ({exc})") from None
    return tensors, meta


def config_from_meta(meta: Mapping, source: str = "checkpoint") -> ModelConfig:
    """The ModelConfig a checkpoint was trained with, validated."""
    config = meta.get("config")
    if not isinstance(config, dict):
        raise MnmError(f"{source}: {META_FILE} has no model config (a 'config' object)")
    return ModelConfig.from_dict(config, source=f"{source} config")


def state_tensors(modules: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Flatten modules' state (parameters and buffers) to ``"<prefix>.<key>"`` CPU tensors.

    The tensors are copies, so later training steps do not change a state taken for saving.
    """
    out = {}
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            copy = torch.empty_like(value, device="cpu", memory_format=torch.contiguous_format)
            out[f"{prefix}.{key}"] = copy.copy_(value)
    return out


def load_state(
    modules: Mapping[str, torch.nn.Module], tensors: Mapping[str, torch.Tensor], source: str
) -> None:
    """Load ``"<prefix>.<key>"`` tensors into each module, or raise one error listing the mismatches.

    Every module is checked before any is changed. Keys under other prefixes (optimiser state,
    networks not asked for) are ignored.
    """
    problems: list[str] = []
    states = {}
    for prefix, module in modules.items():
        expected = module.state_dict()
        lead = f"{prefix}."
        found = {k[len(lead):]: v for k, v in tensors.items() if k.startswith(lead)}
        if not found and expected:
            problems.append(f"no '{prefix}.*' tensors in the checkpoint")
            continue
        for key, value in expected.items():
            name = lead + key
            if key not in found:
                problems.append(f"{name} is missing from the checkpoint")
            elif found[key].shape != value.shape:
                stored, wanted = list(found[key].shape), list(value.shape)
                problems.append(f"{name} is {stored} in the checkpoint but {wanted} in the model")
        extra = [key for key in found if key not in expected]
        problems.extend(f"{lead}{key} is in the checkpoint but not in the model" for key in extra)
        states[prefix] = found
    if problems:
        shown = "; ".join(problems[:_SHOWN_MISMATCHES])
        more = f" (and {len(problems) - _SHOWN_MISMATCHES} more)" if len(problems) > _SHOWN_MISMATCHES else ""
        count = f"{len(problems)} mismatch" + ("es" if len(problems) != 1 else "")
        raise MnmError(f"{source} does not match the model config: {count}, e.g. {shown}{more}")
    for prefix, module in modules.items():
        module.load_state_dict(states[prefix], strict=True)


def _read_meta(path: Path) -> dict:
    if not path.exists():
        raise MnmError(f"{path}: checkpoint not found")
    if not path.is_dir():
        raise MnmError(
            f"{path}: not a checkpoint; a checkpoint is a folder holding {TENSORS_FILE} and {META_FILE}"
        )
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise MnmError(f"{path}: not a checkpoint (no {META_FILE})")
    meta = read_json_object(meta_file, "checkpoint meta")
    check_format_version(meta.get("format"), FORMAT_VERSION, str(meta_file), "checkpoint", "upgrade mnm")
    if not isinstance(meta.get("tensors_sha256"), str):
        raise MnmError(f"{meta_file}: no tensors_sha256 recorded, so the tensors cannot be verified")
    return meta


def _cpu_contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; a tensor sharing storage with an earlier one is copied
    (safetensors refuses shared memory)."""
    out = {}
    storages = set()
    for key, value in tensors.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            raise TypeError(f"checkpoint tensors must map str to torch.Tensor, got {key!r}: {kind}")
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in storages and tensor.numel():
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def _versions() -> dict[str, str]:
    return {
        "mnm": mnm.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
