"""The bad-input corpus, written here by the tests themselves, and the shared tiny bundle and data.

Every odd-but-valid image comes with the RGB pixels it must decode to, computed here without
``mnm.imaging`` (palette lookups, the CMYK formula, a numpy rotation for EXIF, ...), so a test can
check that a command's output is the output for exactly those pixels.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.bundle_edits import add_engine, edit_manifest
from tests.runtime.conftest import TINY, photo, tiny_bundle  # noqa: F401  (session fixture re-used here)
from tests.runtime.test_video import write_video
from tests.training.conftest import synth_data  # noqa: F401  (session fixture re-used here)

PIXEL_LIMIT_SIDE = 12_000
"""The decompression-bomb PNG is 12000 x 12000 (144 M pixels, over the 100 M default) in about 18 kB."""
PHOTO_SIZE = (70, 52)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def write_bomb_png(path: Path, side: int) -> Path:
    """A valid black 1-bit PNG of side x side, written row block by row block (never in memory)."""
    row = b"\x00" + bytes((side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = bytearray()
    for start in range(0, side, 1000):
        data += compressor.compress(row * min(1000, side - start))
    data += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", bytes(data))
                     + png_chunk(b"IEND", b""))
    return path


def _noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _valid_images(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Odd but valid references: name -> (file, the RGB pixels it must decode to)."""
    out = {}

    grey16 = np.random.default_rng(1).integers(0, 65536, (40, 48), dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    grey8 = ((grey16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    out["grey16"] = (folder / "grey16.png", np.repeat(grey8[..., None], 3, axis=2))

    rgb16 = np.random.default_rng(2).integers(0, 65536, (36, 44, 3), dtype=np.uint16)
    cv2.imwrite(str(folder / "rgb16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    out["rgb16"] = (folder / "rgb16.png", (rgb16 >> 8).astype(np.uint8))

    cmyk = _noise(40, 30, 3, channels=4)
    Image.fromarray(cmyk, mode="CMYK").save(folder / "cmyk.jpg", quality=90)
    raw = np.array(Image.open(folder / "cmyk.jpg")).astype(np.int64)  # the decoded C, M, Y, K
    out["cmyk"] = (folder / "cmyk.jpg", (((255 - raw[..., :3]) * (255 - raw[..., 3:]) + 127) // 255).astype(np.uint8))

    palette = _noise(1, 16, 4).reshape(16, 3)
    index = np.random.default_rng(5).integers(0, 16, (33, 41), dtype=np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.reshape(-1).tolist() + [0] * (768 - 48))
    image.save(folder / "palette.png")
    out["palette"] = (folder / "palette.png", palette[index])

    rgba = _noise(38, 42, 6, channels=4)
    rgba[..., 3] = np.where(rgba[..., 3] > 127, 255, 0)  # opaque or clear: exact over white
    Image.fromarray(rgba, mode="RGBA").save(folder / "alpha.png")
    out["alpha"] = (folder / "alpha.png", np.where(rgba[..., 3:] == 255, rgba[..., :3], 255).astype(np.uint8))

    upright = _noise(24, 40, 7)
    Image.fromarray(upright).save(folder / "exif.jpg", quality=95, exif=_orientation(6))
    stored = np.array(Image.open(folder / "exif.jpg"))  # the pixels as stored, not yet rotated
    out["exif"] = (folder / "exif.jpg", np.ascontiguousarray(np.rot90(stored, k=-1)))  # 6: turn 90 clockwise

    frames = [np.full((30, 30), k, np.uint8) for k in (1, 2)]
    gif_palette = [0, 0, 0, 200, 30, 40, 20, 180, 90] + [0] * (768 - 9)
    images = [Image.fromarray(f, mode="P") for f in frames]
    for im in images:
        im.putpalette(gif_palette)
    images[0].save(folder / "anim.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    out["animated_gif"] = (folder / "anim.gif", np.full((30, 30, 3), (200, 30, 40), np.uint8))

    one = _noise(1, 1, 8)
    Image.fromarray(one).save(folder / "one.png")
    out["1x1"] = (folder / "one.png", one)

    tall = _noise(4000, 10, 9)
    Image.fromarray(tall).save(folder / "tall.png")
    out["10x4000"] = (folder / "tall.png", tall)
    return out


def _orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _bad_images(folder: Path) -> dict[str, Path]:
    good_png, good_jpg = folder / "good.png", folder / "good.jpg"
    Image.fromarray(_noise(64, 64, 10)).save(good_png)
    Image.fromarray(_noise(64, 64, 11)).save(good_jpg, quality=90)
    bad = {
        "truncated_png": folder / "truncated.png",
        "truncated_jpg": folder / "truncated.jpg",
        "text_png": folder / "text.png",
        "empty_png": folder / "empty.png",
        "huge_png": write_bomb_png(folder / "huge.png", PIXEL_LIMIT_SIDE),
        "missing_png": folder / "missing.png",
        "folder_png": folder / "folder.png",
        "locked_png": folder / "locked.png",
    }
    bad["truncated_png"].write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    bad["truncated_jpg"].write_bytes(good_jpg.read_bytes()[: good_jpg.stat().st_size // 2])
    bad["text_png"].write_text("this is not an image, only text with a .png name\n")
    bad["empty_png"].write_bytes(b"")
    bad["folder_png"].mkdir()
    shutil.copyfile(good_png, bad["locked_png"])
    bad["locked_png"].chmod(0)
    return bad


def _videos(folder: Path) -> dict[str, Path]:
    videos = {
        "video_junk": folder / "junk.mp4",
        "video_empty": write_video(folder / "empty.avi", 0, fourcc="MJPG"),
        "video_cut": write_video(folder / "cut.avi", 30, fourcc="MJPG"),
        "video_ok": write_video(folder / "ok.avi", 6, fourcc="MJPG"),
    }
    videos["video_junk"].write_bytes(b"not a video at all " * 40)
    data = videos["video_cut"].read_bytes()
    videos["video_cut"].write_bytes(data[: len(data) // 2 + 7])  # ends inside a frame
    return videos


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, tiny_bundle):  # noqa: F811
    """Every bad or odd input of the issue as a file (or folder) on disk, plus damaged bundles."""
    root = tmp_path_factory.mktemp("corpus")
    images, video, bundles = root / "images", root / "video", root / "bundles"
    for folder in (images, video, bundles):
        folder.mkdir()
    valid = _valid_images(images)
    photos = [photo(images / f"photo{i}.png", seed=200 + i, size=PHOTO_SIZE) for i in range(3)]
    return SimpleNamespace(
        root=root,
        valid=valid,
        photos=photos,
        bundle=tiny_bundle,
        **_bad_images(images),
        **_videos(video),
        **damaged_bundles(tiny_bundle, bundles),
    )


def damaged_bundles(source: Path, folder: Path) -> dict[str, Path]:
    """Copies of the tiny bundle, each broken in one way."""
    out = {name: Path(shutil.copytree(source, folder / name))
           for name in ("bundle_no_graph", "bundle_tampered", "bundle_future", "bundle_foreign_engine")}
    (out["bundle_no_graph"] / "enc_c.onnx").unlink()
    graph = out["bundle_tampered"] / "g_child.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    edit_manifest(out["bundle_future"], lambda m: m.update(format_version=99))
    add_engine(out["bundle_foreign_engine"], "g_child", FOREIGN_MACHINE)
    out["bundle_as_file"] = folder / "bundle.txt"
    out["bundle_as_file"].write_text("a file where a bundle folder is expected\n")
    out["bundle_missing"] = folder / "no-such-bundle"
    return out


FOREIGN_MACHINE = {"tensorrt_version": "8.6.1", "gpu_name": "NVIDIA GeForce GTX 1080", "compute_capability": "6.1"}


def first_unreadable_file() -> Path | None:
    """A file that even root cannot read (a write-only sysctl), or None where there is none."""
    for candidate in (Path("/proc/sys/vm/compact_memory"), Path("/proc/sysrq-trigger")):
        try:
            with open(candidate, "rb") as f:
                f.read(1)
        except PermissionError:
            return candidate
        except OSError:
            continue
    return None


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """CUB-layout folders with one flaw each: boxes in 0-1 units, a truncated image."""
    from tests.data.conftest import write_cub

    root = tmp_path_factory.mktemp("datasets")
    items = [(f"001.a/img{i}.jpg", (48, 40), (8, 6, 24, 20), 1 + i % 2, True) for i in range(4)]
    unit_boxes = [(rel, size, (0.1, 0.2, 0.5, 0.5), label, train) for rel, size, _, label, train in items]
    truncated = write_cub(root / "truncated", items)
    image = truncated / "images" / items[1][0]
    image.write_bytes(image.read_bytes()[:200])
    return SimpleNamespace(unit_boxes=write_cub(root / "unit_boxes", unit_boxes), truncated=truncated,
                           truncated_image=image)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synth_data):  # noqa: F811
    """A one-step code-mode run of the tiny preset, made through the CLI in this process."""
    from mnm.cli import run
    from mnm.training.run import RunFolder

    out = tmp_path_factory.mktemp("runs")
    code = run(["train", "code", "--data", str(synth_data), "--out", str(out), "--preset", "tiny", "--steps", "1",
                "--batch", "2", "--threads", "1"])
    assert code == 0
    (run_dir,) = out.iterdir()
    return SimpleNamespace(path=run_dir, checkpoint=RunFolder(run_dir).latest_checkpoint())


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, tiny_run):
    """Copies of the tiny run's checkpoint: meta from another preset, tampered tensors, a future format."""
    from mnm.config import PRESETS

    root = tmp_path_factory.mktemp("checkpoints")
    names = ("other_preset", "tampered", "future")
    out = {name: Path(shutil.copytree(tiny_run.checkpoint, root / name)) for name in names}

    def edit(folder: Path, change) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        change(meta)
        (folder / "meta.json").write_text(json.dumps(meta))

    edit(out["other_preset"], lambda m: m.update(config=PRESETS["lite"].to_dict()))
    edit(out["future"], lambda m: m.update(format=99))
    tensors = out["tampered"] / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    return SimpleNamespace(**out)
