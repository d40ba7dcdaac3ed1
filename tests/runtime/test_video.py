"""Video sources, sinks and the real-time loop, run on real files written here (no model needed).

Frame i of every test video carries i in binary, one 16 x 16 black or white block per bit, so the
order and identity of frames survive lossy codecs and resizing and can be checked after a round trip.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mnm.errors import MnmError
from mnm.runtime import containers, realtime, video, window

SIZE = (64, 48)  # width, height: a 4 x 3 grid of 16 x 16 blocks
BITS = 6
RED = (220, 30, 30)


def frame_rgb(i: int) -> np.ndarray:
    """Frame ``i``: blocks 0-5 hold the bits of i, blocks 6-11 are red (catches BGR/RGB mix-ups)."""
    frame = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
    frame[...] = RED
    for k in range(BITS):
        r, c = divmod(k, 4)
        frame[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = 255 if (i >> k) & 1 else 0
    return frame


def index_of(frame: np.ndarray) -> int:
    """Read the bits back from the centre of each block, whatever the frame's size."""
    h, w = frame.shape[:2]
    value = 0
    for k in range(BITS):
        r, c = divmod(k, 4)
        y, x = int((r + 0.5) * h / 3), int((c + 0.5) * w / 4)
        if frame[y, x].mean() > 128:
            value |= 1 << k
    return value


def write_video(path: Path, n: int, fps: float = 25.0, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened()
    for i in range(n):
        writer.write(cv2.cvtColor(frame_rgb(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_frame_folder(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.fromarray(frame_rgb(i)).save(folder / f"frame{i}.png")  # frame10 sorts after frame9
    return folder


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def gif_frames(path: Path) -> tuple[int, list[int]]:
    with Image.open(path) as im:
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        return im.n_frames, durations


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".mnm-tmp-")]


# ---------------------------------------------------------------- sources


def test_capture_class_used_for_webcams_reads_a_video_file(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 12, fps=20)
    source = video.open_source(str(clip))
    assert isinstance(source, video.CaptureSource)
    assert not source.live and source.fps == pytest.approx(20) and source.frame_count == 12
    frames = list(source.frames())
    source.close()
    assert [index_of(f) for f in frames] == list(range(12))
    assert all(f.shape == (SIZE[1], SIZE[0], 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[3][40, 56].astype(int) - RED).max() <= 12  # RGB order, not BGR


def test_digits_mean_a_webcam_index_when_no_such_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MnmError, match=r"^webcam 97: cannot open the camera"):
        video.open_source("97")
    write_video(tmp_path / "97.mp4", 3).rename(tmp_path / "97")  # an existing path wins over a webcam
    source = video.open_source("97")
    assert not source.live and len(list(source.frames())) == 3


def test_folder_source_natural_order_and_sizes(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 12)
    (folder / "notes.txt").write_text("not a frame")
    source = video.open_source(str(folder))
    assert isinstance(source, video.FolderSource) and source.frame_count == 12 and source.fps is None
    assert [index_of(f) for f in source.frames()] == list(range(12))


def test_folder_with_corrupt_image_in_the_middle_stops_with_a_clear_line(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 6)
    (folder / "frame3.png").write_bytes((folder / "frame3.png").read_bytes()[:60])
    source = video.open_source(str(folder))
    got = []
    with pytest.raises(MnmError, match=r"frames: stopped at frame 4 of 6: .*frame3\.png: corrupt or truncated"):
        for frame in source.frames():
            got.append(index_of(frame))
    assert got == [0, 1, 2]


@pytest.mark.parametrize("name, fourcc", [("clip.avi", "MJPG"), ("clip.mkv", "MJPG")])
def test_truncated_video_stops_mid_stream_with_a_clear_line(tmp_path, name, fourcc):
    clip = write_video(tmp_path / name, 30, fourcc=fourcc)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    source = video.open_source(str(clip))
    got = []
    about = "" if name.endswith(".avi") else "about "  # AVI indexes its frames: the count is exact
    with pytest.raises(MnmError, match=rf"{name}: the file is cut short .*stopped after (\d+) of {about}30") as err:
        for frame in source.frames():
            got.append(index_of(frame))
    assert 0 < len(got) < 30 and got == list(range(len(got)))
    assert f"after {len(got)} of {about}30" in str(err.value)


def damage_the_middle(path: Path, span: int = 64) -> Path:
    """Overwrite ``span`` bytes in the middle of an MP4's media data (the frames, not the index): what a
    bad sector or a broken copy leaves. The container stays whole and still announces every frame."""
    data = bytearray(path.read_bytes())
    offset = 0
    while data[offset + 4:offset + 8] != b"mdat":
        offset += int.from_bytes(data[offset:offset + 4], "big")
    end = offset + int.from_bytes(data[offset:offset + 4], "big")
    middle = (offset + 8 + end) // 2
    data[middle:middle + span] = np.random.default_rng(0).integers(0, 256, span, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_a_video_damaged_in_the_middle_says_frames_read_of_expected_and_why(tmp_path):
    clip = damage_the_middle(write_video(tmp_path / "clip.mp4", 24))
    assert containers.cut_short(clip) is False  # not truncated: the damage is inside
    source = video.open_source(str(clip))
    got = []
    with pytest.raises(video.SourceEndedEarly, match=r"clip\.mp4: a frame could not be decoded") as err:
        for frame in source.frames():
            got.append(index_of(frame))
    assert 0 < len(got) < 24
    assert f"reading stopped after {len(got)} of 24 frames" in str(err.value)
    assert (err.value.read, err.value.expected) == (len(got), 24)


def _announce_longer(path: Path, factor: float) -> None:
    """Rewrite the Matroska/WebM header's Duration (element 0x4489, an 8-byte float) as ``factor``
    times the truth: what a recorder that finalises its header wrongly leaves, with every frame intact."""
    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89\x88") + 3
    (duration,) = struct.unpack(">d", data[at:at + 8])
    data[at:at + 8] = struct.pack(">d", duration * factor)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, fourcc", [("clip.mkv", "MJPG"), ("clip.webm", "VP80")])
def test_a_healthy_file_whose_frame_count_is_an_overestimate_reads_to_the_end(tmp_path, name, fourcc):
    writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 10, SIZE)
    if not writer.isOpened():
        pytest.skip(f"this OpenCV cannot write {fourcc} into {name}")
    writer.release()
    clip = write_video(tmp_path / name, 23, fps=10, fourcc=fourcc)
    _announce_longer(clip, 1.5)
    source = video.open_source(str(clip))
    assert source.frame_count > 30  # the estimate says 34 or 35 frames; the file holds 23
    assert [index_of(f) for f in source.frames()] == list(range(23))  # no "truncated" error
    assert containers.cut_short(clip) is False


def test_cut_short_reads_the_containers_declared_sizes(tmp_path):
    for name, fourcc in (("a.avi", "MJPG"), ("b.mkv", "MJPG"), ("c.mp4", "mp4v")):
        clip = write_video(tmp_path / name, 12, fourcc=fourcc)
        assert containers.cut_short(clip) is False, name
        data = clip.read_bytes()
        clip.write_bytes(data[: len(data) * 2 // 3])
        assert containers.cut_short(clip) is True, name
    Image.fromarray(frame_rgb(1)).save(tmp_path / "still.png")
    assert containers.cut_short(tmp_path / "still.png") is None  # declares no size: no verdict


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", r"missing\.mp4: no such video file"),
        (lambda d: _write(d / "junk.mp4", b"not a video" * 20), r"junk\.mp4: cannot open as a video"),
        (lambda d: write_video(d / "empty.avi", 0, fourcc="MJPG"), r"empty\.avi: no frames to read"),
        (lambda d: write_video(d / "empty.mp4", 0), r"empty\.mp4: cannot open as a video .*no frames"),
        (lambda d: _mkdir(d / "nothing"), r"nothing: no frames: the folder holds no images"),
    ],
)
def test_sources_that_cannot_give_frames_fail_at_open(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(MnmError, match=message) as err:
        video.open_source(str(target))
    assert "\n" not in str(err.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# ---------------------------------------------------------------- sinks


def test_gif_sink_frames_duration_and_loop(tmp_path):
    sink = video.open_sink(tmp_path / "out.gif", fps=10)
    for i in range(7):
        sink.write(frame_rgb(i))
    assert not (tmp_path / "out.gif").exists()  # written at close, in one go
    sink.close()
    n, durations = gif_frames(tmp_path / "out.gif")
    assert n == 7 and durations == [100] * 7
    with Image.open(tmp_path / "out.gif") as im:
        assert im.info["loop"] == 0
        im.seek(4)
        assert index_of(np.array(im.convert("RGB"))) == 4
    assert leftovers(tmp_path) == []


def test_gif_sink_caps_memory_with_a_clear_note(tmp_path):
    frame = frame_rgb(0)
    sink = video.GifSink(tmp_path / "out.gif", fps=10, max_bytes=5 * frame.nbytes)
    written = 0
    while not sink.full:
        sink.write(frame_rgb(written))
        written += 1
    assert written == 5 and sink.count == 5
    assert "stopped at 5 frames" in sink.limit_note and ".mp4 or a frame folder" in sink.limit_note
    sink.close()
    assert gif_frames(tmp_path / "out.gif")[0] == 5


def test_mp4_sink_streams_frames(tmp_path):
    sink = video.open_sink(tmp_path / "out.mp4", fps=12)
    for i in range(9):
        sink.write(frame_rgb(i))
    sink.close()
    frames = read_video(tmp_path / "out.mp4")
    assert [index_of(f) for f in frames] == list(range(9))
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    cap.release()
    assert leftovers(tmp_path) == []


def test_folder_sink_numbered_pngs_and_refuses_a_folder_of_other_files(tmp_path):
    sink = video.open_sink(tmp_path / "frames", fps=10)
    for i in range(4):
        sink.write(frame_rgb(i))
    sink.close()
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["000000.png", "000001.png", "000002.png", "000003.png"]
    assert index_of(np.array(Image.open(tmp_path / "frames" / "000002.png"))) == 2
    # a rerun replaces the old frames; a folder with anything else is refused
    sink = video.open_sink(tmp_path / "frames", fps=10)
    sink.write(frame_rgb(0))
    sink.close()
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000000.png"]
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(MnmError, match=r"photos: the folder holds other files \(me\.jpg"):
        video.open_sink(tmp_path / "photos", fps=10)
    assert leftovers(tmp_path) == []


def test_sinks_without_frames_write_nothing_and_odd_outputs_are_refused(tmp_path):
    for name in ("out.gif", "out.mp4", "frames"):
        sink = video.open_sink(tmp_path / name, fps=10)
        sink.close()
        assert not (tmp_path / name).exists()
    assert leftovers(tmp_path) == []
    with pytest.raises(MnmError, match=r"out\.avi: unsupported output '\.avi'"):
        video.open_sink(tmp_path / "out.avi", fps=10)


@pytest.mark.skipif(window.gui_problem() is None, reason="this OpenCV can open windows")
def test_window_without_gui_support_says_why():
    with pytest.raises(MnmError, match=r"^--show: (this OpenCV has no GUI support|no display)"):
        window.Window()


# ---------------------------------------------------------------- the loop


def slow_thumbnail(delay_s: float, seen: list | None = None):
    """A stand-in model: waits ``delay_s`` (slower than capture), then shrinks the frame."""

    def process(frame: np.ndarray) -> np.ndarray:
        if seen is not None:
            seen.append(index_of(frame))
        time.sleep(delay_s)
        return cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA)

    return process


def test_every_frame_processed_when_not_realtime(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 15)
    source, seen = video.open_source(str(clip)), []
    sink = video.open_sink(tmp_path / "out.mp4", fps=25)
    report = realtime.run(source, slow_thumbnail(0.01, seen), sink, show_progress=False)
    assert (report.frames_in, report.frames_out, report.drops) == (15, 15, 0)
    assert seen == list(range(15)) and report.stopped == "end of source" and report.error is None
    assert [index_of(f) for f in read_video(tmp_path / "out.mp4")] == list(range(15))


def test_realtime_drops_are_counted_when_processing_is_slower_than_capture(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 30, fps=100)  # a frame every 10 ms, processing takes 35
    source, seen = video.open_source(str(clip)), []
    sink = video.open_sink(tmp_path / "out.gif", fps=10)
    report = realtime.run(source, slow_thumbnail(0.035, seen), sink, realtime=True, pace_fps=source.fps)
    assert report.frames_in == 30 and report.failed == 0
    assert report.frames_in == report.frames_out + report.drops
    assert report.drops >= 10 and report.frames_out == len(seen) == sink.count
    assert seen == sorted(set(seen)) and seen[0] == 0  # always the newest frame, never one twice
    assert seen[-1] == 29  # the newest frame at the end is always animated, never lost behind a queue
    n, durations = gif_frames(tmp_path / "out.gif")
    assert n <= report.frames_out and all(d >= 20 for d in durations)  # GIF frames last 20 ms at least
    assert sum(durations) == pytest.approx(300, abs=20)  # 30 frames at 100 fps: 0.3 s, the capture's pace


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_realtime_file_with_drops_plays_for_as_long_as_its_source(tmp_path, suffix):
    clip = write_video(tmp_path / "clip.mp4", 20, fps=10)  # 2.0 s; inference takes 2.5 frame periods
    source, seen = video.open_source(str(clip)), []
    out = tmp_path / f"out{suffix}"
    report = realtime.run(video.open_source(str(clip)), slow_thumbnail(0.25, seen),
                          video.open_sink(out, fps=source.fps), realtime=True, pace_fps=source.fps,
                          show_progress=False)
    assert report.drops >= 8 and report.frames_in == 20 == report.frames_out + report.drops
    if suffix == ".gif":
        n, durations = gif_frames(out)
        assert n == report.frames_out and abs(sum(durations) - 2000) <= 100  # within one frame of 2.0 s
        with Image.open(out) as im:  # each frame starts at its capture time: frame i at i x 100 ms
            starts = np.cumsum([0, *durations[:-1]])
            for k, start in enumerate(starts):
                im.seek(k)
                assert index_of(np.array(im.convert("RGB"))) * 100 == start
    else:
        frames = read_video(out)
        assert abs(len(frames) - 20) <= 1  # at the source's 10 fps: within one frame of 2.0 s
        shown = [index_of(f) for f in frames]
        assert shown == sorted(shown) and set(shown) == set(seen)
        assert all(slot - 3 <= i <= slot for slot, i in enumerate(shown))  # the newest frame by then


def test_an_mp4_repeats_each_frame_until_the_next_ones_time(tmp_path):
    sink = video.open_sink(tmp_path / "out.mp4", fps=10)
    for i, t in enumerate([0.0, 0.3, 0.4, 0.42, 0.9]):  # 0.42 falls in 0.4's slot: the newer one is shown
        sink.write(frame_rgb(i), t)
    assert sink.duration_s == pytest.approx(1.0)
    sink.close()
    assert [index_of(f) for f in read_video(tmp_path / "out.mp4")] == [0, 0, 0, 1, 3, 3, 3, 3, 3, 4]


def test_gif_timing_keeps_the_clock_and_a_20_ms_floor():
    kept, durations = video.gif_timing([i / 60 for i in range(60)], end=1.0)  # 60 fps: 16.7 ms apart
    assert 30 <= len(kept) <= 50 and sum(durations) == 1000 and all(d >= 20 for d in durations)
    kept, durations = video.gif_timing([i / 15 for i in range(15)], end=1.0)  # 15 fps: 66.7 ms apart
    assert kept == list(range(15)) and sum(durations) == 1000 and set(durations) == {60, 70}


def test_realtime_pacing_follows_the_file_frame_rate(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 10, fps=40)
    source = video.open_source(str(clip))
    report = realtime.run(source, slow_thumbnail(0.0), None, realtime=True, pace_fps=source.fps)
    assert report.frames_in == 10 and report.frames_in == report.frames_out + report.drops
    assert report.wall_s >= 9 / 40  # the tenth frame is read no sooner than 225 ms in


def test_percentiles_come_from_real_timings(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 20)
    delays = [0.005 if i % 4 else 0.04 for i in range(20)]  # every fourth frame is slow
    measured = []

    def process(frame):
        began = time.perf_counter()
        time.sleep(delays[index_of(frame)])
        measured.append(time.perf_counter() - began)
        return frame

    report = realtime.run(video.open_source(str(folder)), process, None, show_progress=False)
    assert report.frames_out == 20
    p50, p95 = np.percentile(measured, [50, 95]) * 1000
    assert report.inference_ms["p50"] == pytest.approx(p50, abs=1.0)
    assert report.inference_ms["p95"] == pytest.approx(p95, abs=1.0)
    assert report.inference_ms["p95"] >= 40 > report.inference_ms["p50"] >= 5
    assert report.latency_ms["p50"] >= report.inference_ms["p50"]
    assert report.fps == pytest.approx(20 / report.wall_s)
    summary = "\n".join(report.summary_lines())
    assert "frames in 20, out 20, dropped 0" in summary and f"p95 {report.inference_ms['p95']:.1f} ms" in summary


def test_max_frames_in_both_modes(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 20)
    blocking = realtime.run(video.open_source(str(clip)), slow_thumbnail(0), None, max_frames=6)
    assert (blocking.frames_in, blocking.frames_out, blocking.drops, blocking.stopped) == (
        6,
        6,
        0,
        "max-frames",
    )
    live = realtime.run(
        video.open_source(str(clip)), slow_thumbnail(0.02), None, realtime=True, max_frames=3, pace_fps=200
    )
    assert live.frames_out == 3 and live.stopped == "max-frames"
    assert live.frames_in == live.frames_out + live.drops


def test_source_failing_mid_stream_keeps_what_was_produced(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 8)
    (folder / "frame5.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    sink = video.open_sink(tmp_path / "out.gif", fps=10)
    report = realtime.run(video.open_source(str(folder)), slow_thumbnail(0), sink, show_progress=False)
    assert report.stopped == "source error" and "stopped at frame 6 of 8" in str(report.error)
    assert (report.frames_in, report.frames_out, report.drops, report.failed) == (5, 5, 0, 0)
    n, _ = gif_frames(tmp_path / "out.gif")
    assert n == 5
    assert leftovers(tmp_path) == []


def test_a_webcam_that_stops_is_reported_as_a_source_that_ended_early(tmp_path):
    """The capture class webcams use, on a file, taken as live: when reads stop it says after how
    many frames, as SourceEndedEarly (mnm animate: exit 2 unless --allow-short), not a quiet end."""
    source = video.CaptureSource(write_video(tmp_path / "clip.mp4", 5))
    source.live, source.frame_count = True, None  # what a webcam is: no announced length
    report = realtime.run(source, slow_thumbnail(0), realtime=True, show_progress=False)
    assert report.stopped == "source error" and isinstance(report.error, video.SourceEndedEarly)
    assert "the camera stopped delivering frames after 5 frames" in str(report.error)
    assert report.error.read == 5 and report.error.expected is None and report.frames_expected is None


def test_a_model_error_keeps_frames_already_written(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 10)

    def failing(frame):
        if index_of(frame) == 4:
            time.sleep(0.2)  # the capture thread reads frame 5 into the slot meanwhile
            raise MnmError("model: out of cheese")
        return frame

    report = realtime.run(video.open_source(str(clip)), failing, video.open_sink(tmp_path / "o.mp4", 10))
    assert report.stopped == "error" and str(report.error) == "model: out of cheese"
    assert report.frames_out == 4 and len(read_video(tmp_path / "o.mp4")) == 4
    # frame 4 failed; frame 5, which the capture thread may have read meanwhile, never entered the loop
    assert (report.frames_in, report.drops, report.failed) == (5, 0, 1)
    assert "frames in 5, out 4, dropped 0, failed 1 (every frame)" in report.summary_lines()[0]


def test_a_sink_that_cannot_write_counts_the_frame_as_failed(tmp_path):
    """A real write failure: the file size limit (RLIMIT_FSIZE) of a child process stops the third PNG
    (noise, large) while the first two (flat, small) fit; the frames before it are kept."""
    folder = write_frame_folder(tmp_path / "frames", 6)
    code = f"""
import resource, signal, sys
import numpy as np
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from mnm.runtime import realtime, video
from tests.runtime.test_video import index_of
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)  # ~480 kB as PNG
flat = np.zeros((400, 400, 3), np.uint8)
process = lambda frame: noise if index_of(frame) == 2 else flat
report = realtime.run(video.open_source({str(folder)!r}), process, video.open_sink({str(tmp_path / "out")!r}, 10),
                      show_progress=False)
print(report.stopped, report.frames_in, report.frames_out, report.drops, report.failed)
print(report.error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    counts, error = result.stdout.splitlines()
    assert counts == "error 3 2 0 1"
    assert "cannot write frame 000002.png" in error and "File too large" in error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000000.png", "000001.png"]


class SlowSource:
    """A source that gives ``n`` frames quickly, then blocks ``stall_s`` before the rest (a camera that hangs)."""

    live, fps, name = False, None, "slow source"

    def __init__(self, n: int, stall_s: float, total: int = 10):
        self.n, self.stall_s, self.frame_count = n, stall_s, total

    def frames(self):
        for i in range(self.frame_count):
            if i == self.n:
                time.sleep(self.stall_s)
            yield frame_rgb(i)


def interrupt_on_call(k: int, seen: list):
    """Inference that receives a real SIGINT (what Ctrl+C sends) while it works on its ``k``-th frame."""

    def process(frame):
        seen.append(index_of(frame))
        if len(seen) == k:
            time.sleep(0.2)  # the capture thread reads the next frame into the slot meanwhile
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the signal's KeyboardInterrupt lands here
        time.sleep(0.02)
        return frame

    return process


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as in a terminal. A process started with SIGINT
    ignored (a background job of a non-interactive shell, as CI may run the suite) keeps it ignored,
    and Python then installs no handler of its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("live", [False, True])
def test_ctrl_c_during_inference_counts_the_frame_in_flight_as_failed(tmp_path, live, ctrl_c_raises):
    clip = write_video(tmp_path / "clip.mp4", 30, fps=100)
    seen = []
    sink = video.open_sink(tmp_path / "out.gif", fps=10)
    report = realtime.run(video.open_source(str(clip)), interrupt_on_call(7, seen), sink,
                          realtime=live, pace_fps=100 if live else None, show_progress=False)
    assert report.stopped == "interrupted" and report.failed == 1
    assert report.frames_in == report.frames_out + report.drops + report.failed
    assert report.frames_out == len(seen) - 1 == 6 == sink.count
    if live:
        assert report.drops > 0  # inference (20 ms) is slower than the 100 fps capture
        assert gif_frames(tmp_path / "out.gif")[0] <= 6  # frames shown under 20 ms are left out of a GIF
    else:
        assert gif_frames(tmp_path / "out.gif")[0] == 6
        assert (report.frames_in, report.drops) == (7, 0)  # no phantom drop for the frame left in the slot


def test_ctrl_c_while_waiting_for_a_frame_fails_nothing(ctrl_c_raises):
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        report = realtime.run(SlowSource(3, stall_s=1.5), slow_thumbnail(0), None, show_progress=False)
    finally:
        timer.cancel()
    assert report.stopped == "interrupted"  # at 0.5 s, while the source stalled after frame 3
    assert (report.frames_in, report.frames_out, report.drops, report.failed) == (3, 3, 0, 0)


def test_stopping_on_a_full_output_reports_no_phantom_drop(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 12)
    sink = video.GifSink(tmp_path / "out.gif", fps=10, max_bytes=5 * 32 * 32 * 3)
    report = realtime.run(video.open_source(str(folder)), slow_thumbnail(0.05), sink, show_progress=False)
    assert report.stopped == "output limit" and report.notes == [sink.limit_note]
    assert (report.frames_in, report.frames_out, report.drops, report.failed) == (5, 5, 0, 0)


def test_timing_stats_memory_is_flat_and_percentiles_stay_close():
    stats = realtime.TimingStats(capacity=1000)
    values = np.random.default_rng(0).uniform(0, 0.1, 50_000)
    for v in values:
        stats.add(float(v))
    assert stats.count == 50_000 and stats._samples.shape == (1000,)
    summary = stats.summary_ms()
    assert summary["p50"] == pytest.approx(np.percentile(values, 50) * 1000, abs=5)
    assert summary["p95"] == pytest.approx(np.percentile(values, 95) * 1000, abs=3)
    assert summary["mean"] == pytest.approx(values.mean() * 1000)
    assert realtime.TimingStats().summary_ms() == {"p50": None, "p95": None, "mean": None}


def test_slot_keeps_only_the_newest_or_blocks():
    slot = realtime.FrameSlot(keep_newest=True)
    for i in range(5):
        assert slot.put(i)
    slot.finish()
    assert slot.take() == 4 and slot.take() is None and slot.dropped == 4
    blocking = realtime.FrameSlot(keep_newest=False)
    assert blocking.put("a")
    started = time.perf_counter()
    threading.Timer(0.1, blocking.take).start()
    assert blocking.put("b")  # waits until "a" was taken
    assert time.perf_counter() - started >= 0.09 and blocking.dropped == 0
    assert blocking.close() == 1 and not blocking.put("c")
