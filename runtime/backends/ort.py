"""onnxruntime backends: CPU, CUDA and the TensorRT execution provider, one session per graph.

CPU session settings, each chosen by measurement (``benchmarks/ort_settings.py``; the numbers are
in benchmarks/RESULTS.md, "onnxruntime session settings"):

- full graph optimisation (``ORT_ENABLE_ALL``): never slower, a little faster at best;
- worker threads that spin for the next operator, but for at most ``SPIN_US`` = 100 us before they
  sleep: between the operators of a graph and the graphs of a request the next piece of work
  comes sooner than a sleeping thread wakes up. Measured on the paper preset in a process of its
  own, 1.05x on a single mix and 1.08x per img2gif frame; 1000 us and more, or unbounded spinning,
  lose once another thread pool (torch's in the benchmark process, a second backend's) wants the
  cores, because every session's idle worker keeps a core busy;
- intra-op threads = the cores this process may use (``mnm.runtime.machine.usable_cores``);
  ``threads=1`` (``--threads 1``) is faster on a machine busy with other work;
- one inter-op thread and sequential execution: the graphs are chains;
- memory arena and memory patterns on;
- plain ``run`` (I/O binding measured no gain on the CPU; it stays an option for CUDA).

CPU sessions are created lazily (a mix in code mode never loads the extractor). A GPU backend
creates every session and runs each once when it is created (``ort_gpu`` prepares the provider
libraries and options): a provider that is listed but cannot start (missing cuDNN or libnvinfer,
no GPU) then fails at creation as ``BackendUnavailable`` instead of silently running on the CPU,
and the TensorRT provider builds its engines then, after saying so, not in the middle of a run.
``InferenceSession.run`` is thread-safe, so one backend serves concurrent requests.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.backends import ort_gpu
from mnm.runtime.backends.base import BackendUnavailable, first_line, zero_feeds
from mnm.runtime.bundle import Bundle
from mnm.runtime.machine import usable_cores

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}
DEFAULT_MAX_BATCH = 16
SPIN_US = 100
"""How long an idle intra-op worker spins for the next operator before it sleeps (module docstring)."""


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
    so.log_severity_level = 3
    entries = {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": str(SPIN_US)}
    for key, value in (overrides or {}).items():
        if key.startswith("session."):  # a session config entry, e.g. session.intra_op.allow_spinning
            entries[key] = str(value)
        else:
            setattr(so, key, value)
    for key, value in entries.items():
        so.add_session_config_entry(key, value)
    return so


def unavailable_reason(name: str) -> str | None:
    """Why this onnxruntime build has no such provider (None: it is built in, which does not yet
    mean it starts: only creating the backend tells)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    if PROVIDERS[name] not in ort.get_available_providers():
        return (f"this onnxruntime build has no {PROVIDERS[name]}; install onnxruntime-gpu in place of "
                "onnxruntime (docs/gpu.md)")
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
        max_batch: int = DEFAULT_MAX_BATCH,
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
            precision = "fp16" if bundle.fp16_choice[0] else "fp32"  # auto on a GPU: gated fp16, else fp32
        bundle.check_precision(precision)
        self.bundle = bundle
        self.name = name
        self.precision = precision
        self.device_id = device_id
        self.max_batch = max(1, int(max_batch))
        self.io_binding = bool(io_binding)
        self._threads = threads
        self._overrides = session_overrides
        self._sessions: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._notes = ""
        self._cache_dir = None
        if name == "ort-cpu":
            return
        self._notes = ort_gpu.preload_cuda_libraries()
        if name == "ort-trt":
            ort_gpu.import_tensorrt()
            self._cache_dir = Path(cache_dir) if cache_dir else ort_gpu.tensorrt_cache_dir(
                bundle, precision, self.max_batch, device_id)
        self._start_every_session()

    @property
    def description(self) -> str:
        precision = self.bundle.describe_precision(self.precision)
        if self.name == "ort-cpu":
            threads = f"{self.threads} thread" + ("s" if self.threads > 1 else "")
            return f"ort-cpu (onnxruntime, {precision}, {threads})"
        return f"{self.name} (onnxruntime {_ort_version()}, {precision}, GPU {self.device_id})"

    @property
    def threads(self) -> int:
        return self._threads or usable_cores()

    def _table(self) -> dict:
        table = self.bundle.graphs_fp16 if self.precision == "fp16" else self.bundle.graphs
        if not table:
            raise MnmError(f"{self.bundle.path}: the bundle has no {self.precision} graphs")
        return table

    def _start_every_session(self) -> None:
        """Create and run every graph once; any failure means this provider cannot run here."""
        from mnm.progress import track

        graphs = list(self._table())
        fresh = False
        if self._cache_dir is not None:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            fresh = not any(self._cache_dir.glob("*.engine"))
        try:
            for i, graph in enumerate(track(graphs, desc=f"{self.name} warm-up", unit="graph")):
                self.session(graph)
                if i == 0 and fresh:  # the provider started: the builds ahead are real
                    print(f"note: ort-trt builds TensorRT engines for {len(graphs)} graphs on first use (this can "
                          f"take minutes); they are cached in {self._cache_dir}", file=sys.stderr, flush=True)
                self.run(graph, zero_feeds(self._table()[graph]))
        except BackendUnavailable:
            self.close()
            raise
        except MnmError as exc:
            self.close()
            raise BackendUnavailable(f"{PROVIDERS[self.name]} does not run here ({exc})") from None

    def _providers(self, graph: str) -> list:
        cpu = "CPUExecutionProvider"
        if self.name == "ort-cpu":
            return [cpu]
        cuda = ("CUDAExecutionProvider", ort_gpu.cuda_options(self.device_id, self.precision))
        if self.name == "ort-cuda":
            return [cuda, cpu]
        trt = ort_gpu.tensorrt_options(self._table()[graph], self.device_id, self.precision, self.max_batch,
                                       self._cache_dir)
        return [("TensorrtExecutionProvider", trt), cuda, cpu]

    def session(self, graph: str):
        """The graph's session, created on first use (thread-safe)."""
        with self._lock:
            if graph in self._sessions:
                return self._sessions[graph][0]
            import onnxruntime as ort

            entry = self.bundle.graph(graph, self.precision)
            printed = io.StringIO()  # onnxruntime prints (to stdout) a provider that fails, then falls back
            try:
                with contextlib.redirect_stdout(printed):
                    sess = ort.InferenceSession(
                        str(entry.path),
                        sess_options=session_options(self._threads, self._overrides),
                        providers=self._providers(graph),
                    )
            except Exception as exc:  # onnxruntime raises its own exception types
                problem = f"{entry.path}: onnxruntime cannot load the graph ({first_line(exc)})"
                raise (BackendUnavailable if self.name != "ort-cpu" else MnmError)(problem) from None
            wanted = PROVIDERS[self.name]
            if wanted not in sess.get_providers():
                why = [_provider_error(printed.getvalue())] if "EP Error" in printed.getvalue() else []
                raise BackendUnavailable("; ".join([
                    f"{wanted} is built in but could not start (missing CUDA/cuDNN/TensorRT libraries or no GPU)",
                    *why, *([self._notes] if self._notes else [])]))
            dtypes = {i.name: np.float16 if "float16" in i.type else np.float32 for i in sess.get_inputs()}
            self._sessions[graph] = (sess, dtypes)
            return sess

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sess = self.session(graph)
        n = len(next(iter(feeds.values())))
        if self.name == "ort-trt" and n > self.max_batch:  # beyond the profile: run it in profile-sized parts
            parts = [self.run(graph, {k: v[i : i + self.max_batch] for k, v in feeds.items()}, outputs)
                     for i in range(0, n, self.max_batch)]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
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
            raise MnmError(f"{graph}: onnxruntime run failed ({first_line(exc)})") from None
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(names, values, strict=True)}

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()


def _provider_error(printed: str) -> str:
    """The message of onnxruntime's printed ``EP Error <source location> <message> when using ...``."""
    said = re.search(r"^EP Error (.*?)\s+when using", printed, re.M | re.S)
    text = " ".join((said.group(1) if said else printed).split())
    return (text[text.find("Please"):] if "Please" in text else text[-300:]).rstrip(".")


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__
