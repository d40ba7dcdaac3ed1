"""Video sources and sinks for animation: frames in as RGB uint8, frames out to GIF, MP4 or PNGs.

Sources: a webcam index, a video file (both through one ``cv2.VideoCapture`` class, so tests that
read a file exercise the webcam path), or a folder of images. Each source peeks at its first frame
when opened, so a source without frames fails before any model work, and each says when it stops
early (``SourceEndedEarly``: frames read against frames expected, and why) instead of ending
quietly. Sinks write to a temporary name beside the target and rename it on
``close``; whatever was written before an error is kept.

Timing: ``write(frame, t)`` takes the frame's time in seconds on the output's timeline (None: the
next slot at the sink's rate), ``close(end)`` the time the last frame stops showing (None: one slot
after it). A GIF gives each frame the time until the next one; an MP4 has one rate, so a frame is
repeated over the slots until the next one. So a real-time run, which writes
only the frames it had time for, still plays at the speed it was captured. docs/realtime.md.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mnm.atomic import atomic_dir, atomic_path
from mnm.errors import MnmError
from mnm.imaging import IMAGE_SUFFIXES, image_files, load_image
from mnm.runtime.containers import counts_frames, cut_short

GIF_MAX_BYTES = 128 * 2**20
"""A GIF is encoded at the end, so its frames stay in memory: at most this many bytes of RGB frames."""
GIF_MIN_CS = 2
"""Shortest GIF frame in centiseconds: browsers show shorter frames for 100 ms. Frames closer than
this to the previous one are left out, so a fast source keeps its speed, not its frame count."""

PROBE_READS = 8
"""Reads tried after a failed one: a stream that still gives frames was damaged, not at its end."""
INDEX_SLACK = 1
"""Frames an indexed file may come up short without being called damaged: an index can count a frame
that does not decode (behind an edit list, say); a healthy file is never refused for that."""

FRAME_NAME = re.compile(r"\d{6}\.png")


# ---------------------------------------------------------------- sources


class SourceEndedEarly(MnmError):
    """A source that stopped before its end: ``read`` frames of ``expected`` (None: not known), and why
    in the message. ``mnm animate`` exits non-zero on it unless ``--allow-short``."""

    def __init__(self, message: str, read: int, expected: int | None):
        super().__init__(message)
        self.read, self.expected = read, expected


class CaptureSource:
    """A ``cv2.VideoCapture`` over a webcam index (``live``) or a video file."""

    def __init__(self, target: int | str | os.PathLike):
        self.live = isinstance(target, int)
        self.name = f"webcam {target}" if self.live else str(target)
        if not self.live and not Path(target).is_file():
            raise MnmError(f"{target}: no such video file or frame folder")
        self._cap = _open_capture(target if self.live else str(target))
        if not self._cap.isOpened():
            if self.live:
                raise MnmError(f"{self.name}: cannot open the camera (no device at that index, busy, or no permission)")
            raise MnmError(
                f"{self.name}: cannot open as a video (not a video file, an unsupported codec, "
                "a truncated file, or a file with no frames)"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = fps if fps > 0 else None
        self.frame_count = count if count > 0 and not self.live else None
        ok, first = self._cap.read()
        if not ok:
            self.close()
            raise MnmError(f"{self.name}: {'the camera gave no frame' if self.live else 'no frames to read'}")
        self._first: np.ndarray | None = first

    def frames(self) -> Iterator[np.ndarray]:
        """Yield RGB frames; raise ``MnmError`` if the stream stops before its announced end."""
        n = 0
        while True:
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, bgr = self._cap.read()
                if not ok:
                    break
            n += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.live:
            raise SourceEndedEarly(f"{self.name}: the camera stopped delivering frames after {n} frames", n, None)
        why = self._why_short(n)
        if why:
            exact = counts_frames(self.name)
            of = f" of {'' if exact else 'about '}{self.frame_count}" if self.frame_count else ""
            raise SourceEndedEarly(f"{self.name}: {why}: reading stopped after {n}{of} frames", n, self.frame_count)

    def _why_short(self, n: int) -> str | None:
        """Why a file stopped at frame ``n`` before its end, or None when it ended where it should.

        OpenCV's ``read`` answers False at the end, where a truncated file stops, and at a frame it
        cannot decode, and the frame count is an estimate for containers without an index. So: the
        file's own sizes say whether it was cut; an indexed container (AVI, MP4) that announced more
        frames, or a stream that still gives frames after the failed read, was damaged inside."""
        if cut_short(self.name):
            return "the file is cut short (truncated, or still being written)"
        damaged = "a frame could not be decoded (the file is damaged)"
        if self.frame_count and n < self.frame_count - INDEX_SLACK and counts_frames(self.name):
            return damaged
        if any(self._cap.grab() for _ in range(PROBE_READS)):
            return damaged
        return None

    def close(self) -> None:
        self._cap.release()


class FolderSource:
    """The images of a folder in natural name order (frame2 before frame10), one frame each."""

    live = False
    fps = None

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.name = str(folder)
        self.files = image_files(self.folder)
        if not self.files:
            raise MnmError(f"{self.name}: no frames: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.frame_count = len(self.files)

    def frames(self) -> Iterator[np.ndarray]:
        for i, path in enumerate(self.files):
            try:
                frame = load_image(path)
            except MnmError as exc:
                raise SourceEndedEarly(f"{self.name}: stopped at frame {i + 1} of {self.frame_count}: {exc}", i,
                                       self.frame_count) from None
            yield frame

    def close(self) -> None:
        pass


def open_source(spec: str) -> CaptureSource | FolderSource:
    """``spec`` is a folder of images, a video file, or a webcam index (digits, when no such path exists)."""
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if path.exists() or not spec.isdigit():
        return CaptureSource(path)
    return CaptureSource(int(spec))


def _open_capture(target: int | str) -> cv2.VideoCapture:
    """Open quietly: failures become our own one-line errors, not FFmpeg/OpenCV console warnings."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(target)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _frame_count(path: Path) -> int:
    """Frames a finished video file announces (0 when it cannot be opened)."""
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


# ---------------------------------------------------------------- sinks


class _Staged:
    """A temporary path from ``mnm.atomic`` held across calls: ``commit`` renames, ``discard`` removes."""

    def __init__(self, manager: contextlib.AbstractContextManager[Path]):
        self._stack = contextlib.ExitStack()
        self.path = self._stack.enter_context(manager)

    def commit(self) -> None:
        self._stack.close()

    def discard(self) -> None:
        self._stack.__exit__(_Discard, _Discard(), None)


class _Discard(Exception):
    """Thrown into the staging context so that it removes the temporary path."""


class GifSink:
    """An animated GIF (Pillow, looping). Frames are held until ``close``, up to ``max_bytes``."""

    def __init__(self, path: Path, fps: float, max_bytes: int = GIF_MAX_BYTES):
        self.path, self.fps, self.max_bytes = path, fps, max_bytes
        self._frames: list[np.ndarray] = []
        self._times: list[float] = []
        self._end: float | None = None
        self.count = 0
        self.full = False

    @property
    def limit_note(self) -> str:
        return (
            f"{self.path}: a GIF keeps its frames in memory until it is written; stopped at {self.count} "
            f"frames ({self.max_bytes / 2**20:g} MiB); write .mp4 or a frame folder for longer runs"
        )

    @property
    def duration_s(self) -> float:
        """How long the file plays (once closed; before, as if the last frame lasted one slot)."""
        if not self._times:
            return 0.0
        return (self._end if self._end is not None else self._times[-1] + 1 / self.fps) - self._times[0]

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        self._times.append(self.count / self.fps if t is None else t)
        self._frames.append(np.array(frame, dtype=np.uint8, copy=True))
        self.count += 1
        self.full = (self.count + 1) * frame.nbytes > self.max_bytes

    def close(self, end: float | None = None) -> None:
        if not self._frames:
            return
        self._end = end
        kept, durations = gif_timing(self._times, self._times[0] + self.duration_s)
        images = [Image.fromarray(self._frames[i]) for i in kept]
        self._frames = []
        try:
            with atomic_path(self.path) as tmp:
                images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                               loop=0)
        except OSError as exc:
            raise MnmError(f"{self.path}: cannot write the GIF ({exc.strerror or exc})") from None


def gif_timing(times: list[float], end: float) -> tuple[list[int], list[int]]:
    """(indices of the frames kept, their durations in ms) for frames shown from ``times`` until
    ``end`` (seconds). Times are rounded to the GIF's centiseconds as a whole, so rounding does not
    add up over a long clip; frames closer than ``GIF_MIN_CS`` to the previous kept one are left out."""
    start = times[0]
    ticks = [round((t - start) * 100) for t in times]
    kept = [0]
    for i in range(1, len(ticks)):
        if ticks[i] - ticks[kept[-1]] >= GIF_MIN_CS:
            kept.append(i)
    bounds = [ticks[i] for i in kept] + [max(round((end - start) * 100), ticks[kept[-1]] + GIF_MIN_CS)]
    return kept, [10 * (b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


class Mp4Sink:
    """An MP4 (OpenCV, mp4v), streamed to disk at ``fps``; the writer opens on the first frame,
    which fixes the size. A frame is written once it is known how many slots it covers (when the
    next one arrives), so one frame is held back."""

    full = False

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.count = 0  # frames given
        self._slots = 0  # frames in the file, repeats included
        self._pending: tuple[np.ndarray, int] | None = None  # (BGR frame, its first slot)
        self._staged: _Staged | None = None
        self._writer: cv2.VideoWriter | None = None

    @property
    def duration_s(self) -> float:
        return (self._slots + (self._pending is not None)) / self.fps

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        if self._writer is None:
            self._open(frame)
        slot = self._slots + (self._pending is not None) if t is None else round(t * self.fps)
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if self._pending is not None:
            held, first = self._pending
            self._emit(held, max(0, slot - max(first, self._slots)))  # none when both fall in one slot
        self._pending = (bgr, max(slot, self._slots))
        self.count += 1

    def _open(self, frame: np.ndarray) -> None:
        self._staged = _Staged(atomic_path(self.path))
        height, width = frame.shape[:2]
        self._writer = cv2.VideoWriter(
            str(self._staged.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height)
        )
        if not self._writer.isOpened():
            self._staged.discard()
            self._writer = self._staged = None
            raise MnmError(f"{self.path}: cannot write MP4 (this OpenCV build has no mp4v encoder)")

    def _emit(self, bgr: np.ndarray, repeats: int) -> None:
        for _ in range(repeats):
            self._writer.write(bgr)
        self._slots += repeats

    def close(self, end: float | None = None) -> None:
        if self._writer is None:
            return
        if self._pending is not None:
            held, first = self._pending
            self._emit(held, 1 if end is None else max(1, round(end * self.fps) - first))
            self._pending = None
        self._writer.release()
        self._writer = None
        # OpenCV's writer drops write errors (a full disk): read the count back before the file gets its name.
        written = _frame_count(self._staged.path)
        if written != self._slots:
            self._staged.discard()
            raise MnmError(
                f"{self.path}: cannot write the MP4: {written} of {self._slots} frames reached the file "
                "(disk full or a write error); nothing was kept"
            )
        self._staged.commit()


class FolderSink:
    """Numbered PNGs (000000.png, ...) in a staged folder that replaces ``path`` on ``close``."""

    full = False

    def __init__(self, path: Path):
        if path.exists() and not path.is_dir():
            raise MnmError(f"{path}: exists and is not a folder; name a .gif, .mp4 or a folder for the frames")
        if path.is_dir():
            other = [p.name for p in path.iterdir() if not FRAME_NAME.fullmatch(p.name)]
            if other:
                raise MnmError(
                    f"{path}: the folder holds other files ({other[0]}, ...); frames replace the folder, "
                    "so name a new or empty one"
                )
        self.path = path
        self.count = 0
        self._staged: _Staged | None = None

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        """Numbered frames carry no timing: ``t`` is accepted and not used."""
        if self._staged is None:
            self._staged = _Staged(atomic_dir(self.path))
        target = self._staged.path / f"{self.count:06d}.png"
        try:
            Image.fromarray(frame).save(target, format="PNG")
        except OSError as exc:
            target.unlink(missing_ok=True)  # the frames before it are whole and kept; this one is not
            raise MnmError(f"{self.path}: cannot write frame {target.name} ({exc.strerror or exc})") from None
        self.count += 1

    def close(self, end: float | None = None) -> None:
        """Give the frames their final name; without a single frame the previous folder stays as it was."""
        if self._staged is not None:
            if self.count:
                self._staged.commit()
            else:
                self._staged.discard()
            self._staged = None


Sink = GifSink | Mp4Sink | FolderSink


def open_sink(path: str | os.PathLike, fps: float) -> Sink:
    """``.gif`` and ``.mp4`` give files; a path without suffix (or an existing folder) gives numbered PNGs."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return GifSink(path, fps)
    if suffix == ".mp4":
        return Mp4Sink(path, fps)
    if suffix == "" or path.is_dir():
        return FolderSink(path)
    raise MnmError(f"{path}: unsupported output {suffix!r}; write a .gif, an .mp4, or a folder of PNGs")
