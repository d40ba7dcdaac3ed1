"""`mnm mix` in a subprocess where importing torch fails: one image, a labelled grid, a CSV plan with
resume; factor specs, boxes and plans parsed with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from mnm.errors import MnmError
from mnm.imaging import load_image
from mnm.runtime.pipeline import Pipeline
from mnm.runtime.requests import FACTORS, BoxTable, parse_factor, split_specs
from tests.util import RANDOM_FACTORS, run_cli, run_python


def mix_cli(bundle, *args):
    return run_cli("mix", bundle, *map(str, args), block_torch=True)


def test_the_runtime_modules_import_without_torch():
    result = run_python(
        "import sys, mnm.runtime.pipeline, mnm.runtime.backends.ort, mnm.runtime.backends.tensorrt, "
        "mnm.runtime.grid, mnm.cli.mix, mnm.cli.info; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'torch' and sys.modules[m] is not None]; print('ok')",
        block_torch=True,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_one_mix_equals_the_python_api(tiny_bundle, photos, tmp_path):
    out = tmp_path / "mix.png"
    result = mix_cli(tiny_bundle, "--background", photos[0], "--pose", photos[1], "--shape", "code:1",
                     "--texture", photos[2], "--threads", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "backend: ort-cpu (onnxruntime, fp32, 1 thread)" in result.stderr
    assert "picked by --backend auto" in result.stderr
    expected = Pipeline(tiny_bundle).mix(photos[0], photos[1], "code:1", photos[2])
    np.testing.assert_array_equal(load_image(out), expected)


def test_lists_give_the_labelled_grid_of_the_python_api(tiny_bundle, photos, tmp_path):
    out = tmp_path / "grid.png"
    result = mix_cli(tiny_bundle, "--background", f"{photos[0]},{photos[1]}", "--pose", photos[2],
                     "--texture", photos[3], "--texture", "code:2", "--texture", "random", "--mode", "feature",
                     "--seed", "5", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "2 x 3 grid, 6 images" in result.stdout
    grid = Pipeline(tiny_bundle).grid(background=photos[:2], pose=[photos[2]], texture=[photos[3], "code:2", "random"],
                                      mode="feature", seed=5)
    assert grid.shape == (2, 3) and [a.name for a in grid.rows] == ["background"] and grid.cols.name == "texture"
    assert [grid.cols.labels, grid.rows[0].labels] == [["ref3.png", "code:2", "random"], ["ref0.png", "ref1.png"]]
    np.testing.assert_array_equal(load_image(out), grid.image())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--texture", "missing.png"], "missing.png: reference image not found"),
        (["--shape", "code:7"], "code index out of range"),
        (["--mode", "feature", "--shape", "PHOTO1", "--pose", "PHOTO2"], "leave the shape out or give the same image"),
        (["--stitch", "sideways"], "stitch: expected one of background, foreground"),
        (["--background", "code:1", "--stitch", "background"], "background must be a reference image"),
        (["--box", "1,2,3"], "--box: expected x,y,w,h"),
        (["--box", "0.1,0.1,0.5,0.5", "--pose", "PHOTO2"], "normalised 0-1 units"),
    ],
)
def test_cli_mistakes_are_one_line(tiny_bundle, photos, tmp_path, args, message):
    args = [str(photos[int(a[-1])]) if a.startswith("PHOTO") else a for a in args]
    rest = [arg for kind in FACTORS if f"--{kind}" not in args for arg in (f"--{kind}", "random")]
    result = mix_cli(tiny_bundle, *args, *rest, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_out_needs_an_image_extension(tiny_bundle, tmp_path):
    result = mix_cli(tiny_bundle, *RANDOM_FACTORS, "--out", tmp_path / "x.txt")
    assert result.returncode == 2 and "--out needs an image extension" in result.stderr


def test_boxes_file_and_default_box(tmp_path, photos):
    (tmp_path / "boxes.txt").write_text(
        f"# path x y w h\n{photos[0]} 10 5 30 20\n{photos[1]},1.5,2,20,30\n"
    )
    table = BoxTable.read(tmp_path / "boxes.txt", default=(0, 0, 40, 40))
    assert table.lookup(photos[0]) == (10, 5, 30, 20)
    assert table.lookup(photos[1]) == (1.5, 2, 20, 30)
    assert table.lookup(photos[2]) == (0, 0, 40, 40)
    assert parse_factor(str(photos[0]), "background", table).box == (10, 5, 30, 20)
    (tmp_path / "bad.txt").write_text(f"{photos[0]} 1 2 3\n")
    with pytest.raises(MnmError, match=r"bad\.txt:1: expected PATH X Y W H"):
        BoxTable.read(tmp_path / "bad.txt")


def test_a_box_changes_the_crop_the_encoders_see(tiny_bundle, photos):
    pipe = Pipeline(tiny_bundle)
    whole = pipe.mix(photos[0], photos[1], "code:0", photos[2])
    boxed = pipe.mix(photos[0], photos[1], "code:0", photos[2], boxes=BoxTable(default=(5, 5, 20, 20)))
    assert not np.array_equal(whole, boxed)
    assert pipe.counters.images("enc_c") == 2  # a different crop is a different reference


def test_spec_lists_split_on_commas_unless_the_path_exists(tmp_path):
    odd = tmp_path / "a,b.png"
    odd.write_bytes(b"")
    assert split_specs(["x.png,code:1", "seed:2", str(odd)]) == ["x.png", "code:1", "seed:2", str(odd)]


def test_a_folder_or_a_quoted_pattern_gives_a_list_and_a_shell_expanded_one_says_how(tiny_bundle, photos, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for i, name in ((2, "t10.png"), (3, "t2.png"), (4, "t1.png")):  # natural order: t1, t2, t10
        (refs / name).write_bytes(photos[i].read_bytes())
    (refs / "notes.txt").write_text("not an image")
    expected = Pipeline(tiny_bundle).grid(background=photos[0], pose=photos[1], shape="code:0",
                                          texture=[refs / "t1.png", refs / "t2.png", refs / "t10.png"]).image()
    for value in (refs, refs / "t*.png"):
        out = tmp_path / f"grid-{len(str(value))}.png"
        result = mix_cli(tiny_bundle, "--background", photos[0], "--pose", photos[1], "--shape", "code:0",
                         "--texture", value, "--out", out)
        assert result.returncode == 0, result.stderr
        assert "1 x 3 grid, 3 images" in result.stdout
        np.testing.assert_array_equal(load_image(out), expected)
    # what `--texture refs/*.png` becomes in a shell: the option takes one value, the rest are stray
    result = mix_cli(tiny_bundle, "--texture", refs / "t1.png", refs / "t2.png", refs / "t10.png",
                     "--out", tmp_path / "x.png")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "unexpected argument(s)" in result.stderr and "--texture a.png --texture b.png" in result.stderr
    assert "quote a pattern (--texture 'refs/*.png')" in result.stderr
    result = mix_cli(tiny_bundle, "--background", "random", "--pose", "random", "--shape", "random",
                     "--texture", tmp_path / "none*.png", "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "none*.png: no file matches the pattern" in result.stderr


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("mix", [*RANDOM_FACTORS[:6], "--texture", "missing.png", "--out", "OUT/x.png"],
         "missing.png: reference image not found"),
        ("mix", [*RANDOM_FACTORS[:4], "--shape", "seed:x", "--texture", "random", "--out", "OUT/x.png"],
         "seed:x: reference image not found"),
        ("mix", [*RANDOM_FACTORS, "--out", "OUT/x.txt"], "--out needs an image extension"),
        ("mix", ["--background", "random", "--out", "OUT/x.png"], "missing --pose, --shape, --texture"),
        ("mix", ["--batch", "OUT/plan.csv", "--out", "OUT/rows"], "plan.csv:3: pose"),
        ("animate", ["--image", "missing.png", "--source", "PHOTOS", "--out", "OUT/a.gif"], "missing.png"),
        ("animate", ["--image", "PHOTO0", "--source", "OUT/clip.mp4", "--out", "OUT/a.gif"], "no such video file"),
        ("animate", ["--image", "PHOTO0", "--source", "PHOTOS", "--out", "OUT/a.avi"], "unsupported output '.avi'"),
        ("bench", ["--backend", "cuda-please"], "unknown backend 'cuda-please'"),
    ],
)
def test_inputs_are_checked_before_the_bundle_is_opened(photos, tmp_path, command, args, message):
    """The bundle named here does not exist: the error must be about the input, found first."""
    (tmp_path / "plan.csv").write_text(f"background,pose,shape,texture\n{photos[0]},{photos[1]},random,{photos[2]}\n"
                                       "random,code:3,random,random\n")
    subs = {"OUT": str(tmp_path), "PHOTOS": str(photos[0].parent), "PHOTO0": str(photos[0])}
    args = [subs.get(a, a) if not a.startswith("OUT/") else f"{tmp_path}/{a[4:]}" for a in args]
    result = run_cli(command, tmp_path / "no-bundle", *args, block_torch=True)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "no-bundle" not in result.stderr, result.stderr
    assert "backend:" not in result.stderr  # nothing about a backend: the bundle was never opened


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--background", "random", "--pose", "random", "--shape", "random"], "missing --texture:"),
        (["--background", "PHOTO0", "--pose", "PHOTO1", "--texture", "PHOTO2"], "missing --shape:"),
        (["--pose", "PHOTO1", "--mode", "feature"], "missing --background, --texture:"),
        ([], "missing --background, --pose, --shape, --texture:"),
    ],
)
def test_an_omitted_factor_is_refused_not_made_random(tiny_bundle, photos, tmp_path, args, message):
    """A forgotten factor is one line and exit 2, before the bundle is opened; random is asked for by name."""
    args = [str(photos[int(a[-1])]) if a.startswith("PHOTO") else a for a in args]
    result = mix_cli(tiny_bundle, *args, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "random, code:K or seed:N" in result.stderr
    assert "backend:" not in result.stderr and not (tmp_path / "x.png").exists()


def test_feature_mode_alone_may_leave_the_shape_out(tiny_bundle, photos, tmp_path):
    out = tmp_path / "feature.png"
    result = mix_cli(tiny_bundle, "--mode", "feature", "--background", photos[0], "--pose", photos[1],
                     "--texture", "code:1", "--out", out)
    assert result.returncode == 0, result.stderr
    expected = Pipeline(tiny_bundle).mix(photos[0], photos[1], None, "code:1", mode="feature")
    np.testing.assert_array_equal(load_image(out), expected)


def test_a_plan_row_with_an_empty_factor_is_refused(tiny_bundle, photos, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text(f"background,pose,shape,texture\n{photos[0]},{photos[1]},code:0,{photos[2]}\nrandom,seed:1,,random\n")
    result = mix_cli(tiny_bundle, "--batch", plan, "--out", tmp_path / "rows")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{plan}:3: shape: empty cell; every factor is given explicitly" in result.stderr
    assert not (tmp_path / "rows").exists()


def test_the_output_line_says_which_factors_took_several_values(tiny_bundle, photos, tmp_path):
    """Issue 26 item 15: a folder is a documented grid; the line names each factor that varied, how
    many values it took and the folder or pattern they came from."""
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in (2, 3, 4):
        (refs / f"t{i}.png").write_bytes(photos[i].read_bytes())
    out = tmp_path / "grid.png"
    result = mix_cli(tiny_bundle, "--background", f"{photos[0]},{photos[1]}", "--pose", photos[1], "--shape", "code:0",
                     "--texture", refs, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"wrote {out} (2 x 3 grid, 6 images): --background took 2 values, "
                                     f"--texture took 3 values (from {refs})")
