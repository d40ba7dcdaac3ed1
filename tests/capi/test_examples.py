"""The C++ examples as a user runs them: `make cpp`, then mnm-mix (the pixels of `mnm mix`) and mnm-animate
(one PNG per frame of a video, each the Python animator's frame)."""

from __future__ import annotations

import re
import subprocess

import cv2
import numpy as np
import pytest

from mnm.imaging import load_image
from mnm.runtime import Pipeline
from tests.capi.conftest import BUILD, DEMO_BUNDLE, REPO, make_cpp, run
from tests.util import run_cli


def test_make_cpp_builds_the_library_the_headers_and_the_examples(cpp):
    done = make_cpp()  # a second run: up to date, and still succeeds
    assert done.returncode == 0, done.stdout + done.stderr
    assert (BUILD / "libmnm.so").is_symlink() and (BUILD / "libmnm.so").resolve() == BUILD / "libmnm.so.1.0.0"
    assert (BUILD / "libmnm.so.1").is_symlink()
    for name in ("include/mnm.h", "include/mnm.hpp", "mnm-mix", "mnm-animate"):
        assert (BUILD / name).is_file(), name
    assert (BUILD / "include" / "mnm.h").read_bytes() == (REPO / "libmnm" / "include" / "mnm.h").read_bytes()


def test_make_cpp_installs_no_python_package_but_the_onnxruntime_wheel():
    plan = subprocess.run(["make", "-n", "cpp"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "torch" not in plan and ".[dev]" not in plan and "pip install -e" not in plan
    installs = re.findall(r"pip install[^;\n]*", plan)
    assert installs == ["pip install -q 'onnxruntime>=1.21'"]


def _same_pixels(ours, theirs) -> None:
    np.testing.assert_array_equal(load_image(ours), load_image(theirs))


@pytest.mark.parametrize(("mode", "fit"), [("code", "crop"), ("feature", "crop"), ("code", "squash")])
def test_mnm_mix_writes_the_pixels_mnm_mix_writes(cpp, references, tmp_path, mode, fit):
    background, pose, shape, texture = references
    shape = pose if mode == "feature" else shape  # feature mode: shape and pose from one image
    ours = run(cpp.program("mnm-mix"), DEMO_BUNDLE, background, pose, shape, texture, tmp_path / "c.png",
               "--mode", mode, "--fit", fit)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == f"wrote {tmp_path / 'c.png'}\n" and ours.stderr == ""
    theirs = run_cli("mix", DEMO_BUNDLE, "--background", background, "--pose", pose, "--shape", shape,
                     "--texture", texture, "--mode", mode, "--fit", fit, "--out", tmp_path / "py.png",
                     block_torch=True)
    assert theirs.returncode == 0, theirs.stderr
    _same_pixels(tmp_path / "c.png", tmp_path / "py.png")


def test_mnm_mix_takes_code_specs_like_mnm_mix(cpp, references, tmp_path):
    # code:K for the shape (p) and the texture (c) is deterministic in both implementations; for the
    # background it fixes b only (z_bg is random, and random samples are not shared: docs/capi.md).
    ours = run(cpp.program("mnm-mix"), DEMO_BUNDLE, references[2], references[1], "code:1", "code:3",
               tmp_path / "c.png")
    assert ours.returncode == 0, ours.stderr
    theirs = run_cli("mix", DEMO_BUNDLE, "--background", references[2], "--pose", references[1], "--shape", "code:1",
                     "--texture", "code:3", "--out", tmp_path / "py.png", block_torch=True)
    assert theirs.returncode == 0, theirs.stderr
    _same_pixels(tmp_path / "c.png", tmp_path / "py.png")


@pytest.mark.parametrize("case", ["bad mode", "bad fit", "missing bundle", "missing image",
                                  "two shapes in feature mode", "too few arguments"])
def test_mnm_mix_errors_are_one_line_and_exit_2(cpp, references, tmp_path, case):
    bg, pose, shape, texture = references
    out = tmp_path / "out.png"
    args, message = {
        "bad mode": ([DEMO_BUNDLE, bg, pose, shape, texture, out, "--mode", "sideways"],
                     "error: --mode: expected code or feature, got 'sideways'\n"),
        "bad fit": ([DEMO_BUNDLE, bg, pose, shape, texture, out, "--fit", "stretch"],
                    "error: --fit: expected crop or squash, got 'stretch'\n"),
        "missing bundle": (["/nonexistent/bundle", bg, pose, shape, texture, out], "error: /nonexistent/bundle"),
        "missing image": ([DEMO_BUNDLE, bg, "/nonexistent/ref.png", shape, texture, out],
                          "error: /nonexistent/ref.png"),
        "two shapes in feature mode": ([DEMO_BUNDLE, bg, pose, shape, texture, out, "--mode", "feature"],
                                       "error: feature mode: shape and pose come from one image"),
        "too few arguments": ([DEMO_BUNDLE, bg, pose, out], "usage: mnm-mix BUNDLE BACKGROUND POSE SHAPE TEXTURE"),
    }[case]
    result = run(cpp.program("mnm-mix"), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == (2 if case == "too few arguments" else 1)  # usage: two lines
    assert not out.exists()


def write_clip(path, count: int) -> list[np.ndarray]:
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
    frames = write_clip(tmp_path / "clip.mkv", 9)
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
    write_clip(tmp_path / "clip.mkv", 6)
    result = run(cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "clip.mkv", tmp_path / "a",
                 "--max-frames", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("frames in 4, out 4, dropped 0")
    assert len(list((tmp_path / "a").iterdir())) == 4
    result = run(cpp.program("mnm-animate"), DEMO_BUNDLE, references[0], tmp_path / "none.mp4", tmp_path / "b")
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'none.mp4'}: video file not found\n"
    assert not (tmp_path / "b").exists()
