"""mnm_image_load against the Python runtime's load_image (load_driver.c): lossless formats give the
same pixels (transparency over white, 16-bit values, a palette's transparent colour), a JPEG its
EXIF orientation; the format comes from the first bytes, never the name; what is not an image is
refused with a message."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnm.imaging import load_image
from tests.capi.conftest import HERE, run

JPEG_LEVELS = 1  # two JPEG decoders (libjpeg-turbo builds) may round differently; 0 measured here


def write_files(folder):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (30, 40, 3), np.uint8)
    alpha = rng.integers(0, 256, (30, 40), np.uint8)
    files = {}

    def add(name, image, **options):
        image.save(folder / name, **options)
        files[name] = folder / name

    add("rgb.png", Image.fromarray(rgb))
    add("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
    add("grey16.png", Image.fromarray((rng.integers(0, 65536, (30, 40))).astype(np.uint16)))
    palette = Image.fromarray(rgb).quantize(16)
    add("palette_transparent.png", palette, transparency=3)
    add("grey.png", Image.fromarray(rgb[..., 0]))
    add("rgb.bmp", Image.fromarray(rgb))
    add("rgb.tif", Image.fromarray(rgb))
    add("rgb.webp", Image.fromarray(rgb), lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    add("rotated.jpg", Image.fromarray(rgb), quality=95, exif=exif)
    add("png_named.jpg", Image.fromarray(rgb), format="PNG")
    (folder / "text.png").write_text("not an image\n")
    files["text.png"] = folder / "text.png"
    return files


def test_image_files_decode_as_the_python_runtime_does(cpp, tmp_path):
    files = write_files(tmp_path)
    result = run(cpp.compile(HERE / "load_driver.c"), *files.values())
    assert result.returncode == 0, result.stderr
    said = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines()}
    assert said[str(files["text.png"])].startswith("MNM_ERR_RUNTIME ")
    assert "not a recognised image" in said[str(files["text.png"])]
    # a name that claims another of the formats is refused, as mnm.imaging.open_image refuses it
    assert said[str(files["png_named.jpg"])].startswith("MNM_ERR_RUNTIME ")
    assert "the file is PNG, but its name says JPEG (.jpg)" in said[str(files["png_named.jpg"])]
    for name, path in files.items():
        if name in ("text.png", "png_named.jpg"):
            continue
        want = load_image(path)
        assert said[str(path)] == f"{want.shape[1]}x{want.shape[0]}", name
        got = np.fromfile(f"{path}.rgb", np.uint8).reshape(want.shape)
        if name.endswith(".jpg"):
            assert np.abs(got.astype(int) - want).max() <= JPEG_LEVELS, name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
