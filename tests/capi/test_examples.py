"""The C++ examples as a user runs them: `make cpp`, then mnm-mix (byte for byte the PNG of `mnm mix`)
and mnm-animate (one PNG per frame of a video, each the Python animator's frame)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnm.imaging import load_image
from mnm.runtime import Pipeline
from tests.capi.conftest import BUILD, DEMO_BUNDLE, REPO, run
from tests.util import run_cli


def test_make_cpp_builds_the_library_the_headers_and_the_examples():
    if (REPO / ".venv").resolve() != Path(sys.prefix).resolve():
        pytest.skip("make cpp builds with the project's .venv; this run uses another environment")
    done = subprocess.run(["make", "cpp"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("libmnm.so", "include/mnm.h", "include/mnm.hpp", "mnm-mix", "mnm-animate"):
        assert (BUILD / name).is_file(), name


@pytest.mark.parametrize("mode", ["code", "feature"])
def test_mnm_mix_writes_the_bytes_mnm_mix_writes(cpp, references, tmp_path, mode):
    background, pose, shape, texture = references
    shape = pose if mode == "feature" else shape  # feature mode: shape and pose from one image
    ours = run(cpp.program("mnm-mix"), DEMO_BUNDLE, background, pose, shape, texture, tmp_path / "c.png",
               "--mode", mode)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == f"wrote {tmp_path / 'c.png'}\n" and ours.stderr == ""
    theirs = run_cli("mix", DEMO_BUNDLE, "--background", background, "--pose", pose, "--shape", shape,
                     "--texture", texture, "--mode", mode, "--out", tmp_path / "py.png", block_torch=True)
    assert theirs.returncode == 0, theirs.stderr
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "py.png").read_bytes()


def test_mnm_mix_takes_specs_and_a_seed_like_mnm_mix(cpp, references, tmp_path):
    ours = run(cpp.program("mnm-mix"), DEMO_BUNDLE, "seed:3", "random", "code:1", references[0], tmp_path / "c.png",
               "--seed", "7")
    assert ours.returncode == 0, ours.stderr
    theirs = run_cli("mix", DEMO_BUNDLE, "--background", "seed:3", "--pose", "random", "--shape", "code:1",
                     "--texture", references[0], "--seed", "7", "--out", tmp_path / "py.png", block_torch=True)
    assert theirs.returncode == 0, theirs.stderr
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "py.png").read_bytes()


@pytest.mark.parametrize("case", ["bad mode", "missing bundle", "missing image", "two shapes in feature mode",
                                  "too few arguments"])
def test_mnm_mix_errors_are_one_line_and_exit_2(cpp, references, tmp_path, case):
    bg, pose, shape, texture = references
    out = tmp_path / "out.png"
    args, message = {
        "bad mode": ([DEMO_BUNDLE, bg, pose, shape, texture, out, "--mode", "sideways"],
                     "error: --mode: expected code or feature, got 'sideways'\n"),
        "missing bundle": (["/nonexistent/bundle", bg, pose, shape, texture, out],
                           "error: /nonexistent/bundle: bundle folder not found\n"),
        "missing image": ([DEMO_BUNDLE, bg, "/nonexistent/ref.png", shape, texture, out],
                          "error: /nonexistent/ref.png: image file not found\n"),
        "two shapes in feature mode": ([DEMO_BUNDLE, bg, pose, shape, texture, out, "--mode", "feature"],
                                       "error: feature mode: shape and pose come from one image"),
        "too few arguments": ([DEMO_BUNDLE, bg, pose, out], "usage: mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE"),
    }[case]
    result = run(cpp.program("mnm-mix"), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr
    assert not out.exists()


def _write_clip(path, count: int) -> list[np.ndarray]:
    """A lossless (FFV1) clip of a disc moving across a striped background; returns its RGB frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (64, 48))
    assert writer.isOpened()
    frames = []
    for i in range(count):
        bgr = np.full((48, 64, 3), 90, np.uint8)
        bgr[::3] += 20
        cv2.circle(bgr, (8 + 5 * i, 20 + i), 9, (30, 160, 240), -1)
        writer.write(bgr)
        frames.append(bgr[:, :, ::-1].copy())
    writer.release()
    return frames


@pytest.mark.parametrize("mode", ["code", "feature"])
def test_mnm_animate_writes_the_animators_frames_one_png_each(cpp, references, tmp_path, mode):
    frames = _write_clip(tmp_path / "clip.mkv", 9)
    out = tmp_path / "frames"
    result = run(cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "clip.mkv", out, "--mode", mode)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "frames in 9, out 9, dropped 0 (every frame)"
    assert re.fullmatch(r"latency p50 [\d.]+ ms, p95 [\d.]+ ms \(capture to written\); [\d.]+ fps", lines[1])
    assert lines[2] == f"wrote 9 frames to {out}"
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(9)]
    animator = Pipeline(DEMO_BUNDLE).animator(load_image(references[0]), mode=mode)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(load_image(out / f"{i:06d}.png"), animator.frame(frame), err_msg=f"frame {i}")


def test_mnm_animate_stops_at_max_frames_and_refuses_a_missing_source(cpp, references, tmp_path):
    _write_clip(tmp_path / "clip.mkv", 6)
    result = run(cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "clip.mkv", tmp_path / "a",
                 "--max-frames", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("frames in 4, out 4, dropped 0")
    assert len(list((tmp_path / "a").iterdir())) == 4
    result = run(cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "none.mp4", tmp_path / "b")
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'none.mp4'}: video file not found\n"
