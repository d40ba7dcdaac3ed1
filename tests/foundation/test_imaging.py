"""mnm.imaging: every format and odd mode decodes to RGB uint8, bad files give one clear line,
the crop geometry matches the reference, and the preprocessing round-trips exactly."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from mnm.atomic import TMP_PREFIX
from mnm.errors import MnmError
from mnm.imaging import (
    crop_resize,
    load_image,
    object_crop_box,
    prepare_reference,
    save_image,
    to_model_input,
    to_uint8,
    validate_box,
)
from tests.util import run_python


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _write_black_1bit_png(path, width: int, height: int) -> None:
    """A valid 1-bit PNG written row by row: a few kB on disk, width*height pixels decoded."""
    row = b"\x00" + bytes((width + 7) // 8)
    rows_per_block = 500
    compressor = zlib.compressobj(6)
    data = bytearray()
    for start in range(0, height, rows_per_block):
        data += compressor.compress(row * min(rows_per_block, height - start))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", bytes(data))
        + _png_chunk(b"IEND", b"")
    )


# --- formats --------------------------------------------------------------------------------

@pytest.mark.parametrize("ext, options", [
    (".png", {}), (".bmp", {}), (".tif", {}), (".webp", {"lossless": True}),
])
def test_lossless_formats_decode_exactly(tmp_path, ext, options):
    rgb = _noise(23, 31)
    path = tmp_path / f"img{ext}"
    Image.fromarray(rgb).save(path, **options)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (23, 31, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_decodes_close(tmp_path):
    rgb = np.full((16, 24, 3), (200, 100, 50), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=100)
    out = load_image(tmp_path / "a.jpg")
    assert out.shape == (16, 24, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 2


def test_jpeg_exif_orientation_6_is_applied(tmp_path):
    # Stored 40 wide x 20 high, left half red, right half blue; tag 6 = rotate 90 degrees clockwise
    # to display, so the decoded image is 20 wide x 40 high with red on top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (40, 20, 3)
    assert np.abs(out[5, 10].astype(int) - (255, 0, 0)).max() <= 8
    assert np.abs(out[35, 10].astype(int) - (0, 0, 255)).max() <= 8


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (12, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 3
    out = load_image(tmp_path / "anim.gif")
    assert out.shape == (8, 12, 3)
    assert (out == (255, 0, 0)).all()


# --- odd modes ------------------------------------------------------------------------------

def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (12, 20, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 40000, 65535]], np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    image.save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    expected = np.round(values / 257.0).astype(np.uint8)  # [0, 1, 4, 128, 156, 255]
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_array_equal(out[:, :, 2], expected)


def test_32bit_integer_tiff_is_read_as_16bit(tmp_path):
    values = np.array([[0, 25700, 65535, 100000, -5]], np.int32)
    image = Image.fromarray(values)
    assert image.mode == "I"
    image.save(tmp_path / "i32.tif")
    out = load_image(tmp_path / "i32.tif")
    np.testing.assert_array_equal(out[0, :, 1], [0, 100, 255, 255, 0])


def test_16bit_rgb_png_keeps_full_range(tmp_path):
    bgr16 = np.zeros((2, 3, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    bgr16[..., 1] = 257 * 100  # green
    bgr16[..., 0] = 0  # blue
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), bgr16)
    out = load_image(tmp_path / "rgb16.png")
    assert (out == (255, 100, 0)).all()


def test_cmyk_jpeg_converts_with_black(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[...] = (0, 128, 200, 64)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    out = load_image(tmp_path / "cmyk.jpg")
    # R = (255 - C)(255 - K) / 255 and likewise for G, B.
    expected = np.array([(255 - v) * (255 - 64) / 255 for v in (0, 128, 200)])
    assert np.abs(out[8, 8] - expected).max() <= 3


def test_one_bit_image(tmp_path):
    checker = (np.indices((8, 10)).sum(axis=0) % 2).astype(bool)
    Image.fromarray(checker).convert("1").save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    out = load_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out[:, :, 0], np.where(checker, 255, 0))


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: unchanged
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half: about half grey
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png").astype(int)
    assert (out[0, 0] == (10, 20, 30)).all()
    assert (out[0, 1] == 255).all()
    assert np.abs(out[0, 2] - 255 * 127 / 255).max() <= 1


def test_grey_alpha_is_composited_over_white(tmp_path):
    la = Image.fromarray(np.array([[[100, 255], [100, 0]]], np.uint8), mode="LA")
    la.save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    out = load_image(tmp_path / "la.png")
    assert (out[0, 0] == 100).all() and (out[0, 1] == 255).all()


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 2))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * (3 * 254))
    image.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    image.save(tmp_path / "p.png", transparency=0)
    reopened = Image.open(tmp_path / "p.png")
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = load_image(tmp_path / "p.png")
    mask = np.array([[0, 1, 0, 1], [1, 1, 0, 0]], bool)
    assert (out[mask] == (255, 0, 0)).all()
    assert (out[~mask] == 255).all()  # transparent index 0 (black) becomes white


def test_palette_gif_without_transparency(tmp_path):
    Image.new("RGB", (5, 5), (0, 128, 255)).quantize(4).save(tmp_path / "p.gif")
    out = load_image(tmp_path / "p.gif")
    assert np.abs(out.astype(int) - (0, 128, 255)).max() <= 3


def test_float_tiff_is_refused(tmp_path):
    Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(MnmError, match="f.tif: 32-bit float"):
        load_image(tmp_path / "f.tif")


# --- bad files ------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file(tmp_path, ext):
    path = tmp_path / f"cut{ext}"
    Image.fromarray(_noise(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MnmError, match=rf"cut\{ext}: corrupt or truncated image"):
        load_image(path)


def test_corrupt_bytes_after_a_valid_header(tmp_path):
    path = tmp_path / "bad.png"
    Image.fromarray(_noise(32, 32)).save(path)
    data = bytearray(path.read_bytes())
    data[60:200] = bytes(140)  # inside IDAT: zlib stream and CRC broken
    path.write_bytes(bytes(data))
    with pytest.raises(MnmError, match="bad.png: corrupt or truncated image"):
        load_image(path)


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(MnmError, match="notes.png: not a recognised image"):
        load_image(tmp_path / "notes.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MnmError, match="empty.jpg: empty file"):
        load_image(tmp_path / "empty.jpg")


def test_directory(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(MnmError, match="dir.png: is a folder"):
        load_image(tmp_path / "dir.png")


def test_missing_path(tmp_path):
    with pytest.raises(MnmError, match="nope.png: image file not found"):
        load_image(tmp_path / "nope.png")


def test_unreadable_file(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    path = tmp_path / "locked.png"
    Image.fromarray(_noise(4, 4)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(MnmError, match="locked.png: cannot read the file"):
            load_image(path)
    finally:
        path.chmod(0o600)


def test_over_limit_refused_before_decoding(tmp_path):
    path = tmp_path / "wide.png"
    _write_black_1bit_png(path, 12000, 10000)  # 120 Mpx, over the 100 Mpx default
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(MnmError) as info:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "wide.png" in message and "12000x10000" in message and "100,000,000" in message
    assert "\n" not in message


def test_pillow_bomb_guard_is_reported(tmp_path):
    path = tmp_path / "bomb.png"
    _write_black_1bit_png(path, 20000, 20000)  # 400 Mpx: past Pillow's own hard limit too
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(MnmError, match="bomb.png: image too large to decode.*400000000 pixels"):
        load_image(path)
    assert time.perf_counter() - start < 1.0


def test_custom_pixel_limit(tmp_path):
    Image.fromarray(_noise(50, 60)).save(tmp_path / "small.png")
    assert load_image(tmp_path / "small.png", max_pixels=3000).shape == (50, 60, 3)
    pattern = r"small.png: image is 60x50 \(3,000 pixels\), over the limit of 2,999"
    with pytest.raises(MnmError, match=pattern):
        load_image(tmp_path / "small.png", max_pixels=2999)


def test_array_input_is_validated():
    rgb = _noise(5, 6)
    np.testing.assert_array_equal(load_image(rgb), rgb)
    for bad in (rgb.astype(np.float32), rgb[:, :, 0], np.zeros((5, 6, 4), np.uint8), rgb[:0]):
        with pytest.raises(MnmError, match="expected an H x W x 3 uint8 RGB image"):
            load_image(bad)


# --- boxes and crops ------------------------------------------------------------------------

@pytest.mark.parametrize("box, width, height, expected", [
    # centre 100, 40; half side int(40 * 0.75) = 30
    ((80, 30, 40, 20), 200, 100, (70, 10, 130, 70)),
    # top-left corner: centre 10, 5; half 15; clipped at 0
    ((0, 0, 20, 10), 100, 100, (0, 0, 25, 20)),
    # bottom-right: centre int(85), int(65); half int(22.5) = 22; clipped at 100, 80
    ((70, 50, 30, 30), 100, 80, (63, 43, 100, 80)),
    # float box: centre int(27.0), int(25.75) = 27, 25; half int(24.75) = 24
    ((10.5, 20.25, 33.0, 11.0), 64, 64, (3, 1, 51, 49)),
    # whole image: half 75 around 50 -> clipped to the image
    ((0, 0, 100, 100), 100, 100, (0, 0, 100, 100)),
    # box 1 px past the edge is tolerated (annotation rounding): centre 40, half 15
    ((30, 0, 21, 10), 50, 20, (25, 0, 50, 20)),
])
def test_object_crop_box_geometry(box, width, height, expected):
    result = object_crop_box(box, width, height)
    assert result == expected
    assert all(type(v) is int for v in result)


@pytest.mark.parametrize("box, pattern", [
    ((0.1, 0.2, 0.5, 0.4), "looks like normalised 0-1 units; boxes must be in pixels"),
    ((0, 0, 1, 1), "looks like normalised"),
    ((-5, 0, 10, 10), "starts at a negative coordinate"),
    ((10, 10, 0, 20), "zero or negative width or height"),
    ((10, 10, 20, -3), "zero or negative width or height"),
    ((60, 50, 50, 10), "extends outside the 100x80 image"),
    ((10, 75, 20, 10), "extends outside the 100x80 image"),
    ((float("nan"), 0, 5, 5), "non-finite"),
    ((1, 2, 3), "needs 4 numbers"),
    ("abcd", "needs 4 numbers"),
])
def test_validate_box_errors(box, pattern):
    with pytest.raises(MnmError, match=f"bounding_boxes.txt line 7: .*{pattern}"):
        validate_box(box, 100, 80, source="bounding_boxes.txt line 7")


def test_validate_box_returns_floats():
    assert validate_box((1, 2, 30, 40), 100, 80) == (1.0, 2.0, 30.0, 40.0)


def test_crop_resize_shrink_averages_with_inter_area():
    checker = (np.indices((6, 6)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[:, :, None], 3, axis=2)
    out = crop_resize(image, (0, 0, 6, 6), 2)
    assert out.shape == (2, 2, 3)
    # Each output pixel is the mean of a 3x3 block (5 of one colour, 4 of the other), not a sample.
    block_means = image[:, :, 0].reshape(2, 3, 2, 3).mean(axis=(1, 3))
    assert np.abs(out[:, :, 0] - block_means).max() <= 1


def test_crop_resize_crops_the_right_region_and_enlarges():
    image = np.zeros((40, 50, 3), np.uint8)
    image[10:20, 30:40] = (0, 255, 0)
    out = crop_resize(image, (30, 10, 40, 20), 32)
    assert out.shape == (32, 32, 3)
    assert (out == (0, 255, 0)).all()
    same = crop_resize(image, (30, 10, 40, 20), 10)
    np.testing.assert_array_equal(same, image[10:20, 30:40])


@pytest.mark.parametrize("box", [(0, 0, 0, 5), (10, 0, 5, 5), (0, 0, 51, 10), (-1, 0, 5, 5)])
def test_crop_resize_rejects_bad_crops(box):
    with pytest.raises(MnmError, match="empty or outside the 50x40 image"):
        crop_resize(np.zeros((40, 50, 3), np.uint8), box, 8)


# --- normalisation --------------------------------------------------------------------------

def test_model_input_round_trip_is_exact_for_every_value():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    image[:, :, 1] = image[:, :, 1][::-1]
    x = to_model_input(image)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(to_uint8(x), image)
    batch = np.stack([x, x[:, ::-1]])
    np.testing.assert_array_equal(to_uint8(batch), np.stack([image, image[::-1]]))


def test_to_uint8_layouts_rounding_and_clipping():
    values = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0], np.float32)
    expected = [0, 0, 128, 191, 255, 255]  # (v + 1) * 127.5 rounded, then clipped
    hwc = np.repeat(values.reshape(1, 6, 1), 3, axis=2)
    np.testing.assert_array_equal(to_uint8(hwc)[0, :, 0], expected)
    chw = hwc.transpose(2, 0, 1)
    np.testing.assert_array_equal(to_uint8(chw), to_uint8(hwc))
    assert to_uint8(chw[None].astype(np.float64)).shape == (1, 1, 6, 3)
    assert to_uint8(hwc[None]).shape == (1, 1, 6, 3)


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((3, 4, 4), np.uint8), "expected floats"),
    (np.zeros((4, 4), np.float32), "3 channels"),
    (np.zeros((2, 4, 4, 4), np.float32), "3 channels"),
    (np.full((3, 2, 2), np.nan, np.float32), "NaN or infinite"),
])
def test_to_uint8_rejects(bad, pattern):
    with pytest.raises(MnmError, match=pattern):
        to_uint8(bad)


def test_prepare_reference_with_box(tmp_path):
    image = np.zeros((60, 80, 3), np.uint8)
    image[:, :] = (0, 255, 0)
    image[20:40, 40:60] = (255, 0, 0)  # the object
    Image.fromarray(image).save(tmp_path / "obj.png")
    x = prepare_reference(tmp_path / "obj.png", 32, box=(40, 20, 20, 20))
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    # crop (35, 15, 65, 45): the object fills the middle two thirds
    np.testing.assert_array_equal(x[:, 16, 16], [1.0, -1.0, -1.0])
    np.testing.assert_array_equal(x[:, 0, 0], [-1.0, 1.0, -1.0])
    np.testing.assert_array_equal(prepare_reference(image, 32, box=(40, 20, 20, 20)), x)
    with pytest.raises(MnmError, match="obj.png: box .* looks like normalised"):
        prepare_reference(tmp_path / "obj.png", 32, box=(0.5, 0.3, 0.25, 0.3))


def test_prepare_reference_without_box_takes_the_centred_square():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (0, 0, 255)
    wide[:, 100:200] = (255, 0, 0)
    wide[:, 200:] = (0, 255, 0)
    x = prepare_reference(wide, 64)
    assert x.shape == (3, 64, 64)
    assert (x[0] == 1.0).all() and (x[1:] == -1.0).all()  # only the red middle square
    tall = wide.transpose(1, 0, 2).copy()
    np.testing.assert_array_equal(prepare_reference(tall, 64), x)


# --- saving ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.png", "out.bmp", "out.tiff", "sub/dir/out.PNG"])
def test_save_image_lossless_round_trip(tmp_path, name):
    rgb = _noise(17, 13, seed=3)
    save_image(tmp_path / name, rgb)
    np.testing.assert_array_equal(load_image(tmp_path / name), rgb)
    assert not [p for p in tmp_path.rglob(TMP_PREFIX + "*")]


def test_save_image_jpeg_and_overwrite(tmp_path):
    path = tmp_path / "out.jpg"
    save_image(path, np.full((8, 8, 3), 10, np.uint8))
    save_image(path, np.full((8, 8, 3), 200, np.uint8))
    assert Image.open(path).format == "JPEG"
    assert np.abs(load_image(path).astype(int) - 200).max() <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg"]


def test_save_image_rejects_unknown_extension_and_bad_arrays(tmp_path):
    with pytest.raises(MnmError, match=r"out.xyz: cannot tell the image format from the extension '.xyz'"):
        save_image(tmp_path / "out.xyz", _noise(4, 4))
    with pytest.raises(MnmError, match="out.png: image to save: expected an H x W x 3 uint8"):
        save_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_imaging_works_without_torch(tmp_path):
    Image.fromarray(_noise(40, 30)).save(tmp_path / "ref.png")
    result = run_python(
        "import sys, mnm.imaging as im; "
        f"x = im.prepare_reference({str(tmp_path / 'ref.png')!r}, 32, box=(5, 5, 20, 20)); "
        f"im.save_image({str(tmp_path / 'out.png')!r}, im.to_uint8(x)); "
        "assert not any(m == 'torch' or m.startswith('torch.') for m, v in sys.modules.items() if v); "
        "print(x.shape)",
        block_torch=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 32, 32)"
    assert load_image(tmp_path / "out.png").shape == (32, 32, 3)
