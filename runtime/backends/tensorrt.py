"""Native TensorRT: the bundle's prebuilt engines, the named-tensor API and preallocated buffers.

Per graph one engine and one execution context; device buffers and pinned host buffers are
allocated once at the largest shape of the engine's optimisation profile and bound with
``set_tensor_address``, so a run is: set input shapes, copy in, ``execute_async_v3``, copy out,
synchronise the stream. Larger batches are split at the profile's maximum. An execution context
is not thread-safe, so each engine runs under its own lock (different graphs run concurrently).

Engines are not portable across GPU models or TensorRT versions: every engine's build record is
checked against this machine (``mnm.export.engine_record.engine_compatibility``) and against the
graph it was built from (``source_sha256``) before anything is deserialised; a mismatch is refused
with the command that rebuilds it. Works with TensorRT 10 and 11 (the runtime API is the same)
and cuda-python 12 or newer (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.backends.base import BackendUnavailable
from mnm.runtime.bundle import Bundle, EngineEntry

REBUILD = "rebuild on this machine with: mnm export CHECKPOINT_OR_RUN --out BUNDLE --trt"


def _modules():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("the tensorrt package is not installed (pip install 'mnm[trt]')") from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise BackendUnavailable("cuda-python is not installed (pip install 'mnm[trt]')") from None
    return trt, cudart


def _call(cudart, result):
    """cuda-python returns (error, *values): raise on an error, return the value(s)."""
    err, *values = result
    if int(err) != 0:
        _, text = cudart.cudaGetErrorString(err)
        text = text.decode() if isinstance(text, bytes) else str(text)
        raise MnmError(f"CUDA error {int(err)}: {text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def machine_info(device_id: int = 0) -> dict:
    """What an engine must have been built for: TensorRT version, GPU name, compute capability."""
    trt, _ = _modules()
    machine = _records().machine_info(trt.__version__, device_id)
    if machine is None:
        raise BackendUnavailable("no CUDA GPU is visible")
    return machine


def _records():
    try:
        from mnm.export import engine_record
    except ImportError as exc:
        raise BackendUnavailable(f"cannot check engine build records ({exc})") from None
    return engine_record


def engine_problem(bundle: Bundle, entry: EngineEntry, machine: dict) -> str | None:
    """Why this engine cannot run on ``machine`` (None: it can), from its build record alone."""
    record = entry.record()
    fits, reason = _records().engine_compatibility(record, machine)
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

    ``precision="auto"`` takes fp16 engines when every graph has one that fits, else fp32.
    """
    if not bundle.engines:
        raise BackendUnavailable(f"{bundle.path}: the bundle has no TensorRT engines; {REBUILD}")
    order = ["fp16", "fp32"] if precision == "auto" else [precision]
    problems: list[str] = []
    for prec in order:
        chosen, missing = {}, []
        for graph in bundle.graphs:
            entry = bundle.engines.get(f"{graph}.{prec}")
            if entry is None:
                missing.append(graph)
                continue
            problem = engine_problem(bundle, entry, machine)
            if problem:
                problems.append(problem)
            else:
                chosen[graph] = entry
        if len(chosen) == len(bundle.graphs):
            return chosen
        if missing and not problems:
            problems.append(f"{bundle.path}: no {prec} engine for {', '.join(missing)}; {REBUILD}")
    raise BackendUnavailable(problems[0])


@dataclass
class _Buffer:
    device: int
    host_ptr: int
    host: np.ndarray  # pinned, flat, of the tensor's dtype
    dtype: np.dtype


class _Engine:
    """One deserialised engine with its context, stream and buffers at the profile's largest shapes."""

    def __init__(self, trt, cudart, runtime, entry: EngineEntry, expected_inputs: list[str]):
        self.cudart = cudart
        self.path = entry.path
        self.buffers: dict[str, _Buffer] = {}
        self.stream = None
        self.lock = threading.Lock()
        engine = runtime.deserialize_cuda_engine(entry.path.read_bytes())
        if engine is None:
            raise MnmError(f"{entry.path}: TensorRT could not deserialise the engine; {REBUILD}")
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        if sorted(self.inputs) != sorted(expected_inputs):
            raise MnmError(
                f"{entry.path}: engine inputs {self.inputs} differ from the graph's {expected_inputs}; {REBUILD}"
            )
        largest = {n: tuple(engine.get_tensor_profile_shape(n, 0)[2]) for n in self.inputs}
        self.max_batch = min(shape[0] for shape in largest.values())
        for n, shape in largest.items():
            self.context.set_input_shape(n, shape)
        try:
            self.stream = _call(cudart, cudart.cudaStreamCreate())
            for n in names:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
                count = int(np.prod(tuple(self.context.get_tensor_shape(n))))
                nbytes = max(1, count * dtype.itemsize)
                device = _call(cudart, cudart.cudaMalloc(nbytes))
                self.buffers[n] = _Buffer(device, 0, np.empty(0, dtype), dtype)  # freed by close() on failure
                host_ptr = _call(cudart, cudart.cudaMallocHost(nbytes))
                raw = (ctypes.c_uint8 * nbytes).from_address(int(host_ptr))
                self.buffers[n] = _Buffer(device, int(host_ptr), np.frombuffer(raw, dtype=dtype, count=count), dtype)
                if not self.context.set_tensor_address(n, int(device)):
                    raise MnmError(f"{entry.path}: TensorRT refused the buffer address of {n!r}")
        except BaseException:
            self.close()
            raise

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = {k: v[start : start + self.max_batch] for k, v in feeds.items()}
            with self.lock:
                parts.append(self._run_chunk(chunk, outputs or self.outputs))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run_chunk(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            buf = self.buffers[name]
            array = np.ascontiguousarray(feeds[name], dtype=buf.dtype)
            if not self.context.set_input_shape(name, array.shape):
                raise MnmError(f"{self.path}: input {name!r} of shape {array.shape} is outside the engine's profile")
            buf.host[: array.size] = array.reshape(-1)
            _call(cudart, cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, array.nbytes, to_device, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise MnmError(f"{self.path}: TensorRT execution failed")
        shapes = {name: tuple(self.context.get_tensor_shape(name)) for name in outputs}
        for name in outputs:
            buf = self.buffers[name]
            nbytes = int(np.prod(shapes[name])) * buf.dtype.itemsize
            _call(cudart, cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, nbytes, to_host, self.stream))
        _call(cudart, cudart.cudaStreamSynchronize(self.stream))
        # astype copies out of the reused pinned buffers.
        return {
            name: self.buffers[name].host[: int(np.prod(shapes[name]))].reshape(shapes[name]).astype(np.float32)
            for name in outputs
        }

    def close(self) -> None:
        cudart = self.cudart
        for buf in self.buffers.values():
            cudart.cudaFree(buf.device)
            if buf.host_ptr:
                cudart.cudaFreeHost(buf.host_ptr)
        self.buffers.clear()
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None


class TensorRTBackend:
    """``run(graph, feeds)`` on the bundle's prebuilt TensorRT engines."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, precision: str = "auto", device_id: int = 0):
        trt, cudart = _modules()
        self.bundle = bundle
        self.machine = machine_info(device_id)
        _call(cudart, cudart.cudaSetDevice(device_id))
        self._entries = choose_engines(bundle, self.machine, precision)
        self.precision = next(iter(self._entries.values())).precision
        self._trt, self._cudart = trt, cudart
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engines: dict[str, _Engine] = {}
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        m = self.machine
        gpu = f"{m['gpu_name']}, sm {m['compute_capability']}"
        return f"tensorrt {m['tensorrt_version']} ({self.precision} engines, {gpu})"

    def _engine(self, graph: str) -> _Engine:
        with self._lock:
            if graph not in self._engines:
                if graph not in self._entries:
                    raise MnmError(f"{self.bundle.path}: no TensorRT engine for graph {graph!r}")
                entry = self._entries[graph]
                self._engines[graph] = _Engine(
                    self._trt, self._cudart, self._runtime, entry, self.bundle.graph(graph).input_names
                )
            return self._engines[graph]

    def run(self, graph: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        return self._engine(graph).run(feeds, outputs)

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            self._engines.clear()
