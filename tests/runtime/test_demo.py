"""`mnm demo`: the bundled demo model runs with no arguments beyond --out, no network and no torch."""

import cv2
import numpy as np
import pytest
from PIL import Image

from mnm.config import PRESETS
from mnm.demo import DEMO_DIR, demo_info
from mnm.runtime.bundle import Bundle
from tests.util import find_tile, run_cli


def test_the_bundled_demo_bundle_verifies_and_has_both_modes():
    bundle = Bundle.open(DEMO_DIR / "bundle")
    assert set(bundle.modes) == {"code", "feature"}
    info = demo_info()
    assert bundle.config == PRESETS[info["preset"]]
    assert info["steps"]["code"] > 0 and info["steps"]["feature"] > 0
    assert {"disentangle", "clustering"} <= set(info["eval"])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`mnm demo` run once, torch blocked: (its output folder, the finished process)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_cli("demo", "--out", str(out), block_torch=True)


def test_mnm_demo_writes_grids_comparison_and_animation_without_torch(demo_run):
    out, result = demo_run
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the demo model is a 32-pixel MixNMatch trained on 4000 synthetic cartoon birds")
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


def test_the_demo_pictures_show_every_reference_in_their_head_cells(demo_run):
    """Each reference's thumbnail appears, pixel for pixel, once per factor it gives: row and column
    heads, and the fixed factors above the grid. The references are the shipped example inputs."""
    from mnm.demo import KNOWN_INPUTS
    from mnm.imaging import load_image, to_uint8
    from mnm.runtime.pipeline import Pipeline

    out, result = demo_run
    assert result.returncode == 0, result.stderr
    root = DEMO_DIR.parents[2]
    refs = [load_image(root / line.split()[1]) for line in KNOWN_INPUTS.read_text().splitlines()]
    pipe = Pipeline(DEMO_DIR / "bundle")
    # A grid shows what the model sees (the prepared 32 px input), scaled x3 like the cells.
    seen = [np.repeat(np.repeat(to_uint8(pipe.prepare(r, None)), 3, axis=0), 3, axis=1) for r in refs]
    whole = [cv2.resize(r, (96, 96), interpolation=cv2.INTER_NEAREST) for r in refs]

    def picture(name):
        return np.asarray(Image.open(out / name).convert("RGB"))

    # grid_background_texture: backgrounds 0-2 down the side, textures 3-5 along the top, 6 as pose and shape.
    for name, fixed in (("grid_background_texture.png", 6), ("grid_shape_pose.png", 7)):
        grid = picture(name)
        counts = [len(find_tile(grid, tile)) for tile in seen]
        assert counts == [1, 1, 1, 1, 1, 1, 2 if fixed == 6 else 0, 2 if fixed == 7 else 0], (name, counts)
    # code_vs_feature: per row, A as background and texture, B as pose and shape.
    comparison = picture("code_vs_feature.png")
    assert [len(find_tile(comparison, tile)) for tile in whole] == [2] * 8

    # The GIF: label line, then source frame | still image | result (code) | result (feature).
    gif = Image.open(out / "animation.gif")
    frame = np.asarray(gif.convert("RGB")).astype(int)
    y = next(row for row in range(frame.shape[0]) if (frame[row, 4:100] != 255).any(axis=-1).all())
    tiles = [frame[y : y + 96, 4 + k * 100 : 100 + k * 100] for k in range(4)]
    assert (frame[:y] < 128).any()  # the labels above the tiles
    still = np.abs(tiles[1] - whole[0]).mean()
    assert still < 8 and all(np.abs(t - whole[0]).mean() > 3 * still for t in (tiles[0], tiles[2], tiles[3]))
