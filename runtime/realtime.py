"""The real-time loop (docs/realtime.md): a capture thread hands frames to inference through one slot.

In real-time mode (webcams always; files and folders on request, paced by their frame rate) the
slot keeps only the newest frame: a frame replaced before inference took it is a drop, counted and
never queued, so latency cannot grow behind a backlog. Otherwise the handoff blocks and every frame
is processed. On every exit path frames in = frames out + drops + failed, where "in" counts the
frames the loop took from the source (a frame the capture thread had just read when the loop
stopped is not one) and "failed" the frame in flight when inference or the sink raised or Ctrl+C
came. In real-time mode each frame is written with its capture time, so the file plays at the speed
it was captured, drops or not. The loop knows nothing of models: it runs any
``process(frame) -> frame``. docs/realtime.md.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from mnm.errors import MnmError
from mnm.progress import track

JOIN_TIMEOUT_S = 5.0
"""How long to wait for the capture thread at the end (a camera read can block); it is a daemon thread."""


class TimingStats:
    """Durations in flat memory: exact percentiles up to ``capacity`` samples, a uniform reservoir beyond."""

    def __init__(self, capacity: int = 10_000, seed: int = 0):
        self._samples = np.empty(capacity, dtype=np.float64)
        self._rng = random.Random(seed)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        capacity = len(self._samples)
        if self.count < capacity:
            self._samples[self.count] = seconds
        else:
            j = self._rng.randrange(self.count + 1)
            if j < capacity:
                self._samples[j] = seconds
        self.count += 1
        self.total += seconds

    def summary_ms(self) -> dict[str, float | None]:
        """p50, p95 and mean in milliseconds (None before the first sample)."""
        if self.count == 0:
            return {"p50": None, "p95": None, "mean": None}
        kept = self._samples[: min(self.count, len(self._samples))]
        p50, p95 = np.percentile(kept, [50, 95]) * 1000
        return {"p50": float(p50), "p95": float(p95), "mean": self.total / self.count * 1000}


class FrameSlot:
    """A one-frame handoff. ``keep_newest``: a new frame replaces a waiting one (a drop); else put waits."""

    def __init__(self, keep_newest: bool):
        self.keep_newest = keep_newest
        self.dropped = 0
        self._cond = threading.Condition()
        self._item = None
        self._finished = False  # the producer will put nothing more
        self.closed = threading.Event()  # the consumer takes nothing more

    def put(self, item) -> bool:
        """Hand over ``item``; False when the consumer has stopped (the item is not taken)."""
        with self._cond:
            while not self.keep_newest and self._item is not None and not self.closed.is_set():
                self._cond.wait()
            if self.closed.is_set():
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def take(self):
        """The waiting item, or None once the producer has finished and nothing is left."""
        with self._cond:
            while self._item is None and not self._finished:
                self._cond.wait(0.1)  # a timeout keeps Ctrl+C responsive
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> int:
        """Stop consuming; return how many frames were left untaken (0 or 1)."""
        with self._cond:
            self.closed.set()
            left = int(self._item is not None)
            self._item = None
            self._cond.notify_all()
            return left


class _Capture(threading.Thread):
    """Reads the source into the slot, stamping each frame with its index and capture time."""

    def __init__(self, source, slot: FrameSlot, pace_fps: float | None, limit: int | None):
        super().__init__(name="mnm-capture", daemon=True)
        self.source, self.slot, self.pace_fps, self.limit = source, slot, pace_fps, limit
        self.frames_read = 0
        self.handed = 0  # frames the slot accepted
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._read()
        except MnmError as exc:
            self.error = exc
        except cv2.error as exc:
            detail = " ".join(str(exc).split())  # OpenCV messages span lines; ours are one line
            self.error = MnmError(f"{self.source.name}: reading stopped after {self.frames_read} frames ({detail})")
        except BaseException as exc:  # a bug: handed to the main thread, which re-raises it
            self.error = exc
        finally:
            self.slot.finish()

    def _read(self) -> None:
        start = time.perf_counter()
        for frame in self.source.frames():
            if self.pace_fps:
                wait = start + self.frames_read / self.pace_fps - time.perf_counter()
                if wait > 0 and self.slot.closed.wait(wait):
                    return
            index = self.frames_read
            self.frames_read += 1
            if not self.slot.put((frame, index, time.perf_counter())):
                return
            self.handed += 1
            if self.slot.closed.is_set() or (self.limit and self.frames_read >= self.limit):
                return


@dataclass
class LoopReport:
    """What a run did: counts, timings, and why it stopped (``error`` holds a source or model failure).

    ``frames_in == frames_out + drops + failed`` on every exit path (see the module docstring)."""

    source: str
    realtime: bool
    frames_in: int
    frames_out: int
    drops: int
    failed: int
    latency_ms: dict
    inference_ms: dict
    fps: float
    wall_s: float
    stopped: str
    error: MnmError | None = None
    notes: list[str] = field(default_factory=list)
    frames_expected: int | None = None
    """The frames the source announced (None: a webcam, or a video that does not say)."""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "realtime": self.realtime,
            "frames_in": self.frames_in,
            "frames_expected": self.frames_expected,
            "frames_out": self.frames_out,
            "drops": self.drops,
            "failed": self.failed,
            "latency_ms": self.latency_ms,
            "inference_ms": self.inference_ms,
            "fps": self.fps,
            "wall_s": self.wall_s,
            "stopped": self.stopped,
            "error": None if self.error is None else str(self.error),
            "notes": self.notes,
        }

    def summary_lines(self) -> list[str]:
        mode = "real time, newest frame only" if self.realtime else "every frame"
        counts = f"frames in {self.frames_in}, out {self.frames_out}, dropped {self.drops}, failed {self.failed}"
        lines = [f"{counts} ({mode})"]
        if self.frames_out:
            lat, inf = self.latency_ms, self.inference_ms
            lines.append(
                f"latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms (capture to output); "
                f"inference p50 {inf['p50']:.1f} ms, p95 {inf['p95']:.1f} ms; {self.fps:.1f} fps"
            )
        return lines


def run(
    source,
    process: Callable[[np.ndarray], np.ndarray],
    sink=None,
    window=None,
    *,
    realtime: bool = False,
    max_frames: int | None = None,
    pace_fps: float | None = None,
    show_progress: bool = True,
) -> LoopReport:
    """Animate ``source`` through ``process`` into ``sink`` and/or ``window``; always closes the sink.

    The sink is closed even after an error or Ctrl+C, so frames already produced are kept. A source
    or model failure comes back as ``report.error``; anything else is a bug and propagates.
    ``pace_fps`` makes the capture thread read no faster than that rate (a file played as if live).
    In real-time mode a frame's time in the output is its index / ``pace_fps`` (a paced file) or
    its capture time (a live source); otherwise frames follow each other at the sink's rate.
    """
    slot = FrameSlot(keep_newest=realtime)
    capture = _Capture(source, slot, pace_fps, limit=None if realtime else max_frames)
    latency, inference = TimingStats(), TimingStats()
    taken = frames_out = 0
    stopped, error, notes, first_capture, end = "end of source", None, [], None, None
    total = (
        source.frame_count if max_frames is None or source.frame_count is None else min(source.frame_count, max_frames)
    )
    bar = track(total=total, desc="animate", unit="frame") if show_progress else None
    start = time.perf_counter()
    capture.start()
    try:
        while (item := slot.take()) is not None:
            taken += 1
            frame, index, captured = item
            first_capture = captured if first_capture is None else first_capture
            began = time.perf_counter()
            out = process(frame)
            inference.add(time.perf_counter() - began)
            if sink is not None:
                sink.write(out, _output_time(realtime, index, pace_fps, captured - first_capture))
                end = (index + 1) / pace_fps if realtime and pace_fps else None  # the frame's period ends
            frames_out += 1
            keep_showing = window.show(out) if window is not None else True
            latency.add(time.perf_counter() - captured)
            if bar is not None:
                bar.update(1)
            if max_frames and frames_out >= max_frames:
                stopped = "max-frames"
                break
            if sink is not None and sink.full:
                stopped, notes = "output limit", [sink.limit_note]
                break
            if not keep_showing:
                stopped = "window closed"
                break
    except MnmError as exc:
        stopped, error = "error", exc
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        left = slot.close()
        capture.join(JOIN_TIMEOUT_S)
        wall = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close(end)
    if capture.error is not None and not isinstance(capture.error, MnmError):
        raise capture.error
    if capture.error is not None and error is None:
        stopped, error = "source error", capture.error
    return LoopReport(
        source=source.name,
        realtime=realtime,
        frames_in=capture.handed - left,
        frames_out=frames_out,
        drops=slot.dropped,
        failed=taken - frames_out,
        latency_ms=latency.summary_ms(),
        inference_ms=inference.summary_ms(),
        fps=frames_out / wall if wall > 0 else 0.0,
        wall_s=wall,
        stopped=stopped,
        error=error,
        notes=notes,
        frames_expected=source.frame_count,
    )


def _output_time(realtime: bool, index: int, pace_fps: float | None, since_first: float) -> float | None:
    """A frame's time in the written file: None (the sink's next slot) unless in real time."""
    if not realtime:
        return None
    return index / pace_fps if pace_fps else since_first
