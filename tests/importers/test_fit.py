"""``fit``: squash resizes the whole reference to S x S as the authors' evaluation does, crop takes the
centred square. They differ on a non-square reference and agree on a square one, in
``prepare_reference``, the ``Pipeline`` and the ``mix`` / ``animate`` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnm.errors import MnmError
from mnm.imaging import load_image, prepare_reference
from mnm.runtime.pipeline import Pipeline
from tests.util import run_cli

S = 64


def banded(path: Path, width: int, height: int) -> Path:
    """Red left quarter, blue right quarter, a grey gradient between: crop loses the bands, squash keeps them."""
    xx = np.linspace(0, 255, width)[None, :, None].repeat(height, 0).repeat(3, 2)
    img = xx.copy()
    img[:, : width // 4] = (220, 30, 30)
    img[:, width - width // 4 :] = (30, 30, 220)
    img += np.random.default_rng(width + height).normal(0, 8, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def test_squash_is_the_authors_eval_transform(tmp_path):
    """PIL open -> RGB -> Resize((S, S)) -> ToTensor -> Normalize(0.5, 0.5), as the reference eval reads images."""
    path = banded(tmp_path / "wide.png", 150, 100)
    pil = Image.open(path).convert("RGB").resize((S, S), Image.Resampling.BILINEAR)
    want = (np.asarray(pil, np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(prepare_reference(path, S, fit="squash"), want, atol=1e-6, rtol=0)


def test_crop_is_the_centred_square(tmp_path):
    wide = load_image(banded(tmp_path / "wide.png", 160, 80))
    np.testing.assert_array_equal(prepare_reference(wide, S, fit="crop"), prepare_reference(wide[:, 40:120], S))
    np.testing.assert_array_equal(prepare_reference(wide, S), prepare_reference(wide, S, fit="crop"))


def test_squash_and_crop_differ_on_a_non_square_reference(tmp_path):
    wide = banded(tmp_path / "wide.png", 160, 80)
    squash, crop = prepare_reference(wide, S, fit="squash"), prepare_reference(wide, S, fit="crop")
    assert np.abs(squash - crop).mean() > 0.2
    red = np.array([220, 30, 30]) / 127.5 - 1
    assert np.abs(squash[:, :, :8].mean((1, 2)) - red).max() < 0.1  # the left band survives squashing
    assert np.abs(crop[:, :, :8].mean((1, 2)) - red).max() > 0.5  # and is cut off by the crop


def test_squash_and_crop_agree_on_a_square_reference(tmp_path):
    exact = banded(tmp_path / "square.png", S, S)
    np.testing.assert_array_equal(prepare_reference(exact, S, fit="squash"), prepare_reference(exact, S, fit="crop"))
    # a larger square: the same region, only the resampling filter differs (PIL bilinear vs OpenCV area)
    large = banded(tmp_path / "large.png", 3 * S, 3 * S)
    diff = np.abs(prepare_reference(large, S, fit="squash") - prepare_reference(large, S, fit="crop"))
    assert diff.mean() < 0.03


def test_a_box_wins_over_fit(tmp_path):
    wide = banded(tmp_path / "wide.png", 160, 80)
    box = (20, 10, 40, 40)
    np.testing.assert_array_equal(prepare_reference(wide, S, box, fit="squash"), prepare_reference(wide, S, box))


def test_unknown_fit_is_refused(tmp_path, imported):
    with pytest.raises(MnmError, match="fit must be one of crop, squash"):
        prepare_reference(banded(tmp_path / "wide.png", 90, 60), S, fit="stretch")
    with pytest.raises(MnmError, match="fit must be one of crop, squash"):
        Pipeline(imported["cub"].bundle, backend="ort-cpu", fit="stretch")


def test_pipeline_fit(tmp_path, imported):
    bundle, size = imported["cub"].bundle, imported["cub"].cfg.image_size
    squash = Pipeline(bundle, backend="ort-cpu", fit="squash")
    crop = Pipeline(bundle, backend="ort-cpu")
    wide, square = banded(tmp_path / "wide.png", 2 * size, size), banded(tmp_path / "square.png", size, size)
    for factor in ("z", "c"):
        assert not np.allclose(squash.encode([wide], (factor,))[factor], crop.encode([wide], (factor,))[factor])
        np.testing.assert_array_equal(squash.encode([square], (factor,))[factor],
                                      crop.encode([square], (factor,))[factor])


def _mix(bundle, reference: Path, fit: str, out: Path) -> np.ndarray:
    refs = [f"--{factor}={reference}" for factor in ("background", "pose", "shape", "texture")]
    result = run_cli("mix", str(bundle), *refs, "--fit", fit, "--backend", "ort-cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return load_image(out)


def test_mix_and_animate_commands_take_fit(tmp_path, imported):
    bundle, size = imported["cub"].bundle, imported["cub"].cfg.image_size
    wide, square = banded(tmp_path / "wide.png", 2 * size, size), banded(tmp_path / "square.png", size, size)
    assert not np.array_equal(_mix(bundle, wide, "squash", tmp_path / "a.png"),
                              _mix(bundle, wide, "crop", tmp_path / "b.png"))
    np.testing.assert_array_equal(_mix(bundle, square, "squash", tmp_path / "c.png"),
                                  _mix(bundle, square, "crop", tmp_path / "d.png"))
    bad = run_cli("mix", str(bundle), "--fit", "stretch", "--out", str(tmp_path / "e.png"))
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --fit: expected crop or squash, got 'stretch'"

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        banded(frames / f"{i:03d}.png", 2 * size + 16 * i, size)
    outputs = {}
    for fit in ("squash", "crop"):
        out = tmp_path / f"animated-{fit}"
        result = run_cli("animate", str(bundle), "--image", str(wide), "--source", str(frames), "--fit", fit,
                         "--backend", "ort-cpu", "--out", str(out))
        assert result.returncode == 0, result.stderr
        outputs[fit] = [load_image(p) for p in sorted(out.iterdir())]
    assert len(outputs["squash"]) == 2 and not np.array_equal(outputs["squash"][0], outputs["crop"][0])
    bad = run_cli("animate", str(bundle), "--image", str(wide), "--source", str(frames), "--fit", "x",
                  "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--fit: expected crop or squash" in bad.stderr
