"""Only the documented image formats are ever decoded, and a file whose name says one format must be
that format: an EPS (which Pillow hands to Ghostscript) or a TIFF named ``.png`` is refused by the
library, with one line by the CLI, with 422 by the server, and by the data loaders."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnm.errors import MnmError
from mnm.imaging import decode_image_bytes, load_image
from mnm.training.datasets.annotations import image_size
from tests.server.conftest import DEMO, Server
from tests.util import run_cli

NOT_RECOGNISED = "not a recognised image (PNG, JPEG, WebP, BMP, GIF or TIFF)"


def encoded(fmt: str, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def disguised(tmp_path_factory) -> dict[str, Path]:
    """An EPS and a TIFF, each named .png, and a real PNG beside them."""
    folder = tmp_path_factory.mktemp("disguised")
    files = {"eps": ("eps.png", encoded("EPS")), "tiff": ("tiff.png", encoded("TIFF")),
             "png": ("real.png", encoded("PNG"))}
    for name, data in files.values():
        (folder / name).write_bytes(data)
    return {kind: folder / name for kind, (name, _) in files.items()}


def test_the_library_refuses_eps_and_a_tiff_under_a_png_name(disguised):
    with pytest.raises(MnmError) as eps:
        load_image(disguised["eps"])
    assert NOT_RECOGNISED in str(eps.value) and "Ghostscript" not in str(eps.value)
    with pytest.raises(MnmError, match=r"tiff.png: the file is TIFF, but its name says PNG"):
        load_image(disguised["tiff"])
    with pytest.raises(MnmError, match=r"upload \(tiff.png\): the file is TIFF"):
        decode_image_bytes(disguised["tiff"].read_bytes(), "upload (tiff.png)", filename="tiff.png")
    assert load_image(disguised["png"]).shape == (30, 40, 3)
    assert decode_image_bytes(disguised["tiff"].read_bytes(), "frame 0").shape == (30, 40, 3)  # no name: any listed


def test_the_data_loaders_refuse_them_too(disguised):
    with pytest.raises(MnmError, match="cannot identify image file"):
        image_size(disguised["eps"])
    with pytest.raises(MnmError, match="the file is TIFF"):
        image_size(disguised["tiff"])
    assert image_size(disguised["png"]) == (40, 30)


@pytest.mark.parametrize(("kind", "words"), [("eps", NOT_RECOGNISED), ("tiff", "the file is TIFF, but its name says")])
def test_the_cli_says_one_line(disguised, tmp_path, kind, words):
    result = run_cli("mix", str(DEMO), "--background", str(disguised[kind]), "--pose", "seed:1", "--shape", "code:1",
                     "--texture", "code:2", "--out", str(tmp_path / "out.png"), block_torch=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1] and str(disguised[kind]) in lines[-1]
    assert "Traceback" not in result.stderr and not (tmp_path / "out.png").exists()


def test_the_server_answers_422(disguised):
    server = Server(DEMO).wait_ready()
    try:
        factors = {"pose": "seed:1", "shape": "code:1", "texture": "code:2"}
        for kind, words in (("eps", NOT_RECOGNISED), ("tiff", "the file is TIFF")):
            path = disguised[kind]
            response = httpx.post(server.url + "/v1/mix", data=factors, timeout=60,
                                  files=[("background", (path.name, path.read_bytes(), "image/png"))])
            assert response.status_code == 422, response.text
            assert words in response.json()["error"] and path.name in response.json()["error"]
        path = disguised["png"]
        ok = httpx.post(server.url + "/v1/mix", data=factors, timeout=60,
                        files=[("background", (path.name, path.read_bytes(), "image/png"))])
        assert ok.status_code == 200, ok.text
    finally:
        assert server.stop() == 0, server.output()
