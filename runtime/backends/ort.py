"""onnxruntime backends: CPU, CUDA and the TensorRT execution provider, one session per graph.

CPU session settings, each chosen by measurement (``benchmarks/ort_settings.py``; the numbers are
in benchmarks/RESULTS.md, "onnxruntime session settings"):

- full graph optimisation (``ORT_ENABLE_ALL``): never slower, a little faster at best;
- no spinning worker threads: spinning helps batch-1 graphs on an idle machine but loses badly when
  another thread pool (torch, a capture thread, another process) wants the cores;
- intra-op threads = the cores this process may use (``mnm.runtime.machine.usable_cores``);
  ``threads=1`` (``--threads 1``) is faster on a machine busy with other work;
- one inter-op thread and sequential execution: the graphs are chains;
- memory arena and memory patterns on;
- plain ``run`` (I/O binding measured no gain on the CPU; it stays an option for CUDA).

Sessions are created lazily (a mix in code mode never loads the extractor) under a lock;
``InferenceSession.run`` is thread-safe, so one backend serves concurrent requests.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.backends.base import BackendUnavailable
from mnm.runtime.bundle import Bundle
from mnm.runtime.machine import usable_cores

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


def session_options(threads: int | None = None, overrides: dict | None = None):
    """The chosen settings (module docstring); ``overrides`` exists for the settings benchmark."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or usable_cores()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_cpu_mem_arena = True
    so.enable_mem_pattern = True
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    for key, value in (overrides or {}).items():
        if key.startswith("session."):  # a session config entry, e.g. session.intra_op.allow_spinning
            so.add_session_config_entry(key, str(value))
        else:
            setattr(so, key, value)
    return so


def unavailable_reason(name: str) -> str | None:
    """Why this onnxruntime backend cannot run in this install (None: the provider is built in)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    if PROVIDERS[name] not in ort.get_available_providers():
        return f"this onnxruntime build has no {PROVIDERS[name]}; install onnxruntime-gpu in place of onnxruntime"
    return None


class OrtBackend:
    """``run(graph, {input: array}) -> {output: array}`` through onnxruntime."""

    def __init__(
        self,
        bundle: Bundle,
        name: str = "ort-cpu",
        precision: str = "auto",
        threads: int | None = None,
        io_binding: bool = False,
        device_id: int = 0,
        cache_dir: str | os.PathLike | None = None,
        session_overrides: dict | None = None,
    ):
        if name not in PROVIDERS:
            raise MnmError(f"unknown onnxruntime backend {name!r}")
        reason = unavailable_reason(name)
        if reason:
            raise BackendUnavailable(reason)
        if name != "ort-cpu" and precision in ("auto", "int8"):
            if precision == "int8":  # QDQ graphs are made for (and gated on) the CPU provider
                raise BackendUnavailable("INT8 graphs run on ort-cpu; use --precision fp32 or fp16 on a GPU")
            precision = "fp32"
        bundle.check_precision(precision)
        self.bundle = bundle
        self.name = name
        self.precision = precision
        self.device_id = device_id
        self.io_binding = bool(io_binding)
        self._threads = threads
        self._overrides = session_overrides
        self._cache_dir = Path(cache_dir) if cache_dir else _default_trt_cache(bundle)
        self._sessions: dict[str, tuple] = {}
        self._lock = threading.Lock()
        if name != "ort-cpu":
            # Prove the device really runs now (onnxruntime would quietly fall back to the CPU).
            self.session(_smallest_graph(bundle, precision))

    @property
    def description(self) -> str:
        threads = f"{self.threads} thread" + ("s" if self.threads > 1 else "")
        return f"{self.name} (onnxruntime, {self.bundle.describe_precision(self.precision)}, {threads})"

    @property
    def threads(self) -> int:
        return self._threads or usable_cores()

    def _providers(self) -> list:
        cpu = "CPUExecutionProvider"
        cuda = ("CUDAExecutionProvider", {"device_id": self.device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"})
        if self.name == "ort-cpu":
            return [cpu]
        if self.name == "ort-cuda":
            return [cuda, cpu]
        trt = {
            "device_id": self.device_id,
            "trt_fp16_enable": self.precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(self._cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(self._cache_dir),
        }
        return [("TensorrtExecutionProvider", trt), cuda, cpu]

    def session(self, graph: str):
        """The graph's session, created on first use (thread-safe)."""
        with self._lock:
            if graph in self._sessions:
                return self._sessions[graph][0]
            import onnxruntime as ort

            entry = self.bundle.graph(graph, self.precision)
            if self.name == "ort-trt":
                self._cache_dir.mkdir(parents=True, exist_ok=True)
            try:
                sess = ort.InferenceSession(
                    str(entry.path),
                    sess_options=session_options(self._threads, self._overrides),
                    providers=self._providers(),
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise MnmError(f"{entry.path}: onnxruntime cannot load the graph ({_first_line(exc)})") from None
            wanted = PROVIDERS[self.name]
            if wanted not in sess.get_providers():
                raise BackendUnavailable(
                    f"{wanted} is built in but could not start (missing CUDA/cuDNN/TensorRT libraries or no GPU)"
                )
            dtypes = {i.name: np.float16 if "float16" in i.type else np.float32 for i in sess.get_inputs()}
            self._sessions[graph] = (sess, dtypes)
            return sess

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sess = self.session(graph)
        dtypes = self._sessions[graph][1]
        names = outputs or [o.name for o in sess.get_outputs()]
        feeds = {k: np.ascontiguousarray(v, dtype=dtypes.get(k, np.float32)) for k, v in feeds.items()}
        try:
            if self.io_binding:
                binding = sess.io_binding()
                for key, value in feeds.items():
                    binding.bind_cpu_input(key, value)
                device = "cpu" if self.name == "ort-cpu" else "cuda"
                for key in names:
                    binding.bind_output(key, device, self.device_id if device == "cuda" else 0)
                sess.run_with_iobinding(binding)
                values = binding.copy_outputs_to_cpu()
            else:
                values = sess.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise MnmError(f"{graph}: onnxruntime run failed ({_first_line(exc)})") from None
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(names, values, strict=True)}

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()


def _smallest_graph(bundle: Bundle, precision: str) -> str:
    if not bundle.graphs:
        raise MnmError(f"{bundle.path}: the bundle has no graphs")
    return min(bundle.graphs, key=lambda name: bundle.graph(name, precision).bytes)


def _default_trt_cache(bundle: Bundle) -> Path:
    """Engines the TensorRT EP builds are cached per bundle (first use builds them: minutes)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = "".join(sorted(g.sha256[:8] for g in bundle.graphs.values()))[:32]
    return base / "mnm" / "ort-trt" / digest


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
