"""`mnm animate` end to end: the real CLI in a subprocess where importing torch fails, on the tiny bundle.

Sources are written here with OpenCV and Pillow; outputs are read back with Pillow and OpenCV.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mnm.imaging import load_image
from mnm.runtime import window
from mnm.runtime.pipeline import Pipeline
from tests.runtime.conftest import TINY
from tests.runtime.test_video import damage_the_middle, gif_frames, read_video, write_frame_folder, write_video
from tests.util import run_cli

S = TINY.image_size


def animate(bundle, static, source, out, *extra, block_torch=True):
    return run_cli(
        "animate",
        bundle,
        "--image",
        static,
        "--source",
        source,
        "--out",
        out,
        "--backend",
        "ort-cpu",
        *extra,
        block_torch=block_torch,
    )


def error_line(result) -> str:
    """The one error line, which ends stderr (the backend note may come before it)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def test_video_file_to_gif_without_torch(tiny_bundle, photos, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 12, fps=20)
    out, stats = tmp_path / "out.gif", tmp_path / "stats.json"
    result = animate(tiny_bundle, photos[0], clip, out, "--mode", "feature", "--json", stats)
    assert result.returncode == 0, result.stderr
    n, durations = gif_frames(out)
    assert n == 12 and durations == [50] * 12  # the video's 20 fps
    assert Image.open(out).size == (S, S)
    assert "frames in 12, out 12, dropped 0" in result.stdout and f"wrote {out} (12 frames" in result.stdout
    report = json.loads(stats.read_text())
    assert (report["frames_in"], report["frames_out"], report["drops"]) == (12, 12, 0)
    assert report["frames_written"] == 12 and report["error"] is None and not report["realtime"]
    assert 0 < report["inference_ms"]["p50"] <= report["inference_ms"]["p95"]
    assert report["latency_ms"]["p50"] >= report["inference_ms"]["p50"]


def test_frame_folder_to_mp4(tiny_bundle, photos, tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 9)
    out = tmp_path / "out.mp4"
    result = animate(tiny_bundle, photos[1], folder, out, "--fps", "8")
    assert result.returncode == 0, result.stderr
    frames = read_video(out)
    assert len(frames) == 9 and frames[0].shape == (S, S, 3)
    assert "frames in 9, out 9, dropped 0" in result.stdout


def test_frames_match_the_python_api_shape_and_pose_from_each_frame(tiny_bundle, photos, tmp_path):
    """A lossless run (PNG in, PNG out): each output frame is the animator's image of that frame.

    Feature mode, where the random-init model's output visibly follows the frame (in code mode it
    barely moves), so a frame matched against the wrong output would show."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, ref in enumerate(photos[2:5]):
        Image.open(ref).save(folder / f"{i}.png")
    out = tmp_path / "out"
    result = animate(tiny_bundle, photos[0], folder, out, "--mode", "feature", "--box", "10,8,40,30")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    produced = [load_image(out / f"{i:06d}.png").astype(int) for i in range(3)]
    animator = Pipeline(tiny_bundle, backend="ort-cpu").animator(photos[0], mode="feature", box=(10, 8, 40, 30))
    expected = [animator.frame(load_image(ref)).astype(int) for ref in photos[2:5]]
    for i in range(3):
        assert np.abs(produced[i] - expected[i]).max() <= 1  # float rounding across processes
        for j in set(range(3)) - {i}:
            assert (produced[i] != expected[j]).mean() > 0.1


def test_realtime_file_counts_every_frame_as_output_or_drop(tiny_bundle, photos, tmp_path):
    clip = write_video(tmp_path / "fast.mp4", 40, fps=500)
    out, stats = tmp_path / "out.gif", tmp_path / "stats.json"
    result = animate(tiny_bundle, photos[0], clip, out, "--realtime", "--json", stats)
    assert result.returncode == 0, result.stderr
    report = json.loads(stats.read_text())
    assert report["realtime"] and report["frames_in"] == 40
    assert report["frames_in"] == report["frames_out"] + report["drops"]
    assert report["wall_s"] >= 39 / 500  # paced by the file's frame rate
    assert report["frames_out"] == report["frames_written"] and report["failed"] == 0
    n, durations = gif_frames(out)  # plays at the capture's pace: 40 frames at 500 fps last 80 ms
    assert n <= report["frames_out"] and abs(sum(durations) - 80) <= 20
    assert report["output_duration_s"] == pytest.approx(0.08)
    assert f"frames in 40, out {report['frames_out']}, dropped {report['drops']}, failed 0" in result.stdout


def test_source_failing_mid_stream_keeps_the_frames_produced(tiny_bundle, photos, tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 6)
    (folder / "frame3.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    out, stats = tmp_path / "out.gif", tmp_path / "stats.json"
    result = animate(tiny_bundle, photos[0], folder, out, "--json", stats)
    assert result.returncode == 2
    line = error_line(result)
    assert "stopped at frame 4 of 6" in line and "frame3.png" in line
    assert line.endswith(f"kept the 3 frames produced in {out}")
    assert gif_frames(out)[0] == 3
    assert "frames in 3, out 3, dropped 0" in result.stdout
    assert json.loads(stats.read_text())["stopped"] == "source error"


def test_a_damaged_video_fails_unless_allowed_and_says_how_short_it_was(tiny_bundle, photos, tmp_path):
    """Issue 26 item 14: the middle of an MP4 damaged. Reading stops early; the run says frames read
    against frames expected and why, exits 2 (keeping the frames), and exits 0 with --allow-short."""
    clip = damage_the_middle(write_video(tmp_path / "clip.mp4", 24))
    out, stats = tmp_path / "out.gif", tmp_path / "stats.json"
    result = animate(tiny_bundle, photos[0], clip, out, "--json", stats)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    read = int(line.split("reading stopped after ")[1].split()[0])
    assert 0 < read < 24 and f"stopped after {read} of 24 frames" in line and "could not be decoded" in line
    assert line.endswith(f"kept the {read} frames produced in {out}") and gif_frames(out)[0] == read
    report = json.loads(stats.read_text())
    assert (report["stopped"], report["frames_in"], report["frames_expected"]) == ("source error", read, 24)

    allowed = animate(tiny_bundle, photos[0], clip, tmp_path / "allowed.gif", "--allow-short")
    assert allowed.returncode == 0, allowed.stderr
    assert f"note: {clip}: a frame could not be decoded" in allowed.stderr
    assert f"stopped after {read} of 24 frames (allowed by --allow-short)" in allowed.stderr
    assert f"wrote {tmp_path / 'allowed.gif'} ({read} frames" in allowed.stdout


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("junk.mp4", lambda p: p.write_bytes(b"no video here" * 30), "cannot open as a video"),
        ("empty.avi", lambda p: write_video(p, 0, fourcc="MJPG"), "no frames to read"),
        ("missing.mp4", lambda p: None, "no such video file"),
    ],
)
def test_sources_without_frames_give_one_clear_line(tiny_bundle, photos, tmp_path, name, make, message):
    make(tmp_path / name)
    result = animate(tiny_bundle, photos[0], tmp_path / name, tmp_path / "out.gif")
    assert result.returncode == 2
    assert error_line(result).startswith(f"error: {tmp_path / name}: {message}")
    assert not (tmp_path / "out.gif").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_max_frames_and_refused_options(tiny_bundle, photos, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 10)
    result = animate(tiny_bundle, photos[0], clip, tmp_path / "out", "--max-frames", "4")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").iterdir())) == 4 and "frames in 4, out 4" in result.stdout
    bad = {
        ("--mode", "pose"): "--mode: expected code or feature",
        ("--box", "1,2,3"): "--box: expected x,y,w,h",
        ("--fps", "0"): "--fps: must be positive",
    }
    for args, message in bad.items():
        assert message in error_line(animate(tiny_bundle, photos[0], clip, tmp_path / "o.gif", *args))
    assert "unsupported output '.avi'" in error_line(animate(tiny_bundle, photos[0], clip, tmp_path / "o.avi"))
    assert not (tmp_path / "o.gif").exists() and not (tmp_path / "o.avi").exists()


@pytest.mark.skipif(window.gui_problem() is None, reason="this OpenCV can open windows")
def test_show_without_gui_support_says_so(tiny_bundle, photos, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 3)
    result = animate(tiny_bundle, photos[0], clip, tmp_path / "o.gif", "--show")
    assert result.returncode == 2
    assert error_line(result).startswith("error: --show: ")
    assert "opencv-python" in result.stderr or "display" in result.stderr
