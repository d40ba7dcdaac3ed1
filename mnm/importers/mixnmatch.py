"""Import the authors' published MixNMatch checkpoints (G.pth, E.pth, EX.pth) as an mnm checkpoint.

Our networks are the authors' layer for layer, so importing is renaming plus checking. Every
tensor is found by name through the table in ``mixnmatch_table`` (never by position) and checked against the
shape our module has for the config read from the files, before anything is written. The files
are pickles: they are opened only with ``torch.load(weights_only=True)``, which builds tensors and
plain containers and refuses any other object. docs/importer.md has the table, the config
inference and the safety rules.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from mnm.checkpoint import META_FILE, save_checkpoint
from mnm.config import ModelConfig
from mnm.errors import MnmError
from mnm.importers.mixnmatch_table import SLOTS, module_pairs, top_level_names
from mnm.nn.encoders import Encoders
from mnm.nn.extractor import FeatureExtractor
from mnm.nn.generator import Generator
from mnm.progress import track
from mnm.provenance import utc_now

IMAGE_SIZE = 128
"""The reference layout fixes S: five upBlocks from 4×4 in each generator stage, five stride-2
steps and a 4×4 head in each encoder. A file of another size fails the name check."""

PUBLISHED = {"ngf": 64, "ndf": 64, "z_dim": 100, "n_parent": 20, "n_child": 200}
"""The largest value of each config field in any published MixNMatch model (CUB; Dogs and Cars have
fewer codes)."""
MARGIN = {"ngf": 2, "ndf": 2, "z_dim": 4, "n_parent": 4, "n_child": 4}
"""How far past the published models an import may go: 2x the channel widths (memory grows with
their square: ~2 GB of tensors for all three files at the limit, against ~0.5 GB published), 4x the
code sizes (they widen a few layers only). Anything larger is refused before a tensor is copied."""
LIMITS = {field: PUBLISHED[field] * MARGIN[field] for field in PUBLISHED}

DATAPARALLEL_PREFIX = "module."
SHOWN = 3
"""Offending names shown per kind of problem in an error line."""

# ------------------------------------------------------------------------------------------------
# What a file must hold for a config
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One tensor a reference file must hold: our name for it and our module's shape."""

    ours: str
    shape: tuple[int, ...]
    floating: bool  # parameters and running statistics; num_batches_tracked is an integer


def reference_layout(cfg: ModelConfig, slot: str) -> dict[str, Expected]:
    """Every tensor of the authors' file for ``slot`` at ``cfg``: their name -> what we expect.

    Built from our own modules (on the meta device: shapes only, no memory), so a shape that
    fits here fits the network that exports.
    """
    builders = {"generator": Generator, "encoders": Encoders, "extractor": FeatureExtractor}
    with torch.device("meta"):
        module = builders[slot](cfg)
    ours_to_theirs = {ours: theirs for theirs, ours in module_pairs(slot)}
    layout = {}
    for key, value in module.state_dict().items():
        ours = f"{SLOTS[slot].prefix}.{key}"
        layout[_their_name(ours, ours_to_theirs)] = Expected(ours, tuple(value.shape), value.is_floating_point())
    return layout


def _their_name(ours: str, ours_to_theirs: dict[str, str]) -> str:
    parts = ours.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        theirs = ours_to_theirs.get(".".join(parts[:cut]))
        if theirs is not None:
            return ".".join([theirs, *parts[cut:]])
    raise RuntimeError(f"the MixNMatch name table has no row for {ours}")  # a bug in the table


# ------------------------------------------------------------------------------------------------
# Reading one file safely
# ------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A reference file read and hashed: its tensors under the authors' names without ``module.``."""

    path: Path
    slot: str
    tensors: dict[str, torch.Tensor]
    sha256: str
    size: int
    dataparallel: bool  # the names carried the "module." prefix


def read_reference_file(path: str | Path, slot: str) -> Loaded:
    """Read one file with ``torch.load(weights_only=True)`` and refuse anything but a flat mapping
    of names to plain tensors. The sha256 is of exactly the bytes that were loaded."""
    path = Path(path)
    option = SLOTS[slot].option
    if not path.is_file():
        raise MnmError(f"{path}: no such file ({option})" if not path.exists() else f"{path}: not a file ({option})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MnmError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise MnmError(f"{path}: empty file (0 bytes), not a PyTorch checkpoint ({option})")
    _check_archive(path, data)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the outcome is what counts
            warnings.simplefilter("ignore")
            loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MnmError(
            f"{path}: refused by the safe loader (torch.load with weights_only=True): {_unpickler_reason(exc)}; "
            "the file holds objects other than tensors, or is damaged"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse an untrusted file is that file's problem
        detail = f"{type(exc).__name__}: {_first_sentence(str(exc))}".rstrip(": ")
        raise MnmError(f"{path}: not a readable PyTorch checkpoint: truncated, corrupt or another kind of file "
                       f"({detail})") from None
    tensors, dataparallel = _flat_tensors(loaded, path)
    _check_storage(path, tensors)
    _check_slot(path, slot, tensors)
    return Loaded(path, slot, tensors, hashlib.sha256(data).hexdigest(), len(data), dataparallel)


def _flat_tensors(loaded, path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    if not isinstance(loaded, Mapping):
        raise MnmError(f"{path}: holds {_a(type(loaded).__name__)}, not a state_dict (a flat mapping of names to "
                       "tensors)")
    bad = [f"{key!r} holds {_a(type(value).__name__)}" for key, value in loaded.items()
           if not isinstance(key, str) or not _plain_tensor(value)]
    if bad:
        raise MnmError(f"{path}: not a flat mapping of names to tensors: {_first(bad)}")
    if not loaded:
        raise MnmError(f"{path}: holds no tensors")
    names = list(loaded)
    dataparallel = all(name.startswith(DATAPARALLEL_PREFIX) for name in names)
    cut = len(DATAPARALLEL_PREFIX) if dataparallel else 0
    return {name[cut:]: value.detach() for name, value in loaded.items()}, dataparallel


def _check_archive(path: Path, data: bytes) -> None:
    """A zip-format file must not expand past its own size: ``torch.save`` stores its records
    uncompressed, and a compressed record is how a small file becomes gigabytes at load."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return  # the pre-1.6 format: a storage's bytes are read from the file itself
    try:
        expanded = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise MnmError(f"{path}: not a readable PyTorch checkpoint: a damaged zip archive ({exc})") from None
    if expanded > len(data):
        raise MnmError(f"{path}: its records expand to {_mb(expanded)} from a {_mb(len(data))} file; torch.save "
                       "stores them uncompressed, so this is no saved model; nothing was written")


def _check_storage(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor's elements are distinct stored values. A stride-0 or overlapping view (or many
    tensors viewing one storage) costs a few bytes in the file and its full size once copied: 78 KB
    of such views made a 7 GB import. Loading built only views; this refuses them before any copy."""
    views = [f"{name} ({tensor.numel()} elements on {_stored(tensor)} stored values)"
             for name, tensor in tensors.items() if not _distinct_elements(tensor)]
    if views:
        raise MnmError(f"{path}: {len(views)} tensor(s) repeat stored values (stride-0 or overlapping views, not "
                       f"saved weights): {_first(views)}; nothing was written")
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    stored = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors.values()}.values())
    if needed > stored:
        raise MnmError(f"{path}: the tensors hold {_mb(needed)} but the file stores {_mb(stored)} (tensors sharing "
                       "their values); nothing was written")


def _distinct_elements(tensor: torch.Tensor) -> bool:
    """No two elements at one address (each stride at least the span of the smaller ones) and the
    storage long enough for all of them."""
    span = 1
    for stride, size in sorted((st, sz) for st, sz in zip(tensor.stride(), tensor.shape, strict=True) if sz > 1):
        if stride < span:
            return False
        span = stride * size
    return tensor.numel() <= _stored(tensor)


def _stored(tensor: torch.Tensor) -> int:
    """Elements the tensor's storage holds from its offset on."""
    return tensor.untyped_storage().nbytes() // tensor.element_size() - tensor.storage_offset()


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _plain_tensor(value) -> bool:
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_quantized
            and value.device.type == "cpu")


def _check_slot(path: Path, slot: str, tensors: dict) -> None:
    """A file given in the wrong slot (E.pth as --generator) is named for what it is."""
    roots = {name.split(".", 1)[0] for name in tensors}
    if roots & top_level_names(slot):
        return
    for other, spec in SLOTS.items():
        if other != slot and roots & top_level_names(other):
            raise MnmError(
                f"{path} was given as {SLOTS[slot].option} but holds {spec.describes} (like the authors' "
                f"{spec.usual_name}); give it as {spec.option}"
            )
    raise MnmError(
        f"{path}: no tensor name belongs to {SLOTS[slot].describes} of MixNMatch (found "
        f"{_first(sorted(tensors))}); {SLOTS[slot].option} takes the authors' {SLOTS[slot].usual_name}"
    )


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _unpickler_reason(exc: Exception) -> str:
    """torch's message without its advice on loading the file unsafely."""
    text = " ".join(str(exc).split())
    _, marker, reason = text.partition("WeightsUnpickler error:")
    return _first_sentence(reason.split("Check the documentation")[0] if marker else text)


def _first_sentence(text: str) -> str:
    return _shorten(" ".join(text.split()).split(". ")[0])


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first(items: list[str]) -> str:
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


# ------------------------------------------------------------------------------------------------
# The config, read from the shapes
# ------------------------------------------------------------------------------------------------

ANCHORS = {  # (slot, tensor, axis): the dimension that gives each config field
    "z_dim": ("encoders", "model_z.4.weight", 0),
    "n_bg": ("encoders", "model_b.4.weight", 0),
    "n_parent": ("encoders", "model_p.4.weight", 0),
    "n_child": ("encoders", "model_c.4.weight", 0),
    "ndf": ("encoders", "model_z.0.0.weight", 0),
    "fc_rows": ("generator", "background_stage.fc.0.weight", 0),  # 2·16·8·ngf = 256·ngf
}


def infer_config(files: dict[str, Loaded]) -> ModelConfig:
    """S, Z, N_p, N_c = N_b, ngf and ndf from the shapes of the encoder heads and the first layers."""
    dims = {}
    for field, (slot, name, axis) in ANCHORS.items():
        tensor = files[slot].tensors.get(name)
        if tensor is None or tensor.dim() <= axis:
            raise MnmError(f"{files[slot].path}: {name} is missing or has no axis {axis}, so the model's size "
                           "cannot be read from the file")
        dims[field] = int(tensor.shape[axis])
    encoders, generator = files["encoders"].path, files["generator"].path
    if dims["n_bg"] != dims["n_child"]:
        raise MnmError(f"{encoders}: {dims['n_bg']} background codes but {dims['n_child']} texture codes; mnm ties "
                       "N_b = N_c as the reference does")
    if dims["fc_rows"] % 256:
        raise MnmError(f"{generator}: background_stage.fc.0.weight has {dims['fc_rows']} rows, not a multiple of "
                       "256 (2·16·8·ngf)")
    fields = {k: dims[k] for k in ("z_dim", "ndf", "n_parent", "n_child")}
    over = [f"{k} {v} (published {PUBLISHED[k]}, limit {LIMITS[k]})"
            for k, v in {**fields, "ngf": dims["fc_rows"] // 256}.items() if v > LIMITS[k]]
    if over:
        raise MnmError(f"{generator}, {encoders}: a model far larger than any published MixNMatch: {', '.join(over)}; "
                       "refused before reading its tensors; nothing was written")
    try:
        return ModelConfig(image_size=IMAGE_SIZE, ngf=dims["fc_rows"] // 256, **fields).validate()
    except MnmError as exc:
        raise MnmError(f"the model read from {generator} and {encoders} is not one mnm can build: {exc}") from None


def describe(cfg: ModelConfig) -> str:
    return (f"S {cfg.image_size}, Z {cfg.z_dim}, N_p {cfg.n_parent}, N_c = N_b {cfg.n_child}, "
            f"ngf {cfg.ngf}, ndf {cfg.ndf}")


# ------------------------------------------------------------------------------------------------
# Checking a file against the config and renaming it
# ------------------------------------------------------------------------------------------------


def mapped_tensors(loaded: Loaded, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The file's tensors under our names, after every name, shape and value is checked."""
    layout = reference_layout(cfg, loaded.slot)
    tensors = loaded.tensors
    missing = [name for name in layout if name not in tensors]
    unexpected = [name for name in tensors if name not in layout]
    shapes = [f"{name} is {list(tensors[name].shape)}, expected {list(want.shape)}"
              for name, want in layout.items() if name in tensors and tuple(tensors[name].shape) != want.shape]
    kinds = [f"{name} holds {str(tensors[name].dtype).removeprefix('torch.')}, expected "
             f"{'floating point' if want.floating else 'an integer'}"
             for name, want in layout.items() if name in tensors and _kind_differs(tensors[name], want)]
    problems = [f"{len(found)} {what}: {_first(found)}" for what, found in
                (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", shapes),
                 ("of the wrong type", kinds)) if found]
    if not problems:
        nonfinite = [name for name, want in layout.items() if want.floating and not torch.isfinite(tensors[name]).all()]
        if nonfinite:
            problems.append(f"{len(nonfinite)} with NaN or infinite values: {_first(nonfinite)}")
    if problems:
        raise MnmError(f"{loaded.path} ({SLOTS[loaded.slot].option}) does not fit the MixNMatch model read from the "
                       f"files ({describe(cfg)}): {'; '.join(problems)}; nothing was written")
    return {want.ours: tensors[name].to(torch.float32 if want.floating else torch.int64)
            for name, want in layout.items()}


def _kind_differs(tensor: torch.Tensor, want: Expected) -> bool:
    if want.floating:
        return not tensor.is_floating_point()
    return tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool


# ------------------------------------------------------------------------------------------------
# The import
# ------------------------------------------------------------------------------------------------


def import_mixnmatch(generator: str | Path, encoders: str | Path, out: str | Path,
                     extractor: str | Path | None = None) -> tuple[Path, dict]:
    """Read, check and convert the authors' files into the checkpoint folder ``out``; return
    (``out``, its meta). Any problem raises one ``MnmError`` line before anything is written."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (out / META_FILE).is_file()):
        raise MnmError(f"{out}: exists and is not an mnm checkpoint folder; choose a new --out (an existing "
                       "checkpoint folder is replaced)")
    given = {"generator": generator, "encoders": encoders, "extractor": extractor}
    files: dict[str, Loaded] = {}
    for slot in track([s for s, p in given.items() if p is not None], desc="import", unit="file"):
        files[slot] = read_reference_file(given[slot], slot)
    cfg = infer_config(files)
    tensors = {}
    for loaded in files.values():
        tensors.update(mapped_tensors(loaded, cfg))
    meta = _meta(cfg, files)
    save_checkpoint(out, tensors, meta)
    return out, meta


def _meta(cfg: ModelConfig, files: dict[str, Loaded]) -> dict:
    has_extractor = "extractor" in files
    return {
        "stage": "feature" if has_extractor else "code",
        "config": cfg.to_dict(),
        "has_extractor": has_extractor,
        "inference_only": True,
        "modes": ["code", "feature"] if has_extractor else ["code"],
        "imported": {
            "from": "MixNMatch reference checkpoints (the authors' G.pth, E.pth, EX.pth)",
            "created": utc_now(),
            "config_from": "tensor shapes: Z, N_b, N_p, N_c, ndf from E's heads and first conv; ngf from G's "
                           f"background fc; S = {IMAGE_SIZE} by the reference layout",
            "code_mode_only": not has_extractor,
            "files": {
                slot: {
                    "file": loaded.path.name,
                    "path": str(loaded.path.resolve()),
                    "sha256": loaded.sha256,
                    "bytes": loaded.size,
                    "tensors": len(loaded.tensors),
                    "module_prefix": loaded.dataparallel,
                }
                for slot, loaded in files.items()
            },
        },
    }
