"""Uploads are reduced to the model's input as soon as they are decoded, and the decoded pixels of
one request are bounded: a grid of many large images keeps the server's resident memory small."""

from __future__ import annotations

import io
import threading
import time

import httpx
import psutil
import pytest
from PIL import Image, ImageDraw

from tests.server.conftest import Server

SIDE = 2000  # 4 megapixels: 12 MB each once decoded to RGB
IMAGES = 16
REQUEST_PIXELS = IMAGES * SIDE * SIDE


def big_png(index: int) -> bytes:
    """A 1-bit PNG of SIDE x SIDE (a few KB: mostly one colour), distinct for each ``index``."""
    image = Image.new("1", (SIDE, SIDE), 1)
    ImageDraw.Draw(image).rectangle((index * 50, index * 50, index * 50 + 400, index * 50 + 300), fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def roomy(demo):
    """A server that admits exactly the 16 large images in one request."""
    running = Server(demo, "--max-request-pixels", str(REQUEST_PIXELS)).wait_ready()
    yield running
    assert running.stop() == 0, running.output()


def grid_files(count: int, first: int = 0) -> list:
    files = [("background", (f"big{i}.png", big_png(i), "image/png")) for i in range(first, first + count)]
    return files + [("pose", (None, "seed:1")), ("shape", (None, "code:0")), ("texture", (None, "code:2"))]


class PeakRss:
    """The largest resident set of a process, sampled every 5 ms while the block runs."""

    def __init__(self, pid: int):
        self.process, self.peak, self._done = psutil.Process(pid), 0, threading.Event()

    def __enter__(self):
        self.start = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *_):
        self._done.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def test_a_grid_of_large_uploads_keeps_resident_memory_bounded(roomy):
    """16 distinct 4-megapixel uploads (192 MB as RGB) in one grid: the server's resident memory grows
    by far less than the decoded images would take if they were kept until the grid renders."""
    warm = httpx.post(roomy.url + "/v1/grid", files=grid_files(2, first=IMAGES), timeout=300)  # allocator warm
    assert warm.status_code == 200, warm.text
    with PeakRss(roomy.proc.pid) as rss:
        response = httpx.post(roomy.url + "/v1/grid", files=grid_files(IMAGES), timeout=300)
    assert response.status_code == 200, response.text
    held = IMAGES * SIDE * SIDE * 3 / 2**20
    assert rss.growth_mb < held / 2, f"resident memory grew by {rss.growth_mb:.0f} MB (all images: {held:.0f} MB)"


def test_a_request_over_its_pixel_budget_is_refused_before_decoding_the_rest(roomy):
    response = httpx.post(roomy.url + "/v1/grid", files=grid_files(IMAGES + 1), timeout=300)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert "big16.png" in error and f"{REQUEST_PIXELS:,}" in error and "per request" in error
