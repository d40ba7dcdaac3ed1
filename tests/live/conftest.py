"""Fixtures for the live outputs: the demo bundle, a short clip and a still image written here, and a
real nginx-rtmp server on loopback (one per module; installed from Debian when missing)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.live.receivers import RtmpServer, nginx_missing

DEMO = Path(__file__).resolve().parents[2] / "mnm" / "assets" / "demo" / "bundle"
CLIP_FPS = 15


def write_clip(path: Path, frames: int, fps: int = CLIP_FPS) -> Path:
    """A clip of a disc moving over a gradient (MJPG AVI, 64 x 64)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 64))
    ramp = np.linspace(30, 200, 64, dtype=np.uint8)
    for i in range(frames):
        frame = np.dstack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 90, np.uint8)])
        cv2.circle(frame, (12 + 2 * i % 40, 30 + i % 7), 11, (40, 170, 230), -1)
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi", 24)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """Long enough (8 s at 15 fps) to lose a receiver in the middle."""
    return write_clip(tmp_path_factory.mktemp("clip") / "long.avi", 120)


@pytest.fixture(scope="session")
def still(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("still") / "still.png"
    yy, xx = np.mgrid[0:80, 0:80]
    image = np.dstack([xx * 3, yy * 3, (xx + yy) * 1.5]).clip(0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture(scope="module")
def rtmp_server(tmp_path_factory):
    reason = nginx_missing()
    if reason:
        pytest.skip(reason)
    server = RtmpServer(tmp_path_factory.mktemp("nginx-rtmp"))
    yield server
    server.stop()


def animate_to(out: str, clip: Path, still: Path, mode: str = "code", after_frame=None):
    """Animate ``clip`` into ``out`` the way ``mnm animate`` does (real time, paced at the clip's
    rate), keeping each frame the sink was given; ``after_frame(n)`` runs after the n-th frame.
    Returns (report, the frames given to the sink, the sink)."""
    from mnm.imaging import load_image
    from mnm.runtime import realtime, video
    from mnm.runtime.live.outputs import open_output
    from mnm.runtime.pipeline import Pipeline

    animator = Pipeline(DEMO, backend="ort-cpu", max_batch=1).animator(load_image(still), mode=mode)
    source = video.open_source(str(clip))
    sink = open_output(out, False, CLIP_FPS)
    given: list[np.ndarray] = []

    def process(frame):
        out_frame = animator.frame(frame)
        given.append(out_frame)
        if after_frame is not None:
            after_frame(len(given))
        return out_frame

    try:
        report = realtime.run(source, process, sink, realtime=True, pace_fps=CLIP_FPS, show_progress=False)
    finally:
        source.close()
    return report, given, sink
