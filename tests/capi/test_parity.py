"""The native library against the Python runtime (parity_driver.c): the same requests on the same
images give the same pixels, on the demo bundle and on a random-init paper-preset bundle.

With the crop fit, mixes (code and feature mode, code factors, boxes, stitching), grid cells,
generated images and the animator's frames over a video the test writes are byte-identical, codes
agree to 1e-5, and the grid's layout, cells and thumbnails are identical (its label text is drawn
by the OpenCV each side links). The squash fit resizes with Pillow's two-pass bilinear resampler,
horizontal pass first; Pillow 13 runs the vertical pass first for some taller-than-wide images, so
a squashed tall reference may differ by one level in some pixels, and what is made from it by a
little more: those answers are held to a mean difference under one level, the others stay exact.
Factors that sample (random, seed:N) are not compared: the library has its own generator."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest

from mnm.config import PRESETS
from mnm.imaging import load_image, save_image, to_uint8
from mnm.runtime import Bundle, Factor, Pipeline
from mnm.runtime import grid as grid_layout
from tests.capi.conftest import DEMO_BUNDLE, HERE, run
from tests.runtime.conftest import photo

FRAMES = 4
CODE_TOLERANCE = 1e-5
TALL_SQUASHED = ("mix_code", "mix_feature", "mix_codes", "cell2", "cell3")  # made from ref1 (50 x 70) squashed
BOX0, BOX1 = (8, 6, 40, 30), (5, 10, 30, 45)  # as parity_driver.c


@pytest.fixture(scope="module")
def paper_bundle(tmp_path_factory) -> Path:
    """A random-init paper-preset bundle (S=128; minutes to export), or MNM_TEST_PAPER_BUNDLE's."""
    given = os.environ.get("MNM_TEST_PAPER_BUNDLE")
    if given:
        return Path(given)
    from mnm.export import export_random

    out = tmp_path_factory.mktemp("paper") / "bundle"
    export_random(PRESETS["paper"], out, seed=11, preset="paper", parity_batches=(1,))
    return out


def write_inputs(work: Path, cfg) -> None:
    """Four references of different shapes, a short video's decoded frames, and codes to generate from."""
    for i, size in enumerate(((80, 60), (50, 70), (64, 64), (90, 40))):
        photo(work / f"ref{i}.png", seed=60 + i, size=size)
    video = work / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for i in range(FRAMES):
        writer.write(cv2.cvtColor(load_image(photo(work / f"source{i}.png", seed=80 + i, size=(96, 72))),
                                  cv2.COLOR_RGB2BGR))
    writer.release()
    capture = cv2.VideoCapture(str(video))
    for i in range(FRAMES):
        ok, frame = capture.read()
        assert ok, f"frame {i} of {video}"
        save_image(work / f"frame{i}.png", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    rng = np.random.default_rng(5)
    dims = cfg.code_dims()
    z_bg, z_pose = rng.standard_normal((2, 2, dims["z"]))
    b, p, c = (np.eye(dims[k])[rng.integers(dims[k], size=2)] for k in "bpc")
    np.concatenate([r.astype(np.float32).ravel() for r in (z_bg, b, z_pose, p, c)]).tofile(work / "generate.f32")


def python_answers(bundle: Path, fit: str, work: Path) -> dict:
    """What the Python runtime gives for parity_driver.c's requests."""
    refs = [load_image(work / f"ref{i}.png") for i in range(4)]
    pipe = Pipeline(bundle, fit=fit, threads=1, max_batch=3)  # as parity_driver.c
    dims = pipe.config.code_dims()
    r0, r1, r2, r3 = refs
    answers = {
        "mix_code": pipe.mix(r0, r1, r2, r3),
        "mix_feature": pipe.mix(r0, r1, r1, r3, mode="feature"),
        "mix_codes": pipe.mix(r0, r1, "code:1", "code:2"),
        "mix_boxes": pipe.mix(Factor(image=r0, box=BOX0), Factor(image=r1, box=BOX1), r2, Factor(image=r3, box=BOX0),
                              stitch="background"),
        "mix_feature_boxes": pipe.mix(r0, Factor(image=r1, box=BOX1), None, r3, mode="feature", stitch="foreground"),
    }
    grid = pipe.grid(background=[Factor(image=r0, label="background 1"), Factor(image=r1, label="background 2")],
                     pose=[Factor(image=r2, label="pose 1")], shape=["code:1"],
                     texture=[Factor(image=r3, label="texture 1"), "code:0"])
    answers.update({f"cell{i}": cell.image for i, cell in enumerate(grid.cells)})
    sizes = [dims["z"], dims["b"], dims["z"], dims["p"], dims["c"]]
    flat = np.fromfile(work / "generate.f32", np.float32)
    z_bg, b, z_pose, p, c = np.split(flat, np.cumsum([2 * n for n in sizes])[:-1])
    generated = pipe.generate(z_bg.reshape(2, -1), b.reshape(2, -1), c.reshape(2, -1), z_pose.reshape(2, -1),
                              p.reshape(2, -1))["image"]
    answers.update({f"generate{i}": image for i, image in enumerate(to_uint8(generated))})
    for mode in ("code", "feature"):
        animator = pipe.animator(r0, mode=mode)
        for i in range(FRAMES):
            answers[f"animated_{mode}{i}"] = animator.frame(load_image(work / f"frame{i}.png"))
    codes = pipe.encode(refs)
    pipe.close()
    return {"images": answers, "grid": grid, "codes": codes}


def assert_same_grid(got: np.ndarray, grid) -> None:
    """The same layout, cells and thumbnails as the Python runtime's grid; the rows that carry label
    text may differ, as OpenCV releases draw the Hershey font's glyphs differently (Debian 12's 4.6
    for the library, the opencv-python wheel for the runtime)."""
    want = grid.image()
    assert got.shape == want.shape
    with mock.patch.object(grid_layout, "_put_text", lambda *args, **kwargs: None):
        plain = grid.image()
    text_rows = np.flatnonzero((want != plain).any(axis=(1, 2)))
    near_text = np.zeros(len(want), bool)
    for row in text_rows:
        near_text[max(0, row - 3) : row + 4] = True
    assert near_text.mean() < 0.5  # most rows are compared
    np.testing.assert_array_equal(got[~near_text], want[~near_text])


def check_parity(cpp, bundle: Path, fit: str, work: Path) -> None:
    expected = python_answers(bundle, fit, work)
    result = run(cpp.compile(HERE / "parity_driver.c"), bundle, fit, work, FRAMES)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, image in expected["images"].items():
        got = load_image(work / f"{name}.png")
        if fit == "squash" and name in TALL_SQUASHED:
            assert np.abs(got.astype(int) - image).mean() < 1.0, name
        else:
            np.testing.assert_array_equal(got, image, err_msg=f"{name} ({fit})")
    if fit == "squash":
        return
    assert_same_grid(load_image(work / "grid.png"), expected["grid"])
    codes = expected["codes"]
    flat = np.fromfile(work / "codes.f32", np.float32)
    parts = np.split(flat, np.cumsum([codes[k].size for k in "zbpc"])[:-1])
    for name, got in zip("zbpc", parts, strict=True):
        np.testing.assert_allclose(got.reshape(codes[name].shape), codes[name], rtol=0, atol=CODE_TOLERANCE,
                                   err_msg=f"codes {name} ({fit})")


@pytest.mark.parametrize("fit", ["crop", "squash"])
def test_the_demo_bundle_gives_the_python_runtimes_answers(cpp, tmp_path, fit):
    write_inputs(tmp_path, Bundle.open(DEMO_BUNDLE).config)
    check_parity(cpp, DEMO_BUNDLE, fit, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fit", ["crop", "squash"])
def test_a_paper_preset_bundle_gives_the_python_runtimes_answers(cpp, paper_bundle, tmp_path, fit):
    write_inputs(tmp_path, PRESETS["paper"])
    check_parity(cpp, paper_bundle, fit, tmp_path)
