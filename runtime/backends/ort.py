"""onnxruntime backends: CPU, CUDA and the TensorRT execution provider, one session per graph.

Session settings, each chosen on purpose. Numbers from ``benchmarks/ort_settings.py`` on this
platform's 2-core CPU, onnxruntime 1.32, random-init ``lite`` (batch 1, 8) and ``paper`` (batch 1,
4) bundles, all five graph kinds; each ratio is time(variant) / time(chosen) with the variants
interleaved in one process, as the median over graphs and batches of the per-case median ratio
[and of the fastest-run ratio]. The machine was shared with a training process throughout (load
average 4-6), so single cases scatter (0.5x-2.5x); only consistent effects decided:

- ``graph_optimization_level = ORT_ENABLE_ALL`` (constant folding, Conv+BN fusion, layout
  transforms): ORT_ENABLE_BASIC 0.95-1.06x [1.04-1.06x], ORT_DISABLE_ALL 0.95-0.99x [1.10x]. A
  small gain at best here; it never loses on the fastest runs, so the full level stays.
- ``session.intra_op.allow_spinning = 0``: spinning workers were 1.36x slower at paper scale
  [1.36x] and 1.07x at lite [0.85x: they help the best case of 1 ms graphs]; a spinning pool also
  burns a core between runs that the video capture thread and other processes need. On an idle
  machine with no other thread pool in the process, spinning made the batch-1 paper generator graphs 1.8-1.9x faster
  (10 interleaved repeats); but in a process that also runs PyTorch (the comparison harness) the
  two spinning pools fight and the single mix got 3x slower (benchmarks/RESULTS.md notes), so the
  robust setting stays.
- ``intra_op_num_threads = physical cores`` (``sched_getaffinity`` respected): with a core taken by
  the training process, 1 thread measured 0.68-0.81x (faster) in the median and 0.98x on the
  fastest runs, i.e. the second thread only helps when its core is free. Physical cores is the
  default for a machine that runs the runtime; pass ``threads=1`` (``--threads 1``) on a busy one.
- ``inter_op_num_threads = 1`` and ``ORT_SEQUENTIAL``: these graphs are chains; ORT_PARALLEL was
  1.91-1.92x slower [1.49-1.71x].
- ``enable_cpu_mem_arena`` and ``enable_mem_pattern`` on: without the arena paper graphs were
  1.47x slower [1.53x], lite ones 1.01x [0.99x].
- I/O binding (``io_binding=True``: inputs bound from numpy, outputs bound on the device and
  copied back once) measured 1.02-1.12x [1.03-1.12x] on the CPU, no gain, so the default is plain
  ``run``; on CUDA it was not measured here (no GPU), so it stays an option there too
  (the benchmark measures it on the machine it runs on).
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

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


def physical_cores() -> int:
    """Physical cores this process may use: hyper-thread siblings counted once (Linux), else logical CPUs."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def session_options(threads: int | None = None, overrides: dict | None = None):
    """The chosen settings (module docstring); ``overrides`` exists for the settings benchmark."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or physical_cores()
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
        precision: str = "fp32",
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
        return f"{self.name} (onnxruntime, {self.precision}, {threads})"

    @property
    def threads(self) -> int:
        return self._threads or physical_cores()

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
    table = bundle.graphs_fp16 if precision == "fp16" else bundle.graphs
    if not table:
        raise MnmError(f"{bundle.path}: the bundle has no {precision} graphs")
    return min(table.values(), key=lambda g: g.bytes).name


def _default_trt_cache(bundle: Bundle) -> Path:
    """Engines the TensorRT EP builds are cached per bundle (first use builds them: minutes)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = "".join(sorted(g.sha256[:8] for g in bundle.graphs.values()))[:32]
    return base / "mnm" / "ort-trt" / digest


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
