"""Every endpoint of a real ``mnm serve`` against the library's output for the same inputs."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest

from mnm.imaging import encode_image, to_uint8
from mnm.runtime.requests import Factor
from tests.server.conftest import RANDOM, metric, png, upload
from tests.util import run_cli


def test_mix_form_equals_library_and_cli(server, library, refs, tmp_path):
    """Uploads and specs in a form: the PNG is byte-equal to Pipeline.mix's and to mnm mix's file."""
    files = [("background", upload(refs[0])), ("pose", upload(refs[1])), ("texture", upload(refs[2]))]
    response = httpx.post(server.url + "/v1/mix", files=files, data={"shape": "code:2", "seed": "7"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    expected = png(library.mix(background=str(refs[0]), pose=str(refs[1]), shape="code:2", texture=str(refs[2]),
                               seed=7))
    assert response.content == expected
    out = tmp_path / "cli.png"
    result = run_cli("mix", str(server_bundle(server)), "--background", str(refs[0]), "--pose", str(refs[1]),
                     "--shape", "code:2", "--texture", str(refs[2]), "--seed", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == response.content


def server_bundle(server) -> str:
    return server.args[4]


def test_mix_json_gives_codes_and_labels(server, library, refs):
    """The JSON form (base64 images) with Accept: application/json: the image and the codes used."""
    body = {"background": {"image": base64.b64encode(refs[3].read_bytes()).decode(), "filename": refs[3].name},
            "pose": "seed:4", "shape": "random", "texture": "code:5", "seed": 11}
    response = httpx.post(server.url + "/v1/mix", json=body, headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    rendered = library.render([library.make_mix(str(refs[3]), "seed:4", None, "code:5")], seed=11)[0]
    assert base64.b64decode(data["image"]) == png(rendered.image)
    assert (data["format"], data["width"], data["height"], data["mode"]) == ("png", 32, 32, "code")
    for name, value in rendered.codes.items():
        np.testing.assert_array_equal(np.asarray(data["codes"][name], np.float32), value)
    assert data["labels"] == {"background": refs[3].name, "pose": "seed:4", "shape": "random", "texture": "code:5"}
    assert float(response.headers["x-elapsed-ms"]) > 0


@pytest.mark.parametrize(("fmt", "media"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_mix_other_formats(server, library, fmt, media):
    response = httpx.post(server.url + "/v1/mix", timeout=60,
                          data={**RANDOM, "background": "code:1", "pose": "seed:2", "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    image = library.mix(background="code:1", pose="seed:2", seed=0)
    assert response.content == encode_image(image, fmt.upper())


def test_feature_mode_same_upload_for_shape_and_pose(server, library, refs):
    """Feature mode takes shape and pose from one image: the same file twice is that one image."""
    files = [("pose", upload(refs[4])), ("shape", upload(refs[4])), ("background", upload(refs[5]))]
    response = httpx.post(server.url + "/v1/mix", files=files, data={"mode": "feature", "texture": "random"},
                          timeout=60)
    assert response.status_code == 200, response.text
    expected = library.mix(background=str(refs[5]), pose=str(refs[4]), shape=str(refs[4]), mode="feature", seed=0)
    assert response.content == png(expected)


def test_grid_form_equals_library(server, library, refs):
    """Repeated fields make the grid; labels come from the uploaded file names, as on the CLI."""
    files = [("background", upload(refs[0])), ("background", upload(refs[1])),
             ("texture", upload(refs[2])), ("texture", upload(refs[3])), ("texture", upload(refs[4]))]
    response = httpx.post(server.url + "/v1/grid", files=files, data={"pose": "seed:1", "shape": "random", "seed": "3"},
                          timeout=60)
    assert response.status_code == 200, response.text
    grid = library.grid(background=[str(refs[0]), str(refs[1])], pose=["seed:1"],
                        texture=[str(refs[2]), str(refs[3]), str(refs[4])], seed=3)
    assert response.content == png(grid.image())


def test_grid_json_cells(server, library):
    body = {"background": ["code:1", "code:2"], "texture": ["code:3", "code:4"], "pose": ["seed:5"],
            "shape": ["random"], "seed": 2}
    response = httpx.post(server.url + "/v1/grid", json=body, headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    grid = library.grid(background=["code:1", "code:2"], pose=["seed:5"], texture=["code:3", "code:4"], seed=2)
    assert base64.b64decode(data["image"]) == png(grid.image())
    assert (data["rows"], data["cols"], len(data["cells"])) == (2, 2, 4)
    assert [c["labels"]["background"] for c in data["cells"]] == ["code:1", "code:1", "code:2", "code:2"]
    assert [c["labels"]["texture"] for c in data["cells"]] == ["code:3", "code:4", "code:3", "code:4"]
    for cell, rendered in zip(data["cells"], grid.cells, strict=True):
        np.testing.assert_array_equal(np.asarray(cell["codes"]["c"], np.float32), rendered.codes["c"])


def test_encode_then_generate_round_trip(server, library, refs):
    """/v1/encode gives the library's codes; /v1/generate from them gives Pipeline.generate's image."""
    response = httpx.post(server.url + "/v1/encode", files=[("image", upload(refs[6]))], timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()
    codes = library.encode([str(refs[6])])
    for name in ("z", "b", "p", "c"):
        np.testing.assert_array_equal(np.asarray(data["codes"][name], np.float32), codes[name][0])
        if name != "z":
            assert data["categories"][name] == int(codes[name][0].argmax())
    body = {"z_bg": data["codes"]["z"], "b": data["codes"]["b"], "z_pose": data["codes"]["z"],
            "p": data["codes"]["p"], "c": data["codes"]["c"]}
    response = httpx.post(server.url + "/v1/generate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    out = library.generate(z_bg=codes["z"], b=codes["b"], c=codes["c"], z_pose=codes["z"], p=codes["p"])
    assert response.content == png(to_uint8(out["image"][0]))


def test_generate_indices_and_seeds(server, library):
    response = httpx.post(server.url + "/v1/generate", json={"z_bg": 3, "b": 1, "z_pose": 4, "p": 2, "c": 9},
                          headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    image = library.mix(background=Factor(code=1, z=3), pose="seed:4", shape="code:2", texture="code:9", seed=0)
    assert base64.b64decode(response.json()["image"]) == png(image)


def test_info_health_metrics_openapi(server, demo):
    info = httpx.get(server.url + "/v1/info", timeout=10).json()
    assert info["config"]["image_size"] == 32 and info["modes"] == ["code", "feature"]
    assert info["batching"]["kind"] == "own" and info["limits"]["max_queue"] == 64
    assert httpx.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    text = server.metrics()
    assert "# TYPE mnm_http_request_duration_seconds histogram" in text
    assert metric(text, "mnm_http_requests_total", endpoint="/v1/info", status="200") >= 1
    for name in ("mnm_cache_hits_total", "mnm_requests_in_flight", "mnm_batch_queue_depth", "mnm_batch_images_bucket"):
        assert name in text
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    mix = schema["paths"]["/v1/mix"]["post"]
    assert set(mix["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "MixRequest" in schema["components"]["schemas"] and "ImageIn" in schema["components"]["schemas"]
    assert set(mix["responses"]["200"]["content"]) >= {"image/png", "application/json"}
    json.dumps(schema)  # a complete, serialisable document


def test_cache_hits_show_in_metrics(server, refs):
    """The same reference twice: the second request's encodings come from the cache."""
    before = metric(server.metrics(), "mnm_cache_hits_total", cache="codes")
    for _ in range(2):
        response = httpx.post(server.url + "/v1/mix", files=[("texture", upload(refs[7]))],
                              data={"background": "random", "pose": "random", "shape": "random"}, timeout=60)
        assert response.status_code == 200
    assert metric(server.metrics(), "mnm_cache_hits_total", cache="codes") >= before + 1
