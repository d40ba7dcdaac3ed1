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


def test_the_demo_model_takes_background_and_texture_from_their_own_references():
    """Mixes of 4 backgrounds x 4 textures from held-out synthetic birds: the image border (all
    background) must follow the background reference, the object's colour the texture reference."""
    from mnm.runtime.pipeline import Pipeline
    from mnm.training.synthetic import SynthSpec, render_scene, sample_factors

    spec = SynthSpec.from_dict(demo_info()["data"])
    refs = [render_scene(spec, i) for i in range(9, 400, 10)]
    backgrounds = [r.image for r in refs[:4]]
    textures = [r.image for r in refs[4:8]]
    pose = refs[8].image
    assert len({sample_factors(spec, i).b for i in range(9, 49, 10)}) > 1  # not four of one background
    pipe = Pipeline(DEMO_DIR / "bundle")
    cells = {(i, j): pipe.mix(background=bg, pose=pose, shape=pose, texture=tex).astype(np.float64)
             for i, bg in enumerate(backgrounds) for j, tex in enumerate(textures)}
    border = np.ones((32, 32), bool)
    border[3:-3, 3:-3] = False

    def border_colour(cell):
        return cell[border].mean(0)

    same_bg, same_tex = [], []
    for (i, j), cell in cells.items():
        for (k, m), other in cells.items():
            if (i, j) < (k, m) and (i == k) != (j == m):
                distance = np.abs(border_colour(cell) - border_colour(other)).sum()
                (same_bg if i == k else same_tex).append(distance)
    # Cells sharing a background reference have nearer borders than cells sharing only a texture.
    assert np.mean(same_bg) * 2 < np.mean(same_tex)
