"""WS /v1/animate with a real WebSocket client on a clip the test writes: frame accounting, newest-frame
policy, exact frames, and the error paths."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.runtime.test_video import read_video, write_video
from tests.server.conftest import png

FRAMES = 60


def ws_url(server, query: str = "mode=code&format=png") -> str:
    return server.url.replace("http://", "ws://") + "/v1/animate?" + query


def receive_until_done(ws) -> tuple[list[dict], dict]:
    answers = []
    while True:
        message = json.loads(ws.recv(timeout=60))
        if message["type"] == "done":
            return answers, message
        answers.append(message)


def test_burst_of_frames_accounted_and_exact(server, library, refs, tmp_path):
    """60 frames sent at once: every frame is answered or reported dropped (sent = answered + dropped),
    the newest frame is always answered, and each answer equals the library's animator on that frame."""
    frames = read_video(write_video(tmp_path / "clip.mp4", FRAMES))
    assert len(frames) == FRAMES
    with connect(ws_url(server), max_size=None) as ws:
        ws.send(refs[0].read_bytes())
        ready = json.loads(ws.recv(timeout=60))
        assert ready == {"type": "ready", "mode": "code", "format": "png", "width": 32, "height": 32}
        for frame in frames:
            ws.send(png(frame))
        ws.send(json.dumps({"type": "stop"}))
        answers, done = receive_until_done(ws)
    assert all(a["type"] == "frame" for a in answers), answers[:3]
    answered = [a["seq"] for a in answers]
    dropped = [seq for a in answers for seq in a["dropped"]]
    assert done == {"type": "done", "received": FRAMES, "answered": len(answered), "dropped": len(dropped),
                    "failed": 0}
    assert done["received"] == done["answered"] + done["dropped"]
    assert sorted(answered + dropped) == list(range(FRAMES))
    assert answered == sorted(answered) and answered[-1] == FRAMES - 1
    assert dropped, "a burst faster than the model must drop stale frames"
    assert all(a["latency_ms"] >= a["compute_ms"] > 0 for a in answers)
    animator = library.animator(str(refs[0]), mode="code")
    for answer in answers:
        assert base64.b64decode(answer["image"]) == png(animator.frame(frames[answer["seq"]]))


def test_a_bad_frame_is_reported_and_the_stream_goes_on(server, refs):
    with connect(ws_url(server, "mode=feature&format=jpeg")) as ws:
        ws.send(refs[1].read_bytes())
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        ws.send(b"not an image")
        error = json.loads(ws.recv(timeout=60))
        assert error["type"] == "error" and error["seq"] == 0 and "not a recognised image" in error["message"]
        ws.send(refs[2].read_bytes())
        answer = json.loads(ws.recv(timeout=60))
        assert answer["type"] == "frame" and answer["seq"] == 1 and answer["format"] == "jpeg"
        assert base64.b64decode(answer["image"])[:2] == b"\xff\xd8"
        ws.send(json.dumps({"type": "stop"}))
        _, done = receive_until_done(ws)
    assert done == {"type": "done", "received": 2, "answered": 1, "dropped": 0, "failed": 1}


@pytest.mark.parametrize(("query", "first", "words"), [
    ("mode=code", "text", "static image as a binary message"),
    ("mode=code", b"garbage", "not a recognised image"),
    ("mode=sideways", b"", "mode"),
    ("format=gif", b"", "format"),
])
def test_refusals_say_why_and_close(server, query, first, words):
    with connect(ws_url(server, query)) as ws:
        if first:
            ws.send(first)
        message = json.loads(ws.recv(timeout=60))
        assert message["type"] == "error" and words in message["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
