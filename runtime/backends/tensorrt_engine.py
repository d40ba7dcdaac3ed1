"""One deserialised TensorRT engine, ready to run: an execution context per optimisation profile,
each with device and pinned host buffers allocated once at its profile's largest shapes.

Engines from ``mnm export --trt`` carry two profiles (``mnm.export.tensorrt_build``): batch 1
(img2gif, single mixes) and 1..max_batch tuned for max_batch (grids). A run picks the profile
whose range holds the batch and whose ``opt`` is nearest to it, so a batch of one runs kernels
chosen for one. An execution context is not thread-safe: each engine runs under its own lock, and
every run first makes the backend's GPU current on the calling thread.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from mnm.errors import MnmError
from mnm.runtime.backends import cuda

REBUILD = "rebuild on this machine with: mnm export CHECKPOINT_OR_RUN --out BUNDLE --trt"


@dataclass
class _Buffer:
    device: int
    host_ptr: int
    host: np.ndarray  # pinned, flat, of the tensor's dtype
    dtype: np.dtype


class _ProfileContext:
    """An execution context bound to profile ``index``, its buffers bound by ``set_tensor_address``."""

    def __init__(self, trt, cudart, engine, index: int, inputs: list[str], names: list[str], stream, path):
        self.cudart, self.index, self.buffers = cudart, index, {}
        try:
            self._bind(trt, engine, inputs, names, stream, path)
        except BaseException:
            self.close()
            raise

    def _bind(self, trt, engine, inputs, names, stream, path) -> None:
        cudart = self.cudart
        self.context = engine.create_execution_context()
        if self.context is None:
            raise MnmError(f"{path}: TensorRT could not create an execution context (out of GPU memory?)")
        if not self.context.set_optimization_profile_async(self.index, cuda.native_handle(stream)):
            raise MnmError(f"{path}: TensorRT refused optimisation profile {self.index}")
        shapes = {n: [tuple(s) for s in engine.get_tensor_profile_shape(n, self.index)] for n in inputs}
        self.low = max(s[0][0] for s in shapes.values())
        self.opt = max(s[1][0] for s in shapes.values())
        self.high = min(s[2][0] for s in shapes.values())
        for n in inputs:
            self.context.set_input_shape(n, shapes[n][2])
        for n in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            count = int(np.prod(tuple(self.context.get_tensor_shape(n))))
            nbytes = max(1, count * dtype.itemsize)
            device = cuda.check(cudart, cudart.cudaMalloc(nbytes))
            self.buffers[n] = _Buffer(device, 0, np.empty(0, dtype), dtype)  # freed by close() on failure
            host_ptr = cuda.check(cudart, cudart.cudaMallocHost(nbytes))
            raw = (ctypes.c_uint8 * nbytes).from_address(int(host_ptr))
            self.buffers[n] = _Buffer(device, int(host_ptr), np.frombuffer(raw, dtype=dtype, count=count), dtype)
            if not self.context.set_tensor_address(n, int(device)):
                raise MnmError(f"{path}: TensorRT refused the buffer address of {n!r}")

    def close(self) -> None:
        for buf in self.buffers.values():
            self.cudart.cudaFree(buf.device)
            if buf.host_ptr:
                self.cudart.cudaFreeHost(buf.host_ptr)
        self.buffers.clear()
        self.context = None


class Engine:
    """``run(feeds, outputs)`` on one engine; batches larger than its largest profile are split."""

    def __init__(self, trt, cudart, runtime, entry, expected_inputs: list[str], device_id: int):
        self.cudart, self.device_id, self.path = cudart, device_id, entry.path
        self.profiles: list[_ProfileContext] = []
        self.stream = None
        self.lock = threading.Lock()
        engine = runtime.deserialize_cuda_engine(entry.path.read_bytes())
        if engine is None:  # the documented failure value; TensorRT's log above says why
            raise MnmError(f"{entry.path}: TensorRT could not deserialise the engine; {REBUILD}")
        self.engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        if sorted(self.inputs) != sorted(expected_inputs):
            raise MnmError(
                f"{entry.path}: engine inputs {self.inputs} differ from the graph's {expected_inputs}; {REBUILD}"
            )
        try:
            self.stream = cuda.check(cudart, cudart.cudaStreamCreate())
            self.stream_ptr = cuda.native_handle(self.stream)
            for index in range(engine.num_optimization_profiles):
                self.profiles.append(
                    _ProfileContext(trt, cudart, engine, index, self.inputs, names, self.stream, entry.path)
                )
            cuda.check(cudart, cudart.cudaStreamSynchronize(self.stream))
        except BaseException:
            self.close()
            raise
        self.max_batch = max(p.high for p in self.profiles)

    def pick(self, n: int) -> _ProfileContext:
        """The profile that holds batch ``n`` with the nearest ``opt``."""
        fitting = [p for p in self.profiles if p.low <= n <= p.high]
        if not fitting:
            raise MnmError(f"{self.path}: no optimisation profile holds batch {n}; {REBUILD}")
        return min(fitting, key=lambda p: (abs(p.opt - n), p.index))

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = {k: v[start : start + self.max_batch] for k, v in feeds.items()}
            with self.lock:
                cuda.use_device(self.cudart, self.device_id)
                parts.append(self._run_chunk(chunk, outputs or self.outputs))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _run_chunk(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        profile = self.pick(len(next(iter(feeds.values()))))
        context = profile.context
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            buf = profile.buffers[name]
            array = np.ascontiguousarray(feeds[name], dtype=buf.dtype)
            if not context.set_input_shape(name, array.shape):
                raise MnmError(f"{self.path}: input {name!r} of shape {array.shape} is outside the engine's profile")
            buf.host[: array.size] = array.reshape(-1)
            cuda.check(cudart, cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, array.nbytes, to_device, self.stream))
        if not context.execute_async_v3(self.stream_ptr):
            raise MnmError(f"{self.path}: TensorRT execution failed")
        shapes = {name: tuple(context.get_tensor_shape(name)) for name in outputs}
        for name in outputs:
            buf = profile.buffers[name]
            nbytes = int(np.prod(shapes[name])) * buf.dtype.itemsize
            cuda.check(cudart, cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, nbytes, to_host, self.stream))
        cuda.check(cudart, cudart.cudaStreamSynchronize(self.stream))
        # astype copies out of the reused pinned buffers.
        return {
            name: profile.buffers[name].host[: int(np.prod(shapes[name]))].reshape(shapes[name]).astype(np.float32)
            for name in outputs
        }

    def close(self) -> None:
        self.cudart.cudaSetDevice(self.device_id)  # unchecked: close() also runs while handling an error
        for profile in self.profiles:
            profile.close()
        self.profiles.clear()
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None
