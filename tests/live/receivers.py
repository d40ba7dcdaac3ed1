"""Real receivers for the live outputs, shared by the tests and ``benchmarks/live_latency.py``.

- ``UdpReceiver``: a UDP socket on loopback that keeps every datagram (bounded), decoded afterwards
  with PyAV as MPEG-TS; binding it first means no frame is missed.
- ``RtmpServer``: Debian's nginx with ``libnginx-mod-rtmp`` on a free loopback port: application
  ``live`` relays and records each stream (FLV), application ``closed`` refuses publishing. Installed
  with apt-get when missing and we are root (the way ``tests/web/conftest.py`` installs Chromium).
- ``RtmpPlayer``: plays a stream back from the server with PyAV, stamping each decoded frame.
"""

from __future__ import annotations

import functools
import io
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from tests.debian import apt_install_missing

NGINX = Path("/usr/sbin/nginx")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
MAX_BYTES = 64 * 2**20
"""A receiver keeps at most this much: a test stream is a few hundred kilobytes."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def decode(data: bytes | Path, container_format: str | None = None) -> list[np.ndarray]:
    """Every video frame of a stream's bytes (or a file), RGB."""
    import av

    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source, format=container_format) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


class UdpReceiver:
    """Every datagram sent to ``port`` on loopback, kept in arrival order with its arrival time."""

    def __init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self.datagrams: list[tuple[float, bytes]] = []
        self._size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="udp-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"udp://127.0.0.1:{self.port}"

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if self._size + len(data) <= MAX_BYTES:
                self.datagrams.append((time.perf_counter(), data))
                self._size += len(data)

    def close(self) -> bytes:
        """Stop (a receiver that vanishes) and return everything received."""
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
        return b"".join(data for _, data in self.datagrams)


@functools.cache
def nginx_missing() -> str | None:
    """Why nginx-rtmp cannot run here, after installing it from Debian where we can; None when it can."""
    return apt_install_missing(("nginx", "libnginx-mod-rtmp"), (NGINX, RTMP_MODULE))


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
load_module {module};
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record all;
            record_path {root}/recordings;
        }}
        application closed {{
            live on;
            deny publish all;
        }}
    }}
}}
"""


class RtmpServer:
    """nginx-rtmp on loopback in a temporary folder; ``stop()`` ends it (a server that vanishes)."""

    def __init__(self, root: Path):
        self.root = root
        (root / "recordings").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, module=RTMP_MODULE, port=self.port))
        self.process = subprocess.Popen(
            [str(NGINX), "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._wait_listening()

    def url(self, key: str, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    def recording(self, key: str) -> Path:
        return self.root / "recordings" / f"{key}.flv"

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return False

    def _wait_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx-rtmp did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class RtmpPlayer(threading.Thread):
    """Plays ``url`` from the server, keeping (decode time, RGB frame) until the stream stays quiet."""

    def __init__(self, url: str, quiet_s: float = 3.0, max_frames: int = 10_000):
        super().__init__(name="rtmp-player", daemon=True)
        self.url, self.quiet_s, self.max_frames = url, quiet_s, max_frames
        self.frames: list[tuple[float, np.ndarray]] = []
        self.error: str | None = None

    def run(self) -> None:
        import av

        # Probe little (the stream has no audio to wait for); the frames read while probing are kept.
        options = {"analyzeduration": "1", "probesize": "32", "fpsprobesize": "0", "rtmp_live": "live"}
        try:
            with av.open(self.url, timeout=(20, self.quiet_s), options=options) as container:
                for frame in container.decode(video=0):
                    self.frames.append((time.perf_counter(), frame.to_ndarray(format="rgb24")))
                    if len(self.frames) >= self.max_frames:
                        return
        except av.ExitError:  # quiet for quiet_s: the stream ended
            pass
        except (av.FFmpegError, OSError) as exc:
            self.error = str(exc)
