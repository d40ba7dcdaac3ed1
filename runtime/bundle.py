"""Reading an exported bundle: the manifest, its graphs and engines, every file checked by sha256.

The reader is the other half of the contract in docs/bundle.md ("What readers refuse"). It refuses a
manifest from a newer format version, a missing file and a file whose sha256 differs from the
manifest, each with one line that names the file, so a damaged bundle never reaches a backend.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from mnm.config import ModelConfig
from mnm.errors import MnmError, check_format_version
from mnm.jsonfile import read_json_object
from mnm.provenance import sha256_file
from mnm.runtime import machine

FORMAT = "mnm-bundle"
FORMAT_VERSION = 1
"""The newest manifest format this reader understands."""

PRECISIONS = ("auto", "fp32", "fp16", "int8")
"""What a caller may ask for: ``auto`` is, on the CPU, INT8 where the bundle has an INT8 graph (one
that passed its quality gate at export, docs/int8.md) and INT8 is safe on this CPU
(``int8_choice``), fp32 elsewhere; on a GPU, fp16 where the bundle's fp16 graphs passed the same
gate (``fp16_choice``), else fp32. ``int8`` runs the INT8 graphs on any CPU, refused on a bundle
without INT8 graphs; ``fp16`` the fp16 graphs, gated or not."""
_SECTIONS = {"fp32": "graphs", "fp16": "graphs_fp16", "int8": "graphs_int8"}

CODE_GRAPHS = ("enc_z", "enc_b", "enc_p", "enc_c", "g_background", "g_parent", "g_child")
FEATURE_GRAPHS = ("extractor",)
_HASH_CHUNK = 1 << 20
_JSON_NAMES = {dict: "JSON object", list: "JSON list", str: "string"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints and the symbolic "batch"
    dtype: str


@dataclass(frozen=True)
class GraphEntry:
    """One graph of the manifest (``graphs``, ``graphs_fp16`` or ``graphs_int8``)."""

    name: str
    path: Path
    sha256: str
    bytes: int
    precision: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    params: int = 0
    macs_per_image: int = 0
    parity: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclass(frozen=True)
class EngineEntry:
    """A TensorRT engine and its build record (the record says where the engine can run)."""

    key: str  # "<graph>.<precision>"
    graph: str
    precision: str
    path: Path
    record_path: Path
    sha256: str

    def record(self) -> dict:
        """The build record: TensorRT version, GPU, compute capability, precision, profiles."""
        return read_json_object(self.record_path, "engine build record")


def check_precision_name(precision: str, what: str = "precision") -> None:
    """Refuse, in one line naming ``what`` (the option), a precision no bundle gives (needs no bundle:
    callers check before opening one)."""
    if precision not in PRECISIONS:
        raise MnmError(f"{what} must be one of {', '.join(PRECISIONS)}, got {precision!r}")


class Bundle:
    """A verified bundle folder: ``Bundle.open(path)``.

    ``config`` is the model config; ``graphs`` / ``graphs_fp16`` / ``graphs_int8`` map graph names to entries;
    ``engines`` maps ``<graph>.<precision>`` to engine entries; ``modes`` is what it can run.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        where = str(path / "manifest.json")
        self.config = ModelConfig.from_dict(_field(manifest, "config", dict, where), source=f"{where} config")
        for key, kind in (("source", dict), ("exporter", dict), ("normalization", dict), ("opset", int),
                          ("created", str)):
            _optional(manifest, key, kind, where)
        self.modes = tuple(_optional(manifest, "modes", list, where) or ("code",))
        if not all(mode in ("code", "feature") for mode in self.modes):
            raise MnmError(f"{where}: 'modes' must list code and/or feature, got {manifest['modes']!r}")
        self.graphs = _graph_entries(path, _field(manifest, "graphs", dict, where), where, "graphs")
        self.graphs_fp16, self.graphs_int8 = (
            _graph_entries(path, _optional(manifest, section, dict, where) or {}, where, section)
            for section in ("graphs_fp16", "graphs_int8")
        )
        self.engines = _engine_entries(path, _optional(manifest, "engines", dict, where) or {}, where)
        for mode, needed in (("code", CODE_GRAPHS), ("feature", CODE_GRAPHS + FEATURE_GRAPHS)):
            absent = [g for g in needed if g not in self.graphs]
            if mode in self.modes and absent:
                raise MnmError(f"{where}: mode {mode} needs graph(s) {', '.join(absent)}, not in the manifest")

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> Bundle:
        """Parse ``path/manifest.json``; with ``verify`` check every listed file's presence and sha256."""
        path = Path(path)
        if not path.exists():
            raise MnmError(f"{path}: bundle folder not found")
        if not path.is_dir():
            raise MnmError(f"{path}: a bundle is a folder (made by mnm export), not a file")
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise MnmError(f"{manifest_path}: missing; {path} is not an exported bundle")
        manifest = read_json_object(manifest_path, "bundle manifest")
        if manifest.get("format") != FORMAT:
            raise MnmError(f"{manifest_path}: not an mnm bundle manifest (format {manifest.get('format')!r})")
        check_format_version(manifest.get("format_version"), FORMAT_VERSION, str(manifest_path), "bundle",
                             "upgrade mnm or re-export with this version")
        bundle = cls(path, manifest)
        if verify:
            bundle.verify()
        return bundle

    def files(self) -> list[tuple[Path, str]]:
        """Every file the manifest vouches for, with its expected sha256."""
        tables = (self.graphs, self.graphs_fp16, self.graphs_int8)
        entries = [(g.path, g.sha256) for table in tables for g in table.values()]
        entries += [(e.path, e.sha256) for e in self.engines.values()]
        return entries

    def check_files(self) -> list[tuple[Path, str | None]]:
        """(file, problem or None) for every listed file; reads each file once."""
        return [(p, _file_problem(p, digest)) for p, digest in self.files()]

    def verify(self) -> None:
        """Raise on the first missing or altered file (one line naming it)."""
        for path, problem in self.check_files():
            if problem:
                raise MnmError(f"{path}: {problem}")

    def check_precision(self, precision: str) -> None:
        """Refuse, in one line, a precision this bundle cannot give."""
        check_precision_name(precision)
        if precision == "int8" and not self.graphs_int8:
            raise MnmError(f"{self.path}: the bundle has no INT8 graphs (export it with --int8); "
                           "use --precision fp32 or auto")
        if precision == "fp16" and not self.graphs_fp16:
            raise MnmError(f"{self.path}: the bundle has no fp16 graphs (export it with --fp16)")

    def precision_of(self, name: str, precision: str) -> str:
        """The precision graph ``name`` runs at when ``precision`` is asked for."""
        if precision == "int8" or (precision == "auto" and self.int8_choice[0]):
            return "int8" if name in self.graphs_int8 else "fp32"
        return "fp32" if precision == "auto" else precision

    @functools.cached_property
    def fp16_choice(self) -> tuple[bool, str]:
        """Whether ``auto`` runs the fp16 graphs (engines) on a GPU, and why: only if they passed the
        quality gate INT8 graphs pass (the export's ``fp16`` record)."""
        if not self.graphs_fp16:
            return False, "the bundle has no fp16 graphs"
        record = self.manifest.get("fp16")
        if not isinstance(record, dict) or "passed" not in record:
            return False, "its fp16 graphs were exported without the quality gate (re-export with --fp16)"
        measured = record.get("combined") or {}
        scores = f"PSNR {measured.get('psnr_db')} dB, max diff {measured.get('max_abs_diff')} against fp32"
        if record["passed"]:
            return True, f"its fp16 graphs passed the quality gate ({scores})"
        return False, f"its fp16 graphs failed the quality gate ({scores}); --precision fp16 runs them anyway"

    @functools.cached_property
    def int8_choice(self) -> tuple[bool, str]:
        """Whether ``auto`` runs this bundle's INT8 graphs on this CPU, and why (``mnm info`` says it).

        The graphs are U8S8 QDQ: onnxruntime documents that such kernels can saturate on x86 CPUs
        without VNNI (the u8 x s8 pairs summed in int16), so a gate passed on one CPU does not carry
        over to every CPU. INT8 is chosen where this CPU has VNNI, where the graphs were quantized
        with ``reduce_range`` (7-bit weights: no saturation), where the gate itself ran without VNNI
        (what it measured included the saturation), and on CPUs other than x86."""
        if not self.graphs_int8:
            return False, "the bundle has no INT8 graphs"
        record = self.manifest.get("int8") if isinstance(self.manifest.get("int8"), dict) else {}
        quantizer, gate = record.get("quantizer") or {}, record.get("gate_machine") or {}
        if quantizer.get("reduce_range"):
            return True, "its INT8 graphs were quantized with reduce_range (7-bit weights), safe on any CPU"
        if not machine.is_x86():
            return True, "not an x86 CPU: the saturation of x86 U8S8 kernels without VNNI does not apply"
        vnni = [f for f in machine.VNNI if f in machine.cpu_features()]
        if vnni:
            return True, f"this CPU has VNNI ({vnni[0]}): onnxruntime's U8S8 kernels do not saturate"
        if gate.get("vnni") is False:
            return True, "no VNNI here, and none where the gate measured the INT8 graphs: it saw the same kernels"
        where = f" (the gate ran on a CPU with {', '.join(gate['cpu_features'])})" if gate.get("cpu_features") else ""
        return False, (f"this CPU has no VNNI (avx512_vnni or avx_vnni): onnxruntime's U8S8 kernels can saturate "
                       f"here, so the gate's verdict does not carry over{where}; --precision int8 runs them anyway")

    def graph(self, name: str, precision: str = "fp32") -> GraphEntry:
        self.check_precision(precision)
        resolved = self.precision_of(name, precision)
        table = getattr(self, _SECTIONS[resolved])
        if name not in table:
            what = "an fp16 graph" if resolved == "fp16" else "graph"
            hint = " (export with --fp16)" if resolved == "fp16" else ""
            raise MnmError(f"{self.path}: the bundle has no {what} {name!r}{hint}")
        return table[name]

    def describe_precision(self, precision: str) -> str:
        """``int8`` / ``fp32`` / ``int8 for 7 of 8 graphs, else fp32`` for what ``precision`` gives."""
        kinds = [self.precision_of(name, precision) for name in self.graphs]
        if len(set(kinds)) == 1:
            return kinds[0]
        return f"int8 for {kinds.count('int8')} of {len(kinds)} graphs, else fp32"

    def engines_for(self, graph: str) -> list[EngineEntry]:
        return [e for e in self.engines.values() if e.graph == graph]

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, modes={list(self.modes)}, graphs={list(self.graphs)})"


def _file_problem(path: Path, expected: str) -> str | None:
    if not path.is_file():
        return "missing (listed in manifest.json)"
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if actual != expected:
        return (
            f"sha256 mismatch: the file changed after export (expected {expected[:12]}..., "
            f"got {actual[:12]}...); re-export the bundle"
        )
    return None


def _field(data: dict, key: str, kind: type, where: str):
    value = data.get(key)
    if not isinstance(value, kind):
        raise MnmError(f"{where}: field {key!r} missing or not a {kind.__name__}")
    return value


def _optional(data: dict, key: str, kind: type, where: str):
    """A field that may be absent or null, but has type ``kind`` when given (int: not a bool, >= 0)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
        what = "a non-negative integer" if kind is int else f"a {_JSON_NAMES.get(kind, kind.__name__)}"
        raise MnmError(f"{where}: field {key!r} must be {what}, got {value!r}")
    return value


def _parity(value, where: str) -> dict:
    """The recorded parity check: an object whose ``max_abs_diff`` maps outputs to numbers."""
    parity = _optional({"parity": value}, "parity", dict, where) or {}
    diffs = _optional(parity, "max_abs_diff", dict, where) or {}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in diffs.values()):
        raise MnmError(f"{where}: parity.max_abs_diff must map output names to numbers")
    return dict(parity)


def _inside(root: Path, relative, where: str) -> Path:
    """A manifest path, refused if it leaves the bundle folder."""
    if not isinstance(relative, str) or not relative:
        raise MnmError(f"{where}: a file entry is missing or not a string")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise MnmError(f"{where}: file {relative!r} points outside the bundle")
    return root / candidate


def _tensors(items, where: str) -> tuple[TensorSpec, ...]:
    specs = []
    for t in items:
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("shape"), list)
                and isinstance(t.get("dtype"), str)):
            raise MnmError(f"{where}: an input/output entry needs a name, a shape list and a dtype, got {t!r}")
        specs.append(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]))
    return tuple(specs)


def _graph_entries(root: Path, table: dict, where: str, section: str) -> dict[str, GraphEntry]:
    entries = {}
    for name, g in table.items():
        here = f"{where} {section}.{name}"
        if not isinstance(g, dict):
            raise MnmError(f"{here}: must be an object")
        entries[name] = GraphEntry(
            name=name,
            path=_inside(root, g.get("file"), here),
            sha256=_field(g, "sha256", str, here),
            bytes=_optional(g, "bytes", int, here) or 0,
            precision=_optional(g, "precision", str, here) or {v: k for k, v in _SECTIONS.items()}[section],
            inputs=_tensors(_field(g, "inputs", list, here), here),
            outputs=_tensors(_field(g, "outputs", list, here), here),
            params=_optional(g, "params", int, here) or 0,
            macs_per_image=_optional(g, "macs_per_image", int, here) or 0,
            parity=_parity(g.get("parity"), here),
        )
    return entries


def _engine_entries(root: Path, table: dict, where: str) -> dict[str, EngineEntry]:
    entries = {}
    for key, e in table.items():
        here = f"{where} engines.{key}"
        graph, dot, precision = key.rpartition(".")
        if not dot or not isinstance(e, dict):
            raise MnmError(f"{here}: engine keys are '<graph>.<precision>' with an object value")
        entries[key] = EngineEntry(
            key=key,
            graph=graph,
            precision=precision,
            path=_inside(root, e.get("file"), here),
            record_path=_inside(root, e.get("record"), here),
            sha256=_field(e, "sha256", str, here),
        )
    return entries
