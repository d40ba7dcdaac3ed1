"""`mnm demo`: the bundled demo model runs with no arguments beyond --out, no network and no torch."""

import numpy as np
from PIL import Image

from mnm.config import PRESETS
from mnm.demo import DEMO_DIR, demo_info
from mnm.runtime.bundle import Bundle
from tests.util import run_cli


def test_the_bundled_demo_bundle_verifies_and_has_both_modes():
    bundle = Bundle.open(DEMO_DIR / "bundle")
    assert set(bundle.modes) == {"code", "feature"}
    info = demo_info()
    assert bundle.config == PRESETS[info["preset"]]
    assert info["steps"]["code"] > 0 and info["steps"]["feature"] > 0
    assert {"disentangle", "clustering"} <= set(info["eval"])


def test_mnm_demo_writes_grids_comparison_and_animation_without_torch(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", str(out), block_torch=True)
    assert result.returncode == 0, result.stderr
    assert "backend: ort-cpu" in result.stdout
    for name in ("grid_background_texture.png", "grid_shape_pose.png", "code_vs_feature.png", "animation.gif"):
        assert str(out / name) in result.stdout
        assert (out / name).stat().st_size > 0
    gif = Image.open(out / "animation.gif")
    assert gif.n_frames > 1  # Pillow merges identical frames, so at most the clip's length
    assert len(list((out / "clip").glob("*.png"))) == 36
    grid = np.asarray(Image.open(out / "grid_background_texture.png").convert("RGB"))
    assert grid.shape[0] > 200 and grid.std() > 10  # a real picture, not a blank canvas
    assert "frames in 36, out 36" in result.stdout
