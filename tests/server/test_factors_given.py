"""Issue 26 item 13: /v1/mix and /v1/grid name every factor; one left out is a 422, never a quiet random."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import png, upload


@pytest.mark.parametrize(
    ("path", "kwargs", "missing"),
    [
        ("/v1/mix", {"data": {"background": "random", "pose": "seed:1", "shape": "code:0"}}, "texture"),
        ("/v1/mix", {"data": {"background": "random", "pose": "seed:1", "shape": "code:0", "texture": ""}},
         "texture"),  # a browser's empty field is left out
        ("/v1/mix", {"json": {"background": "code:1", "texture": None}}, "pose, shape, texture"),
        ("/v1/mix", {"json": {"background": "code:1", "pose": "seed:2", "texture": "code:3", "mode": "code"}},
         "shape"),
        ("/v1/grid", {"json": {"background": ["code:1", "code:2"], "shape": ["random"], "texture": ["random"]}},
         "pose"),
    ],
)
def test_a_factor_left_out_is_a_422_naming_it(server, path, kwargs, missing):
    response = httpx.post(server.url + path, timeout=60, **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "invalid_input"
    assert body["error"].startswith(f"missing {missing}:") and "random, code:K or seed:N" in body["error"]


def test_feature_mode_alone_leaves_the_shape_out(server, library, refs):
    files = [("pose", upload(refs[4])), ("background", upload(refs[5]))]
    response = httpx.post(server.url + "/v1/mix", files=files, data={"mode": "feature", "texture": "code:2"},
                          timeout=60)
    assert response.status_code == 200, response.text
    expected = library.mix(background=str(refs[5]), pose=str(refs[4]), texture="code:2", mode="feature", seed=0)
    assert response.content == png(expected)
