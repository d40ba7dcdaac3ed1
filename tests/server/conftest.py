"""Fixtures for the server suites: a real ``mnm serve`` process on loopback, the demo bundle, photos,
and the library's own output for the same inputs (what every response must equal)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mnm.imaging import encode_image
from tests.runtime.conftest import photo

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "mnm" / "assets" / "demo" / "bundle"
START_TIMEOUT_S = 120
LISTENING = re.compile(r"on http://127\.0\.0\.1:(\d+)")


class Server:
    """``mnm serve BUNDLE --port 0 ARGS`` in a subprocess; its stderr is collected in ``log``.
    ``own_group``: in a process group of its own (its pid), so a test can signal the whole group."""

    def __init__(self, bundle: Path, *args: str, env: dict | None = None, port: int = 0, own_group: bool = False):
        self.args = [sys.executable, "-m", "mnm", "serve", str(bundle), "--port", str(port), *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "MNM_NO_PROGRESS": "1", **(env or {})},
                                     start_new_session=own_group)
        self.log: list[str] = []
        self._port = threading.Event()
        self.port = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.append(line)
            match = LISTENING.search(line)
            if match and self.port is None:
                self.port = int(match.group(1))
                self._port.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mnm serve exited with {self.proc.returncode}:\n{self.output()}")
            if self._port.wait(0.2):
                try:
                    if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
        raise TimeoutError(f"mnm serve not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return "".join(self.log)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and the exit code (the test fails if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="session")
def demo() -> Path:
    return DEMO


@pytest.fixture(scope="module")
def server(demo):
    """One server on the demo bundle for a test module."""
    running = Server(demo).wait_ready()
    yield running
    assert running.stop() == 0, running.output()


@pytest.fixture(scope="session")
def library(demo):
    """The library on the same bundle: what the server must answer."""
    from mnm.runtime.pipeline import Pipeline

    pipe = Pipeline(demo, backend="ort-cpu")
    yield pipe
    pipe.close()


@pytest.fixture(scope="session")
def refs(tmp_path_factory) -> list[Path]:
    """Eight distinct reference photos (PNG, 70 x 52)."""
    folder = tmp_path_factory.mktemp("refs")
    return [photo(folder / f"ref{i}.png", seed=300 + i) for i in range(8)]


RANDOM = {"background": "random", "pose": "random", "shape": "random", "texture": "random"}
"""Form fields naming every factor random: /v1/mix and /v1/grid refuse a factor left out."""


def png(image) -> bytes:
    return encode_image(image, "PNG")


def upload(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/png")
