"""Native TensorRT: the bundle's prebuilt engines, the named-tensor API and preallocated buffers.

Engines are not portable across GPU models or TensorRT versions: every engine's build record is
checked against this machine (``mnm.runtime.engine_record.engine_compatibility``) and against the
graph it was built from (``source_sha256``) before anything is deserialised; a mismatch is refused
with the command that rebuilds it. Then every engine is deserialised, given its execution contexts
and buffers (``tensorrt_engine.Engine``) and run once on zeros, all when the backend is created, so
whatever fails on this machine (no usable driver, ``trt.Runtime`` refusing to start, an engine
TensorRT will not read, out of memory) fails there, as ``BackendUnavailable``, and ``--backend
auto`` moves on.
Works with TensorRT 10 and 11 (the runtime API is the same) and cuda-python 12 or newer.
"""

from __future__ import annotations

import threading

import numpy as np

from mnm.errors import MnmError
from mnm.runtime import engine_record
from mnm.runtime.backends import cuda
from mnm.runtime.backends.base import BackendUnavailable, first_line, zero_feeds
from mnm.runtime.backends.tensorrt_engine import REBUILD, Engine
from mnm.runtime.bundle import Bundle, EngineEntry


def _modules():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "the tensorrt package is not installed (pip install 'mnm[trt-cu12]' or 'mnm[trt-cu13]', docs/gpu.md)"
        ) from None
    except Exception as exc:  # the wheel is there but its libraries do not load
        raise BackendUnavailable(f"TensorRT cannot be loaded ({first_line(exc)})") from None
    return trt, cuda.import_cudart()


def machine_info(device_id: int = 0) -> dict:
    """What an engine must have been built for: TensorRT version, GPU name, compute capability."""
    trt, _ = _modules()
    machine = engine_record.machine_info(trt.__version__, device_id)
    if machine is None:
        raise BackendUnavailable(f"no CUDA GPU {device_id} is visible")
    return machine


def engine_problem(bundle: Bundle, entry: EngineEntry, machine: dict) -> str | None:
    """Why this engine cannot run on ``machine`` (None: it can), from its build record alone."""
    record = entry.record()
    fits, reason = engine_record.engine_compatibility(record, machine)
    if not fits:
        return f"{entry.path}: {reason}"
    table = bundle.graphs_fp16 if entry.precision == "fp16" else bundle.graphs
    source = table.get(entry.graph)
    if source is not None and record.get("source_sha256") not in (None, source.sha256):
        hint = f"rebuild on this machine with: {record['rebuild']}" if record.get("rebuild") else REBUILD
        return f"{entry.path}: built from another {entry.graph} graph than the bundle holds; {hint}"
    return None


def choose_engines(bundle: Bundle, machine: dict, precision: str = "auto") -> dict[str, EngineEntry]:
    """One fitting engine per graph of the bundle, or ``BackendUnavailable`` saying what is wrong.

    ``precision="auto"`` takes fp16 engines when the bundle's fp16 graphs passed their quality gate
    (``Bundle.fp16_choice``) and every graph has one that fits, else fp32.
    """
    if not bundle.engines:
        raise BackendUnavailable(f"{bundle.path}: the bundle has no TensorRT engines; {REBUILD}")
    gated_fp16 = ["fp16", "fp32"] if bundle.fp16_choice[0] else ["fp32"]
    order = gated_fp16 if precision == "auto" else [precision]
    misfits: list[str] = []  # an engine is there but does not fit: the reason worth giving first
    missing: list[str] = []
    for prec in order:
        chosen, absent = {}, []
        for graph in bundle.graphs:
            entry = bundle.engines.get(f"{graph}.{prec}")
            if entry is None:
                absent.append(graph)
                continue
            problem = engine_problem(bundle, entry, machine)
            if problem:
                misfits.append(problem)
            else:
                chosen[graph] = entry
        if len(chosen) == len(bundle.graphs):
            return chosen
        if absent:
            missing.append(f"{bundle.path}: no {prec} engine for {', '.join(absent)}; {REBUILD}")
    raise BackendUnavailable((misfits or missing)[0])


def start_runtime(trt, version_compatible: bool = False):
    """A ``trt.Runtime``; it raises ``TypeError`` (a null object) when CUDA cannot start."""
    try:
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    except Exception as exc:
        raise BackendUnavailable(f"TensorRT cannot start on this machine ({first_line(exc)})") from None
    if runtime is None:
        raise BackendUnavailable("TensorRT cannot start on this machine (no runtime)")
    if version_compatible:
        # A version-compatible plan carries TensorRT's lean runtime: host code TensorRT runs only
        # when allowed. Our own engines (their build record says so) are trusted.
        runtime.engine_host_code_allowed = True
    return runtime


def runtime_check(device_id: int = 0) -> str:
    """That TensorRT starts on GPU ``device_id`` (whatever engines a bundle holds): a description,
    or ``BackendUnavailable`` saying why not."""
    trt, cudart = _modules()
    machine = machine_info(device_id)
    try:
        cuda.use_device(cudart, device_id)
    except MnmError as exc:
        raise BackendUnavailable(str(exc)) from None
    start_runtime(trt)
    return f"TensorRT {trt.__version__} starts on {machine['gpu_name']} (sm {machine['compute_capability']})"


class TensorRTBackend:
    """``run(graph, feeds)`` on the bundle's prebuilt TensorRT engines, all loaded at creation."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, precision: str = "auto", device_id: int = 0):
        trt, cudart = _modules()
        self.bundle, self.device_id = bundle, device_id
        self.machine = machine_info(device_id)
        self._entries = choose_engines(bundle, self.machine, precision)
        self.precision = next(iter(self._entries.values())).precision
        self._cudart = cudart
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        try:
            cuda.use_device(cudart, device_id)
            records = [entry.record() for entry in self._entries.values()]
            runtime = start_runtime(trt, any(r.get("version_compatible") for r in records))
            for graph, entry in self._entries.items():
                self._engines[graph] = Engine(trt, cudart, runtime, entry, bundle.graph(graph).input_names, device_id)
                self._engines[graph].run(zero_feeds(bundle.graph(graph)), None)  # warm-up: it executes here
        except BackendUnavailable:
            self.close()
            raise
        except Exception as exc:  # a CUDA error, an engine TensorRT will not read, out of memory
            self.close()
            raise BackendUnavailable(first_line(exc)) from None

    @property
    def description(self) -> str:
        m = self.machine
        gpu = f"{m['gpu_name']}, sm {m['compute_capability']}, device {self.device_id}"
        return f"tensorrt {m['tensorrt_version']} ({self.precision} engines, {gpu})"

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        engine = self._engines.get(graph)
        if engine is None:
            raise MnmError(f"{self.bundle.path}: no TensorRT engine for graph {graph!r}")
        return engine.run(feeds, outputs)

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
